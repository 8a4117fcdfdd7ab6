"""LR images as the published test protocols make them (--degradation).

BI  MATLAB imresize(HR, 1/s, 'bicubic') on the uint8 image, with the border
    rule of --imresize_border (data/imresize.py).
BD  RDN/SRMD's imresize_BD (their Prepare_TestData_HR_LR.m): a Gaussian
    kernel fspecial('gaussian', k, --blur_sigma), k = ceil(3 sigma) * 2 + 1 for
    odd scales (7 for x3 with sigma 1.6, a special case in that script) and
    ceil(3 sigma) * 2 + 2 for even ones; imfilter(HR, kernel, 'replicate') on
    the uint8 image (rounded back to uint8); then odd scales take
    imresize(blurred, 1/s, 'nearest') (1-based rows/columns (s+1)/2, (s+1)/2 + s,
    ...: 2, 5, 8, ... at x3) and even scales blurred(s/2:s:end-s/2, ...).
DN  BI, as single precision, + --noise_level * randn, back through MATLAB's
    uint8() (round half away from zero, saturate). MATLAB's randn stream cannot
    be reproduced, so the noise is seeded per image from --seed and the image
    name (test sets: the same every run) or per training patch (a new draw
    each time, as RDN's script advises); published DN sets are used from their
    own LR files.
"""
import hashlib
import math

import numpy as np

from data.imresize import _round_clip, imresize

DEGRADATIONS = ('BI', 'BD', 'DN')


def kernel_size(scale, sigma):
    if scale % 2 == 1:
        return 7 if scale == 3 and sigma == 1.6 else math.ceil(3 * sigma) * 2 + 1
    return math.ceil(3 * sigma) * 2 + 2


def gaussian_kernel(size, sigma):
    """MATLAB fspecial('gaussian', size, sigma)."""
    half = (size - 1) / 2
    x = np.arange(-half, half + 1, dtype=np.float64)
    h = np.exp(-(x[None, :] ** 2 + x[:, None] ** 2) / (2 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0
    return h / h.sum()


def imfilter_replicate(img, kernel):
    """MATLAB imfilter(img, kernel, 'replicate') of a uint8 HxWxC image:
    correlation about the kernel centre floor((k + 1) / 2), rounded to uint8."""
    k = kernel.shape[0]
    before = (k + 1) // 2 - 1
    pad = np.pad(img.astype(np.float64), ((before, k - 1 - before), (before, k - 1 - before), (0, 0)), mode='edge')
    h, w = img.shape[:2]
    out = np.zeros(img.shape, np.float64)
    for i in range(k):
        for j in range(k):
            if kernel[i, j] != 0:
                out += kernel[i, j] * pad[i:i + h, j:j + w]
    return _round_clip(out, np.uint8)


def blur_down(hr, scale, sigma):
    """BD: blur, then sample (see the module docstring)."""
    blurred = imfilter_replicate(hr, gaussian_kernel(kernel_size(scale, sigma), sigma))
    first = (scale - 1) // 2 if scale % 2 == 1 else scale // 2 - 1  # 0-based
    return np.ascontiguousarray(blurred[first::scale, first::scale][:hr.shape[0] // scale, :hr.shape[1] // scale])


def add_noise(lr, level, rng):
    """DN: uint8(single(lr) + level * randn), MATLAB rounding and saturation."""
    noisy = lr.astype(np.float32) + np.float32(level) * rng.standard_normal(lr.shape, dtype=np.float32)
    return _round_clip(noisy.astype(np.float64), np.uint8)


def noise_seed(seed, name):
    """The seed of an image's DN noise: the same for --seed and a name, every run."""
    return int.from_bytes(hashlib.sha256(f'{seed}:{name}'.encode()).digest()[:8], 'little')


class Degradation:
    """What --degradation, --imresize_border, --blur_sigma and --noise_level ask for."""

    def __init__(self, name='BI', border='symmetric', sigma=1.6, noise=30.0, seed=1):
        self.name, self.border, self.sigma, self.noise, self.seed = name, border, sigma, noise, seed

    @classmethod
    def from_args(cls, args):
        return cls(args.degradation, args.imresize_border, args.blur_sigma, args.noise_level, args.seed)

    @property
    def folder(self):
        """The LR folder a data set may ship: LR_bicubic, LR_BD or LR_DN (DIV2K: DIV2K_train_LR_<...>)."""
        return 'bicubic' if self.name == 'BI' else self.name

    @property
    def cache_name(self):
        """The cache key of the LR images srlab makes ('bicubic' is the default's, as before).
        DN caches its noise-free BI images and adds the noise when they are read."""
        if self.name == 'BD':
            return f'BD{self.sigma:g}'
        return 'bicubic' if self.border == 'symmetric' else f'bicubic_{self.border}'

    @property
    def noisy(self):
        return self.name == 'DN' and self.noise > 0

    def make(self, hr, scale):
        """The cached LR image of a mod-cropped uint8 HR image."""
        if self.name == 'BD':
            return blur_down(hr, scale, self.sigma)
        return imresize(hr, 1 / scale, border=self.border)

    def finish(self, lr, name=None, rng=None):
        """DN noise on an LR image srlab made: seeded by the image name (tests) or by `rng` (training patches)."""
        if not self.noisy:
            return lr
        return add_noise(lr, self.noise, rng if rng is not None else np.random.default_rng(noise_seed(self.seed, name)))
