"""Bad inputs, one table: every bad file, folder or flag value gives ONE line
`main.py: error: ...` on stderr naming the flag or the file and a non-zero
exit (2 for option errors, 1 for runtime errors) -- or, where the rest of the
data is usable, a warning naming the file, a skip, and a run that completes
(exit 0). Nothing is ever written inside --dir_data, and an existing training
run is never touched by a refused --save.

Each case: an id, a setup(ctx) that makes the bad input under tmp_path, the
argv (with {placeholders} from ctx), and the expected outcome.
"""
import hashlib
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import REPO, error_lines, run_cli, run_main

SRC = REPO / 'src'
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

# a tiny, fast run; a case adds its own data flags
TINY = ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--scale', '2', '--cpu', '--n_threads', '0',
        '--epochs', '1', '--test_every', '2', '--batch_size', '2', '--patch_size', '48', '--print_every', '1',
        '--dir_cache', '{cache}', '--save', '{save}', '--dir_data', '{data}']
# a valid training folder (inside --dir_data, so it is covered by the no-write check) and test set
GOOD_DATA = ['--data_train', 'Folder', '--dir_train', '{data}/train', '--data_test', 'Good']


# ---- making images -------------------------------------------------------------
def image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png(path, h=64, w=64, seed=0):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image(h, w, seed))
    return path


def jpeg(path, h=64, w=64, seed=0):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image(h, w, seed), extension='.jpg')
    return path


def truncate(path):
    """Keep the first half of the file (a download cut off)."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:len(data) // 2])
    return path


def good_data(ctx):
    """<data>/train with 3 usable HR images and a benchmark set Good (HR + provided LR)."""
    d = ctx['data']
    for i in range(3):
        png(d / 'train' / f'img{i}.png', 64 + 16 * i, 80, seed=i)
    png(d / 'benchmark' / 'Good' / 'HR' / 'g.png', 48, 48, seed=9)
    png(d / 'benchmark' / 'Good' / 'LR_bicubic' / 'X2' / 'gx2.png', 24, 24, seed=10)


# ---- setups of the cases: each makes one bad input and returns {placeholder: value} -------
def s_none(ctx):
    good_data(ctx)
    return {}


def s_missing_data_dir(ctx):
    ctx['data'].rmdir()
    return {'missing': ctx['data']}


def s_empty_data_dir(ctx):
    return {}  # <data> exists and holds nothing


def s_empty_train_dir(ctx):
    good_data(ctx)
    (ctx['data'] / 'empty').mkdir()
    return {}


def s_empty_benchmark(ctx):
    good_data(ctx)
    (ctx['data'] / 'benchmark' / 'Empty' / 'HR').mkdir(parents=True)
    return {}


def s_truncated_png_test(ctx):
    good_data(ctx)
    bad = truncate(png(ctx['data'] / 'benchmark' / 'Bad' / 'HR' / 'cut.png', 64, 64))
    return {'bad': bad}


def s_truncated_jpeg_test(ctx):
    good_data(ctx)
    bad = truncate(jpeg(ctx['data'] / 'benchmark' / 'Bad' / 'HR' / 'cut.jpg', 64, 64))
    return {'bad': bad}


def s_truncated_png_lr(ctx):
    """A provided LR image is cut off: found when it is decoded."""
    good_data(ctx)
    png(ctx['data'] / 'benchmark' / 'Bad' / 'HR' / 'a.png', 48, 48)
    bad = truncate(png(ctx['data'] / 'benchmark' / 'Bad' / 'LR_bicubic' / 'X2' / 'ax2.png', 24, 24))
    return {'bad': bad}


def s_truncated_png_train(ctx):
    good_data(ctx)
    bad = truncate(png(ctx['data'] / 'train' / 'zcut.png', 64, 64))
    return {'bad': bad}


def s_zero_byte_test(ctx):
    good_data(ctx)
    bad = ctx['data'] / 'benchmark' / 'Bad' / 'HR' / 'zero.png'
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b'')
    return {'bad': bad}


def s_zero_byte_train(ctx):
    good_data(ctx)
    bad = ctx['data'] / 'train' / 'zero.png'
    bad.write_bytes(b'')
    return {'bad': bad}


def s_non_image_train(ctx):
    good_data(ctx)
    bad = ctx['data'] / 'train' / 'notes.txt'
    bad.write_text('not an image\n')
    return {'bad': bad}


def s_hr_lr_mismatch(ctx):
    good_data(ctx)
    png(ctx['data'] / 'benchmark' / 'Bad' / 'HR' / 'a.png', 48, 48)
    bad = png(ctx['data'] / 'benchmark' / 'Bad' / 'LR_bicubic' / 'X2' / 'ax2.png', 20, 24)  # should be 24x24
    return {'bad': bad}


def s_div2k_range_missing(ctx):
    """--data_range 1-2/3-3 but DIV2K holds only 0001 (HR and its X2 LR): 0002 and 0003 are missing."""
    root = ctx['data'] / 'DIV2K'
    png(root / 'DIV2K_train_HR' / '0001.png', 64, 64)
    png(root / 'DIV2K_train_LR_bicubic' / 'X2' / '0001x2.png', 32, 32)
    return {'div2k': root}


def s_small_images_train(ctx):
    good_data(ctx)
    bad = png(ctx['data'] / 'train' / 'tiny.png', 32, 32)  # x2 LR 16x16 < patch 48 / 2
    return {'bad': bad}


def s_all_images_small(ctx):
    d = ctx['data']
    good_data(ctx)
    shutil.rmtree(d / 'train')
    for i in range(2):
        png(d / 'train' / f'tiny{i}.png', 32, 32, seed=i)
    return {}


def _save_state(path, model, *flags):
    import option
    from model import build_network
    args = option.parse_args(['--model', model, '--scale', '2', *flags])
    net, _ = build_network(args)
    torch.save(net.state_dict(), path)
    return path


def s_pre_train_rcan(ctx):
    good_data(ctx)
    ck = _save_state(ctx['tmp'] / 'rcan.pt', 'RCAN', '--n_resgroups', '1', '--n_resblocks', '1', '--n_feats', '16',
                     '--reduction', '4')
    return {'ckpt': ck}


def s_pre_train_wider_edsr(ctx):
    good_data(ctx)
    ck = _save_state(ctx['tmp'] / 'edsr_wide.pt', 'EDSR', '--n_resblocks', '2', '--n_feats', '16')
    return {'ckpt': ck}


def s_pre_train_random_bytes(ctx):
    good_data(ctx)
    ck = ctx['tmp'] / 'weights.pt'
    ck.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return {'ckpt': ck}


def s_pre_train_truncated(ctx):
    """A real EDSR checkpoint of these flags, cut off in the middle (an interrupted copy)."""
    good_data(ctx)
    ck = _save_state(ctx['tmp'] / 'edsr_cut.pt', 'EDSR', '--n_resblocks', '1', '--n_feats', '8')
    return {'ckpt': truncate(ck)}


def s_pre_train_missing(ctx):
    good_data(ctx)
    return {'ckpt': ctx['tmp'] / 'no_such_weights.pt'}


def s_existing_run(ctx):
    """A finished training run experiment/<save>."""
    good_data(ctx)
    argv = fill(TINY + GOOD_DATA, ctx)
    code, _, err = run_main(argv)
    assert code == 0, err
    exp = REPO / 'experiment' / ctx['save']
    assert (exp / 'model' / 'model_latest.pt').is_file()
    return {'exp': exp}


# ---- the table -------------------------------------------------------------------
@dataclass
class Case:
    id: str
    setup: Callable
    argv: list
    code: int                         # 2 option error, 1 runtime error, 0 warning + skip
    names: list = field(default_factory=list)   # what the error line / warning must name ({placeholders})
    problem: str = ''                 # regex the error line / warning must match (the problem)
    cli: bool = False                 # run `python main.py` (warnings reach stderr as a user sees them)
    untouched: str = ''               # a placeholder of a folder whose files must stay as they were


CASES = [
    # -- data ------------------------------------------------------------------------
    Case('missing_data_dir', s_missing_data_dir, TINY + ['--data_train', 'DIV2K', '--data_test', 'DIV2K'], 1,
         ['{missing}/DIV2K/DIV2K_train_HR'], r'folder not found'),
    Case('missing_benchmark_dir', s_missing_data_dir, TINY + ['--test_only', '--pre_train', 'none', '--data_test', 'Set5'], 2,
         ['--data_test', '{missing}'], r"unknown dataset 'Set5'"),
    Case('empty_data_dir', s_empty_data_dir, TINY + ['--data_train', 'DIV2K', '--data_test', 'DIV2K'], 1,
         ['{data}/DIV2K/DIV2K_train_HR'], r'folder not found'),
    Case('missing_train_dir', s_none,
         TINY + ['--data_train', 'Folder', '--dir_train', '{data}/nowhere', '--data_test', 'Good'], 1,
         ['{data}/nowhere'], r'folder not found'),
    Case('empty_train_dir', s_empty_train_dir,
         TINY + ['--data_train', 'Folder', '--dir_train', '{data}/empty', '--data_test', 'Good'], 1,
         ['{data}/empty'], r'no images found'),
    Case('empty_benchmark_dir', s_empty_benchmark, TINY + ['--test_only', '--pre_train', 'none', '--data_test', 'Empty'], 1,
         ['{data}/benchmark/Empty/HR'], r'no images found'),
    Case('truncated_png', s_truncated_png_test, TINY + ['--test_only', '--pre_train', 'none', '--data_test', 'Bad'], 1,
         ['{bad}'], r'cannot decode'),
    Case('truncated_jpeg', s_truncated_jpeg_test, TINY + ['--test_only', '--pre_train', 'none', '--data_test', 'Bad'], 1,
         ['{bad}'], r'cannot decode'),
    Case('truncated_png_lr_ext_img', s_truncated_png_lr, TINY + ['--test_only', '--pre_train', 'none', '--data_test', 'Bad', '--ext', 'img'],
         1, ['{bad}'], r'cannot decode'),
    Case('truncated_png_train', s_truncated_png_train, TINY + GOOD_DATA, 0,
         ['{bad}'], r'skipping .*cannot decode', cli=True),
    Case('zero_byte_image', s_zero_byte_test, TINY + ['--test_only', '--pre_train', 'none', '--data_test', 'Bad'], 1,
         ['{bad}'], r'empty file \(0 bytes\)'),
    Case('zero_byte_image_train', s_zero_byte_train, TINY + GOOD_DATA, 0,
         ['{bad}'], r'skipping .*empty file \(0 bytes\)', cli=True),
    Case('non_image_file', s_non_image_train, TINY + GOOD_DATA, 0,
         ['{bad}'], r'skipping non-image file', cli=True),
    Case('hr_lr_size_mismatch', s_hr_lr_mismatch, TINY + ['--test_only', '--pre_train', 'none', '--data_test', 'Bad'], 1,
         ['{bad}', '{data}/benchmark/Bad/HR/a.png'], r'does not match'),
    Case('div2k_range_missing', s_div2k_range_missing,
         TINY + ['--data_train', 'DIV2K', '--data_test', 'DIV2K', '--data_range', '1-2/3-3'], 1,
         ['--data_range', '{div2k}', '0002'], r'missing'),
    Case('images_smaller_than_patch', s_small_images_train, TINY + GOOD_DATA, 0,
         ['{bad}', '--patch_size'], r'skipping .*smaller than the patch', cli=True),
    Case('all_images_smaller_than_patch', s_all_images_small, TINY + GOOD_DATA, 1,
         ['{data}/train'], r'no usable images'),
    # -- names and values of flags -----------------------------------------------------
    Case('unknown_model', s_none, TINY + GOOD_DATA + ['--model', 'NoSuchNet'], 2,
         ['--model', 'NoSuchNet'], r'unknown model'),
    Case('misspelt_model', s_none, TINY + GOOD_DATA + ['--model', 'EDRS'], 2,
         ['--model', 'EDRS'], r'unknown model .*; did you mean EDSR\?$'),
    Case('misspelt_set', s_none, TINY + GOOD_DATA + ['--data_test', 'Goodd'], 2,
         ['--data_test', 'Goodd'], r'unknown dataset .*; did you mean Good\?$'),
    Case('test_only_without_weights', s_none, TINY + ['--test_only', '--data_test', 'Good'], 2,
         ['--test_only', '--model EDSR', '--pre_train', '--load'], r'has no weights to test'),
    Case('unknown_dataset', s_none, TINY + GOOD_DATA + ['--data_test', 'NoSuchSet'], 2,
         ['--data_test', 'NoSuchSet'], r'unknown dataset'),
    Case('unknown_train_dataset', s_none, TINY + GOOD_DATA + ['--data_train', 'NoSuchSet'], 2,
         ['--data_train', 'NoSuchSet'], r'unknown dataset'),
    Case('unknown_template', s_none, TINY + GOOD_DATA + ['--template', 'NoSuchTemplate'], 2,
         ['--template', 'NoSuchTemplate'], r'unknown'),
    Case('unknown_loss_term', s_none, TINY + GOOD_DATA + ['--loss', '1*NoSuchLoss'], 2,
         ['--loss', 'NoSuchLoss'], r'unknown term'),
    Case('malformed_scale', s_none, TINY + GOOD_DATA + ['--scale', '2+x'], 2,
         ['--scale', '2+x'], r'not a list of positive integers'),
    Case('malformed_data_range', s_none, TINY + GOOD_DATA + ['--data_range', '5-1'], 2,
         ['--data_range', '5-1'], r'empty|begin <= end'),
    Case('malformed_loss', s_none, TINY + GOOD_DATA + ['--loss', '1*L1+'], 2,
         ['--loss', '1*L1+'], r'not of the form'),
    Case('malformed_decay_order', s_none, TINY + GOOD_DATA + ['--decay', '200-100'], 2,
         ['--decay', '200-100'], r'increasing'),
    Case('malformed_decay_text', s_none, TINY + GOOD_DATA + ['--decay', 'x'], 2,
         ['--decay', "'x'"], r'not a list of positive integers'),
    Case('negative_lr', s_none, TINY + GOOD_DATA + ['--lr', '-1e-4'], 2,
         ['--lr', '-0.0001'], r'must be positive'),
    # -- checkpoints and experiments -----------------------------------------------------
    Case('pre_train_other_arch_rcan', s_pre_train_rcan, TINY + GOOD_DATA + ['--pre_train', '{ckpt}'], 1,
         ['--pre_train', '{ckpt}', '--model'], r'does not fit'),
    Case('pre_train_other_size_edsr', s_pre_train_wider_edsr, TINY + GOOD_DATA + ['--pre_train', '{ckpt}'], 1,
         ['--pre_train', '{ckpt}', '--model'], r'does not fit.*other shape'),
    Case('pre_train_random_bytes', s_pre_train_random_bytes, TINY + GOOD_DATA + ['--pre_train', '{ckpt}'], 1,
         ['--pre_train', '{ckpt}'],
         r'not a readable PyTorch checkpoint \(neither a torch.save zip archive nor a pickle\)$'),
    Case('pre_train_truncated', s_pre_train_truncated, TINY + GOOD_DATA + ['--pre_train', '{ckpt}'], 1,
         ['--pre_train', '{ckpt}'], r'not a readable PyTorch checkpoint \(a truncated or damaged zip archive\)$'),
    Case('pre_train_missing_file', s_pre_train_missing, TINY + GOOD_DATA + ['--pre_train', '{ckpt}'], 2,
         ['--pre_train', '{ckpt}'], r'file not found'),
    Case('load_missing_run', s_none, TINY + GOOD_DATA + ['--load', '{save}_nonexistent', '--resume', '-1'], 2,
         ['--load', '{save}_nonexistent'], r'no run named'),
    Case('save_existing_run', s_existing_run, TINY + GOOD_DATA, 2,
         ['--save', 'experiment/{save}', '--reset', '--load'], r'already holds a run', untouched='exp'),
]


# ---- running a case ----------------------------------------------------------------
SEEN = {}  # case id -> the error line or the warning, listed at the end of the module under -v


@pytest.fixture(scope='module', autouse=True)
def report(request):
    yield
    tr = request.config.pluginmanager.get_plugin('terminalreporter')
    capman = request.config.pluginmanager.get_plugin('capturemanager')
    if tr is not None and capman is not None and request.config.getoption('verbose') > 0 and SEEN:
        with capman.global_and_fixture_disabled():  # module teardown output is captured otherwise
            tr.write_line('')
            for c in CASES:
                if c.id in SEEN:
                    tr.write_line(f'{c.id} -> exit {c.code} -> {SEEN[c.id]}')


def fill(argv, ctx):
    return [str(a).format(**ctx) for a in argv]


def snapshot(folder):
    """{relative path: (size, mtime_ns, sha1)} of every file and folder under `folder` (None: no folder)."""
    folder = Path(folder)
    if not folder.exists():
        return None
    out = {}
    for p in sorted(folder.rglob('*')):
        rel = str(p.relative_to(folder))
        if p.is_dir():
            out[rel] = 'dir'
        else:
            st = p.stat()
            out[rel] = (st.st_size, st.st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
    return out


def run_case(case, argv, capsys):
    """-> (exit code, stderr, [warning texts])."""
    if case.cli:
        p = run_cli(argv, timeout=120)
        return p.returncode, p.stderr, p.stderr
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        code, _, err = run_main(argv, capsys)
    return code, err, '\n'.join(str(w.message) for w in caught)


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, exp_name, capsys):
    ctx = {'tmp': tmp_path, 'data': tmp_path / 'data', 'cache': tmp_path / 'cache', 'save': exp_name(case.id)}
    ctx['data'].mkdir()
    ctx.update(case.setup(ctx) or {})
    argv = fill(case.argv, ctx)
    names = fill(case.names, ctx)
    capsys.readouterr()

    data_before = snapshot(ctx['data'])
    kept_before = snapshot(ctx[case.untouched]) if case.untouched else None

    code, err, warned = run_case(case, argv, capsys)

    assert code == case.code, f'exit {code}, expected {case.code}; stderr:\n{err}'
    assert 'Traceback' not in err, err
    if case.code == 0:
        # a warning naming the file and the problem, then the run completes
        hits = [ln for ln in warned.splitlines() if all(n in ln for n in names) and re.search(case.problem, ln)]
        assert hits, f'no warning naming {names} and matching {case.problem!r}:\n{warned}'
        SEEN[case.id] = hits[0].strip()
        assert 'main.py: error' not in err, err
        exp = REPO / 'experiment' / ctx['save']
        assert (exp / 'model' / 'model_latest.pt').is_file() and (exp / 'psnr_log.pt').is_file(), \
            'the run did not complete'
        assert len(torch.load(exp / 'psnr_log.pt', weights_only=True)) == 1
    else:
        lines = error_lines(err)
        assert len(lines) == 1, f'expected one stderr line, got:\n{err}'
        line = SEEN[case.id] = lines[0]
        assert line.startswith('main.py: error: '), line
        for n in names:
            assert n in line, f'{n!r} not named in: {line}'
        assert re.search(case.problem, line), f'{case.problem!r} not in: {line}'

    # nothing written (or deleted) inside --dir_data; a refused run untouched
    assert snapshot(ctx['data']) == data_before
    if case.untouched:
        assert snapshot(ctx[case.untouched]) == kept_before
