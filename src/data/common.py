"""Image reading, channel conversion, aligned patches, augmentation, tensors."""
import os
import warnings

import numpy as np

from metrics import Y_WEIGHTS

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


def read_image(path, n_colors=3, bits=8):
    """Any PNG/JPEG/... (gray, gray+alpha, RGB, RGBA, CMYK, palette, 16-bit,
    float) as a viewer shows it (decode) -> HxWxn_colors; n_colors=None keeps
    the image's own (1 or 3). bits=8: uint8, what the benchmark protocol and
    the training caches hold (a 16-bit image is reduced, with one warning
    line per process); bits=16: a 16-bit image stays uint16 (np2tensor
    scales either to --rgb_range). The one reader of srlab: datasets, the
    demo, the video tester and evaluate.py."""
    if os.path.getsize(path) == 0:
        raise DataError(f'{path}: empty file (0 bytes)')
    img = decode(path)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] > 4):
        raise DataError(f'{path}: unsupported image shape {"x".join(map(str, img.shape))}')
    if bits == 16 and img.dtype == np.uint16:
        return set_channel(img, n_colors)
    if img.dtype == np.uint16:
        warn_once('16bit', f'{path}: 16-bit image reduced to 8 bits (the benchmark protocol and the training '
                  'caches are 8-bit; --data_test Demo reads 16 bits); further 16-bit images are not reported')
    return set_channel(to_uint8(img, path), n_colors)


# Pillow modes that are converted to RGB(A) as Pillow converts them (CMYK: Pillow's own CMYK->RGB)
TO_RGB = {'CMYK': 'RGB', 'YCbCr': 'RGB', 'LAB': 'RGB', 'HSV': 'RGB', 'P': 'RGBA', 'PA': 'RGBA', 'RGBX': 'RGB',
          '1': 'L'}


def decode(path):
    """The first frame of `path` as an array, as a viewer shows it: EXIF
    orientation applied, CMYK/palette/... as Pillow's RGB(A), 16-bit kept
    (uint16) where the decoder gives it (Pillow decodes 16-bit colour PNGs to
    8 bits: one warning line). TIFF (and what Pillow cannot open) through
    imageio (tifffile: 16-bit and float TIFF at full precision)."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    if not path.lower().endswith(('.tif', '.tiff')):
        try:
            with Image.open(path) as im:
                if png_bit_depth(path) == 16 and im.mode not in ('I', 'I;16', 'I;16B', 'I;16L'):
                    warn_once('png16', f'{path}: 16-bit colour PNG decoded to 8 bits (Pillow reads no more); '
                              'a 16-bit TIFF keeps full precision; further such files are not reported')
                im = ImageOps.exif_transpose(im)
                mode = TO_RGB.get(im.mode)
                if mode == 'RGBA' and im.mode == 'P' and 'transparency' not in im.info:
                    mode = 'RGB'
                return np.asarray(im.convert(mode) if mode else im)
        except UnidentifiedImageError:
            pass
        except Exception as e:
            raise DataError(f'{path}: cannot decode image ({type(e).__name__}: {first_line(e)})')
    import imageio.v3 as iio
    try:
        return iio.imread(path, index=0)  # the first page of a multi-page TIFF
    except Exception as e:
        raise DataError(f'{path}: cannot decode image ({type(e).__name__}: {first_line(e)})')


def channels(path):
    """1 for a grayscale image file (gray, gray + alpha, 1-bit, 16-bit or float gray), else 3; from the
    header where Pillow reads it."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            return 1 if im.mode in ('1', 'L', 'LA', 'La', 'I', 'F') or im.mode.startswith('I;16') else 3
    except (UnidentifiedImageError, OSError):
        img = decode(path)
        return 1 if img.ndim == 2 or img.shape[2] in (1, 2) else 3


def png_bit_depth(path):
    """The bit depth in a PNG file's header, or None for another file."""
    with open(path, 'rb') as f:
        head = f.read(26)
    return head[24] if head[:8] == b'\x89PNG\r\n\x1a\n' and len(head) == 26 else None


def first_line(e):
    return str(e).splitlines()[0] if str(e) else ''


WARNED = set()


def warn_once(key, message):
    """One warning line per process for `key`."""
    if key not in WARNED:
        WARNED.add(key)
        warnings.warn(message, stacklevel=3)


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
    """BT.601 Y of an RGB image (MATLAB's rgb2ycbcr), in its own type: uint8, or uint16 on 0..65535."""
    peak = 65535 if img.dtype == np.uint16 else 255
    wr, wg, wb = Y_WEIGHTS
    y = 16 * peak / 255 + (wr * img[..., 0] + wg * img[..., 1] + wb * img[..., 2]) / 255
    return np.floor(y + 0.5).astype(img.dtype if img.dtype == np.uint16 else np.uint8)


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
    """HxWxC uint8 (or uint16) -> CxHxW float32 on 0..rgb_range."""
    import torch  # here, so that evaluate.py reads images without loading torch
    peak = 65535 if img.dtype == np.uint16 else 255
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)).astype(np.float32))
    return t.mul_(rgb_range / peak)
