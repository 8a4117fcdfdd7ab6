"""Comparison figures as in SR papers: the HR image with a box, then that crop
for HR, Bicubic and each method, each with its whole-image PSNR / SSIM
(metrics.py protocol, shave = scale) under it. PNG and PDF via matplotlib.

    python compare.py --hr HR.png [--lr LR.png] --scale S --sr NAME=PATH ...
                      [--box x,y,w,h | --box_size N] [--zoom K] --out STEM

The panels are composed as one numpy canvas (crops enlarged by np.repeat by
an integer zoom, so every crop pixel is exact in the PNG); matplotlib adds the
captions and writes the files. Without --box, the box is the window where the
methods differ most: the largest spread (max - min) of the local RMSE on Y
among Bicubic and the methods (local PSNR would favour flat, dark windows,
where a tiny error swings it by many dB).
FigureWriter does the same for every test image of main.py --save_figures.
"""
import argparse
import os
import sys

import numpy as np

import metrics

MARGIN, GAP, CAPTION = 8, 8, 40      # pixels around, between and under the panels
DPI = 100
PANEL_TARGET = 192                   # default zoom: crop panels about this tall
BOX_COLOR = (255, 0, 0)


class CompareError(Exception):
    """Bad input; the message names the file or flag."""


# ---- the box ---------------------------------------------------------------
def _window_sums(a, h, w, ys, xs):
    """Sums of a over the h x w windows with top-left corners ys x xs."""
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    s[1:, 1:] = a.cumsum(0).cumsum(1)
    y, x = np.meshgrid(ys, xs, indexing='ij')
    return s[y + h, x + w] - s[y, x + w] - s[y + h, x] + s[y, x]


def _starts(length, size, stride, lo=0):
    last = length - size
    out = list(range(lo, last + 1, stride))
    if out[-1] != last:
        out.append(last)
    return np.array(out)


def auto_box(hr, images, size=None, stride=None, shave=0):
    """(x, y, w, h): the square window where the local RMSE (Y, metrics.py)
    of `images` spreads most; deterministic (first maximum, row-major).
    Windows stay `shave` pixels from the border when the image allows."""
    hh, ww = hr.shape[:2]
    size = max(1, min(hh, ww) // 5) if size is None else int(size)
    if size > min(hh, ww):
        raise CompareError(f'--box_size {size} larger than the image ({ww}x{hh})')
    stride = max(1, size // 6) if stride is None else stride
    if min(hh, ww) - 2 * shave < size:
        shave = 0
    ys = _starts(hh - shave, size, stride, shave)
    xs = _starts(ww - shave, size, stride, shave)
    yh = metrics.rgb_to_y(metrics.quantize(hr))
    rmse = []
    for img in images:
        err = (metrics.rgb_to_y(metrics.quantize(img)) - yh) ** 2
        rmse.append(np.sqrt(np.maximum(_window_sums(err, size, size, ys, xs), 0) / (size * size)))
    r = np.stack(rmse)
    spread = r.max(0) - r.min(0)
    i, j = np.unravel_index(int(np.argmax(spread)), spread.shape)
    return int(xs[j]), int(ys[i]), size, size


def check_box(box, shape):
    x, y, w, h = box
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > shape[1] or y + h > shape[0]:
        raise CompareError(f'--box {x},{y},{w},{h} outside the {shape[1]}x{shape[0]} image')
    return box


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
    """Writes stem.png (exactly the canvas, captions in the band) and stem.pdf."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    width, height = geometry['size']
    fig = plt.figure(figsize=((width + 0.5) / DPI, (height + 0.5) / DPI), dpi=DPI)
    try:
        fig.figimage(canvas, 0, 0, origin='upper')
        top = height - MARGIN - geometry['panels'][0][1][3] - 4   # just under the panels
        for (title, (x, _, w, _)), caption in zip(geometry['panels'], captions):
            fig.text((x + w / 2) / width, top / height, f'{title}\n{caption}', ha='center', va='top',
                     fontsize=9, linespacing=1.3)
        for ext in ('png', 'pdf'):
            fig.savefig(f'{stem}.{ext}', dpi=DPI)
    finally:
        plt.close(fig)


def score_text(p, s):
    return f'{p:.2f} dB / {s:.4f}'


def make_figure(hr, bicubic, methods, scale, stem, box=None, zoom=None, box_size=None,
                bicubic_title='Bicubic (from LR)'):
    """hr, bicubic, methods [(name, image)]: uint8 HxW(xC) of one size.
    Writes stem.png / stem.pdf; returns geometry plus 'scores' {name: (psnr, ssim)}."""
    images = [(bicubic_title, bicubic)] + list(methods)
    scores = {name: metrics.calc_metrics(img, hr, scale) for name, img in images}
    if box is None:
        box = auto_box(hr, [img for _, img in images], size=box_size, shave=scale)
    check_box(box, hr.shape)
    if zoom is None:
        zoom = max(1, int(round(PANEL_TARGET / max(box[2], box[3]))))
    panels = [('HR', hr, 'PSNR / SSIM')] + [(n, img, score_text(*scores[n])) for n, img in images]
    canvas, geometry = compose(hr, panels, box, zoom)
    x, y, w, h = box
    render(canvas, geometry, [f'box {x},{y},{w},{h}'] + [c for _, _, c in panels], stem)
    geometry['scores'] = scores
    return geometry


# ---- training / test loop ----------------------------------------------------
def hwc(img):
    img = np.asarray(img)
    return img[:, :, None] if img.ndim == 2 else img


class FigureWriter:
    """main.py --save_results --save_figures: one figure per scored test image,
    in experiment/<save>/figures-<set>/<name>_x<scale>.png and .pdf."""

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
            return make_figure(hr_u, bic_u, [(args.model, sr_u)], scale, stem)
        except (CompareError, ValueError) as e:   # e.g. an image too small for SSIM
            print(f'[figure] {stem}: skipped ({e})', file=sys.stderr)


# ---- command line ------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f'compare.py: error: {message}\n')


def build_parser():
    p = Parser(description='Comparison figure: HR with a box, then HR, Bicubic and SR crops.')
    p.add_argument('--hr', required=True, help='HR (ground truth) image')
    p.add_argument('--lr', help='LR image: Bicubic is imresize(LR, scale); '
                   'without it, imresize(imresize(HR, 1/scale), scale)')
    p.add_argument('--scale', type=int, required=True)
    p.add_argument('--sr', action='append', required=True, metavar='NAME=PATH', help='a method (repeatable)')
    p.add_argument('--box', help='x,y,w,h in HR pixels (default: where the methods differ most)')
    p.add_argument('--box_size', type=int, help='side of the automatic box (default: 1/5 of the shorter side)')
    p.add_argument('--zoom', type=int, help='integer enlargement of the crops (default: panels ~192 px)')
    p.add_argument('--out', required=True, help='output stem: writes STEM.png and STEM.pdf')
    return p


def parse_methods(specs):
    out = []
    for spec in specs:
        name, sep, path = spec.partition('=')
        if not sep or not name or not path:
            raise CompareError(f"--sr '{spec}': expected NAME=PATH")
        if name in [n for n, _ in out] or name == 'HR':
            raise CompareError(f"--sr '{spec}': duplicate method name {name}")
        out.append((name, path))
    return out


def parse_box(text):
    try:
        box = tuple(int(v) for v in text.split(','))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise CompareError(f"--box '{text}': expected x,y,w,h (integers)")
    return box


def read(path, flag):
    from data import common
    if not os.path.isfile(path):
        raise CompareError(f'{flag} {path}: no such file')
    try:
        return common.read_image(path, n_colors=None)
    except common.DataError as e:
        raise CompareError(f'{flag} {e}')


def fit(img, shapes, flag, path):
    """img of the mod-cropped HR size, or of the full HR size (then cropped)."""
    shape = shapes[0]
    if img.shape[2] != shape[2]:
        raise CompareError(f'{flag} {path}: {img.shape[2]} channel(s), HR has {shape[2]}')
    if img.shape not in shapes:
        raise CompareError(f'{flag} {path}: size {img.shape[1]}x{img.shape[0]}, '
                           f'expected {shape[1]}x{shape[0]} (HR mod-cropped to the scale)')
    return img[:shape[0], :shape[1]]


def load(args):
    """-> hr, bicubic, bicubic title, [(name, image)], all of the mod-cropped HR size."""
    from data import common
    from data.imresize import imresize
    if args.scale < 1:
        raise CompareError(f'--scale {args.scale}: must be >= 1')
    methods = parse_methods(args.sr)
    full = read(args.hr, '--hr')
    hr = common.modcrop(full, args.scale)
    shapes = (hr.shape, full.shape)
    if args.lr:
        lr = read(args.lr, '--lr')
        bic, title = fit(hwc(imresize(lr, args.scale)), shapes[:1], '--lr (x scale)', args.lr), 'Bicubic (from LR)'
    else:
        bic, title = hwc(imresize(hwc(imresize(hr, 1 / args.scale)), output_shape=hr.shape[:2])), 'Bicubic (from HR)'
    return hr, bic, title, [(n, fit(read(p, '--sr'), shapes, '--sr', p)) for n, p in methods]


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        hr, bic, title, methods = load(args)
        box = None if args.box is None else check_box(parse_box(args.box), hr.shape)
        if args.zoom is not None and args.zoom < 1:
            raise CompareError(f'--zoom {args.zoom}: must be >= 1')
        if args.box_size is not None and args.box_size < 1:
            raise CompareError(f'--box_size {args.box_size}: must be >= 1')
        folder = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(folder):
            raise CompareError(f'--out {args.out}: no folder {folder}')
        geo = make_figure(hr, bic, methods, args.scale, args.out, box=box, zoom=args.zoom,
                          box_size=args.box_size, bicubic_title=title)
    except (CompareError, ValueError) as e:
        print(f'compare.py: error: {e}', file=sys.stderr)
        return 1
    x, y, w, h = geo['box']
    print(f'box: {x},{y},{w},{h} (zoom {geo["zoom"]})')
    for name, (p, s) in geo['scores'].items():
        print(f'{name}: PSNR {p:.2f} dB  SSIM {s:.4f}')
    print(f'wrote {args.out}.png and {args.out}.pdf')
    return 0


if __name__ == '__main__':
    sys.exit(main())
