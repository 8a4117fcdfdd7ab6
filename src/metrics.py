"""PSNR / SSIM as computed by the MATLAB scripts of the SR papers.

Images are on the 0..255 scale. Both images are quantized to 8-bit levels
(round half away from zero, clip to 0..255), 3-channel images are reduced to
float64 Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (not rounded; a
grayscale HR image: see _planes for the two conventions, --gray_hr),
`shave` pixels are cut from each border, then
PSNR = 10 log10(255^2 / MSE) and SSIM (Wang et al.: 11x11 Gaussian,
sigma 1.5, K = (0.01, 0.03), L = 255, 'valid' filtering, mean of the map).
"""
import math

import numpy as np

Y_WEIGHTS = (65.481, 128.553, 24.966)  # BT.601 Y = 16 + (wR R + wG G + wB B) / 255 (MATLAB's rgb2ycbcr)


def quantize(img):
    """Round half away from zero to 8-bit levels and clip to 0..255 (float64)."""
    img = np.asarray(img, dtype=np.float64)
    r = np.floor(img)
    r += (img - r) >= 0.5
    return np.clip(r, 0, 255)


def quantize_tensor(t, rgb_range):
    """A tensor on 0..rgb_range rounded to the 256 levels of an 8-bit image
    (what an SR output is scored and saved as)."""
    pixel_range = 255 / rgb_range
    return t.mul(pixel_range).clamp(0, 255).round().div(pixel_range)


def rgb_to_y(img):
    """HxWx3 (0..255) -> float64 HxW luma (BT.601, 16..235); HxW or HxWx1 as is."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3 and img.shape[2] == 1:
        return img[:, :, 0]
    if img.ndim == 2:
        return img
    if img.ndim == 3 and img.shape[2] == 3:
        wr, wg, wb = Y_WEIGHTS
        return 16.0 + (wr * img[:, :, 0] + wg * img[:, :, 1] + wb * img[:, :, 2]) / 255.0
    raise ValueError('expected HxW, HxWx1 or HxWx3 image, got shape %s' % (img.shape,))


GRAY = ('stacked', 'own')  # how a grayscale HR image is scored (--gray_hr)


def is_gray(img):
    """A 3-channel image whose channels are equal: a grayscale image stacked to RGB."""
    return img.ndim == 3 and img.shape[2] == 3 and (img[:, :, 0] == img[:, :, 1]).all() and \
        (img[:, :, 0] == img[:, :, 2]).all()


def _planes(sr, hr, gray):
    """The two planes compared: Y of each (3 channels) or the single channel. gray='own' scores a
    grayscale HR image (one channel, or stacked to three) on its own 0..255 values, against the SR's Y
    mapped back from 16..235 to 0..255 (the SRCNN/VDSR-era MATLAB scripts); 'stacked' scores the Y of
    the stacked image (EDSR-PyTorch, BasicSR, RCAN's scripts), 20 log10(255/219) = 1.32 dB higher."""
    sr, hr = quantize(sr), quantize(hr)
    if gray == 'own' and (hr.ndim == 2 or hr.shape[-1] == 1 or is_gray(hr)) and sr.ndim == 3 and sr.shape[2] == 3:
        own = hr if hr.ndim == 2 else hr[:, :, 0]
        return (rgb_to_y(sr) - 16.0) * (255.0 / 219.0), own
    if gray not in GRAY:
        raise ValueError(f'gray must be one of {GRAY}, got {gray!r}')
    if hr.ndim == 2 and sr.ndim == 3 and sr.shape[2] == 3:  # gray HR beside an RGB SR: stacked
        hr = np.repeat(hr[:, :, None], 3, axis=2)
    return rgb_to_y(sr), rgb_to_y(hr)


def _prepare(sr, hr, shave, gray='stacked'):
    sr = np.asarray(sr)
    hr = np.asarray(hr)
    if sr.shape[:2] != hr.shape[:2] or (sr.shape != hr.shape and not (hr.ndim == 2 and sr.ndim == 3)):
        raise ValueError('SR and HR shapes differ: SR %s vs HR %s'
                         % (tuple(sr.shape), tuple(hr.shape)))
    ys, yh = _planes(sr, hr, gray)
    shave = int(shave)
    if shave > 0:
        if min(ys.shape) <= 2 * shave:
            raise ValueError('image %s too small for shave=%d' % (tuple(sr.shape), shave))
        ys = ys[shave:-shave, shave:-shave]
        yh = yh[shave:-shave, shave:-shave]
    return ys, yh


def _psnr_y(ys, yh):
    mse = np.mean((ys - yh) ** 2)
    if mse == 0:
        return math.inf
    return float(10.0 * np.log10(255.0 ** 2 / mse))


def gaussian_window(size=11, sigma=1.5):
    """1-D factor g of MATLAB fspecial('gaussian', size, sigma) = outer(g, g)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img, g):
    """Separable 'valid' correlation with outer(g, g) (filter2 'valid')."""
    n = len(g)
    h, w = img.shape
    rows = sum(g[k] * img[k:h - n + 1 + k, :] for k in range(n))
    return sum(g[k] * rows[:, k:w - n + 1 + k] for k in range(n))


def _ssim_y(a, b):
    if min(a.shape) < 11:
        raise ValueError('image %s smaller than the 11x11 SSIM window' % (a.shape,))
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    g = gaussian_window()
    mu1 = _filter_valid(a, g)
    mu2 = _filter_valid(b, g)
    mu1_sq = mu1 * mu1
    mu2_sq = mu2 * mu2
    mu12 = mu1 * mu2
    s1 = _filter_valid(a * a, g) - mu1_sq
    s2 = _filter_valid(b * b, g) - mu2_sq
    s12 = _filter_valid(a * b, g) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return float(ssim_map.mean())


def psnr(sr, hr, shave=0, gray='stacked'):
    """PSNR in dB on Y (or the single channel); inf for identical images."""
    return _psnr_y(*_prepare(sr, hr, shave, gray))


def ssim(sr, hr, shave=0, gray='stacked'):
    """Mean SSIM on Y (or the single channel)."""
    return _ssim_y(*_prepare(sr, hr, shave, gray))


def calc_metrics(sr, hr, shave=0, gray='stacked'):
    """(psnr, ssim) of numpy HxW / HxWxC images on 0..255 (gray: see _planes)."""
    ys, yh = _prepare(sr, hr, shave, gray)
    return _psnr_y(ys, yh), _ssim_y(ys, yh)


def tensor_to_image(t, rgb_range):
    """CxHxW or 1xCxHxW tensor on 0..rgb_range -> HxWxC (or HxW) float64 on 0..255."""
    t = t.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError('expected a batch of one, got shape %s' % (tuple(t.shape),))
        t = t[0]
    if t.dim() != 3:
        raise ValueError('expected CxHxW or 1xCxHxW tensor, got shape %s' % (tuple(t.shape),))
    img = t.to('cpu').double().numpy() * (255.0 / float(rgb_range))
    img = img.transpose(1, 2, 0)
    return img[:, :, 0] if img.shape[2] == 1 else img


def calc_psnr_ssim(sr, hr, rgb_range, shave=0, gray='stacked'):
    """(psnr, ssim) python floats for torch tensors on 0..rgb_range."""
    if tuple(sr.shape) != tuple(hr.shape):
        raise ValueError('SR and HR shapes differ: SR %s vs HR %s'
                         % (tuple(sr.shape), tuple(hr.shape)))
    return calc_metrics(tensor_to_image(sr, rgb_range), tensor_to_image(hr, rgb_range), shave, gray)
