"""Data: benchmark folders (provided or generated+cached LR), DIV2K layout and
--data_range, Demo, channel conversion, --ext img|sep|sep-reset, mod-crop,
and nothing ever written inside --dir_data."""
import os
import shutil
import struct
import sys
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

import option  # noqa: E402
from conftest import SHARED, run_main  # noqa: E402
import data  # noqa: E402
from data import common, make_dataset, srdata  # noqa: E402
from data.imresize import imresize  # noqa: E402


def smooth_image(rng, h, w, c=3):
    """A random but smooth uint8 image (so bicubic has something to do)."""
    small = rng.integers(0, 256, (h // 4 + 2, w // 4 + 2, c)).astype(np.float64)
    big = np.kron(small, np.ones((4, 4, 1)))[:h, :w]
    return np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)


def write_png16(path, arr):
    """A 16-bit PNG (gray, RGB or RGBA) written by hand: Pillow cannot write 16-bit RGB."""
    arr = np.asarray(arr).astype('>u2')
    h, w = arr.shape[:2]
    ct = 0 if arr.ndim == 2 else {3: 2, 4: 6}[arr.shape[2]]
    raw = b''.join(b'\x00' + arr[y].tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    Path(path).write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, ct, 0, 0, 0))
                           + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


def args_for(tmp_path, *extra, data_test='Mini', scale='2+3+4', ext='img'):
    return option.parse_args(['--test_only', '--pre_train', 'none', '--cpu', '--n_threads', '0', '--data_test', data_test,
                              '--scale', scale, '--ext', ext, '--dir_data', str(tmp_path / 'data'),
                              '--dir_cache', str(tmp_path / 'cache'), '--dir_demo', str(tmp_path / 'demo')]
                             + list(extra))


def tensor_to_uint8(t):
    a = t.numpy().transpose(1, 2, 0)
    assert np.all(a == np.round(a))
    return a.astype(np.uint8)


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in Path(folder).rglob('*')}


@pytest.fixture
def mini(tmp_path):
    """<tmp>/data/benchmark/Mini/HR with three images whose sizes are not multiples of 2, 3 or 4."""
    rng = np.random.default_rng(0)
    hr_dir = tmp_path / 'data' / 'benchmark' / 'Mini' / 'HR'
    hr_dir.mkdir(parents=True)
    imgs = {'a': smooth_image(rng, 50, 47), 'b': smooth_image(rng, 37, 61), 'c': smooth_image(rng, 48, 48)}
    for k, v in imgs.items():
        iio.imwrite(hr_dir / f'{k}.png', v)
    return imgs


@pytest.mark.parametrize('ext', ['img', 'sep'])
def test_benchmark_generated_lr_is_matlab_bicubic_of_modcropped_hr(tmp_path, mini, ext):
    before = snapshot(tmp_path / 'data')
    ds = make_dataset(args_for(tmp_path, ext=ext), 'Mini', train=False)
    assert len(ds) == 3 and ds.name == 'Mini'
    for si, s in enumerate((2, 3, 4)):
        ds.set_scale(si)
        for i, name in enumerate(sorted(mini)):
            lr, hr, fname, idx = ds[i]
            assert fname == name and idx == si
            h, w = mini[name].shape[:2]
            want_hr = mini[name][:h - h % s, :w - w % s]
            np.testing.assert_array_equal(tensor_to_uint8(hr), want_hr)
            np.testing.assert_array_equal(tensor_to_uint8(lr), imresize(want_hr, 1 / s))
    assert snapshot(tmp_path / 'data') == before
    cached = sorted(p.name for p in (tmp_path / 'cache').rglob('*x3.png'))
    assert cached == ['ax3.png', 'bx3.png', 'cx3.png']
    if ext == 'sep':
        assert len(list((tmp_path / 'cache').rglob('*.npy'))) == 3 * 4


def test_benchmark_uses_provided_lr(tmp_path, mini):
    lr_dir = tmp_path / 'data' / 'benchmark' / 'Mini' / 'LR_bicubic' / 'X2'
    lr_dir.mkdir(parents=True)
    mark = np.full((25, 23, 3), 7, np.uint8)  # a: 50x47 -> 50x46 -> 25x23
    iio.imwrite(lr_dir / 'ax2.png', mark)
    ds = make_dataset(args_for(tmp_path, scale='2'), 'Mini', train=False)
    lr, hr, name, _ = ds[0]
    assert name == 'a'
    np.testing.assert_array_equal(tensor_to_uint8(lr), mark)
    lr_b, _, name_b, _ = ds[1]  # no file given for b: generated
    np.testing.assert_array_equal(tensor_to_uint8(lr_b), imresize(mini['b'][:36, :60], 0.5))
    assert not list((tmp_path / 'cache').rglob('ax2.png'))


def test_provided_lr_of_wrong_size_is_an_error(tmp_path, mini):
    lr_dir = tmp_path / 'data' / 'benchmark' / 'Mini' / 'LR_bicubic' / 'X2'
    lr_dir.mkdir(parents=True)
    iio.imwrite(lr_dir / 'ax2.png', np.zeros((20, 20, 3), np.uint8))
    ds = make_dataset(args_for(tmp_path, scale='2'), 'Mini', train=False)
    with pytest.raises(common.DataError, match='ax2.png'):
        ds[0]


def test_stale_generated_lr_is_rebuilt(tmp_path, mini):
    """A generated LR is rebuilt when its HR image changed since."""
    make_dataset(args_for(tmp_path, scale='2'), 'Mini', train=False)
    hr_path = tmp_path / 'data' / 'benchmark' / 'Mini' / 'HR' / 'a.png'
    new = 255 - mini['a']
    iio.imwrite(hr_path, new)
    st = hr_path.stat()
    os.utime(hr_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    for ext in ('img', 'sep'):
        lr, hr, _, _ = make_dataset(args_for(tmp_path, scale='2', ext=ext), 'Mini', train=False)[0]
        np.testing.assert_array_equal(tensor_to_uint8(hr), new[:50, :46])
        np.testing.assert_array_equal(tensor_to_uint8(lr), imresize(new[:50, :46], 0.5))


def test_generated_lr_follows_n_colors(tmp_path, mini):
    """--n_colors 1 after a --n_colors 3 run in the same cache: LR is bicubic of the Y HR image."""
    make_dataset(args_for(tmp_path, scale='3'), 'Mini', train=False)[0]
    lr, hr, _, _ = make_dataset(args_for(tmp_path, '--n_colors', '1', scale='3'), 'Mini', train=False)[0]
    y = common.rgb_to_y_uint8(mini['a'][:48, :45])[..., None]
    np.testing.assert_array_equal(tensor_to_uint8(hr), y)
    np.testing.assert_array_equal(tensor_to_uint8(lr), imresize(y, 1 / 3))


def test_sep_cache_and_reset(tmp_path, mini):
    args = args_for(tmp_path, scale='2', ext='sep')
    ds = make_dataset(args, 'Mini', train=False)
    npys = sorted((tmp_path / 'cache').rglob('*.npy'))
    assert len(npys) == 6 and all(str(p).startswith(str(tmp_path / 'cache')) for p in npys)
    hr_npy = [p for p in npys if p.name == 'a.png.npy'][0]
    # the decoded array is what is read: overwrite it, a plain 'sep' run uses it
    np.save(hr_npy, np.zeros_like(np.load(hr_npy)))
    mtime = hr_npy.stat().st_mtime_ns
    _, hr, _, _ = make_dataset(args, 'Mini', train=False)[0]
    assert hr.abs().sum() == 0 and hr_npy.stat().st_mtime_ns == mtime
    # sep-reset rebuilds every cached file
    mtimes = {p: p.stat().st_mtime_ns for p in npys}
    _, hr, _, _ = make_dataset(args_for(tmp_path, scale='2', ext='sep-reset'), 'Mini', train=False)[0]
    np.testing.assert_array_equal(tensor_to_uint8(hr), mini['a'][:50, :46])
    assert all(p.stat().st_mtime_ns != m for p, m in mtimes.items())
    assert ds.name == 'Mini'


def test_damaged_cache_entries_are_rebuilt_with_one_warning(tmp_path, mini):
    """A truncated .npy, one with a corrupt header, and an unreadable cached LR
    image are each rebuilt from their source with one warning line; the data
    read are those of an intact cache."""
    import warnings
    args = args_for(tmp_path, scale='2', ext='sep')
    ds = make_dataset(args, 'Mini', train=False)
    want = [(lr.clone(), hr.clone()) for lr, hr, _, _ in (ds[i] for i in range(3))]
    npys = {p.name: p for p in (tmp_path / 'cache').rglob('*.npy')}
    truncated, header = npys['a.png.npy'], npys['bx2.png.npy']
    truncated.write_bytes(truncated.read_bytes()[:-100])
    raw = bytearray(header.read_bytes())
    raw[10:20] = b'\x00' * 10
    header.write_bytes(bytes(raw))
    lr_png = next((tmp_path / 'cache').rglob('cx2.png'))
    lr_png.write_bytes(lr_png.read_bytes()[:40])
    npys['cx2.png.npy'].unlink()  # so the cached LR image is read again
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ds = make_dataset(args, 'Mini', train=False)
    lines = [str(w.message) for w in caught]
    assert len(lines) == 3 and all('\n' not in m and 'damaged cache entry' in m for m in lines), lines
    assert {m.split(':')[0] for m in lines} == {str(truncated), str(header), str(lr_png)}
    for i, (lr, hr) in enumerate(want):
        got = ds[i]
        assert torch.equal(got[0], lr) and torch.equal(got[1], hr)
    assert all(srdata.npy_intact(p) for p in (truncated, header))


def test_modcrop_before_lr_and_compare(tmp_path):
    rng = np.random.default_rng(1)
    hr_dir = tmp_path / 'data' / 'benchmark' / 'Odd' / 'HR'
    hr_dir.mkdir(parents=True)
    img = smooth_image(rng, 50, 47)
    iio.imwrite(hr_dir / 'x.png', img)
    ds = make_dataset(args_for(tmp_path, data_test='Odd', scale='3'), 'Odd', train=False)
    lr, hr, _, _ = ds[0]
    assert tuple(hr.shape) == (3, 48, 45) and tuple(lr.shape) == (3, 16, 15)


def test_registered_names_and_dataset_kind(tmp_path, mini):
    from registry import DATASETS
    assert DATASETS.names() == ['BSD200', 'BSD200train', 'BSD200val', 'Demo', 'DIV2K', 'Folder', 'General100', 'Sample',
                                'T91']
    d = tmp_path / 'data'
    kinds = {n: data.dataset_kind(n, d) for n in ('div2k', 'Sample', 'FOLDER', 'Demo', 'video', 'Mini', 't91',
                                                  'benchmark', 'srdata', 'common', 'classic', 'Nope')}
    assert kinds == {'div2k': 'module', 'Sample': 'module', 'FOLDER': 'module', 'Demo': 'module',
                     'video': 'video', 'Mini': 'benchmark', 't91': 'module', 'benchmark': None, 'srdata': None,
                     'common': None, 'classic': None, 'Nope': None}


def test_cache_mem_is_shared_by_the_datasets_of_one_run(tmp_path, mini, monkeypatch):
    """--cache_mem holds the first set in RAM and leaves none for the second
    (the same folder twice); the torchrun ranks of a node split it."""
    need = make_dataset(args_for(tmp_path, scale='2', ext='sep'), 'Mini', train=False).mem_bytes
    assert need > 0
    for local, gib in (('1', need / 2 ** 30), ('2', 2 * need / 2 ** 30)):
        monkeypatch.setenv('LOCAL_WORLD_SIZE', local)
        args = args_for(tmp_path, '--cache_mem', repr(gib), data_test='Mini+Mini', scale='2', ext='sep')
        held = [t.dataset.mem_bytes for t in data.Data(args).loader_test]
        assert held == [need, 0]
        budget = srdata.MemBudget(args.cache_mem)
        assert [make_dataset(args, 'Mini', False, budget).mem_bytes for _ in range(2)] == [need, 0]
        assert make_dataset(args, 'Mini', False).mem_bytes == need  # a budget of its own


# ---- DIV2K ------------------------------------------------------------------
@pytest.fixture
def fake_div2k(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / 'data' / 'DIV2K'
    imgs = {}
    for split, numbers in (('train', range(1, 5)), ('valid', range(5, 7))):
        (root / f'DIV2K_{split}_HR').mkdir(parents=True)
        for n in numbers:
            imgs[n] = rng.integers(0, 256, (40, 44, 3), dtype=np.uint8)
            iio.imwrite(root / f'DIV2K_{split}_HR' / f'{n:04d}.png', imgs[n])
            if split == 'train':  # LR given for the training split
                d = root / 'DIV2K_train_LR_bicubic' / 'X2'
                d.mkdir(parents=True, exist_ok=True)
                iio.imwrite(d / f'{n:04d}x2.png', imresize(imgs[n], 0.5))
    return imgs


def test_div2k_layout_and_data_range(tmp_path, fake_div2k):
    before = snapshot(tmp_path / 'data')
    args = args_for(tmp_path, '--data_range', '2-4/5-6', '--patch_size', '16', '--batch_size', '2',
                    '--test_every', '1', '--no_augment', data_test='DIV2K', scale='2')
    train = make_dataset(args, 'DIV2K', train=True)
    assert [Path(p).stem for p in train.images_hr] == ['0002', '0003', '0004']
    assert [Path(p).name for p in train.images_lr[0]] == ['0002x2.png', '0003x2.png', '0004x2.png']
    lr, hr, name, idx = train[(1, 0, 1234)]
    assert name == '0003' and idx == 0
    assert tuple(lr.shape) == (3, 8, 8) and tuple(hr.shape) == (3, 16, 16)
    lr, hr = tensor_to_uint8(lr), tensor_to_uint8(hr)
    full_lr, full_hr = imresize(fake_div2k[3], 0.5), fake_div2k[3]
    hits = [(y, x) for y in range(full_lr.shape[0] - 7) for x in range(full_lr.shape[1] - 7)
            if np.array_equal(full_lr[y:y + 8, x:x + 8], lr)]
    assert len(hits) == 1
    y, x = hits[0]
    np.testing.assert_array_equal(full_hr[2 * y:2 * y + 16, 2 * x:2 * x + 16], hr)  # aligned patch
    # the same seed gives the same patch
    np.testing.assert_array_equal(tensor_to_uint8(train[(1, 0, 1234)][0]), lr)

    test = make_dataset(args, 'DIV2K', train=False)
    assert len(test) == 2
    for i, n in enumerate((5, 6)):
        lr, hr, name, _ = test[i]
        assert name == f'{n:04d}'
        np.testing.assert_array_equal(tensor_to_uint8(hr), fake_div2k[n])
        np.testing.assert_array_equal(tensor_to_uint8(lr), imresize(fake_div2k[n], 0.5))
    assert snapshot(tmp_path / 'data') == before


def test_div2k_missing_image_in_range(tmp_path, fake_div2k):
    args = args_for(tmp_path, '--data_range', '1-4/5-9', data_test='DIV2K', scale='2')
    with pytest.raises(common.DataError, match='0007'):
        make_dataset(args, 'DIV2K', train=False)


# ---- channel conversion ------------------------------------------------------
def test_read_image_conversions(tmp_path):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    y = np.floor(16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255 + 0.5)

    iio.imwrite(tmp_path / 'rgb.png', rgb)
    iio.imwrite(tmp_path / 'gray.png', gray)
    iio.imwrite(tmp_path / 'rgba.png', np.dstack([rgb, rng.integers(0, 256, (6, 7), dtype=np.uint8)]))
    Image.fromarray(np.dstack([gray, 255 - gray]), 'LA').save(tmp_path / 'la.png')
    pal = Image.fromarray(rgb).convert('P', palette=Image.Palette.ADAPTIVE, colors=5)
    pal.save(tmp_path / 'pal.png')
    pal_rgb = np.array(pal.convert('RGB'))
    g16 = rng.integers(0, 65536, (6, 7)).astype(np.uint16)
    write_png16(tmp_path / 'g16.png', g16)
    c16 = rng.integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    write_png16(tmp_path / 'c16.png', c16)

    def read(name, c):
        a = common.read_image(str(tmp_path / name), c)
        assert a.dtype == np.uint8 and a.shape == (6, 7, c)
        return a

    np.testing.assert_array_equal(read('rgb.png', 3), rgb)
    np.testing.assert_array_equal(read('rgb.png', 1)[..., 0], y)
    np.testing.assert_array_equal(read('gray.png', 3), np.dstack([gray] * 3))
    np.testing.assert_array_equal(read('gray.png', 1)[..., 0], gray)
    np.testing.assert_array_equal(read('rgba.png', 3), rgb)
    np.testing.assert_array_equal(read('rgba.png', 1)[..., 0], y)
    np.testing.assert_array_equal(read('la.png', 3), np.dstack([gray] * 3))
    np.testing.assert_array_equal(read('la.png', 1)[..., 0], gray)
    np.testing.assert_array_equal(read('pal.png', 3), pal_rgb)
    g16_8 = np.floor(g16 / 257 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(read('g16.png', 1)[..., 0], g16_8)
    np.testing.assert_array_equal(read('g16.png', 3), np.dstack([g16_8] * 3))
    # 16-bit RGB: Pillow decodes only the high byte, so within one level of v/257
    assert np.abs(read('c16.png', 3).astype(int) - c16 / 257).max() <= 1.0
    # GIF (palette; imageio reads even a single frame as a stack): the first frame
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(tmp_path / 'one.gif')
    frames[0].save(tmp_path / 'anim.gif', save_all=True, append_images=frames[1:])
    first = np.array(Image.open(tmp_path / 'anim.gif').convert('RGB'))
    np.testing.assert_array_equal(read('anim.gif', 3), first)
    np.testing.assert_array_equal(read('one.gif', 3), np.array(Image.open(tmp_path / 'one.gif').convert('RGB')))


def test_gray_hr_in_a_benchmark_set(tmp_path):
    rng = np.random.default_rng(4)
    hr_dir = tmp_path / 'data' / 'benchmark' / 'G' / 'HR'
    hr_dir.mkdir(parents=True)
    g = smooth_image(rng, 24, 24, 1)[..., 0]
    iio.imwrite(hr_dir / 'g.png', g)
    lr, hr, _, _ = make_dataset(args_for(tmp_path, data_test='G', scale='2'), 'G', train=False)[0]
    np.testing.assert_array_equal(tensor_to_uint8(hr), np.dstack([g] * 3))
    np.testing.assert_array_equal(tensor_to_uint8(lr), imresize(np.dstack([g] * 3), 0.5))
    lr, hr, _, _ = make_dataset(args_for(tmp_path, '--n_colors', '1', data_test='G', scale='2'), 'G', train=False)[0]
    assert hr.shape[0] == 1 and lr.shape[0] == 1
    np.testing.assert_array_equal(tensor_to_uint8(hr)[..., 0], g)


# ---- Demo -------------------------------------------------------------------
def test_demo_saves_sr_without_metrics(tmp_path, exp_name, exp_dir, capsys):
    rng = np.random.default_rng(5)
    demo = tmp_path / 'demo'
    demo.mkdir()
    rgb = smooth_image(rng, 12, 10)
    gray = smooth_image(rng, 9, 11, 1)[..., 0]
    iio.imwrite(demo / 'rgb.png', rgb)
    iio.imwrite(demo / 'gray.png', gray)
    iio.imwrite(demo / 'rgba.png', np.dstack([rgb, np.full((12, 10), 128, np.uint8)]))
    Image.fromarray(rgb).convert('P', palette=Image.Palette.ADAPTIVE, colors=6).save(demo / 'pal.png')
    pal_rgb = np.array(Image.open(demo / 'pal.png').convert('RGB'))
    g16 = (gray.astype(np.uint16) * 257)
    write_png16(demo / 'g16.png', g16)
    save = exp_name('demo')
    code, out, err = run_main(['--model', 'Bicubic', '--scale', '2+3', '--test_only', '--data_test', 'Demo',
                               '--dir_demo', demo, '--save_results', '--save', save, '--cpu', '--n_threads', '0',
                               '--dir_cache', tmp_path / 'cache'], capsys)
    assert code == 0, err
    res = exp_dir(save) / 'results-Demo'
    inputs = {'rgb': rgb, 'gray': np.dstack([gray] * 3), 'rgba': rgb, 'pal': pal_rgb, 'g16': np.dstack([gray] * 3)}
    for s in (2, 3):
        for name, lr in inputs.items():
            sr = iio.imread(res / f'{name}_x{s}_SR.png')
            np.testing.assert_array_equal(sr, imresize(lr, s))
    assert len(list(res.iterdir())) == 10
    import json
    results = json.loads((exp_dir(save) / 'results.json').read_text())
    assert set(results['Demo']) == {'2', '3'}
    assert all('psnr' not in v and 'seconds_per_image' in v for v in results['Demo'].values())


@pytest.mark.skipif(not (SHARED / 'benchmark' / 'Set5' / 'HR').is_dir(), reason=f'no Set5 in {SHARED}')
def test_nothing_written_in_dir_data(tmp_path, exp_name, capsys):
    data = tmp_path / 'data'
    shutil.copytree(SHARED / 'benchmark' / 'Set5' / 'HR', data / 'benchmark' / 'Set5' / 'HR')
    before = snapshot(data)
    code, out, err = run_main(['--model', 'Bicubic', '--scale', '2+4', '--test_only', '--data_test', 'Set5',
                               '--dir_data', data, '--dir_cache', tmp_path / 'cache', '--save', exp_name('nowrite'),
                               '--cpu', '--n_threads', '0', '--ext', 'sep'], capsys)
    assert code == 0, err
    assert snapshot(data) == before
    lrs = sorted(p.name for p in (tmp_path / 'cache').rglob('*.png') if 'LR_bicubic' in str(p))
    assert lrs == sorted(f'{n}x{s}.png' for n in ('baby', 'bird', 'butterfly', 'head', 'woman') for s in (2, 4))
    assert len(list((tmp_path / 'cache').rglob('*.npy'))) == 5 * 3


# ---- the classic training sets, --augment_scales, images that fit some scales ----------
def classic_args(tmp_path, *extra, data='data', scale='2+4', patch='50', ext='sep'):
    return option.parse_args(['--cpu', '--n_threads', '0', '--data_train', 'T91', '--data_test', 'Demo',
                              '--dir_data', str(tmp_path / data), '--dir_cache', str(tmp_path / 'cache'),
                              '--scale', scale, '--patch_size', patch, '--ext', ext, '--batch_size', '4',
                              '--test_every', '5'] + list(extra))


@pytest.fixture
def t91(tmp_path):
    """<tmp>/data/T91: three BMP images; with --patch_size 50 the third (49x60) is too small
    for the x2 patch (25 LR pixels; its x2 LR image is 24x30) but fits x4 (12; 12x15)."""
    rng = np.random.default_rng(3)
    d = tmp_path / 'data' / 'T91'
    d.mkdir(parents=True)
    imgs = {'t1': smooth_image(rng, 60, 52), 't2': smooth_image(rng, 54, 70), 't3': smooth_image(rng, 49, 60)}
    for k, v in imgs.items():
        Image.fromarray(v).save(d / f'{k}.bmp')
    return imgs


@pytest.mark.skipif(not (SHARED / 'T91').is_dir(), reason=f'no T91 in {SHARED}')
def test_shared_t91_and_bsd200_are_read_as_they_are(tmp_path):
    args = option.parse_args(['--cpu', '--n_threads', '2', '--data_train', 'T91+BSD200', '--data_test', 'Demo',
                              '--dir_data', str(SHARED), '--dir_cache', str(tmp_path / 'cache'), '--scale', '4',
                              '--patch_size', '48', '--ext', 'img'])
    t91, bsd = (make_dataset(args, n, train=True) for n in ('T91', 'BSD200'))
    assert len(t91.images_hr) == 91 and len(bsd.images_hr) == 200
    assert all(p.endswith('.bmp') for p in t91.images_hr) and all(p.endswith('.png') for p in bsd.images_hr)
    lr, hr, name, _ = t91[(0, 0, 7)]
    assert hr.shape == (3, 48, 48) and lr.shape == (3, 12, 12)
    assert not list(Path(SHARED).rglob('*.npy'))  # nothing written into the shared data


def test_classic_bmp_set_and_an_image_used_only_where_it_fits(tmp_path, t91):
    """t3 is too small for the x2 patch but fits x4: it is used at x4 only; an x2
    sample that lands on it takes another image, chosen by the sample's seed (the
    same every time)."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ds = make_dataset(classic_args(tmp_path), 'T91', train=True)
    msgs = [str(w.message) for w in caught]
    assert any('used at the scales where they fit (x2: 2 of 3)' in m for m in msgs), msgs
    assert [Path(p).name for p in ds.images_hr] == ['t1.bmp', 't2.bmp', 't3.bmp']
    t3 = 2
    for seed in range(20):
        lr, hr, name, _ = ds[(t3, 0, seed)]      # x2
        assert name in ('t1', 't2') and hr.shape == (3, 50, 50)
        assert torch.equal(ds[(t3, 0, seed)][1], hr)  # the same choice again
        lr, hr, name, _ = ds[(t3, 1, seed)]      # x4: t3 itself
        assert name == 't3' and hr.shape == (3, 48, 48) and lr.shape == (3, 12, 12)
    # a set where no image fits one of the scales is an error naming it
    (tmp_path / 'only' / 'T91').mkdir(parents=True)
    Image.fromarray(t91['t3']).save(tmp_path / 'only' / 'T91' / 't3.bmp')
    with pytest.raises(common.DataError, match='no image .* is large enough for the x2 patch'):
        make_dataset(classic_args(tmp_path, data='only'), 'T91', train=True)


# ---- --sample_by: what the training patches are drawn in proportion to ----
def drawn_shares(loader, groups):
    """The share of one epoch's drawn indices in each of `groups` (ranges of dataset indices)."""
    drawn = np.array([i for batch in loader.batch_sampler for i, _, _ in batch])
    return [float(np.isin(drawn, list(g)).mean()) for g in groups]


@pytest.mark.parametrize('by', ['set', 'image', 'area'])
def test_sample_by_sets_images_or_pixels(tmp_path, t91, by):
    """Two training sets: the small t91 fixture (3 images, 9,840 pixels) and one of a single 120 x 100 image.
    'set' keeps EDSR's shuffle of every index (each set its own --test_every share: half each), 'image'
    draws every image equally often (the single image: 1/4), 'area' every pixel (12,000 / 21,840)."""
    from dataloader import Joined, MSDataLoader
    big = tmp_path / 'data2' / 'T91'
    big.mkdir(parents=True)
    Image.fromarray(smooth_image(np.random.default_rng(4), 120, 100)).save(big / 'b1.bmp')
    sets = [make_dataset(classic_args(tmp_path, '--sample_by', by, '--test_every', '3000', data=d, scale='4',
                                      patch='48'), 'T91', train=True) for d in ('data', 'data2')]
    joined = Joined(sets)
    loader = MSDataLoader(classic_args(tmp_path, '--sample_by', by, '--test_every', '3000', scale='4',
                                       patch='48'), joined, train=True)
    n_small = len(sets[0])
    small, large = drawn_shares(loader, [range(n_small), range(n_small, len(joined))])
    pixels = sum(v.shape[0] * v.shape[1] for v in t91.values())
    want = {'set': n_small / len(joined), 'image': 3 / 4, 'area': pixels / (pixels + 12000)}[by]
    assert small == pytest.approx(want, abs=0.015) and small + large == pytest.approx(1)
    if by == 'area':  # within a set too: each image in proportion to its pixels
        per_image = drawn_shares(loader, [range(k, n_small, 3) for k in range(3)])
        areas = [t91[k].shape[0] * t91[k].shape[1] for k in ('t1', 't2', 't3')]
        assert per_image == pytest.approx([a / (pixels + 12000) for a in areas], abs=0.015)


def test_weighted_draws_are_seeded_and_resume_mid_epoch():
    """Weighted draws come from (--seed, epoch) like the shuffle: the same batches again, other batches for
    another epoch, and a resumed epoch (start_batch) yields exactly the batches it had left."""
    from dataloader import ScaleBatchSampler
    weights = np.tile([1.0, 3.0], 50)
    s = ScaleBatchSampler(100, 4, 3, seed=5, item_weights=weights)
    first = list(s)
    assert first == list(ScaleBatchSampler(100, 4, 3, seed=5, item_weights=weights))
    resumed = ScaleBatchSampler(100, 4, 3, seed=5, item_weights=weights)
    resumed.start_batch = 10
    assert list(resumed) == first[10:]
    s.set_epoch(2)
    assert list(s) != first
    odd = np.mean([i % 2 for batch in first for i, _, _ in batch])
    assert 0.5 < odd <= 1  # index weight 3 drawn more often than weight 1 (100 draws: 0.75 +- 0.04)


def test_augment_scales_cached_and_deterministic(tmp_path, t91):
    """--augment_scales 1+0.9+0.6: the HR images plus their MATLAB-bicubic
    downscales (output size ceil(s * side)), cached once; LR made from those."""
    args = classic_args(tmp_path, '--augment_scales', '1+0.9+0.6', scale='2', patch='16')
    ds = make_dataset(args, 'T91', train=True)
    names = [Path(p).stem for p in ds.images_hr]
    assert names == ['t1', 't2', 't3', 't1_s0.9', 't2_s0.9', 't3_s0.9', 't1_s0.6', 't2_s0.6', 't3_s0.6']
    for stem, f in (('t1_s0.9', 0.9), ('t2_s0.6', 0.6)):
        i = names.index(stem)
        src = t91[stem.split('_')[0]]
        want = imresize(src, f)
        assert want.shape[:2] == tuple(int(np.ceil(f * n - 1e-9)) for n in src.shape[:2])
        np.testing.assert_array_equal(iio.imread(ds.images_hr[i]), want)
        lr, hr, _, _ = ds[(i, 0, 3)]
        assert hr.shape == (3, 16, 16)
    scaled = sorted((tmp_path / 'cache').rglob('*_s0.*.png'))
    stamps = {p: p.stat().st_mtime_ns for p in scaled}
    again = make_dataset(args, 'T91', train=True)  # cached: nothing made again, the same samples
    assert {p: p.stat().st_mtime_ns for p in scaled} == stamps
    for k in range(len(names)):
        assert torch.equal(again[(k, 0, 11)][1], ds[(k, 0, 11)][1])
    # a test set is never augmented
    assert len(make_dataset(args, 'T91', train=False).images_hr) == 3
    assert not list((tmp_path / 'data').rglob('*_s0*'))  # nothing written into --dir_data


def test_augment_scales_bad_values_are_one_line(tmp_path):
    for bad in ('1+1.2', '0', 'x', '1+1'):
        with pytest.raises(SystemExit):
            classic_args(tmp_path, '--augment_scales', bad)


def test_a_set_smaller_than_the_patch_names_the_patch_that_fits(tmp_path, t91):
    """T91 here is t1 (60x52), t2 (54x70), t3 (49x60): at --patch_size 200 none fits, in one line naming
    the largest --patch_size that would (x2: 27 LR pixels of t2, so 54; x4: 13, so 52), and no warning per image."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with pytest.raises(common.DataError) as e:
            make_dataset(classic_args(tmp_path, patch='200'), 'T91', train=True)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and 'no usable images' in msg and 'all 3 are smaller' in msg
    assert msg.endswith('--patch_size 52 or smaller would fit'), msg
    assert not [w for w in caught if 'smaller than the patch' in str(w.message)]
    make_dataset(classic_args(tmp_path, patch='52'), 'T91', train=True)  # and it does


def test_lr_patch_is_one_lr_patch_at_every_scale(tmp_path):
    """--lr_patch P: the batch's HR patch is P x its scale, so every scale trains on P x P inputs."""
    args = option.parse_args(['--model', 'EDSR', '--scale', '2+3+4', '--data_train', 'Sample', '--data_test', 'Sample',
                              '--lr_patch', '12', '--batch_size', '2', '--n_threads', '0', '--dir_cache',
                              str(tmp_path), '--test_every', '4'])
    ds = make_dataset(args, 'Sample', train=True)
    for si, s in enumerate((2, 3, 4)):
        lr, hr, _, _ = ds[(0, si, 7)]
        assert tuple(lr.shape[1:]) == (12, 12) and tuple(hr.shape[1:]) == (12 * s, 12 * s)
    with pytest.raises(SystemExit):
        option.parse_args(['--lr_patch', '-1'])


@pytest.mark.skipif(not (SHARED / 'BSD200').is_dir(), reason=f'needs {SHARED}/BSD200')
def test_bsd200_validation_split_is_held_out(tmp_path):
    """BSD200val (every tenth image) and BSD200train (the rest) split BSD200 without overlap."""
    got = {}
    for name in ('BSD200', 'BSD200val', 'BSD200train'):
        args = option.parse_args(['--data_train', name, '--data_test', name, '--dir_data', str(SHARED), '--scale', '4',
                                  '--test_only', '--pre_train', 'none', '--dir_cache', str(tmp_path), '--ext', 'img'])
        got[name] = make_dataset(args, name, train=False).images_hr
    assert len(got['BSD200val']) == 20 and len(got['BSD200train']) == 180
    assert not set(got['BSD200val']) & set(got['BSD200train'])
    assert sorted(got['BSD200val'] + got['BSD200train']) == sorted(got['BSD200'])
    assert got['BSD200val'] == got['BSD200'][::10]
