"""Scoring saved SR images against their HR images with the MATLAB protocol
(metrics.py): pairing the files of a folder (match_pairs, the rule of
evaluate.py --help), one method on one set (evaluate), several methods
(evaluate_methods), several sets and scales (evaluate_grid), and the JSON
they are written to. The tables of the numbers are tables.py's; the command
line is evaluate.py."""
import json
import math
import os
import re
import string
import tempfile
from pathlib import Path

import numpy as np

import metrics
from data import common
from tables import add_ranks


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


def evaluate(sr_dir, hr_dir, scale, shave=None, gray='stacked'):
    """{'images': {stem: {'psnr', 'ssim'}}, 'mean': {'psnr', 'ssim'}}; `gray`: how a grayscale HR file is
    scored (metrics.GRAY, --gray_hr)."""
    shave = scale if shave is None else shave
    hr_dir = hr_folder(hr_dir)
    images = {}
    for stem, sr_path, hr_path in match_pairs(sr_dir, hr_dir, scale):
        hr = read_image(hr_path)
        convention = gray if hr.ndim == 2 else 'stacked'  # (only a file that holds one channel is gray)
        sr, hr = as_pair(read_image(sr_path), hr)
        dh = hr.shape[0] - sr.shape[0]
        dw = hr.shape[1] - sr.shape[1]
        if hr.shape != sr.shape and 0 <= dh < scale and 0 <= dw < scale:
            hr = hr[:hr.shape[0] - hr.shape[0] % scale, :hr.shape[1] - hr.shape[1] % scale]
        if hr.shape != sr.shape:
            raise EvalError('size mismatch: SR %s is %s, HR %s is %s'
                            % (sr_path, 'x'.join(map(str, sr.shape)),
                               hr_path, 'x'.join(map(str, hr.shape))))
        try:
            p, s = metrics.calc_metrics(sr, hr, shave, convention)
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


def pattern_fields(spec):
    """The placeholder names of an --sr value ({set}, {scale}); ValueError for unbalanced braces."""
    return [field for _, field, _, _ in string.Formatter().parse(spec) if field is not None]


def evaluate_methods(methods, hr_dir, scale, shave=None, gray='stacked'):
    """{'scale', 'shave', 'methods': {name: {'images', 'mean', 'rank'}}}."""
    results = {}
    for name, folder in methods:
        try:
            results[name] = evaluate(folder, hr_dir, scale, shave, gray)
        except EvalError as e:
            raise EvalError('method %s: %s' % (name, e))
    return {'scale': scale, 'shave': scale if shave is None else shave,
            'methods': add_ranks(results)}


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


def evaluate_grid(methods, sets, scales, shave=None, gray='stacked'):
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
            result = evaluate(folder, hr_dir, scale, shave, gray)
        except (EvalError, OSError) as e:
            raise EvalError('method %s, %s x%d: %s' % (name, set_name, scale, e))
        grid.setdefault(set_name, {}).setdefault(str(scale), {})[name] = result
    for cells in grid.values():
        for methods_at_scale in cells.values():
            add_ranks(methods_at_scale)
    return grid
