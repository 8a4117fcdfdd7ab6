"""Compute PSNR / SSIM (MATLAB-style, see metrics.py) between SR and HR folders.

One --sr DIR: a per-image table on stdout. Several --sr NAME=DIR (one per
method, e.g. Bicubic=..., EDSR=..., EDSR+=... for self-ensemble): Markdown
tables on stdout (mean per method, then per image); --latex writes a booktabs
table with the best value of each column in \\textbf and the second best
in \\underline (with three methods or more). Several sets and scales in one
call (--sets Set5+Set14 --scale 2+3+4, --hr the benchmark folder): one paper
table, methods as rows grouped by scale, sets as PSNR/SSIM column groups."""
import argparse
import json
import math
import os
import re
import string
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

import metrics
from data import common

HELP_EPILOG = """\
methods (one set, one scale):
  --sr DIR            one folder: per-image table, JSON {images, mean}.
  --sr NAME=DIR ...   one or more methods (a plain DIR among several is named by
                      its folder name). stdout: Markdown table of the means
                      (rows = methods, best in **bold**), then a per-image
                      Markdown table (cells PSNR / SSIM). --markdown FILE
                      writes the same Markdown, --latex FILE (or -, stdout)
                      a booktabs table: per column (PSNR, SSIM; higher is
                      better) best in \\textbf, second best in \\underline
                      when three or more methods are compared and one ranks
                      below it (with two, it would only mark the worse).
                      Ranks are dense on the printed values (2 decimals for
                      PSNR, 4 for SSIM): ties share a mark. Identical images
                      give PSNR inf (printed inf / $\\infty$, ranked first,
                      null in JSON). JSON: {scale, shave, methods: {NAME:
                      {images, mean, rank}}}.

several sets and scales (one paper table):
  --hr BENCH --sets Set5+Set14+B100 --scale 2+3+4 (lists joined with '+')
                      scores BENCH/<Set>/HR (or BENCH/<Set> itself when it
                      holds the images) at each scale; without --sets, the
                      --hr folder is the only set, named by its folder (Set5
                      for benchmark/Set5 or benchmark/Set5/HR). stdout and
                      --markdown: one table, rows = methods grouped by scale,
                      one column per set (cells PSNR / SSIM, best in bold);
                      --latex: booktabs, each set a PSNR/SSIM column group
                      under a \\cmidrule, rows grouped by scale (\\midrule),
                      marks as above per set, scale and metric. --per_image
                      adds one per-image table per set and scale (images as
                      rows, methods as column groups, marks per image).
                      JSON: {shave: {scale: pixels}, sets: {Set: {scale:
                      {NAME: {images, mean, rank}}}}}.

lookup (where --sr NAME=SPEC finds its images for set <Set> at scale S):
  1. SPEC with {set} / {scale} placeholders is a pattern:
       RCAN='SR/BI/RCAN/{set}/x{scale}' -> SR/BI/RCAN/Set5/x2
  2. else the first folder that exists of
       SPEC/results-<Set>   an srlab / EDSR-PyTorch run (experiment/<save>),
                            one folder for every scale: baby_x2_SR.png ...
       SPEC/<Set>           one subfolder per set
       SPEC                 only when a single set is scored
  then, when it holds a subfolder x<S> (or X<S>), that subfolder. A folder
  may hold several scales' images: those of another scale (baby_x3_SR.png,
  babyx3.png, baby_x3.png, baby_RCAN_x3.png when scoring x2) are ignored.
  A method without a folder or images for a set and scale stops the run
  with one line naming the method, the set and the scale (exit code 1).

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
  match an HR image (at this or another scale), otherwise the run stops
  with one error line (naming the method when there are several) and exit
  code 1.

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


def other_scale(stem, hr_stems, scale):
    """True when `stem` names an HR image at a scale other than `scale`
    (baby_x3_SR, babyx3, baby_x3, baby_RCAN_x3 while scoring x2)."""
    m = re.search(r'x(\d+)(?:_SR)?$', stem)
    return bool(m) and int(m.group(1)) != scale and match_stem(stem, hr_stems, int(m.group(1))) is not None


def match_pairs(sr_dir, hr_dir, scale):
    """List of (stem, sr_path, hr_path), sorted by stem; SR images of other scales are skipped."""
    hr_files = list_images(hr_dir)
    if not hr_files:
        raise EvalError('no images in HR directory %s' % hr_dir)
    hr = {}
    for p in hr_files:
        if p.stem in hr:
            raise EvalError('two HR images with stem %r: %s, %s' % (p.stem, hr[p.stem].name, p.name))
        hr[p.stem] = p
    sr, other = {}, 0
    for p in list_images(sr_dir):
        if p.stem.endswith(('_LR', '_HR')):
            continue
        stem = match_stem(p.stem, hr, scale)
        if stem is None and other_scale(p.stem, hr, scale):
            other += 1
            continue
        if stem is None:
            raise EvalError('SR image %s matches no HR image in %s' % (p, hr_dir))
        if stem in sr:
            raise EvalError('SR images %s and %s both match HR image %s'
                            % (sr[stem].name, p.name, hr[stem].name))
        sr[stem] = p
    missing = [hr[s].name for s in sorted(hr) if s not in sr]
    if missing:
        shown = ', '.join(missing[:8]) + (', ... (%d in all)' % len(missing) if len(missing) > 8 else '')
        note = ' (%d image(s) of other scales ignored)' % other if other else ''
        raise EvalError('no SR image in %s for HR image(s): %s%s' % (sr_dir, shown, note))
    return [(s, sr[s], hr[s]) for s in sorted(hr)]


def hr_folder(path):
    """The HR images of --hr: the folder itself, or <path>/HR for a benchmark set
    (<Set>/HR beside its LR_bicubic/, LR_BD/ or LR_DN/ folders, which are not read)."""
    path = Path(path)
    if (path / 'HR').is_dir() and not any(p.is_file() and p.suffix.lower() in common.IMG_EXTS
                                          for p in path.iterdir()):
        return path / 'HR'
    return path


def as_pair(sr, hr):
    """A grayscale image beside a colour one is made colour (its value in R, G
    and B), as srlab's test pipeline reads a grayscale HR image (Set14, B100
    hold some) for an RGB network."""
    if (sr.ndim, hr.ndim) == (3, 2):
        hr = np.repeat(hr[:, :, None], 3, axis=2)
    elif (sr.ndim, hr.ndim) == (2, 3):
        sr = np.repeat(sr[:, :, None], 3, axis=2)
    return sr, hr


def evaluate(sr_dir, hr_dir, scale, shave=None):
    """{'images': {stem: {'psnr', 'ssim'}}, 'mean': {'psnr', 'ssim'}}."""
    shave = scale if shave is None else shave
    hr_dir = hr_folder(hr_dir)
    images = {}
    for stem, sr_path, hr_path in match_pairs(sr_dir, hr_dir, scale):
        sr, hr = as_pair(read_image(sr_path), read_image(hr_path))
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
    """[(name, folder or pattern)] from the --sr values; a plain DIR is named by its folder."""
    methods = []
    for v in values:
        name, sep, folder = v.partition('=')
        if not sep or not name or not folder or os.path.isdir(v):
            name, folder = Path(v).name or v, v
        methods.append((name, folder))
    return methods


def pattern_fields(spec):
    """The placeholder names of an --sr value ({set}, {scale}); ValueError for unbalanced braces."""
    return [field for _, field, _, _ in string.Formatter().parse(spec) if field is not None]


def number(value):
    """A mean or per-image value as a float: None (inf PSNR as JSON stores it) is inf."""
    return math.inf if value is None else float(value)


def dense_ranks(values, key):
    """{name: rank} of the printed values (DIGITS[key] decimals): dense, 1 = best, inf first."""
    shown = {n: round(number(v), DIGITS[key]) for n, v in values.items()}
    levels = sorted(set(shown.values()), reverse=True)
    return {n: levels.index(v) + 1 for n, v in shown.items()}


def add_ranks(methods):
    """rank[key] per method: dense rank of the printed mean, 1 = best (inf first)."""
    for key in DIGITS:
        for n, r in dense_ranks({n: m['mean'][key] for n, m in methods.items()}, key).items():
            methods[n].setdefault('rank', {})[key] = r
    return methods


def mark(text, rank, worst, latex):
    """Best in bold; second best underlined (LaTeX) only when a method ranks below it,
    so never with two methods, where it would just mark the worse one."""
    if rank == 1:
        return ('\\textbf{%s}' if latex else '**%s**') % text
    if rank == 2 and worst >= 3 and latex:
        return '\\underline{%s}' % text
    return text


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


# ---- several sets and scales ----------------------------------------------------

def hr_sets(hr, sets):
    """[(set name, HR folder)]: <hr>/<Set> for each --sets name, else --hr alone,
    named by its folder (Set5 for benchmark/Set5 and benchmark/Set5/HR)."""
    if sets is None:
        path = Path(os.path.abspath(hr))
        return [(path.parent.name if path.name == 'HR' else path.name, hr_folder(hr))]
    root = Path(hr)
    if not root.is_dir():
        raise EvalError('--hr: not a directory: %s' % hr)
    missing = [s for s in sets if not (root / s).is_dir()]
    if missing:
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise EvalError('--hr %s has no folder for set(s) %s (it has: %s)'
                        % (hr, ', '.join(missing), ', '.join(found) or 'no folders'))
    return [(s, hr_folder(root / s)) for s in sets]


def sr_folder(spec, set_name, scale, only_set):
    """The folder of one method's SR images for set_name at scale (the lookup rule in HELP_EPILOG);
    only_set: a single set is scored, so SPEC itself may be that folder."""
    if pattern_fields(spec):
        tried = [Path(spec.format(set=set_name, scale=scale))]
    else:
        tried = [Path(spec) / ('results-' + set_name), Path(spec) / set_name] + ([Path(spec)] if only_set else [])
    for base in tried:
        if base.is_dir():
            subs = [base / ('%s%d' % (x, scale)) for x in 'xX' if (base / ('%s%d' % (x, scale))).is_dir()]
            return subs[0] if subs else base
    if len(tried) == 1 or only_set:
        return tried[-1]  # evaluate() reports it as not a directory
    raise EvalError('no folder %s' % ' or '.join(map(str, tried)))


def evaluate_grid(methods, sets, scales, shave=None):
    """{set: {str(scale): {method: {'images', 'mean', 'rank'}}}} for methods [(name, spec)],
    sets [(set name, HR folder)] and scales; every folder is found before any image is read."""
    plan = []
    for set_name, hr_dir in sets:
        for scale in scales:
            for name, spec in methods:
                try:
                    folder = sr_folder(spec, set_name, scale, len(sets) == 1)
                    if not folder.is_dir():
                        raise EvalError('not a directory: %s' % folder)
                except EvalError as e:
                    raise EvalError('method %s, %s x%d: %s' % (name, set_name, scale, e))
                plan.append((set_name, hr_dir, scale, name, folder))
    grid = {}
    for set_name, hr_dir, scale, name, folder in plan:
        try:
            result = evaluate(folder, hr_dir, scale, shave)
        except (EvalError, OSError) as e:
            raise EvalError('method %s, %s x%d: %s' % (name, set_name, scale, e))
        grid.setdefault(set_name, {}).setdefault(str(scale), {})[name] = result
    for cells in grid.values():
        for methods_at_scale in cells.values():
            add_ranks(methods_at_scale)
    return grid


# ---- tables ------------------------------------------------------------------

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
    """booktabs table of the means: per column best in bold, second underlined (see mark())."""
    methods = result['methods']
    worst = {k: max(m['rank'][k] for m in methods.values()) for k in DIGITS}
    lines = ['\\begin{tabular}{lcc}', '\\toprule',
             'Method & PSNR (dB) & SSIM \\\\', '\\midrule']
    for name, m in methods.items():
        cells = [mark(fmt(m['mean'][k], k, latex=True), m['rank'][k], worst[k], True) for k in DIGITS]
        lines.append('%s & %s \\\\' % (latex_escape(name), ' & '.join(cells)))
    lines += ['\\bottomrule', '\\end{tabular}']
    return '\n'.join(lines) + '\n'


def marked(values, name, key, latex):
    """values[name] ({method: value}) printed and marked among the values; '-' when absent."""
    if name not in values:
        return '-'
    ranks = dense_ranks(values, key)
    return mark(fmt(number(values[name]), key, latex), ranks[name], max(ranks.values()), latex)


def cell_pair(cells, name, latex, stem=None):
    """[PSNR, SSIM] of method `name` in cells ({method: result}): its means, or image `stem`'s."""
    pick = (lambda r: r.get('mean')) if stem is None else (lambda r: r.get('images', {}).get(stem))
    values = {n: pick(r) for n, r in cells.items() if pick(r) is not None}
    return [marked({n: v[k] for n, v in values.items()}, name, k, latex) for k in DIGITS]


def scale_keys(results):
    """The scales of results ({set: {scale: ...}}), in order of appearance."""
    return list(dict.fromkeys(s for cells in results.values() for s in cells))


def latex_head(top_lead, lead, groups):
    """booktabs head: group names over PSNR/SSIM pairs with \\cmidrule, then the column names."""
    k = len(lead)
    rules = ' '.join('\\cmidrule(lr){%d-%d}' % (k + 2 * i + 1, k + 2 * i + 2) for i in range(len(groups)))
    return ['\\begin{tabular}{%s}' % ('l' * k + 'cc' * len(groups)), '\\toprule',
            ' & '.join(top_lead + ['\\multicolumn{2}{c}{%s}' % latex_escape(g) for g in groups]) + ' \\\\',
            rules, ' & '.join(lead + ['PSNR & SSIM'] * len(groups)) + ' \\\\', '\\midrule']


def grid_markdown(results, order):
    """Rows = methods grouped by scale, one column per set, cells PSNR / SSIM (best in bold)."""
    sets = list(results)
    lines = ['| Method | Scale | %s |' % ' | '.join('%s PSNR / SSIM' % s for s in sets),
             '|:--|:--|%s' % ('--:|' * len(sets))]
    for scale in scale_keys(results):
        for name in order:
            cells = [cell_pair(results[s].get(scale, {}), name, False) for s in sets]
            if any(c != ['-', '-'] for c in cells):
                lines.append('| %s | x%s | %s |' % (name, scale, ' | '.join(' / '.join(c) for c in cells)))
    return '\n'.join(lines) + '\n'


def grid_latex(results, order):
    """booktabs: rows = methods grouped by scale (\\midrule between), sets as PSNR/SSIM column groups."""
    sets = list(results)
    lines = latex_head(['', ''], ['Method', 'Scale'], sets)
    for i, scale in enumerate(scale_keys(results)):
        lines += ['\\midrule'] if i else []
        for name in order:
            cells = [cell_pair(results[s].get(scale, {}), name, True) for s in sets]
            if any(c != ['-', '-'] for c in cells):
                lines.append('%s & $\\times$%s & %s \\\\' % (latex_escape(name), scale,
                                                               ' & '.join(v for c in cells for v in c)))
    return '\n'.join(lines + ['\\bottomrule', '\\end{tabular}']) + '\n'


def per_image_cells(results, order):
    """[(set, scale, {method: result}, stems)] for the set/scale pairs with per-image values."""
    out = []
    for set_name, by_scale in results.items():
        for scale, cells in by_scale.items():
            cells = {n: cells[n] for n in order if cells.get(n, {}).get('images')}
            stems = list(dict.fromkeys(s for r in cells.values() for s in r['images']))
            if cells:
                out.append((set_name, scale, cells, stems))
    return out


def per_image_markdown(results, order):
    """One Markdown table per set and scale: rows = images then mean, one column per method."""
    out = []
    for set_name, scale, cells, stems in per_image_cells(results, order):
        lines = ['', '### %s x%s, per image (PSNR / SSIM)' % (set_name, scale), '',
                 '| Image | %s |' % ' | '.join(cells), '|:--|%s' % ('--:|' * len(cells))]
        for stem in stems + [None]:
            pairs = [' / '.join(cell_pair(cells, n, False, stem)) for n in cells]
            lines.append('| %s | %s |' % (stem or 'mean', ' | '.join(pairs)))
        out.append('\n'.join(lines) + '\n')
    return ''.join(out)


def per_image_latex(results, order):
    """One booktabs table per set and scale: rows = images then Mean, methods as column groups."""
    out = []
    for set_name, scale, cells, stems in per_image_cells(results, order):
        lines = latex_head(['%s $\\times$%s' % (latex_escape(set_name), scale)], ['Image'], list(cells))
        for stem in stems + [None]:
            lines += ['\\midrule'] if stem is None else []
            values = [v for n in cells for v in cell_pair(cells, n, True, stem)]
            lines.append('%s & %s \\\\' % (latex_escape(stem or 'Mean'), ' & '.join(values)))
        out.append('\n' + '\n'.join(lines + ['\\bottomrule', '\\end{tabular}']) + '\n')
    return ''.join(out)


def tables(results, methods_order=None, per_image=False):
    """(markdown, latex) of the paper table for several sets, scales and methods.

    results: {set: {scale: {method: {'mean': {'psnr': float, 'ssim': float},
                                     'images': {image: {'psnr', 'ssim'}}}}}}
      - set: the test set name ('Set5'), in the column order wanted;
      - scale: int or str (2 or '2'), rows grouped by scale in order of appearance;
      - 'images' is optional (only --per_image tables read it); 'rank' and any
        other key are ignored (marks are computed here); a PSNR of None or inf
        means identical images (as JSON stores it);
      - a method absent from a set/scale prints '-' there.
    evaluate_grid() and the 'sets' of the JSON written by --json have this layout;
    from_run_results() converts srlab's results.json (Evaluator.results).
    methods_order: row order (method names); unlisted methods follow in order of appearance.
    per_image: append one per-image table per set and scale (methods with 'images').
    Markdown: rows = methods grouped by scale, one column per set, cells PSNR / SSIM,
    best in bold. LaTeX (booktabs): sets as PSNR/SSIM column groups under \\cmidrule,
    best \\textbf, second best \\underline when a method ranks below it."""
    results = {s: {str(k): v for k, v in by_scale.items()} for s, by_scale in results.items()}
    seen = list(dict.fromkeys(n for by_scale in results.values() for c in by_scale.values() for n in c))
    unknown = [n for n in methods_order or [] if n not in seen]
    if unknown:
        raise ValueError('methods_order: unknown method(s) %s (methods: %s)' % (', '.join(unknown), ', '.join(seen)))
    order = list(dict.fromkeys(list(methods_order or []) + seen))
    markdown, latex = grid_markdown(results, order), grid_latex(results, order)
    if per_image:
        markdown += per_image_markdown(results, order)
        latex += per_image_latex(results, order)
    return markdown, latex


def from_run_results(results, name):
    """tables() input from srlab's results.json ({set: {scale: {'psnr', 'ssim',
    'bicubic_psnr', 'bicubic_ssim', ...}}}, Evaluator.results of one run): the run as
    method `name`, and 'Bicubic' where the baseline was measured; entries without
    'psnr' (images saved without HR) are left out."""
    out = {}
    for set_name, by_scale in results.items():
        for scale, entry in by_scale.items():
            if 'psnr' not in entry:
                continue
            cells = {}
            if 'bicubic_psnr' in entry:
                cells['Bicubic'] = {'mean': {'psnr': entry['bicubic_psnr'], 'ssim': entry['bicubic_ssim']}}
            cells[name] = {'mean': {'psnr': entry['psnr'], 'ssim': entry['ssim']}}
            out.setdefault(set_name, {})[str(scale)] = cells
    return out


# ---- command line --------------------------------------------------------------

def write_text(text, path):
    """Write `text` to `path` ('-': stdout)."""
    if path == '-':
        sys.stdout.write(text)
    else:
        Path(path).write_text(text)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        # one line, no usage dump
        self.exit(2, '%s: error: %s\n' % (self.prog, message))


def build_parser():
    parser = Parser(prog='evaluate.py', description=__doc__, epilog=HELP_EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    a = parser.add_argument
    a('--sr', required=True, action='append', metavar='[NAME=]DIR',
      help='super-resolved images: a folder, an srlab run folder or a {set}/{scale} pattern '
           '(see lookup); repeat as NAME=... to compare methods')
    a('--hr', required=True,
      help='folder of ground-truth images, a benchmark set folder holding HR/, or with --sets '
           'the benchmark folder holding <Set>/HR')
    a('--sets', default=None, metavar='SET+SET',
      help="test sets joined with '+' (Set5+Set14+B100): folders of --hr")
    a('--scale', required=True, metavar='S[+S]', help="upscaling factor(s), joined with '+' (2+3+4)")
    a('--shave', type=int, default=None, help='border pixels ignored on each side (default: S)')
    a('--json', default=None, help='also write results to this JSON file')
    a('--markdown', default=None, metavar='FILE',
      help='write the Markdown tables to FILE (several methods: also printed)')
    a('--latex', default=None, metavar='FILE', help='write the LaTeX (booktabs) table to FILE; - prints it')
    a('--per_image', action='store_true',
      help='add per-image tables to the LaTeX output, and to the Markdown of several sets or scales '
           '(that of one set and scale always has one)')
    return parser


def plus_list(flag, text, kind):
    """'2+3+4' -> [2, 3, 4] (kind int: positive) or 'Set5+Set14' -> names; ValueError naming flag."""
    items = str(text).split('+')
    example = '2+3+4' if kind is int else 'Set5+Set14+B100'
    bad = ValueError("%s: '%s' is not a list of %s joined with '+' (e.g. %s)"
                     % (flag, text, 'positive integers' if kind is int else 'folder names', example))
    if kind is int:
        if not all(re.fullmatch(r'\d+', x) and int(x) > 0 for x in items):
            raise bad
        items = [int(x) for x in items]
    elif not all(x and x not in ('.', '..') and '/' not in x and os.sep not in x for x in items):
        raise bad
    if len(set(items)) != len(items):
        raise ValueError("%s: repeated value in '%s'" % (flag, text))
    return items


def check_args(parser, args):
    """(scales, sets or None, methods) from the flags; a bad value exits with one line (code 2)."""
    try:
        scales = plus_list('--scale', args.scale, int)
        sets = None if args.sets is None else plus_list('--sets', args.sets, str)
    except ValueError as e:
        parser.error(str(e))
    if args.shave is not None and args.shave < 0:
        parser.error('--shave must be >= 0')
    methods = parse_methods(args.sr)
    names = [n for n, _ in methods]
    if len(set(names)) != len(names):
        parser.error('method names must differ: %s' % ', '.join(names))
    for (name, spec), value in zip(methods, args.sr):
        try:
            fields = pattern_fields(spec)
        except ValueError as e:
            parser.error('--sr %s: %s' % (value, e))
        if set(fields) - {'set', 'scale'}:
            parser.error('--sr %s: placeholders are {set} and {scale}, got %s'
                         % (value, ', '.join('{%s}' % f for f in fields)))
        if fields and spec == value:
            parser.error('--sr %s: name the method of a pattern: NAME=%s' % (value, value))
        if fields and 'set' not in fields and sets is not None and len(sets) > 1:
            parser.error('--sr %s: several sets need {set} in the pattern' % value)
    return scales, sets, methods


def run_single(args, methods, scale):
    """One set, one scale: the tables and JSON of the single-set interface."""
    set_name = hr_sets(args.hr, None)[0][0]
    folders = [(n, sr_folder(spec, set_name, scale, True)) for n, spec in methods]
    single = len(args.sr) == 1 and methods[0][1] == args.sr[0]
    if single:
        result = evaluate(folders[0][1], args.hr, scale, args.shave)
        multi = {'scale': scale, 'shave': scale if args.shave is None else args.shave,
                 'methods': add_ranks({folders[0][0]: dict(result)})}
    else:
        result = multi = evaluate_methods(folders, args.hr, scale, args.shave)
    print(format_table(result) if single else markdown_tables(multi), end='\n' if single else '')
    if args.markdown:
        write_text(markdown_tables(multi), args.markdown)
    if args.latex:
        extra = per_image_latex({set_name: {str(scale): multi['methods']}}, list(multi['methods']))
        write_text(latex_table(multi) + (extra if args.per_image else ''), args.latex)
    if args.json:
        write_json(result, args.json)


def run_grid(args, methods, scales, sets):
    """Several sets or scales: one table (tables()) and the JSON {shave, sets}."""
    grid = evaluate_grid(methods, hr_sets(args.hr, sets), scales, args.shave)
    markdown, latex = tables(grid, [n for n, _ in methods], args.per_image)
    print(markdown, end='')
    if args.markdown:
        write_text(markdown, args.markdown)
    if args.latex:
        write_text(latex, args.latex)
    if args.json:
        shave = {str(s): s if args.shave is None else args.shave for s in scales}
        write_json({'shave': shave, 'sets': grid}, args.json)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    scales, sets, methods = check_args(parser, args)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line  # one line per skipped file
            if sets is None and len(scales) == 1:
                run_single(args, methods, scales[0])
            else:
                run_grid(args, methods, scales, sets)
    except (EvalError, OSError) as e:
        print('evaluate.py: error: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
