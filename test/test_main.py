"""End to end: the acceptance command (Bicubic on Set5+Set14 x2/x3/x4) checked
against an independent computation, and main.py's handling of --pre_train
(missing file, wrong-size checkpoint, released names)."""
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

import metrics  # noqa: E402
from conftest import REPO, SHARED, SRC, error_lines, run_main  # noqa: E402
from data.imresize import imresize  # noqa: E402
from test_model import edsr_shapes, random_state  # noqa: E402

BENCH = SHARED / 'benchmark'


def read_rgb(path):
    a = iio.imread(path)
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3]


def modcrop(a, s):
    h, w = a.shape[:2]
    return a[:h - h % s, :w - w % s]


@pytest.mark.skipif(not all((BENCH / n / 'HR').is_dir() for n in ('Set5', 'Set14')),
                    reason=f'Set5/Set14 not found in {BENCH}')
def test_acceptance_bicubic_set5_set14(tmp_path, exp_name, exp_dir):
    save = exp_name('bicubic')
    cmd = [sys.executable, 'main.py', '--model', 'Bicubic', '--scale', '2+3+4', '--data_test', 'Set5+Set14',
           '--dir_data', '../../shared/data', '--test_only', '--save_gt', '--save_results', '--save', save,
           '--dir_cache', str(tmp_path / 'cache')]
    r = subprocess.run(cmd, cwd=SRC, capture_output=True, text=True, timeout=300)
    out, err = r.stdout, r.stderr
    assert r.returncode == 0, err[-3000:]

    # the same numbers computed independently: data.imresize + metrics
    want = {}
    hrs = {}
    for name in ('Set5', 'Set14'):
        for s in (2, 3, 4):
            vals = []
            for p in sorted((BENCH / name / 'HR').glob('*.png')):
                hr = modcrop(read_rgb(p), s)
                sr = imresize(imresize(hr, 1 / s), s)
                vals.append(metrics.calc_metrics(sr, hr, shave=s))
                hrs[(name, p.stem)] = p
            want[(name, s)] = (np.mean([v[0] for v in vals]), np.mean([v[1] for v in vals]))


    d = exp_dir(save)
    results = json.loads((d / 'results.json').read_text())
    assert set(results) == {'Set5', 'Set14', 'provenance'}
    for (name, s), (psnr, ssim) in want.items():
        e = results[name][str(s)]
        assert set(e) >= {'psnr', 'ssim', 'seconds_per_image'} and e['seconds_per_image'] > 0
        assert abs(e['psnr'] - psnr) <= 1e-9, (name, s, e['psnr'], psnr)
        assert abs(e['ssim'] - ssim) <= 1e-9, (name, s, e['ssim'], ssim)
    # the table: six PSNR/SSIM cells, one per set and scale, as in results.json
    rows = re.findall(r'^(Set5|Set14)\s+x([234])\s+([\d.]+)\s+([\d.]+)\s+[\d.]+\s*$', out, re.M)
    assert sorted((r[0], int(r[1])) for r in rows) == sorted(want)
    for name, s, p, q in rows:
        assert float(p) == pytest.approx(results[name][s]['psnr'], abs=0.005)
        assert float(q) == pytest.approx(results[name][s]['ssim'], abs=0.00005)
    # LR, SR and HR images of every image and scale
    for (name, stem), path in hrs.items():
        files = {p.name for p in (d / f'results-{name}').glob(f'{stem}_x*_*.png')}
        assert files == {f'{stem}_x{s}_{k}.png' for s in (2, 3, 4) for k in ('SR', 'LR', 'HR')}
    for name, stem, s in (('Set5', 'bird', 3), ('Set14', 'bridge', 4)):  # bridge is a gray image
        hr = modcrop(read_rgb(hrs[(name, stem)]), s)
        lr = imresize(hr, 1 / s)
        r = d / f'results-{name}'
        np.testing.assert_array_equal(iio.imread(r / f'{stem}_x{s}_HR.png'), hr)
        np.testing.assert_array_equal(iio.imread(r / f'{stem}_x{s}_LR.png'), lr)
        np.testing.assert_array_equal(iio.imread(r / f'{stem}_x{s}_SR.png'), imresize(lr, s))
    assert 'Trainable parameters: 0' in (d / 'log.txt').read_text()


# ---- --pre_train through main -----------------------------------------------------
@pytest.fixture
def tiny_bench(tmp_path):
    rng = np.random.default_rng(0)
    hr = tmp_path / 'data' / 'benchmark' / 'Tiny' / 'HR'
    hr.mkdir(parents=True)
    iio.imwrite(hr / 'im.png', rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    return ['--test_only', '--cpu', '--n_threads', '0', '--data_test', 'Tiny', '--dir_data', tmp_path / 'data',
            '--dir_cache', tmp_path / 'cache']


def test_pre_train_released_names_through_main(tmp_path, tiny_bench, exp_name, exp_dir, capsys):
    sd = random_state(edsr_shapes(16, 64, 2), seed=4)
    torch.save(sd, tmp_path / 'edsr_x2.pt')
    save = exp_name('pretrain')
    code, out, err = run_main(tiny_bench + ['--model', 'EDSR', '--scale', '2', '--pre_train', tmp_path / 'edsr_x2.pt',
                                            '--save', save, '--save_results'], capsys)
    assert code == 0, err
    assert 'Trainable parameters: 1,369,859' in out
    log = (exp_dir(save) / 'log.txt').read_text()
    assert 'Trainable parameters: 1,369,859' in log and f'Loaded {len(sd)}/{len(sd)} tensors' in log
    assert (exp_dir(save) / 'results-Tiny' / 'im_x2_SR.png').exists()


def test_pre_train_missing_file(tmp_path, tiny_bench, exp_name, capsys):
    missing = tmp_path / 'nope' / 'model_x2.pt'
    code, out, err = run_main(tiny_bench + ['--model', 'EDSR', '--scale', '2', '--pre_train', missing,
                                            '--save', exp_name('missing')], capsys)
    assert code != 0
    lines = error_lines(err)
    assert len(lines) == 1 and '--pre_train' in lines[0] and str(missing) in lines[0], err


def test_pre_train_wrong_size(tmp_path, tiny_bench, exp_name, capsys):
    """EDSR paper weights with baseline flags: non-zero exit naming the mismatched keys."""
    shapes = edsr_shapes(32, 256, 2)
    torch.save({k: torch.zeros(v) for k, v in shapes.items()}, tmp_path / 'paper_x2.pt')
    code, out, err = run_main(tiny_bench + ['--model', 'EDSR', '--scale', '2', '--pre_train',
                                            tmp_path / 'paper_x2.pt', '--save', exp_name('wrongsize')], capsys)
    assert code != 0
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert '--pre_train' in lines[0] and 'head.0.weight' in lines[0] and 'body.16.' in lines[0]
    assert 'unexpected' in lines[0] and 'shape' in lines[0]


def test_pre_train_missing_file_cli(tmp_path):
    """The same through a real process: exit code and a single stderr line."""
    exp = f'pytest_cli_{time.time_ns()}'
    try:
        data = tmp_path / 'data' / 'benchmark' / 'Tiny' / 'HR'
        data.mkdir(parents=True)
        iio.imwrite(data / 'im.png', np.zeros((8, 8, 3), np.uint8))
        r = subprocess.run([sys.executable, 'main.py', '--model', 'EDSR', '--scale', '2', '--test_only', '--cpu',
                            '--data_test', 'Tiny', '--dir_data', str(tmp_path / 'data'), '--dir_cache',
                            str(tmp_path / 'cache'), '--pre_train', str(tmp_path / 'x.pt'), '--save', exp],
                           cwd=SRC, capture_output=True, text=True, timeout=120)
        assert r.returncode != 0
        lines = error_lines(r.stderr)
        assert len(lines) == 1 and '--pre_train' in lines[0] and 'x.pt' in lines[0], r.stderr
    finally:
        shutil.rmtree(REPO / 'experiment' / exp, ignore_errors=True)
