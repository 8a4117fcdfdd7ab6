"""Compute PSNR / SSIM (MATLAB-style, see metrics.py) between SR and HR folders.

One --sr DIR: a per-image table on stdout. Several --sr NAME=DIR (one per
method, e.g. Bicubic=..., EDSR=..., EDSR+=... for self-ensemble): Markdown
tables on stdout (mean per method, then per image); --latex writes a booktabs
table with the best value of each column in \\textbf and the second best
in \\underline."""
import argparse
import json
import math
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

import metrics
from data import common

HELP_EPILOG = """\
methods:
  --sr DIR            one folder: per-image table, JSON {images, mean}.
  --sr NAME=DIR ...   one or more methods (a plain DIR among several is named by
                      its folder name). stdout: Markdown table of the means
                      (rows = methods, best in **bold**), then a per-image
                      Markdown table (cells PSNR / SSIM). --markdown FILE
                      writes the same Markdown, --latex FILE (or -, stdout)
                      a booktabs table: per column (PSNR, SSIM; higher is
                      better) best in \\textbf, second best in \\underline.
                      Ranks are dense on the printed values (2 decimals for
                      PSNR, 4 for SSIM): ties share a mark. Identical images
                      give PSNR inf (printed inf / $\\infty$, ranked first,
                      null in JSON). JSON: {scale, shave, methods: {NAME:
                      {images, mean, rank}}}.

pairing rule (SR file name -> HR file name, S = --scale):
  1. the same stem (file name without extension);
  2. else these suffixes, in order; the first stripped stem that names an
     HR image wins:
    _x{S}_SR   (baby_x2_SR.png -> baby)   EDSR-PyTorch / srlab
    _SR        (baby_SR.png    -> baby)
    x{S}       (babyx2.png     -> baby)
    _x{S}      (baby_x2.png    -> baby)
  3. else _<token>_x{S}        (baby_RCAN_x2.png -> baby)  RCAN / RDN
  4. else _<token>             (baby_RealESRGAN.png -> baby)  BasicSR
  a token is one word without "_" and not x<number> (so baby_x3.png is not
  taken for scale 2). SR files whose stem ends in _LR or _HR are ignored.
  Every HR image needs exactly one SR image and every other SR image must
  match an HR image, otherwise the run stops with one error line (naming
  the method when there are several) and exit code 1.

images:
  read as training and --test_only read them (src/data/common.py): files
  ending in %s;
  alpha dropped, palette as RGB, 16-bit to 8-bit (v / 257, rounded), float
  images rounded to 8 bits (times 255 when all values are <= 1). Other files
  are skipped with a warning.

sizes:
  if the HR image is larger than the SR image by less than S pixels in each
  dimension, HR is cropped to a multiple of S (mod-crop) before comparing.

metrics:
  Y channel (16 + (65.481 R + 128.553 G + 24.966 B) / 255, float) for RGB,
  the single channel for grayscale; --shave pixels are removed at each
  border (default S). PSNR in dB, SSIM with an 11x11 Gaussian window.
""" % ' '.join(common.IMG_EXTS)


class EvalError(Exception):
    pass


def read_image(path):
    """uint8 HxW (grayscale) or HxWx3 (colour), read by the data pipeline's
    reader (data/common.py), so the pixels are the ones training compares."""
    try:
        img = common.read_image(str(path), n_colors=None)
    except common.DataError as e:
        raise EvalError(str(e))
    return img[:, :, 0] if img.shape[2] == 1 else img


def list_images(folder):
    """The image files of `folder` as the data pipeline lists them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalError('not a directory: %s' % folder)
    return [Path(p) for p in common.list_images(str(folder))]


def _warning_line(message, *_):
    print('evaluate.py: warning: %s' % message, file=sys.stderr)


def match_stem(stem, hr_stems, scale):
    """HR stem for an SR stem, or None (see HELP_EPILOG for the rule)."""
    if stem in hr_stems:
        return stem
    for suffix in ('_x%d_SR' % scale, '_SR', 'x%d' % scale, '_x%d' % scale):
        if stem.endswith(suffix) and stem[:-len(suffix)] in hr_stems:
            return stem[:-len(suffix)]
    rest = stem[:-len('_x%d' % scale)] if stem.endswith('_x%d' % scale) else None
    for base in (rest, stem):  # _<token>_x{S} (RCAN/RDN), then _<token> (BasicSR)
        if base is None:
            continue
        head, sep, token = base.rpartition('_')
        if sep and token and not re.fullmatch(r'x\d+', token) and head in hr_stems:
            return head
    return None


def match_pairs(sr_dir, hr_dir, scale):
    """List of (stem, sr_path, hr_path), sorted by stem."""
    hr_files = list_images(hr_dir)
    if not hr_files:
        raise EvalError('no images in HR directory %s' % hr_dir)
    hr = {}
    for p in hr_files:
        if p.stem in hr:
            raise EvalError('two HR images with stem %r: %s, %s' % (p.stem, hr[p.stem].name, p.name))
        hr[p.stem] = p
    sr = {}
    for p in list_images(sr_dir):
        if p.stem.endswith(('_LR', '_HR')):
            continue
        stem = match_stem(p.stem, hr, scale)
        if stem is None:
            raise EvalError('SR image %s matches no HR image in %s' % (p, hr_dir))
        if stem in sr:
            raise EvalError('SR images %s and %s both match HR image %s'
                            % (sr[stem].name, p.name, hr[stem].name))
        sr[stem] = p
    missing = [hr[s].name for s in sorted(hr) if s not in sr]
    if missing:
        raise EvalError('no SR image in %s for HR image(s): %s' % (sr_dir, ', '.join(missing)))
    return [(s, sr[s], hr[s]) for s in sorted(hr)]


def hr_folder(path):
    """The HR images of --hr: the folder itself, or <path>/HR for a benchmark set
    (<Set>/HR beside its LR_bicubic/, LR_BD/ or LR_DN/ folders, which are not read)."""
    path = Path(path)
    if (path / 'HR').is_dir() and not any(p.is_file() and p.suffix.lower() in common.IMG_EXTS
                                          for p in path.iterdir()):
        return path / 'HR'
    return path


def evaluate(sr_dir, hr_dir, scale, shave=None):
    """{'images': {stem: {'psnr', 'ssim'}}, 'mean': {'psnr', 'ssim'}}."""
    shave = scale if shave is None else shave
    hr_dir = hr_folder(hr_dir)
    images = {}
    for stem, sr_path, hr_path in match_pairs(sr_dir, hr_dir, scale):
        sr = read_image(sr_path)
        hr = read_image(hr_path)
        dh = hr.shape[0] - sr.shape[0]
        dw = hr.shape[1] - sr.shape[1]
        if hr.shape != sr.shape and 0 <= dh < scale and 0 <= dw < scale:
            hr = hr[:hr.shape[0] - hr.shape[0] % scale, :hr.shape[1] - hr.shape[1] % scale]
        if hr.shape != sr.shape:
            raise EvalError('size mismatch: SR %s is %s, HR %s is %s'
                            % (sr_path, 'x'.join(map(str, sr.shape)),
                               hr_path, 'x'.join(map(str, hr.shape))))
        try:
            p, s = metrics.calc_metrics(sr, hr, shave)
        except ValueError as e:
            raise EvalError('%s: %s' % (sr_path, e))
        images[stem] = {'psnr': p, 'ssim': s}
    mean = {k: float(np.mean([v[k] for v in images.values()])) for k in ('psnr', 'ssim')}
    return {'images': images, 'mean': mean}


def write_json(result, path):
    """Write atomically (temp file + os.replace); inf PSNR is written as null."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        return None if isinstance(x, float) and math.isinf(x) else x

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.' + path.name, suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(clean(result), f, indent=2)
            f.write('\n')
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def format_table(result):
    width = max([len(s) for s in result['images']] + [4])
    lines = ['%-*s  %8s  %6s' % (width, 'image', 'PSNR', 'SSIM')]
    for stem, v in result['images'].items():
        lines.append('%-*s  %8.2f  %6.4f' % (width, stem, v['psnr'], v['ssim']))
    m = result['mean']
    lines.append('%-*s  %8.2f  %6.4f' % (width, 'mean', m['psnr'], m['ssim']))
    return '\n'.join(lines)


DIGITS = {'psnr': 2, 'ssim': 4}


def parse_methods(values):
    """[(name, folder)] from the --sr values; a plain DIR is named by its folder."""
    methods = []
    for v in values:
        name, sep, folder = v.partition('=')
        if not sep or not name or not folder or os.path.isdir(v):
            name, folder = Path(v).name or v, v
        methods.append((name, folder))
    return methods


def add_ranks(methods):
    """rank[key] per method: dense rank of the printed mean, 1 = best (inf first)."""
    for key, digits in DIGITS.items():
        shown = {n: round(m['mean'][key], digits) for n, m in methods.items()}
        levels = sorted(set(shown.values()), reverse=True)
        for n, v in shown.items():
            methods[n].setdefault('rank', {})[key] = levels.index(v) + 1
    return methods


def evaluate_methods(methods, hr_dir, scale, shave=None):
    """{'scale', 'shave', 'methods': {name: {'images', 'mean', 'rank'}}}."""
    results = {}
    for name, folder in methods:
        try:
            results[name] = evaluate(folder, hr_dir, scale, shave)
        except EvalError as e:
            raise EvalError('method %s: %s' % (name, e))
    return {'scale': scale, 'shave': scale if shave is None else shave,
            'methods': add_ranks(results)}


def fmt(value, key, latex=False):
    if math.isinf(value):
        return '$\\infty$' if latex else 'inf'
    return '%.*f' % (DIGITS[key], value)


def markdown_tables(result):
    """Means (rows = methods, best in bold) and the per-image table, as Markdown."""
    methods = result['methods']
    lines = ['| Method | PSNR (dB) | SSIM |', '|:--|--:|--:|']
    for name, m in methods.items():
        cells = [fmt(m['mean'][k], k) for k in DIGITS]
        cells = ['**%s**' % c if m['rank'][k] == 1 else c for c, k in zip(cells, DIGITS)]
        lines.append('| %s | %s |' % (name, ' | '.join(cells)))
    lines += ['', '| Image | %s |' % ' | '.join(methods),
              '|:--|%s' % ('--:|' * len(methods))]
    stems = list(next(iter(methods.values()))['images'])
    for stem in stems + ['mean']:
        cells = [m['mean'] if stem == 'mean' else m['images'][stem] for m in methods.values()]
        lines.append('| %s | %s |' % (stem, ' | '.join(
            '%s / %s' % (fmt(c['psnr'], 'psnr'), fmt(c['ssim'], 'ssim')) for c in cells)))
    return '\n'.join(lines) + '\n'


LATEX_SPECIAL = {'\\': '\\textbackslash{}', '~': '\\textasciitilde{}', '^': '\\textasciicircum{}',
                 '&': '\\&', '%': '\\%', '$': '\\$', '#': '\\#', '_': '\\_', '{': '\\{', '}': '\\}'}


def latex_escape(text):
    return ''.join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex_table(result):
    """booktabs table of the means: per column best in bold, second underlined."""
    marks = {1: '\\textbf{%s}', 2: '\\underline{%s}'}
    lines = ['\\begin{tabular}{lcc}', '\\toprule',
             'Method & PSNR (dB) & SSIM \\\\', '\\midrule']
    for name, m in result['methods'].items():
        cells = [marks.get(m['rank'][k], '%s') % fmt(m['mean'][k], k, latex=True) for k in DIGITS]
        lines.append('%s & %s \\\\' % (latex_escape(name), ' & '.join(cells)))
    lines += ['\\bottomrule', '\\end{tabular}']
    return '\n'.join(lines) + '\n'


def write_text(text, path):
    """Write `text` to `path` ('-': stdout)."""
    if path == '-':
        sys.stdout.write(text)
    else:
        Path(path).write_text(text)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='evaluate.py', description=__doc__, epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sr', required=True, action='append', metavar='[NAME=]DIR',
                        help='folder of super-resolved images; repeat as NAME=DIR to compare methods')
    parser.add_argument('--hr', required=True, help='folder of ground-truth images, or a benchmark set folder holding HR/')
    parser.add_argument('--scale', type=int, required=True, help='upscaling factor S')
    parser.add_argument('--shave', type=int, default=None,
                        help='border pixels ignored on each side (default: S)')
    parser.add_argument('--json', default=None, help='also write results to this JSON file')
    parser.add_argument('--markdown', default=None, metavar='FILE',
                        help='write the Markdown tables to FILE (several methods: also printed)')
    parser.add_argument('--latex', default=None, metavar='FILE',
                        help='write the LaTeX (booktabs) table to FILE; - prints it')
    args = parser.parse_args(argv)
    if args.scale < 1:
        parser.error('--scale must be >= 1')
    if args.shave is not None and args.shave < 0:
        parser.error('--shave must be >= 0')
    methods = parse_methods(args.sr)
    names = [n for n, _ in methods]
    if len(set(names)) != len(names):
        parser.error('method names must differ: %s' % ', '.join(names))
    single = len(args.sr) == 1 and methods[0][1] == args.sr[0]
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line  # one line per skipped file
            if single:
                result = evaluate(args.sr[0], args.hr, args.scale, args.shave)
                multi = {'scale': args.scale, 'shave': args.scale if args.shave is None else args.shave,
                         'methods': add_ranks({names[0]: dict(result)})}
            else:
                result = multi = evaluate_methods(methods, args.hr, args.scale, args.shave)
        print(format_table(result) if single else markdown_tables(multi), end='\n' if single else '')
        if args.markdown:
            write_text(markdown_tables(multi), args.markdown)
        if args.latex:
            write_text(latex_table(multi), args.latex)
        if args.json:
            write_json(result, args.json)
    except (EvalError, OSError) as e:
        print('evaluate.py: error: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
