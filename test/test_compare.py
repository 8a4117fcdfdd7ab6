"""compare.py: the comparison figure (CLI and FigureWriter), checked pixel by pixel."""
import json
import subprocess
import sys
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import SRC

import compare  # noqa: E402
import figures  # noqa: E402
import metrics  # noqa: E402
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
    geo = figures.compose(images.hr, [('HR', images.hr, ''), ('Bicubic (from LR)', images.hr, ''),
                                      ('Noisy', images.noisy, ''), ('Blur', images.blur, '')],
                          (10, 20, 15, 12), 12)[1]
    assert png.shape[:2] == (geo['size'][1], geo['size'][0])
    rects = dict(geo['panels'])
    box = (10, 20, 15, 12)
    enl = np.repeat(np.repeat(crop(images.hr, box), 12, 0), 12, 1)
    assert np.array_equal(panel(png, rects['HR']), enl)
    assert np.array_equal(panel(png, rects['Noisy']), figures.enlarge(crop(images.noisy, box), 12))
    assert np.array_equal(panel(png, rects['Blur']), figures.enlarge(crop(images.blur, box), 12))
    assert (images.dir / 'fig.pdf').stat().st_size > 1000


def test_auto_box_finds_the_planted_difference(images):
    r = run(images)
    assert r.returncode == 0, r.stderr
    x, y, w, h = map(int, r.stdout.split('box: ')[1].split()[0].split(','))
    px, py, pw, ph = PLANT
    assert (w, h) == (12, 12)   # 1/5 of 60
    assert x < px + pw and px < x + w and y < py + ph and py < y + h, (x, y)
    # the API: same box, the geometry matches the PNG
    geo = figures.make_figure(images.hr, imresize(imresize(images.hr, 0.5), 2.0),
                              [('Noisy', images.noisy), ('Blur', images.blur)], 2, str(images.dir / 'api'))
    png = iio.imread(images.dir / 'api.png')
    assert png.shape[:2] == geo['size'][::-1]
    assert np.array_equal(panel(png, dict(geo['panels'])['HR']), figures.enlarge(crop(images.hr, geo['box']),
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


@pytest.mark.parametrize('model, titles', [
    ('Bicubic', {'HR (full image)', 'HR', 'Bicubic'}),     # --model Bicubic: one Bicubic panel, the model's
    ('EDSR', {'HR (full image)', 'HR', 'Bicubic (from LR)', 'EDSR'}),
])
def test_figure_writer(images, tmp_path, model, titles):
    args = option.parse_args(['--model', model, '--scale', '2', '--test_only', '--save_results',
                              '--save_figures', '--cpu', '--pre_train', 'none'])
    ckp = SimpleNamespace(get_path=lambda *p: str(tmp_path.joinpath('exp', *p)))
    to_t = lambda a: torch.from_numpy(a.transpose(2, 0, 1).copy()).float()[None]   # noqa: E731
    hr = np.pad(images.hr, ((0, 1), (0, 1), (0, 0)), mode='edge')   # larger than SR by the mod-crop
    geo = figures.FigureWriter(args, ckp).add('Set5', 2, 'baby', to_t(imresize(images.hr, 0.5)),
                                              to_t(images.blur), to_t(hr))
    png_path = tmp_path / 'exp' / 'figures-Set5' / 'baby_x2.png'
    assert png_path.is_file() and png_path.with_suffix('.pdf').stat().st_size > 0
    png = iio.imread(png_path)
    rects = dict(geo['panels'])
    assert set(rects) == titles and len(geo['panels']) == len(titles)
    assert np.array_equal(panel(png, rects['HR']), figures.enlarge(crop(images.hr, geo['box']), geo['zoom']))
    assert np.array_equal(panel(png, rects[model]), figures.enlarge(crop(images.blur, geo['box']), geo['zoom']))
    data = json.loads(png_path.with_suffix('.json').read_text())
    assert data['hr'] == 'Set5/baby' and data['box'] == list(geo['box']) and data['auto_box'] is True
    assert {p['name'] for p in data['panels']} == titles - {'HR (full image)', 'HR'}


def test_main_save_figures_writes_one_figure_per_test_image(exp_name, exp_dir, monkeypatch):
    from conftest import SHARED, run_main
    if not (SHARED / 'benchmark' / 'Set5' / 'HR').is_dir():
        pytest.skip(f'no shared data at {SHARED}')
    made = []
    add = figures.FigureWriter.add
    monkeypatch.setattr(figures.FigureWriter, 'add', lambda self, *a: made.append((a[2], add(self, *a))))
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
    assert np.array_equal(panel(png, dict(geo['panels'])['HR']), figures.enlarge(crop(hr, geo['box']), geo['zoom']))


# ---- one Bicubic panel, crop metrics, the JSON sidecar, the automatic box ------------------------
def made_bicubic(images):
    """The Bicubic compare.py makes with --lr (read back from the PNG, as the CLI does)."""
    return figures.hwc(imresize(iio.imread(images.paths['lr']), 2))[:60, :60]


@pytest.mark.parametrize('name, same, titles', [
    ('Bicubic', False, ['Noisy', 'Blur', 'Bicubic']),        # the user's own Bicubic replaces ours
    ('bicubic', False, ['Noisy', 'Blur', 'bicubic']),        # any case
    ('Baseline', True, ['Noisy', 'Blur', 'Baseline']),       # same pixels as ours, another name
    ('Other', False, ['Bicubic (from LR)', 'Noisy', 'Blur', 'Other']),
])
def test_one_bicubic_panel_when_the_user_passes_one(images, name, same, titles):
    ours = made_bicubic(images)
    user = ours if same else np.clip(ours.astype(int) + 3, 0, 255).astype(np.uint8)
    iio.imwrite(images.dir / 'user.png', user)
    r = run(images, '--sr', f'{name}={images.dir / "user.png"}', '--box', '10,20,15,12', '--zoom', '4')
    assert r.returncode == 0, r.stderr
    data = json.loads((images.dir / 'fig.json').read_text())
    assert [p['name'] for p in data['panels']] == titles
    imgs = {'Bicubic (from LR)': ours, 'Noisy': images.noisy, 'Blur': images.blur, name: user}
    geo = figures.compose(images.hr, [('HR', images.hr, '')] + [(t, imgs[t], '') for t in titles],
                          (10, 20, 15, 12), 4)[1]
    png = iio.imread(images.dir / 'fig.png')
    assert png.shape[:2] == geo['size'][::-1]      # as many panels as titles, no more
    assert np.array_equal(panel(png, dict(geo['panels'])[name]), figures.enlarge(crop(user, (10, 20, 15, 12)), 4))


def test_no_box_text_in_the_figure_the_json_sidecar_holds_it(images):
    r = run(images, '--box', '10,20,15,12', '--zoom', '4')
    assert r.returncode == 0, r.stderr
    assert 'fig.json' in r.stdout
    data = json.loads((images.dir / 'fig.json').read_text())
    assert data['box'] == [10, 20, 15, 12] and data['scale'] == 2 and data['auto_box'] is False
    assert data['hr'] == str(images.paths['hr'])
    assert [p['name'] for p in data['panels']] == ['Bicubic (from LR)', 'Noisy', 'Blur']
    assert all(set(p) == {'name', 'psnr', 'ssim', 'psnr_image', 'ssim_image'} for p in data['panels'])
    # what the figure draws: one text per panel, none of them the box
    geo = figures.make_figure(images.hr, made_bicubic(images), [('Noisy', images.noisy), ('Perfect', images.hr)],
                              2, str(images.dir / 'api'), box=(10, 20, 15, 12))
    assert len(geo['texts']) == len(geo['panels']) == 5
    assert geo['texts'][0] == 'HR (full image)'
    assert not [t for t in geo['texts'] + geo['captions'] if 'box' in t.lower() or '10,20' in t or '15,12' in t]
    assert geo['texts'][-1] == 'Perfect\ninf dB / 1.0000'
    perfect = json.loads((images.dir / 'api.json').read_text())['panels'][-1]
    assert perfect == {'name': 'Perfect', 'psnr': None, 'ssim': 1.0, 'psnr_image': None, 'ssim_image': 1.0}


@pytest.mark.parametrize('box, scored', [
    ((10, 20, 15, 12), (10, 20, 15, 12)),    # inside the image: the whole crop
    ((0, 0, 20, 20), (2, 2, 18, 18)),        # on the border: less the scale-pixel border the image score shaves
    ((50, 52, 8, 8), (50, 52, 8, 6)),        # under 11x11: PSNR only
])
def test_captions_are_the_crops_psnr_ssim(images, box, scored):
    bic = made_bicubic(images)
    geo = figures.make_figure(images.hr, bic, [('Noisy', images.noisy), ('Blur', images.blur)], 2,
                              str(images.dir / 'c'), box=box)
    data = json.loads((images.dir / 'c.json').read_text())
    assert data['crop_scored'] == list(scored) and geo['captions'][1] == 'PSNR / SSIM of the crop'
    assert geo['texts'][1] == 'HR\nPSNR / SSIM of the crop'
    hr_c = crop(images.hr, scored)
    for img, p, caption, text in zip((bic, images.noisy, images.blur), data['panels'], geo['captions'][2:],
                                     geo['texts'][2:]):
        want_p = metrics.psnr(crop(img, scored), hr_c)
        want_s = metrics.ssim(crop(img, scored), hr_c) if min(scored[2:]) >= 11 else None
        assert p['psnr'] == pytest.approx(want_p, abs=1e-9)
        assert p['ssim'] is None if want_s is None else p['ssim'] == pytest.approx(want_s, abs=1e-12)
        assert caption == f'{want_p:.2f} dB' + ('' if want_s is None else f' / {want_s:.4f}')
        assert text == f'{p["name"]}\n{caption}'
        whole = metrics.calc_metrics(img, images.hr, 2)
        assert (p['psnr_image'], p['ssim_image']) == pytest.approx(whole, abs=1e-12)
        assert caption != figures.score_text(*whole)
    if box == (10, 20, 15, 12):      # away from the planted error: the crop scores Noisy far above its image
        assert data['panels'][1]['psnr'] > data['panels'][1]['psnr_image'] + 5


def flat_corner_scene(rng, size=80, flat=40):
    """HR: textured, with a flat black top-left corner; 'Noisy' is badly wrong only on the flat
    corner, 'Blur' and Bicubic differ (less) from HR on the textured part."""
    hr = smooth_image(rng, size)
    hr[:flat, :flat] = 0
    noisy = hr.astype(float) + rng.normal(0, 1, hr.shape)
    noisy[:flat, :flat] = np.abs(rng.normal(0, 60, (flat, flat, 3)))
    k = np.array([1, 2, 1]) / 4
    blur = np.apply_along_axis(lambda v: np.convolve(np.pad(v, 1, mode='edge'), k, 'valid'), 0, hr.astype(float))
    blur = np.apply_along_axis(lambda v: np.convolve(np.pad(v, 1, mode='edge'), k, 'valid'), 1, blur)
    as8 = lambda a: np.clip(a, 0, 255).round().astype(np.uint8)   # noqa: E731
    return hr, as8(noisy), as8(blur)


def test_auto_box_avoids_a_flat_region_even_where_a_noisy_method_is_worst(tmp_path):
    hr, noisy, blur = flat_corner_scene(np.random.default_rng(1))
    bic = figures.hwc(imresize(figures.hwc(imresize(hr, 0.5)), output_shape=hr.shape[:2]))
    err = lambda img: np.abs(img.astype(float) - hr)[:40, :40].mean()   # noqa: E731
    assert err(noisy) > 10 * max(err(blur), err(bic), 1)               # the largest spread is on the flat corner
    geo = figures.make_figure(hr, bic, [('Noisy', noisy), ('Blur', blur)], 2, str(tmp_path / 'auto'))
    x, y, w, h = geo['box']
    assert (w, h) == (16, 16)
    assert x >= 40 or y >= 40, geo['box']                               # no pixel of the flat corner
    assert figures.luma(crop(hr, geo['box'])).std() > figures.FLAT_STD
    assert json.loads((tmp_path / 'auto.json').read_text())['auto_box'] is True
    # an image with no texture at all still gets a box, where the error is largest
    flat = np.zeros((40, 40, 3), np.uint8)
    wrong = flat.copy()
    wrong[25:30, 20:25] = 200
    x, y, w, h = figures.auto_box(flat, [wrong], shave=2)
    assert (w, h) == (11, 11) and x <= 20 and x + w >= 25 and y <= 25 and y + h >= 30


def test_out_makes_its_folder(images):
    """--out in a folder that does not exist yet: the folder is made (in-process: compare.main)."""
    p = images.paths
    stem = images.dir / 'new' / 'deeper' / 'fig'
    assert compare.main(['--hr', str(p['hr']), '--lr', str(p['lr']), '--scale', '2', '--sr', f'Noisy={p["noisy"]}',
                         '--box', '8,8,16,16', '--out', str(stem)]) == 0
    assert all((stem.parent / f'fig.{ext}').is_file() for ext in ('png', 'pdf', 'json'))
