"""Comparison figure for one image, from the command line (the figure itself:
figures.py, which main.py --save_figures also uses):

    python compare.py --hr HR.png [--lr LR.png] --scale S --sr NAME=PATH ...
                      [--box x,y,w,h | --box_size N] [--zoom K] --out STEM

writes STEM.png, STEM.pdf and STEM.json (the folder of STEM is made when missing).
"""
import argparse
import os
import sys

from figures import AUTO_BOX_RULE, CompareError, check_box, hwc, make_figure, score_text


# ---- command line ------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f'compare.py: error: {message}\n')


def build_parser():
    p = Parser(description='Comparison figure: HR with the crop box, then the crop of HR, Bicubic and '
               'each method with the PSNR / SSIM of the crop (Y, the whole-image protocol restricted to '
               'the crop); writes STEM.png, STEM.pdf and STEM.json (box, crop and whole-image numbers). '
               'A method named Bicubic (any case), or equal to the Bicubic made here, replaces it.',
               epilog=AUTO_BOX_RULE)
    p.add_argument('--hr', required=True, help='HR (ground truth) image')
    p.add_argument('--lr', help='LR image: Bicubic is imresize(LR, scale); '
                   'without it, imresize(imresize(HR, 1/scale), scale)')
    p.add_argument('--scale', type=int, required=True)
    p.add_argument('--sr', action='append', required=True, metavar='NAME=PATH', help='a method (repeatable)')
    p.add_argument('--box', help='x,y,w,h in HR pixels (default: automatic, see below)')
    p.add_argument('--box_size', type=int,
                   help='side of the automatic box (default: 1/5 of the shorter side, at least 11)')
    p.add_argument('--zoom', type=int, help='integer enlargement of the crops (default: panels ~192 px)')
    p.add_argument('--out', required=True, help='output stem: writes STEM.png, STEM.pdf and STEM.json')
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
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise CompareError(f'--out {args.out}: cannot make the folder {folder} ({e.strerror or e})')
        geo = make_figure(hr, bic, methods, args.scale, args.out, box=box, zoom=args.zoom,
                          box_size=args.box_size, bicubic_title=title, source=args.hr)
    except (CompareError, ValueError) as e:
        print(f'compare.py: error: {e}', file=sys.stderr)
        return 1
    x, y, w, h = geo['box']
    print(f'box: {x},{y},{w},{h} (zoom {geo["zoom"]})')
    for sc in geo['scores']:
        print(f"{sc['name']}: PSNR / SSIM {score_text(sc['psnr'], sc['ssim'])} (crop), "
              f"{score_text(sc['psnr_image'], sc['ssim_image'])} (whole image)")
    print(f'wrote {args.out}.png, {args.out}.pdf and {args.out}.json')
    return 0


if __name__ == '__main__':
    sys.exit(main())
