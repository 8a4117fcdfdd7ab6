"""Image reading, channel conversion, aligned patches, augmentation, tensors."""
import os
import warnings

import numpy as np

IMG_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.gif')


class DataError(Exception):
    """Bad data; the message names the file or folder."""


def list_images(folder):
    """Sorted image files of `folder`; other files are skipped with a warning."""
    out = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith('.') or os.path.isdir(path):
            continue
        if name.lower().endswith(IMG_EXTS):
            out.append(path)
        else:
            warnings.warn(f'skipping non-image file {path}', stacklevel=2)
    return out


def read_image(path, n_colors=3):
    """Any PNG/JPEG/... (gray, gray+alpha, RGB, RGBA, palette, 16-bit, float)
    -> HxWxn_colors uint8; n_colors=None keeps the image's own (1 or 3).
    The one reader of srlab: datasets, the demo, the video tester and evaluate.py."""
    import imageio.v3 as iio
    if os.path.getsize(path) == 0:
        raise DataError(f'{path}: empty file (0 bytes)')
    try:
        img = iio.imread(path, index=0)  # the first frame of a GIF, APNG or multi-page TIFF
    except Exception as e:
        raise DataError(f'{path}: cannot decode image ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})')
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] > 4):
        raise DataError(f'{path}: unsupported image shape {"x".join(map(str, img.shape))}')
    return set_channel(to_uint8(img, path), n_colors)


def to_uint8(img, path=''):
    if img.dtype == np.uint8:
        return img
    if img.dtype == bool:
        return img.astype(np.uint8) * 255
    if img.dtype == np.uint16 or (img.dtype.kind in 'iu' and img.max() > 255):
        return np.clip(np.floor(img.astype(np.float64) / 257 + 0.5), 0, 255).astype(np.uint8)
    if img.dtype.kind == 'f':
        if not np.isfinite(img).all():
            raise DataError(f'{path}: non-finite pixel values (NaN or inf)')
        scale = 255.0 if img.max() <= 1.0 else 1.0
        return np.clip(np.floor(img * scale + 0.5), 0, 255).astype(np.uint8)
    if img.dtype.kind in 'iu':
        return np.clip(img, 0, 255).astype(np.uint8)
    raise DataError(f'{path}: unsupported pixel type {img.dtype}')


def rgb_to_y_uint8(img):
    y = 16 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255
    return np.floor(y + 0.5).astype(np.uint8)


def set_channel(img, n_colors):
    """HxWx1 or HxWx3 with alpha dropped; converted to n_colors (None: as is)."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 2:      # gray + alpha
        img = img[:, :, :1]
    elif img.shape[2] == 4:    # RGBA
        img = img[:, :, :3]
    c = img.shape[2]
    if n_colors == 3 and c == 1:
        img = np.repeat(img, 3, axis=2)
    elif n_colors == 1 and c == 3:
        img = rgb_to_y_uint8(img)[:, :, None]
    return np.ascontiguousarray(img)


def modcrop(img, scale):
    h, w = img.shape[:2]
    return img[:h - h % scale, :w - w % scale]


def get_patch(lr, hr, patch_size, scale, rng):
    """Aligned random crop: LR patch of patch_size // scale, HR of scale x that."""
    ih, iw = lr.shape[:2]
    ip = patch_size // scale
    tp = ip * scale
    ix = int(rng.integers(0, iw - ip + 1))
    iy = int(rng.integers(0, ih - ip + 1))
    tx, ty = scale * ix, scale * iy
    return lr[iy:iy + ip, ix:ix + ip], hr[ty:ty + tp, tx:tx + tp]


def augment(arrays, rng):
    """The same random horizontal flip, vertical flip and transpose for all."""
    hflip, vflip, rot = rng.random(3) < 0.5

    def _aug(img):
        if hflip:
            img = img[:, ::-1]
        if vflip:
            img = img[::-1]
        if rot:
            img = img.transpose(1, 0, 2)
        return img
    return [_aug(a) for a in arrays]


def tensor2np(t, rgb_range):
    """CxHxW tensor on 0..rgb_range -> HxWxC uint8 array (HxW for one channel): the inverse of np2tensor."""
    a = t.detach().float().mul(255 / rgb_range).clamp(0, 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return a[..., 0] if a.shape[2] == 1 else a


def np2tensor(img, rgb_range):
    """HxWxC uint8 -> CxHxW float32 on 0..rgb_range."""
    import torch  # here, so that evaluate.py reads images without loading torch
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()
    return t.mul_(rgb_range / 255)
