import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

from data.imresize import contributions, imresize, imresize_tensor, resize_matrix  # noqa: E402


# ---- slow reference, written straight from MATLAB's imresize.m ----
# Exact rational arithmetic (fractions) on MATLAB's formulas, with the scale
# taken as the exact double MATLAB would see; ties like 36.5 are then exact.

def ref_cubic(t):
    t = abs(t)
    if t <= 1:
        return Fraction(3, 2) * t ** 3 - Fraction(5, 2) * t ** 2 + 1
    if t <= 2:
        return -Fraction(1, 2) * t ** 3 + Fraction(5, 2) * t ** 2 - 4 * t + 2
    return Fraction(0)


def ref_pixel(j, n):
    """MATLAB aux = [1:n, n:-1:1]; aux(mod(j-1, 2n) + 1), 1-based in and out."""
    m = (j - 1) % (2 * n)
    return m + 1 if m < n else 2 * n - m


def ref_resize_1d(vec, out_len, scale):
    n = len(vec)
    scale = Fraction(scale)
    width = 4 / scale if scale < 1 else Fraction(4)
    out = []
    for x in range(1, out_len + 1):
        u = x / scale + Fraction(1, 2) * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = []
        for k in range(math.ceil(width) + 2):
            j = left + k
            w = scale * ref_cubic(scale * (u - j)) if scale < 1 else ref_cubic(u - j)
            taps.append((w, j))
        total = sum(w for w, _ in taps)
        out.append(sum(w / total * vec[ref_pixel(j, n) - 1] for w, j in taps))
    return out


def ref_round(v, lo, hi):
    """Round half away from zero (v is exact), then clip."""
    r = math.floor(abs(v))
    if abs(v) - r >= Fraction(1, 2):
        r += 1
    r = r if v >= 0 else -r
    return min(max(r, lo), hi)


def ref_imresize(img, scale=None, output_shape=None):
    img = np.asarray(img)
    h, w = img.shape[:2]
    if output_shape is None:
        sizes = [math.ceil(h * scale - 1e-9), math.ceil(w * scale - 1e-9)]
        scales = [scale, scale]
    else:
        sizes = list(output_shape)
        scales = [sizes[0] / h, sizes[1] / w]
    is_int = img.dtype.kind in 'ui'
    lo, hi = (int(np.iinfo(img.dtype).min), int(np.iinfo(img.dtype).max)) if is_int else (0, 0)
    cur = img if img.ndim == 3 else img[:, :, None]
    cur = [[[Fraction(float(v)) if not is_int else int(v) for v in px] for px in row]
           for row in cur.tolist()] if not is_int else cur.tolist()
    chans = len(cur[0][0])
    dims = [0, 1] if scales[0] <= scales[1] else [1, 0]
    for d in dims:
        rows, cols = len(cur), len(cur[0])
        if d == 0:
            new = [[[None] * chans for _ in range(cols)] for _ in range(sizes[0])]
            for c in range(chans):
                for col in range(cols):
                    line = ref_resize_1d([cur[r][col][c] for r in range(rows)], sizes[0], scales[0])
                    for r, v in enumerate(line):
                        new[r][col][c] = ref_round(v, lo, hi) if is_int else v
        else:
            new = [[[None] * chans for _ in range(sizes[1])] for _ in range(rows)]
            for c in range(chans):
                for r in range(rows):
                    line = ref_resize_1d([cur[r][col][c] for col in range(cols)], sizes[1], scales[1])
                    for col, v in enumerate(line):
                        new[r][col][c] = ref_round(v, lo, hi) if is_int else v
        cur = new
    out = np.array([[[float(v) for v in px] for px in row] for row in cur])
    if img.ndim == 2:
        out = out[:, :, 0]
    return out.astype(img.dtype) if is_int else out


SCALES = [1 / 2, 1 / 3, 1 / 4, 2, 3, 4, 0.7, 1.5]


@pytest.mark.parametrize('scale', SCALES)
def test_uint8_matches_loop_reference(scale):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (13, 11, 3), dtype=np.uint8)
    if scale < 1:
        img = rng.integers(0, 256, (23, 19, 3), dtype=np.uint8)
    out = imresize(img, scale)
    ref = ref_imresize(img, scale)
    assert out.dtype == np.uint8
    assert out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize('scale', SCALES)
def test_float_matches_loop_reference(scale):
    rng = np.random.default_rng(2)
    img = rng.random((15, 9)) * 255
    out = imresize(img, scale)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref_imresize(img, scale), rtol=0, atol=1e-10)


def test_uint16_matches_loop_reference():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 65536, (10, 12), dtype=np.uint16)
    out = imresize(img, 1 / 3)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, ref_imresize(img, 1 / 3))
    # overshoot near a max/min edge must clip to the uint16 range
    edge = np.zeros((8, 8), np.uint16)
    edge[:, 4:] = 65535
    up = imresize(edge, 2)
    assert up.min() == 0 and up.max() == 65535
    np.testing.assert_array_equal(up, ref_imresize(edge, 2))


def test_dimension_order_most_shrunk_first():
    # H grows (x2), W shrinks (x1/2): MATLAB does W first; with uint8
    # rounding between passes the order changes the result.
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (9, 14), dtype=np.uint8)
    out = imresize(img, output_shape=(18, 7))
    np.testing.assert_array_equal(out, ref_imresize(img, output_shape=(18, 7)))
    h_first = imresize(imresize(img, output_shape=(18, 14)), output_shape=(18, 7))
    assert not np.array_equal(out, h_first)


def test_resize_matrix_hand_values_8_to_4():
    # scale 1/2: kernel 0.5*cubic(0.5 t), width 8, u = 2x - 0.5; taps sit at
    # half-integer distances with cubic values (0.8671875, 0.2265625,
    # -0.0703125, -0.0234375) / 2. Far taps mirror: tap -1 -> pixel 2,
    # tap -2 -> pixel 3 (MATLAB aux rule).
    m = resize_matrix(8, 4, 0.5)
    expected = np.array([
        [0.546875, 0.3984375, 0.1015625, -0.03515625, -0.01171875, 0, 0, 0],
        [-0.046875, 0.11328125, 0.43359375, 0.43359375, 0.11328125,
         -0.03515625, -0.01171875, 0],
        [0, -0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375,
         0.11328125, -0.046875],
        [0, 0, 0, -0.01171875, -0.03515625, 0.1015625, 0.3984375, 0.546875],
    ])
    np.testing.assert_array_equal(m, expected)
    # the all-zero outermost taps (distance 4.5) are dropped, as MATLAB's kill
    w, ind = contributions(8, 4, 0.5)
    assert w.shape == (4, 8) and ind.shape == (4, 8)
    v = np.arange(8.0) * 10 + 3
    np.testing.assert_allclose(imresize(v[None, :], output_shape=(1, 4))[0], m @ v, atol=1e-12)


def test_border_rule_mirrors_far_taps():
    # x2 upscale, first output: u = 0.75, taps at 1-based positions -1, 0, 1, 2
    # with weights -0.0234375, 0.2265625, 0.8671875, -0.0703125.
    # MATLAB maps tap 0 -> pixel 1 (edge repeat) but tap -1 -> pixel 2, so
    # row 0 is [1.09375, -0.09375]; pure edge repeat would give
    # [1.0703125, -0.0703125].
    w, ind = contributions(4, 8, 2.0)
    np.testing.assert_array_equal(ind[0], [1, 0, 0, 1])
    np.testing.assert_array_equal(w[0], [-0.0234375, 0.2265625, 0.8671875, -0.0703125])
    m = resize_matrix(4, 8, 2.0)
    np.testing.assert_array_equal(m[0], [1.09375, -0.09375, 0, 0])
    np.testing.assert_array_equal(m[-1], [0, 0, -0.09375, 1.09375])
    np.testing.assert_array_equal(resize_matrix(4, 8, 2.0).sum(1), np.ones(8))


@pytest.mark.parametrize('scale', [1 / 4, 1 / 3, 1 / 2, 0.37, 2, 3, 4])
def test_constant_image_stays_constant(scale):
    img = np.full((17, 23, 3), 137, np.uint8)
    out = imresize(img, scale)
    assert (out == 137).all()
    f = imresize(img.astype(np.float64) / 7, scale)
    np.testing.assert_allclose(f, 137 / 7, rtol=0, atol=1e-12)


@pytest.mark.parametrize('scale', [2, 3, 4, 1 / 2])
def test_linear_ramp_reproduced_in_interior(scale):
    n = 60
    row = np.arange(n, dtype=np.float64)
    out = imresize(np.tile(row, (3, 1)), output_shape=(3, int(n * scale)))[1]
    x = np.arange(1, len(out) + 1)
    u = x / scale + 0.5 * (1 - 1 / scale) - 1  # 0-based input coordinate
    margin = 3 / min(scale, 1)  # kernel half-width + 1
    inner = (u > margin) & (u < n - 1 - margin)
    assert inner.sum() > 10
    np.testing.assert_allclose(out[inner], u[inner], rtol=0, atol=1e-10)
    # near the border the mirror rule bends the ramp
    assert abs(out[0] - u[0]) > 1e-3


def test_output_sizes():
    assert imresize(np.zeros((255, 255), np.uint8), 1 / 3).shape == (85, 85)
    assert imresize(np.zeros((17, 17, 3), np.uint8), 1 / 4).shape == (5, 5, 3)
    assert imresize(np.zeros((10, 7)), 1 / 3).shape == (4, 3)
    assert imresize(np.zeros((2040, 1356)), 1 / 4).shape == (510, 339)
    assert imresize(np.zeros((5, 6)), 3).shape == (15, 18)
    assert imresize(np.zeros((5, 6)), output_shape=(9, 2)).shape == (9, 2)
    with pytest.raises(ValueError):
        imresize(np.zeros((5, 6)))
    with pytest.raises(ValueError):
        imresize(np.zeros((5, 6)), 2, output_shape=(10, 12))


def test_uint8_rounds_half_away_from_zero():
    # x2 upscale of the row [0, 0, 20, 10]: output 7 (1-based) has weights
    # (0, -3, 29, 102) / 128 -> (29*20 + 102*10) / 128 = 12.5 exactly.
    row = np.array([[0, 0, 20, 10]], np.uint8)
    f = imresize(row.astype(np.float64), output_shape=(1, 8))
    assert f[0, 6] == 12.5
    u8 = imresize(row, output_shape=(1, 8))
    assert u8[0, 6] == 13  # MATLAB uint8(12.5) = 13
    assert np.round(12.5) == 12  # numpy's half-to-even would be wrong here
    np.testing.assert_array_equal(u8, ref_imresize(row, output_shape=(1, 8)))


def test_uint8_per_pass_rounding_differs_from_float():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    u8 = imresize(img, 1 / 3)
    f = imresize(img.astype(np.float64), 1 / 3)
    once = np.clip(np.floor(f + 0.5), 0, 255).astype(np.uint8)
    assert np.abs(u8.astype(int) - once.astype(int)).max() <= 1
    assert (u8 != once).any()  # rounding after each pass is not the same


@pytest.mark.parametrize('scale', [2, 3, 4, 1 / 2, 1 / 3, 1 / 4])
def test_tensor_matches_numpy_uint8(scale):
    import torch
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, (18, 14, 3), dtype=np.uint8)
    img[:6, :6] = 255  # saturated block: clamp path
    img[-5:, -5:] = 0
    want = imresize(img, scale)
    t = torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None]
    out = imresize_tensor(t, scale, quantize_range=255)
    assert out.dtype == torch.float32 and out.shape == (1, 3) + want.shape[:2]
    np.testing.assert_array_equal(out[0].numpy().transpose(1, 2, 0), want)
    # rgb_range 1: the same levels, divided by 255
    out1 = imresize_tensor(t / 255, scale, quantize_range=1)
    np.testing.assert_array_equal(np.round(out1[0].double().numpy() * 255).transpose(1, 2, 0), want)
    np.testing.assert_allclose(out1[0].numpy().transpose(1, 2, 0) * 255, want, atol=1e-4)


@pytest.mark.parametrize('scale', [3, 1 / 4, 0.6])
def test_tensor_matches_numpy_float(scale):
    import torch
    rng = np.random.default_rng(7)
    img = rng.random((2, 3, 16, 13))
    out = imresize_tensor(torch.from_numpy(img), scale)
    assert out.dtype == torch.float64
    for n in range(2):
        want = imresize(img[n].transpose(1, 2, 0), scale)
        np.testing.assert_allclose(out[n].numpy().transpose(1, 2, 0), want, rtol=0, atol=1e-12)
    out32 = imresize_tensor(torch.from_numpy(img).float()[0], scale)  # CHW, float32
    assert out32.dtype == torch.float32 and out32.dim() == 3
    np.testing.assert_allclose(out32.numpy(), out[0].numpy(), atol=1e-5)


def test_2k_image_x4_down():
    """A DIV2K-sized image (its speed is speed.py's to measure, not a test's to assert)."""
    img = np.random.default_rng(8).integers(0, 256, (2040, 1356, 3), dtype=np.uint8)
    out = imresize(img, 1 / 4)
    assert out.shape == (510, 339, 3) and out.dtype == np.uint8


def test_exact_tie_at_scale_1_5_numpy_and_torch_agree():
    # This image hits an exact tie (36.5 = 15768/432) in the second pass at
    # [15, 2, 0]; float round-off may land either side of it, the tie rule
    # must round it up in both implementations.
    import torch
    img = np.random.default_rng(1).integers(0, 256, (13, 11, 3), dtype=np.uint8)
    ref = ref_imresize(img, 1.5)
    out = imresize(img, 1.5)
    np.testing.assert_array_equal(out, ref)
    assert out[15, 2, 0] == 37
    t = torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None]
    got = imresize_tensor(t, 1.5, quantize_range=255)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_array_equal(got, ref)
