"""The published test protocols: both MATLAB bicubic border rules, BD and DN
degradations (data/degrade.py), shipped LR folders, the LR cache key, x8."""
import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import REPO, SHARED, run_main

import option  # noqa: E402
from data import make_dataset  # noqa: E402
from data.degrade import (Degradation, blur_down, gaussian_kernel, imfilter_replicate,  # noqa: E402
                          kernel_size, noise_seed)
from data.imresize import imresize  # noqa: E402

REF = SHARED / 'reference'
BIRD = SHARED / 'benchmark' / 'Set5' / 'HR' / 'bird.png'
need_shared = pytest.mark.skipif(not REF.is_dir(), reason=f'needs the MATLAB reference images in {REF}')


# ---- the published MATLAB-made LR images ------------------------------------------------
@need_shared
@pytest.mark.parametrize('ref,degradation,border,scale', [
    ('bird_LRBI_x2_symmetric.png', 'BI', 'symmetric', 2),
    ('bird_LRBI_x3_replicate.png', 'BI', 'replicate', 3),
    ('bird_LRBD_x3.png', 'BD', 'symmetric', 3)])
def test_lr_equals_the_published_matlab_file(ref, degradation, border, scale):
    hr = iio.imread(BIRD)
    out = Degradation(degradation, border).make(hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale], scale)
    want = iio.imread(REF / ref)
    assert out.shape == want.shape and out.dtype == np.uint8
    assert np.array_equal(out, want), f'{int((out != want).sum())} values differ'


@need_shared
def test_the_two_border_rules_differ_only_near_the_borders():
    hr = iio.imread(BIRD)
    a, b = imresize(hr, 1 / 3), imresize(hr, 1 / 3, border='replicate')
    diff = np.argwhere(a != b)
    assert len(diff) > 0 and (np.minimum(diff[:, :2], 95 - diff[:, :2]).min(axis=1) <= 1).all()


@need_shared
@pytest.mark.parametrize('flags,ref', [(['--degradation', 'BD'], 'bird_LRBD_x3.png'),
                                       (['--imresize_border', 'replicate'], 'bird_LRBI_x3_replicate.png')])
def test_bicubic_test_run_saves_the_reference_lr(tmp_path, exp_name, flags, ref):
    save = exp_name('protocol')
    code, _, err = run_main(['--model', 'Bicubic', '--scale', '3', '--data_test', 'Set5', '--dir_data', SHARED,
                             '--save_results', '--save_gt', '--test_only', '--cpu', '--n_threads', '0',
                             '--dir_cache', tmp_path, '--save', save, *flags])
    assert code == 0, err
    lr = iio.imread(REPO / 'experiment' / save / 'results-Set5' / 'bird_x3_LR.png')
    assert np.array_equal(lr, iio.imread(REF / ref))


# ---- BD by hand --------------------------------------------------------------------------
def test_bd_kernel_border_and_sampling_by_hand():
    assert [kernel_size(s, 1.6) for s in (2, 3, 4, 5, 8)] == [12, 7, 12, 11, 12]
    k = gaussian_kernel(7, 1.6)
    g = np.exp(-np.arange(-3, 4) ** 2 / (2 * 1.6 ** 2))
    assert np.allclose(k, np.outer(g, g) / np.outer(g, g).sum(), rtol=0, atol=1e-15)
    assert np.allclose(gaussian_kernel(12, 1.6)[5:7, 5:7], gaussian_kernel(12, 1.6)[5, 5])  # centre between pixels
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (24, 24, 1), dtype=np.uint8)
    for s in (2, 3, 4):
        kern = gaussian_kernel(kernel_size(s, 1.6), 1.6)
        n = kern.shape[0]
        c = (n + 1) // 2 - 1  # MATLAB's centre floor((n + 1) / 2), 0-based
        blurred = np.zeros((24, 24), np.float64)
        for y in range(24):
            for x in range(24):
                for i in range(n):
                    for j in range(n):  # replicate: coordinates clamped to the image
                        yy, xx = min(max(y + i - c, 0), 23), min(max(x + j - c, 0), 23)
                        blurred[y, x] += kern[i, j] * img[yy, xx, 0]
        rounded = np.floor(blurred + 0.5).astype(np.uint8)
        assert np.array_equal(imfilter_replicate(img, kern)[..., 0], rounded)
        first = {2: 0, 3: 1, 4: 1}[s]  # 1-based: s/2 for even scales, (s+1)/2 (nearest) for odd ones
        assert np.array_equal(blur_down(img, s, 1.6)[..., 0], rounded[first::s, first::s])


# ---- DN --------------------------------------------------------------------------------------
def test_dn_noise_statistics_and_reproducibility():
    lr = np.full((96, 96, 3), 128, np.uint8)
    d = Degradation('DN', noise=30.0, seed=1)
    a = d.finish(lr, name='baby')
    assert a.dtype == np.uint8
    res = a.astype(np.float64) - 128
    assert abs(res.mean()) < 0.6 and abs(res.std() - 30) < 0.6
    assert np.array_equal(a, Degradation('DN', noise=30.0, seed=1).finish(lr, name='baby'))  # the same every run
    assert not np.array_equal(a, d.finish(lr, name='bird'))
    assert not np.array_equal(a, Degradation('DN', noise=30.0, seed=2).finish(lr, name='baby'))
    assert noise_seed(1, 'baby') == noise_seed(1, 'baby') != noise_seed(1, 'bird')
    sat = d.finish(np.full((64, 64, 1), 250, np.uint8), name='x')
    assert sat.max() == 255 and (sat == 255).mean() > 0.3  # MATLAB uint8() saturates
    assert np.array_equal(Degradation('BI').finish(lr, name='baby'), lr)


def write_set(root, n=3, size=48, seed=0):
    """A benchmark folder root/HR with n smooth colour images."""
    (root / 'HR').mkdir(parents=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    for i in range(n):
        img = np.stack([96 + 40 * np.sin(x / (3 + i + c) + rng.uniform(0, 6)) * np.cos(y / (4 + c)) for c in range(3)], -1)
        iio.imwrite(root / 'HR' / f'im{i}.png', np.clip(img, 0, 255).astype(np.uint8))


def dataset(tmp_path, *flags, train=False, name='Set'):
    args = option.parse_args([str(a) for a in (
        '--data_test', name, '--dir_data', tmp_path / 'data', '--dir_cache', tmp_path / 'cache', '--scale', '3',
        '--cpu', '--n_threads', '0', '--patch_size', '24', '--test_only', '--pre_train', 'none', *flags)])
    return make_dataset(args, name, train=train)


def test_dn_test_set_is_fixed_and_training_patches_draw_anew(tmp_path):
    write_set(tmp_path / 'data' / 'benchmark' / 'Set')
    bi = dataset(tmp_path)[0][0]
    dn1, dn2 = dataset(tmp_path, '--degradation', 'DN')[0][0], dataset(tmp_path, '--degradation', 'DN')[0][0]
    assert torch.equal(dn1, dn2)
    res = dn1 - bi
    assert 25 < res.std().item() < 35
    tr = dataset(tmp_path, '--degradation', 'DN', train=True)
    a, b, c = tr[(0, 0, 11)][0], tr[(0, 0, 11)][0], tr[(0, 0, 12)][0]
    assert torch.equal(a, b) and not torch.equal(a, c)


# ---- the LR cache and shipped LR folders ----------------------------------------------------
@pytest.mark.parametrize('ext', ['sep', 'img'])
def test_cache_never_serves_another_degradation_or_border(tmp_path, ext):
    write_set(tmp_path / 'data' / 'benchmark' / 'Set')
    hr = np.asarray(iio.imread(tmp_path / 'data' / 'benchmark' / 'Set' / 'HR' / 'im0.png'))[:48, :48]
    want = {'BI': imresize(hr, 1 / 3), 'replicate': imresize(hr, 1 / 3, border='replicate'),
            'BD': blur_down(hr, 3, 1.6), 'BD2': blur_down(hr, 3, 2.0)}
    flags = {'BI': [], 'replicate': ['--imresize_border', 'replicate'], 'BD': ['--degradation', 'BD'],
             'BD2': ['--degradation', 'BD', '--blur_sigma', '2']}
    assert not np.array_equal(want['BI'], want['replicate'])
    for key in ('BI', 'BD', 'replicate', 'BD2', 'BI', 'BD', 'replicate'):  # each one after another, twice
        lr = dataset(tmp_path, '--ext', ext, *flags[key])[0][0]
        got = lr.permute(1, 2, 0).round().byte().numpy()
        assert np.array_equal(got, want[key]), key


@pytest.mark.parametrize('degradation', ['BD', 'DN'])
def test_shipped_lr_folder_is_used_as_it_is(tmp_path, degradation, capsys):
    root = tmp_path / 'data' / 'benchmark' / 'Set'
    write_set(root)
    (root / f'LR_{degradation}' / 'X3').mkdir(parents=True)
    shipped = {}
    for i in range(3):
        lr = np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        iio.imwrite(root / f'LR_{degradation}' / 'X3' / f'im{i}x3.png', lr)
        shipped[f'im{i}'] = lr
    ds = dataset(tmp_path, '--degradation', degradation)
    for k in range(3):
        lr, _, name, _ = ds[k]
        assert np.array_equal(lr.permute(1, 2, 0).round().byte().numpy(), shipped[name])  # no noise added
    assert not list((tmp_path / 'cache').rglob('LR_*/X3/*.png'))  # nothing generated
    # --test_only on the folder, and evaluate.py pointed at the set folder (HR/ beside LR_*/)
    save = f'pytest_shipped_{degradation}_{tmp_path.name}'
    try:
        code, _, err = run_main(['--model', 'Bicubic', '--scale', '3', '--data_test', 'Set', '--degradation',
                                 degradation, '--dir_data', tmp_path / 'data', '--dir_cache', tmp_path / 'cache',
                                 '--test_only', '--save_results', '--cpu', '--n_threads', '0', '--save', save], capsys)
        assert code == 0, err
        import scoring
        res = scoring.evaluate(REPO / 'experiment' / save / 'results-Set', root, 3)
        ran = json.loads((REPO / 'experiment' / save / 'results.json').read_text())['Set']['3']
        assert res['mean']['psnr'] == pytest.approx(ran['psnr'], abs=1e-6)
    finally:
        import shutil
        shutil.rmtree(REPO / 'experiment' / save, ignore_errors=True)


# ---- x8 end to end ---------------------------------------------------------------------------
@need_shared
def test_bicubic_x8_on_set5(tmp_path, exp_name):
    save = exp_name('x8')
    code, _, err = run_main(['--model', 'Bicubic', '--scale', '8', '--data_test', 'Set5', '--dir_data', SHARED,
                             '--test_only', '--cpu', '--n_threads', '0', '--dir_cache', tmp_path, '--save', save])
    assert code == 0, err
    r = json.loads((REPO / 'experiment' / save / 'results.json').read_text())['Set5']['8']
    assert 23.5 < r['psnr'] < 25.5 and math.isfinite(r['ssim'])  # published Bicubic x8: 24.40 dB


def test_edsr_x8_trains_and_tests(tmp_path, exp_name):
    save = exp_name('x8train')
    code, _, err = run_main(['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--scale', '8',
                             '--data_train', 'Sample', '--data_test', 'Sample', '--patch_size', '64',
                             '--batch_size', '2', '--test_every', '2', '--epochs', '1', '--cpu', '--n_threads', '0',
                             '--dir_cache', tmp_path, '--save', save, '--degradation', 'BD'])
    assert code == 0, err
    r = json.loads((REPO / 'experiment' / save / 'results.json').read_text())['Sample']['8']
    assert math.isfinite(r['psnr']) and 'bicubic_psnr' in r
