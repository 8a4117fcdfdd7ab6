"""compare.py: the comparison figure (CLI and FigureWriter), checked pixel by pixel."""
import subprocess
import sys
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import SRC

import compare  # noqa: E402
import option  # noqa: E402
from data.imresize import imresize  # noqa: E402

PLANT = (36, 8, 16, 16)   # x, y, w, h of the region one method gets wrong


def smooth_image(rng, size=60):
    """A smooth colour image (textured enough for SR, no flat areas)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    chans = [128 + 90 * np.sin(2 * np.pi * (a * xx + b * yy) + c) for a, b, c in rng.uniform(0.5, 2.5, (3, 3))]
    return np.clip(np.stack(chans, 2) + rng.normal(0, 4, (size, size, 3)), 0, 255).round().astype(np.uint8)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    hr = smooth_image(rng)
    lr = imresize(hr, 0.5)
    noisy = np.clip(hr + rng.normal(0, 3, hr.shape), 0, 255).round().astype(np.uint8)
    x, y, w, h = PLANT
    noisy[y:y + h, x:x + w] = rng.integers(0, 256, (h, w, 3))      # wrong only here
    k = np.array([1, 2, 1]) / 4
    blur = np.apply_along_axis(lambda v: np.convolve(np.pad(v, 1, mode='edge'), k, 'valid'), 0, hr.astype(float))
    blur = np.apply_along_axis(lambda v: np.convolve(np.pad(v, 1, mode='edge'), k, 'valid'), 1, blur)
    blur = blur.round().astype(np.uint8)
    paths = {}
    for name, img in (('hr', hr), ('lr', lr), ('noisy', noisy), ('blur', blur)):
        paths[name] = tmp_path / f'{name}.png'
        iio.imwrite(paths[name], img)
    return SimpleNamespace(hr=hr, noisy=noisy, blur=blur, paths=paths, dir=tmp_path)


def run(images, *extra):
    p = images.paths
    argv = ['--hr', p['hr'], '--lr', p['lr'], '--scale', '2', '--sr', f'Noisy={p["noisy"]}',
            '--sr', f'Blur={p["blur"]}', '--out', images.dir / 'fig', *extra]
    return subprocess.run([sys.executable, 'compare.py'] + [str(a) for a in argv], cwd=SRC,
                          capture_output=True, text=True, timeout=120)


def panel(png, rect):
    x, y, w, h = rect
    return png[y:y + h, x:x + w, :3]


def crop(img, box):
    x, y, w, h = box
    return img[y:y + h, x:x + w]


def test_cli_given_box_panels_hold_the_exact_pixels(images):
    r = run(images, '--box', '10,20,15,12', '--zoom', '12')
    assert r.returncode == 0, r.stderr
    assert 'box: 10,20,15,12' in r.stdout and 'Noisy: PSNR' in r.stdout
    png = iio.imread(images.dir / 'fig.png')
    geo = compare.compose(images.hr, [('HR', images.hr, ''), ('Bicubic (from LR)', images.hr, ''),
                                      ('Noisy', images.noisy, ''), ('Blur', images.blur, '')],
                          (10, 20, 15, 12), 12)[1]
    assert png.shape[:2] == (geo['size'][1], geo['size'][0])
    rects = dict(geo['panels'])
    box = (10, 20, 15, 12)
    enl = np.repeat(np.repeat(crop(images.hr, box), 12, 0), 12, 1)
    assert np.array_equal(panel(png, rects['HR']), enl)
    assert np.array_equal(panel(png, rects['Noisy']), compare.enlarge(crop(images.noisy, box), 12))
    assert np.array_equal(panel(png, rects['Blur']), compare.enlarge(crop(images.blur, box), 12))
    assert (images.dir / 'fig.pdf').stat().st_size > 1000


def test_auto_box_finds_the_planted_difference(images):
    r = run(images)
    assert r.returncode == 0, r.stderr
    x, y, w, h = map(int, r.stdout.split('box: ')[1].split()[0].split(','))
    px, py, pw, ph = PLANT
    assert (w, h) == (12, 12)   # 1/5 of 60
    assert x < px + pw and px < x + w and y < py + ph and py < y + h, (x, y)
    # the API: same box, the geometry matches the PNG
    geo = compare.make_figure(images.hr, imresize(imresize(images.hr, 0.5), 2.0),
                              [('Noisy', images.noisy), ('Blur', images.blur)], 2, str(images.dir / 'api'))
    png = iio.imread(images.dir / 'api.png')
    assert png.shape[:2] == geo['size'][::-1]
    assert np.array_equal(panel(png, dict(geo['panels'])['HR']), compare.enlarge(crop(images.hr, geo['box']),
                                                                                  geo['zoom']))


@pytest.mark.parametrize('change, needle', [
    (('--hr', 'missing.png'), '--hr missing.png: no such file'),
    (('--box', '50,50,20,20'), '--box 50,50,20,20 outside'),
    (('--box', '1,2,3'), "--box '1,2,3'"),
    (('--sr', 'nameonly'), "--sr 'nameonly'"),
])
def test_bad_input_is_one_error_line(images, change, needle):
    argv = list(change)
    if argv[0] == '--hr':
        r = subprocess.run([sys.executable, 'compare.py', '--hr', str(images.dir / argv[1]), '--scale', '2',
                            '--sr', f'A={images.paths["noisy"]}', '--out', str(images.dir / 'x')],
                           cwd=SRC, capture_output=True, text=True, timeout=60)
        needle = needle.replace('missing.png', str(images.dir / 'missing.png'))
    else:
        r = run(images, *argv)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode in (1, 2) and len(lines) == 1, r.stderr
    assert lines[0].startswith('compare.py: error: ') and needle in lines[0], lines
    assert not (images.dir / 'fig.png').exists()


def test_size_mismatch_names_the_file(images, tmp_path):
    small = tmp_path / 'small.png'
    iio.imwrite(small, images.hr[:40, :40])
    r = run(images, '--sr', f'Small={small}')
    assert r.returncode == 1 and r.stderr.strip().startswith('compare.py: error: --sr')
    assert str(small) in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_figure_writer(images, tmp_path):
    args = option.parse_args(['--model', 'Bicubic', '--scale', '2', '--test_only', '--save_results',
                              '--save_figures', '--cpu'])
    ckp = SimpleNamespace(get_path=lambda *p: str(tmp_path.joinpath('exp', *p)))
    to_t = lambda a: torch.from_numpy(a.transpose(2, 0, 1).copy()).float()[None]   # noqa: E731
    hr = np.pad(images.hr, ((0, 1), (0, 1), (0, 0)), mode='edge')   # larger than SR by the mod-crop
    geo = compare.FigureWriter(args, ckp).add('Set5', 2, 'baby', to_t(imresize(images.hr, 0.5)),
                                              to_t(images.blur), to_t(hr))
    png_path = tmp_path / 'exp' / 'figures-Set5' / 'baby_x2.png'
    assert png_path.is_file() and png_path.with_suffix('.pdf').stat().st_size > 0
    png = iio.imread(png_path)
    rects = dict(geo['panels'])
    assert set(rects) == {'HR (full image)', 'HR', 'Bicubic (from LR)', 'Bicubic'}
    assert np.array_equal(panel(png, rects['HR']), compare.enlarge(crop(images.hr, geo['box']), geo['zoom']))
    assert np.array_equal(panel(png, rects['Bicubic']), compare.enlarge(crop(images.blur, geo['box']), geo['zoom']))


def test_main_save_figures_writes_one_figure_per_test_image(exp_name, exp_dir, monkeypatch):
    from conftest import SHARED, run_main
    if not (SHARED / 'benchmark' / 'Set5' / 'HR').is_dir():
        pytest.skip(f'no shared data at {SHARED}')
    made = []
    add = compare.FigureWriter.add
    monkeypatch.setattr(compare.FigureWriter, 'add', lambda self, *a: made.append((a[2], add(self, *a))))
    name = exp_name('fig')
    code, _, _ = run_main(['--model', 'Bicubic', '--scale', '2', '--data_test', 'Set5', '--dir_data', SHARED,
                           '--test_only', '--save_results', '--save_figures', '--save', name, '--cpu',
                           '--n_threads', '0'])
    assert code == 0
    folder = exp_dir(name) / 'figures-Set5'
    assert sorted(p.name for p in folder.glob('*.png')) == [f'{n}_x2.png' for n in
                                                           ('baby', 'bird', 'butterfly', 'head', 'woman')]
    assert len(list(folder.glob('*.pdf'))) == 5
    img_name, geo = made[0]
    hr = iio.imread(SHARED / 'benchmark' / 'Set5' / 'HR' / f'{img_name}.png')
    png = iio.imread(folder / f'{img_name}_x2.png')
    assert png.shape[:2] == geo['size'][::-1]
    assert np.array_equal(panel(png, dict(geo['panels'])['HR']), compare.enlarge(crop(hr, geo['box']), geo['zoom']))
