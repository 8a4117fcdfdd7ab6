"""MATLAB-exact bicubic imresize (antialiased, like MATLAB's default).

Follows MATLAB's imresize.m: Keys cubic kernel (a = -0.5), kernel stretched
by 1/scale when shrinking, contributions() index/weight rules, the most
shrunk dimension first (rows first on a tie), and for integer images a
round-half-away-from-zero + clip back to the integer type after each pass.

Two border rules are found in published LR sets (`border`):
  'symmetric'  MATLAB imresize.m's own rule, aux = [1:n, n:-1:1] (the EDSR
               benchmark package, SwinIR's testsets, most PyTorch codebases);
  'replicate'  an out-of-range tap takes the nearest edge pixel (the LR files
               released with RCAN's and RDN's test code).
"""
import math

import numpy as np


def cubic(x):
    """Keys cubic kernel with a = -0.5 (MATLAB's cubic())."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def output_length(in_len, scale):
    """ceil(in_len * scale), guarded against float error (255 * (1/3) -> 85)."""
    return int(math.ceil(in_len * scale - 1e-9))


BORDERS = ('symmetric', 'replicate')


def contributions(in_len, out_len, scale, border='symmetric'):
    """MATLAB contributions(): weights (out_len, P) and 0-based indices (out_len, P).

    Border rule 'symmetric' (MATLAB): out-of-range taps are mirrored with
    aux = [1:in, in:-1:1], so tap 0 -> pixel 1 (edge repeat) but tap -1 -> pixel 2,
    tap in+1 -> in, tap in+2 -> in-1. This differs from plain edge repeat as
    soon as a tap with nonzero weight lies 2+ pixels outside the image (e.g.
    the first output pixel of any x2 upscale or x1/2 downscale). 'replicate':
    every out-of-range tap takes the edge pixel.
    """
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    if scale <= 0:
        raise ValueError('scale must be positive, got %r' % (scale,))
    width = 4.0
    if scale < 1:  # antialiasing: stretch the kernel
        def kernel(t):
            return scale * cubic(scale * t)
        width = width / scale
    else:
        kernel = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    ind = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - ind)
    weights = weights / weights.sum(axis=1, keepdims=True)
    if border == 'replicate':
        ind = np.clip(ind.astype(np.int64) - 1, 0, in_len - 1)
    else:
        aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
        ind = aux[np.mod(ind.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(weights != 0, axis=0)  # MATLAB drops all-zero columns
    return weights[:, keep], ind[:, keep]


def resize_matrix(in_len, out_len, scale=None, border='symmetric'):
    """Dense (out_len, in_len) float64 matrix M so that resizing a vector is M @ v."""
    if scale is None:
        scale = out_len / in_len
    weights, ind = contributions(in_len, out_len, scale, border)
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), weights.shape[1])
    np.add.at(mat, (rows, ind.ravel()), weights.ravel())
    return mat


# Values within TIE_TOL * (range max) below k + 0.5 count as exact ties and
# round up. Ties are real (e.g. x2 and x1.5 weights are n/128 and n/432), and
# whether float round-off lands them at k + 0.4999999999999 depends on the
# summation order; with this rule numpy, torch and exact arithmetic agree.
TIE_TOL = 4e-14


def _round_clip(a, dtype):
    """Round half away from zero and clip to the integer dtype's range."""
    info = np.iinfo(dtype)
    m = np.abs(a)
    r = np.floor(m)
    r += (m - r) >= 0.5 - TIE_TOL * info.max
    return np.clip(np.copysign(r, a), info.min, info.max).astype(dtype)


def _resize_axis(img, axis, out_len, scale, border):
    weights, ind = contributions(img.shape[axis], out_len, scale, border)
    shape = [1] * img.ndim
    shape[axis] = out_len
    out = None
    for p in range(weights.shape[1]):
        term = np.take(img, ind[:, p], axis=axis) * weights[:, p].reshape(shape)
        out = term if out is None else out + term
    return out


def _sizes_and_scales(in_hw, scale, output_shape):
    if (scale is None) == (output_shape is None):
        raise ValueError('give exactly one of scale or output_shape')
    if scale is not None:
        scales = tuple(scale) if np.ndim(scale) else (scale, scale)
        scales = tuple(float(s) for s in scales)
        sizes = tuple(output_length(n, s) for n, s in zip(in_hw, scales))
    else:
        sizes = tuple(int(n) for n in output_shape[:2])
        scales = tuple(o / n for o, n in zip(sizes, in_hw))
    if len(scales) != 2 or min(scales) <= 0 or min(sizes) < 1:
        raise ValueError('bad scale/output_shape: %r / %r' % (scale, output_shape))
    return sizes, scales


def _order(scales):
    """MATLAB: stable sort of the scales, most shrunk dimension first."""
    return [int(d) for d in np.argsort(scales, kind='stable')]


def imresize(img, scale=None, output_shape=None, border='symmetric'):
    """Bicubic resize of an HxW or HxWxC numpy array, as MATLAB's imresize.

    scale: a number (or (scale_h, scale_w)); output size ceil(in * scale).
    output_shape: (out_h, out_w) instead; the scales are then out / in.
    Integer input (uint8, uint16, ...) is rounded half away from zero and
    clipped to its range after each pass and keeps its dtype; float input
    returns float64 with no rounding. `border`: see BORDERS.
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError('expected HxW or HxWxC array, got shape %s' % (img.shape,))
    is_int = np.issubdtype(img.dtype, np.integer)
    if not is_int and not np.issubdtype(img.dtype, np.floating):
        img = img.astype(np.float64)  # bool etc.
    sizes, scales = _sizes_and_scales(img.shape[:2], scale, output_shape)
    out = img
    for dim in _order(scales):
        out = _resize_axis(out, dim, sizes[dim], scales[dim], border)
        if is_int:
            out = _round_clip(out, img.dtype)
    return out if is_int else out.astype(np.float64, copy=False)


def imresize_tensor(x, scale, quantize_range=None, border='symmetric'):
    """Bicubic resize of an NCHW (or CHW) float torch tensor with MATLAB weights.

    With quantize_range=R (tensor on 0..R), emulates MATLAB on uint8 images:
    the input is snapped to the 255 levels of 0..R, and after each pass values
    are rounded half away from zero and clamped to [0, R]. Computed in float64
    in that case (float32 on devices without float64), so it equals
    imresize(uint8_image, scale) exactly.
    """
    import torch

    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError('expected NCHW or CHW tensor, got shape %s' % (tuple(x.shape),))
    sizes, scales = _sizes_and_scales(tuple(x.shape[-2:]), scale, None)
    dtype = x.dtype
    if quantize_range is not None:
        work = torch.float32 if x.device.type == 'mps' else torch.float64
        levels = 255.0 / float(quantize_range)

        def snap(t):
            r = torch.floor(t)
            r = r + ((t - r) >= 0.5 - TIE_TOL * 255).to(t.dtype)
            return r.clamp(0, 255)

        y = snap(x.to(work) * levels)
    else:
        work = dtype
        y = x
    for dim in _order(scales):
        in_len = y.shape[2 + dim]
        mat = resize_matrix(in_len, sizes[dim], scales[dim], border)
        mat = torch.from_numpy(mat).to(device=y.device, dtype=work)
        if dim == 0:
            y = torch.matmul(mat, y)
        else:
            y = torch.matmul(y, mat.t())
        if quantize_range is not None:
            y = snap(y)
    if quantize_range is not None:
        y = (y / levels).to(dtype)
    return y.squeeze(0) if squeeze else y
