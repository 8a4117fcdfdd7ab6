"""Comparison figures as in SR papers: the HR image with the crop box drawn,
then that crop enlarged for HR, Bicubic and each method, each with the PSNR /
SSIM of the crop under it (metrics.py protocol). PNG and PDF via matplotlib,
plus a JSON sidecar STEM.json with the box and every number.

    make_figure(hr, bicubic, [(name, image), ...], scale, stem)      (compare.py: its command line)

The panels are composed as one numpy canvas (crops enlarged by np.repeat by
an integer zoom, so every crop pixel is exact in the PNG); matplotlib adds the
captions and writes the files.

One Bicubic panel: when a method is named Bicubic (any case) or has exactly
the pixels of the Bicubic made here, only that method's panel is shown.

Crop metrics: PSNR / SSIM on Y of the crop's pixels that the whole-image score
counts, i.e. the crop less the `scale`-pixel image border that the whole-image
score shaves (nothing is cut from a crop inside the image; a crop touching the
border loses those pixels on that side only). SSIM needs 11x11 pixels: a
smaller crop gets PSNR only. The whole-image values (shave = scale) are in the
JSON sidecar as psnr_image / ssim_image.

Automatic box (no --box; AUTO_BOX_RULE, also in --help): an HR pixel is flat
when it lies in a 3x3 block of Y std <= FLAT_STD. Candidates are the windows
over texture: at least TEXTURED_FRACTION (90 %) textured pixels (or the most
textured windows when none is) and, among those, the upper half by HR std; so
a flat window is never picked when a textured one exists. Among them, the
window where the methods differ most: the largest spread (max - min) of the
RMSE on Y among Bicubic and the methods, counted on the textured pixels only,
so a method's noise on a flat background does not draw the box there (RMSE,
not local PSNR: PSNR would favour flat, dark windows, where a tiny error
swings it by many dB).
FigureWriter does the same for every test image of main.py --save_figures.
"""
import json
import math
import os
import sys

import numpy as np

import metrics

MARGIN, GAP, CAPTION = 8, 8, 40      # pixels around, between and under the panels
DPI = 100
PANEL_TARGET = 192                   # default zoom: crop panels about this tall
BOX_COLOR = (255, 0, 0)
SSIM_WINDOW = 11                     # the smallest crop side that gets an SSIM
FLAT_STD = 2.0                       # auto box: a 3x3 block of HR with a Y std at most this is flat
TEXTURED_FRACTION = 0.9              # candidate windows: at least this fraction of textured pixels ...
TEXTURE_QUANTILE = 0.5               # ... and an HR std at least this quantile of those windows'
CROP_NOTE = 'PSNR / SSIM of the crop'
AUTO_BOX_RULE = (
    'Automatic box (no --box): a square of --box_size pixels (default 1/5 of the shorter side, at '
    'least 11 for SSIM), kept `scale` pixels from the border. An HR pixel is flat when it lies in a 3x3 '
    f'block whose standard deviation (Y, 0..255) is at most {FLAT_STD}, textured otherwise. Candidates are '
    f'the windows over texture: at least {TEXTURED_FRACTION:.0%} textured pixels (or the most textured '
    'windows when none is), and among those the upper half by HR standard deviation; so a flat window '
    'is never picked when a textured one exists. Among the candidates the box is where the methods '
    'differ most: the largest spread (max - min) among Bicubic and the methods of the RMSE on Y, '
    'counted on the textured pixels only, so noise on a flat background does not draw the box to it. '
    'Ties: the first window, row-major.')


class CompareError(Exception):
    """Bad input; the message names the file or flag."""


# ---- the box ---------------------------------------------------------------
def _window_sums(a, h, w, ys, xs):
    """Sums of a over the h x w windows with top-left corners ys x xs."""
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    s[1:, 1:] = a.cumsum(0).cumsum(1)
    y, x = np.meshgrid(ys, xs, indexing='ij')
    return s[y + h, x + w] - s[y, x + w] - s[y + h, x] + s[y, x]


def _window_means(a, size, ys, xs):
    return _window_sums(a, size, size, ys, xs) / (size * size)


def _starts(length, size, stride, lo=0):
    last = length - size
    out = list(range(lo, last + 1, stride))
    if out[-1] != last:
        out.append(last)
    return np.array(out)


def luma(img):
    return metrics.rgb_to_y(metrics.quantize(img))


def local_std(y, size, ys, xs):
    """Standard deviation of y over each size x size window."""
    mean = _window_means(y, size, ys, xs)
    return np.sqrt(np.maximum(_window_means(y * y, size, ys, xs) - mean * mean, 0))


def candidates(std, texture):
    """Windows over texture, from their HR std and fraction of textured pixels: at least
    TEXTURED_FRACTION textured (or the most textured windows, when none is), and among those
    the ones with an std at least the TEXTURE_QUANTILE quantile of theirs."""
    full = texture >= min(TEXTURED_FRACTION, texture.max()) - 1e-9
    return full & (std >= np.quantile(std[full], TEXTURE_QUANTILE))


def textured_pixels(y):
    """0.0 on the pixels of y that lie in a flat 3x3 block (std at most FLAT_STD), 1.0 elsewhere
    (so the flat side of an edge is flat too); all 1.0 when no pixel (or image under 3x3) is left."""
    h, w = y.shape
    if min(h, w) < 3:
        return np.ones((h, w))
    flat_block = local_std(y, 3, np.arange(h - 2), np.arange(w - 2)) <= FLAT_STD
    flat = np.zeros((h, w), bool)
    for dy in range(3):
        for dx in range(3):
            flat[dy:dy + h - 2, dx:dx + w - 2] |= flat_block
    return (~flat).astype(float) if not flat.all() else np.ones((h, w))


def default_box_size(hh, ww):
    return min(hh, ww, max(SSIM_WINDOW, min(hh, ww) // 5))


def auto_box(hr, images, size=None, stride=None, shave=0):
    """(x, y, w, h): among the windows over texture of the HR (see candidates), the square
    window where the RMSE (Y, metrics.py) of `images` on its textured pixels (see
    textured_pixels) spreads most (max - min; the RMSE itself for a single image).
    Deterministic: first maximum, row-major. Windows stay `shave` pixels from the border
    when the image allows. The rule in words: AUTO_BOX_RULE (shown by --help)."""
    hh, ww = hr.shape[:2]
    size = default_box_size(hh, ww) if size is None else int(size)
    if size > min(hh, ww):
        raise CompareError(f'--box_size {size} larger than the image ({ww}x{hh})')
    stride = max(1, size // 6) if stride is None else stride
    if min(hh, ww) - 2 * shave < size:
        shave = 0
    ys = _starts(hh - shave, size, stride, shave)
    xs = _starts(ww - shave, size, stride, shave)
    yh = luma(hr)
    keep = textured_pixels(yh)
    r = np.stack([np.sqrt(np.maximum(_window_means(keep * (luma(img) - yh) ** 2, size, ys, xs), 0))
                  for img in images])
    spread = r.max(0) - r.min(0) if len(r) > 1 else r[0]
    ok = candidates(local_std(yh, size, ys, xs), _window_means(keep, size, ys, xs))
    spread = np.where(ok, spread, -np.inf)
    i, j = np.unravel_index(int(np.argmax(spread)), spread.shape)
    return int(xs[j]), int(ys[i]), size, size


def check_box(box, shape):
    x, y, w, h = box
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > shape[1] or y + h > shape[0]:
        raise CompareError(f'--box {x},{y},{w},{h} outside the {shape[1]}x{shape[0]} image')
    return box


# ---- the numbers -------------------------------------------------------------
def scored_region(box, shape, shave):
    """The box less the `shave`-pixel image border that the whole-image score leaves out."""
    x, y, w, h = box
    x0, y0 = max(x, shave), max(y, shave)
    x1, y1 = min(x + w, shape[1] - shave), min(y + h, shape[0] - shave)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def region_scores(img, hr, region):
    """(psnr, ssim) on the region (shave 0); ssim None below 11x11, both None when empty."""
    x, y, w, h = region
    if w < 1 or h < 1:
        return None, None
    a, b = img[y:y + h, x:x + w], hr[y:y + h, x:x + w]
    if min(w, h) < SSIM_WINDOW:
        return metrics.psnr(a, b), None
    return metrics.calc_metrics(a, b)


def score_panels(hr, images, box, scale):
    """[{name, psnr, ssim (crop), psnr_image, ssim_image (whole image, shave = scale)}]."""
    region = scored_region(box, hr.shape, scale)
    out = []
    for name, img in images:
        p, s = region_scores(img, hr, region)
        pi, si = metrics.calc_metrics(img, hr, scale)
        out.append({'name': name, 'psnr': p, 'ssim': s, 'psnr_image': pi, 'ssim_image': si})
    return out


def score_text(p, s):
    """The caption under a crop: 'PSNR dB / SSIM' (PSNR only when s is None)."""
    if p is None:
        return 'n/a (image border)'
    return f'{p:.2f} dB' if s is None else f'{p:.2f} dB / {s:.4f}'


def is_bicubic(name, img, bicubic):
    return name.lower() == 'bicubic' or np.array_equal(img, bicubic)


def scored_images(bicubic, methods, bicubic_title):
    """[(title, image)]: the Bicubic made here, then the methods; the Bicubic made here is
    left out when a method is a Bicubic (named so, any case, or with the same pixels)."""
    methods = list(methods)
    if any(is_bicubic(name, img, bicubic) for name, img in methods):
        return methods
    return [(bicubic_title, bicubic)] + methods


def _finite(v):
    return None if v is None or math.isinf(v) else float(v)


def write_sidecar(path, geometry, scale, source, auto):
    """path (STEM.json): the box, where it came from, and every number of the figure;
    an infinite PSNR (identical pixels) is written as null."""
    import atomic
    from errors import SRLabError
    data = {'box': list(geometry['box']), 'auto_box': auto, 'scale': scale, 'hr': source,
            'zoom': geometry['zoom'], 'crop_scored': list(geometry['crop_scored']),
            'panels': [{k: v if k == 'name' else _finite(v) for k, v in p.items()}
                       for p in geometry['scores']]}
    try:
        atomic.atomic_write_text(json.dumps(data, indent=2, allow_nan=False) + '\n', path)
    except SRLabError as e:
        raise CompareError(str(e))


# ---- the canvas --------------------------------------------------------------
def rgb(img):
    """HxW, HxWx1 or HxWx3 uint8 -> HxWx3 uint8."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[:, :, None]
    return np.repeat(img, 3, 2) if img.shape[2] == 1 else img


def enlarge(crop, k):
    """Nearest-neighbour enlargement by the integer factor k."""
    return np.repeat(np.repeat(rgb(crop), k, 0), k, 1)


def overview(hr, box, height):
    """HR resized (nearest) to `height` rows, with the box drawn."""
    hh, ww = hr.shape[:2]
    f = height / hh
    width = max(1, int(round(ww * f)))
    rows = np.minimum((np.arange(height) + 0.5) / f, hh - 1).astype(int)
    cols = np.minimum((np.arange(width) + 0.5) / f, ww - 1).astype(int)
    out = rgb(hr)[rows][:, cols].copy()
    x, y, w, h = box
    x0, y0 = int(round(x * f)), int(round(y * f))
    x1, y1 = min(width, max(x0 + 1, int(round((x + w) * f)))), min(height, max(y0 + 1, int(round((y + h) * f))))
    t = max(2, height // 100)
    for ya, yb, xa, xb in ((y0, y0 + t, x0, x1), (y1 - t, y1, x0, x1), (y0, y1, x0, x0 + t), (y0, y1, x1 - t, x1)):
        out[max(ya, 0):yb, max(xa, 0):xb] = BOX_COLOR
    return out


def compose(hr, panels, box, zoom):
    """-> (canvas HxWx3 uint8, geometry). panels: [(title, image, caption)].
    geometry['panels'][i] = (title, (x, y, w, h)) in canvas pixels; panel 0 is the overview."""
    x, y, w, h = box
    tiles = [enlarge(img[y:y + h, x:x + w], zoom) for _, img, _ in panels]
    tiles.insert(0, overview(hr, box, h * zoom))
    titles = ['HR (full image)'] + [t for t, _, _ in panels]
    width = 2 * MARGIN + sum(t.shape[1] for t in tiles) + GAP * (len(tiles) - 1)
    height = 2 * MARGIN + h * zoom + CAPTION
    canvas = np.full((height, width, 3), 255, np.uint8)
    rects, left = [], MARGIN
    for title, tile in zip(titles, tiles):
        th, tw = tile.shape[:2]
        canvas[MARGIN:MARGIN + th, left:left + tw] = tile
        rects.append((title, (left, MARGIN, tw, th)))
        left += tw + GAP
    return canvas, {'size': (width, height), 'panels': rects, 'box': tuple(box), 'zoom': zoom}


def render(canvas, geometry, captions, stem):
    """Writes stem.png (exactly the canvas, captions in the band) and stem.pdf;
    returns the texts drawn."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    width, height = geometry['size']
    fig = plt.figure(figsize=((width + 0.5) / DPI, (height + 0.5) / DPI), dpi=DPI)
    try:
        fig.figimage(canvas, 0, 0, origin='upper')
        top = height - MARGIN - geometry['panels'][0][1][3] - 4   # just under the panels
        for (title, (x, _, w, _)), caption in zip(geometry['panels'], captions):
            fig.text((x + w / 2) / width, top / height, f'{title}\n{caption}' if caption else title,
                     ha='center', va='top', fontsize=9, linespacing=1.3)
        for ext in ('png', 'pdf'):
            fig.savefig(f'{stem}.{ext}', dpi=DPI)
        return [t.get_text() for t in fig.texts]
    finally:
        plt.close(fig)


def make_figure(hr, bicubic, methods, scale, stem, box=None, zoom=None, box_size=None,
                bicubic_title='Bicubic (from LR)', source=None):
    """hr, bicubic, methods [(name, image)]: uint8 HxW(xC) of one size; source: what
    the JSON calls the HR (a path or a name). Writes stem.png / .pdf / .json; returns
    geometry plus 'scores' (the JSON's panels), 'crop_scored', 'captions' and 'texts'."""
    images = scored_images(bicubic, methods, bicubic_title)
    auto = box is None
    if auto:
        box = auto_box(hr, [img for _, img in images], size=box_size, shave=scale)
    check_box(box, hr.shape)
    if zoom is None:
        zoom = max(1, int(round(PANEL_TARGET / max(box[2], box[3]))))
    scores = score_panels(hr, images, box, scale)
    panels = [('HR', hr, CROP_NOTE)] + [(s['name'], img, score_text(s['psnr'], s['ssim']))
                                        for s, (_, img) in zip(scores, images)]
    canvas, geometry = compose(hr, panels, box, zoom)
    captions = [''] + [c for _, _, c in panels]     # nothing under the full image
    geometry.update(scores=scores, crop_scored=scored_region(box, hr.shape, scale), captions=captions,
                    texts=render(canvas, geometry, captions, stem))
    write_sidecar(f'{stem}.json', geometry, scale, source, auto)
    return geometry


# ---- training / test loop ----------------------------------------------------
def hwc(img):
    img = np.asarray(img)
    return img[:, :, None] if img.ndim == 2 else img


class FigureWriter:
    """main.py --save_results --save_figures: one figure per scored test image,
    in experiment/<save>/figures-<set>/<name>_x<scale>.png, .pdf and .json. The model's
    panel is named by --model, so --model Bicubic shows one Bicubic panel."""

    def __init__(self, args, ckp):
        self.args, self.ckp = args, ckp

    def add(self, set_name, scale, name, lr, sr, hr):
        from data.common import tensor2np
        from data.imresize import imresize_tensor
        args = self.args
        h, w = sr.shape[-2:]
        bic = imresize_tensor(lr.float(), scale, quantize_range=args.rgb_range, border=args.imresize_border)
        sr_u, hr_u, bic_u = (hwc(tensor2np(t[0, :, :h, :w], args.rgb_range)) for t in (sr, hr, bic))
        folder = self.ckp.get_path(f'figures-{set_name}')
        os.makedirs(folder, exist_ok=True)
        stem = os.path.join(folder, f'{name}_x{scale}')
        try:
            return make_figure(hr_u, bic_u, [(args.model, sr_u)], scale, stem, source=f'{set_name}/{name}')
        except (CompareError, ValueError) as e:   # e.g. an image too small for SSIM
            print(f'[figure] {stem}: skipped ({e})', file=sys.stderr)
