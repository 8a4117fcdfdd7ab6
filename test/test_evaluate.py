import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[1] / 'src'
sys.path.insert(0, str(SRC))

import evaluate  # noqa: E402
import scoring  # noqa: E402
import tables  # noqa: E402
import metrics  # noqa: E402

import imageio.v3 as iio  # noqa: E402


def rand_img(seed, shape):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def noisy(img, seed):
    rng = np.random.default_rng(seed)
    return np.clip(img.astype(int) + rng.integers(-9, 10, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def folders(tmp_path):
    """HR images and SR images named in the styles the pairing rule accepts."""
    hr_dir, sr_dir = tmp_path / 'hr', tmp_path / 'sr'
    hr_dir.mkdir()
    sr_dir.mkdir()
    hr = {
        'baby': rand_img(1, (41, 37, 3)),  # odd: HR gets mod-cropped to 40x36
        'bird': rand_img(2, (30, 32, 3)),
        'gray': rand_img(3, (28, 26)),
        'head': rand_img(4, (24, 24, 3)),
        'wo_x2': rand_img(5, (26, 24, 3)),  # exact stem that looks suffixed
    }
    names = {'baby': 'baby_x2_SR.png', 'bird': 'birdx2.png', 'gray': 'gray_SR.png',
             'head': 'head_x2.png', 'wo_x2': 'wo_x2.png'}
    sr = {}
    for i, (stem, img) in enumerate(hr.items()):
        iio.imwrite(hr_dir / (stem + '.png'), img)
        h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
        sr[stem] = noisy(img[:h, :w], 10 + i)
        iio.imwrite(sr_dir / names[stem], sr[stem])
    iio.imwrite(sr_dir / 'baby_x2_LR.png', rand_img(9, (20, 18, 3)))  # ignored
    return sr_dir, hr_dir, hr, sr


def run_main(args, capsys):
    code = evaluate.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_pairs_and_metrics(folders, tmp_path, capsys):
    sr_dir, hr_dir, hr, sr = folders
    out_json = tmp_path / 'res.json'
    code, out, err = run_main(['--sr', sr_dir, '--hr', hr_dir, '--scale', 2, '--json', out_json], capsys)
    assert code == 0, err
    data = json.loads(out_json.read_text())
    assert set(data['images']) == set(hr)
    for stem in hr:
        h, w = sr[stem].shape[:2]
        p, s = metrics.calc_metrics(sr[stem], hr[stem][:h, :w], 2)
        assert data['images'][stem]['psnr'] == pytest.approx(p, abs=1e-9)
        assert data['images'][stem]['ssim'] == pytest.approx(s, abs=1e-12)
    mean_p = np.mean([v['psnr'] for v in data['images'].values()])
    mean_s = np.mean([v['ssim'] for v in data['images'].values()])
    assert data['mean']['psnr'] == pytest.approx(mean_p, abs=1e-9)
    assert data['mean']['ssim'] == pytest.approx(mean_s, abs=1e-12)
    last = out.strip().splitlines()[-1].split()
    assert last == ['mean', '%.2f' % mean_p, '%.4f' % mean_s]
    assert len(out.strip().splitlines()) == len(hr) + 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.res')] == []


def test_shave_option(folders, capsys):
    sr_dir, hr_dir, hr, sr = folders
    res = scoring.evaluate(sr_dir, hr_dir, 2, shave=5)
    p, s = metrics.calc_metrics(sr['bird'], hr['bird'], 5)
    assert res['images']['bird'] == {'psnr': p, 'ssim': s}
    assert scoring.evaluate(sr_dir, hr_dir, 2)['images']['bird']['psnr'] == metrics.psnr(sr['bird'], hr['bird'], 2)


def test_match_stem_rule():
    hr = {'baby', 'bird', 'a_SR'}
    assert scoring.match_stem('baby', hr, 2) == 'baby'
    assert scoring.match_stem('baby_x2_SR', hr, 2) == 'baby'
    assert scoring.match_stem('baby_SR', hr, 2) == 'baby'
    assert scoring.match_stem('babyx2', hr, 2) == 'baby'
    assert scoring.match_stem('baby_x2', hr, 2) == 'baby'
    assert scoring.match_stem('a_SR', hr, 2) == 'a_SR'  # exact stem first
    assert scoring.match_stem('baby_x3_SR', hr, 2) is None  # other scale
    assert scoring.match_stem('bab', hr, 2) is None


def test_missing_pair_is_one_line_error(folders, capsys):
    sr_dir, hr_dir, _, _ = folders
    (sr_dir / 'head_x2.png').unlink()
    code, out, err = run_main(['--sr', sr_dir, '--hr', hr_dir, '--scale', 2], capsys)
    assert code == 1
    assert err.startswith('evaluate.py: error:') and 'head.png' in err
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err


def test_unmatched_sr_is_error(folders, capsys):
    sr_dir, hr_dir, _, _ = folders
    iio.imwrite(sr_dir / 'zebra_x2_SR.png', rand_img(7, (8, 8, 3)))
    code, out, err = run_main(['--sr', sr_dir, '--hr', hr_dir, '--scale', 2], capsys)
    assert code == 1 and 'zebra_x2_SR.png' in err


def test_size_mismatch_is_error(folders, capsys):
    sr_dir, hr_dir, hr, _ = folders
    iio.imwrite(sr_dir / 'birdx2.png', rand_img(8, (26, 32, 3)))  # HR is 30x32: 4 rows too many
    code, out, err = run_main(['--sr', sr_dir, '--hr', hr_dir, '--scale', 2], capsys)
    assert code == 1
    assert 'birdx2.png' in err and 'bird.png' in err and '26x32x3' in err and '30x32x3' in err
    assert 'Traceback' not in err


def test_cli_subprocess(folders, tmp_path):
    sr_dir, hr_dir, _, _ = folders
    help_text = subprocess.run([sys.executable, str(SRC / 'evaluate.py'), '--help'],
                               capture_output=True, text=True, check=True).stdout
    assert '_x{S}_SR' in help_text and 'mod-crop' in help_text
    assert 'SPEC/results-<Set>' in help_text and "RCAN='SR/BI/RCAN/{set}/x{scale}'" in help_text
    bad = subprocess.run([sys.executable, str(SRC / 'evaluate.py'), '--sr', str(tmp_path / 'nope'),
                          '--hr', str(hr_dir), '--scale', '2'], capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.startswith('evaluate.py: error:') and 'nope' in bad.stderr
    assert 'Traceback' not in bad.stderr
    ok = subprocess.run([sys.executable, str(SRC / 'evaluate.py'), '--sr', str(sr_dir),
                         '--hr', str(hr_dir), '--scale', '2'], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().splitlines()[-1].startswith('mean')


def test_identical_images_give_null_psnr_in_json(tmp_path, capsys):
    d = tmp_path / 'd'
    d.mkdir()
    iio.imwrite(d / 'x.png', rand_img(1, (20, 20, 3)))
    out_json = tmp_path / 'r.json'
    code, out, err = run_main(['--sr', d, '--hr', d, '--scale', 2, '--json', out_json], capsys)
    assert code == 0, err
    text = out_json.read_text()
    assert 'Infinity' not in text
    data = json.loads(text)
    assert data['images']['x'] == {'psnr': None, 'ssim': 1.0}
    assert 'inf' in out


def test_grayscale_hr_scores_as_the_test_pipeline(tmp_path):
    """A grayscale HR image (Set14's bridge, B100 has some) against an RGB SR
    image is scored as main.py --test_only scores it: the gray value in R, G and B."""
    import evaluator
    from data import common
    hr_dir, sr_dir = tmp_path / 'hr', tmp_path / 'sr'
    hr_dir.mkdir()
    sr_dir.mkdir()
    gray = rand_img(5, (24, 24))
    iio.imwrite(hr_dir / 'bridge.png', gray)
    iio.imwrite(sr_dir / 'bridge_x2_SR.png', noisy(np.repeat(gray[:, :, None], 3, axis=2), 6))
    got = scoring.evaluate(sr_dir, hr_dir, 2)['mean']
    sr, hr = (common.np2tensor(common.read_image(str(p), 3), 255)[None]
              for p in (sr_dir / 'bridge_x2_SR.png', hr_dir / 'bridge.png'))
    want = evaluator.score(sr, hr, 2, 255)
    assert got['psnr'] == pytest.approx(want[0], abs=1e-9) and got['ssim'] == pytest.approx(want[1], abs=1e-9)


def test_read_image_modes(tmp_path):
    from PIL import Image

    rgb = rand_img(1, (6, 7, 3))
    Image.fromarray(rgb).convert('P').save(tmp_path / 'p.png')
    pal = scoring.read_image(tmp_path / 'p.png')
    assert pal.shape == (6, 7, 3)
    np.testing.assert_array_equal(pal, np.asarray(Image.open(tmp_path / 'p.png').convert('RGB')))
    Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])).save(tmp_path / 'rgba.png')
    np.testing.assert_array_equal(scoring.read_image(tmp_path / 'rgba.png'), rgb)
    Image.fromarray(rgb[:, :, 0]).convert('LA').save(tmp_path / 'la.png')
    np.testing.assert_array_equal(scoring.read_image(tmp_path / 'la.png'), rgb[:, :, 0])
    g16 = np.array([[0, 128, 129, 257], [385, 386, 65535, 65407]], np.uint16)
    iio.imwrite(tmp_path / 'g16.png', g16)
    np.testing.assert_array_equal(scoring.read_image(tmp_path / 'g16.png'),
                                  [[0, 0, 1, 1], [1, 2, 255, 255]])


def test_reads_images_as_the_data_pipeline(tmp_path, capsys):
    """One reader: a float SR image is rounded to 8 bits as training would read it."""
    from PIL import Image
    from data import common
    d_sr, d_hr = tmp_path / 'sr', tmp_path / 'hr'
    d_sr.mkdir()
    d_hr.mkdir()
    hr = rand_img(2, (20, 22))
    iio.imwrite(d_hr / 'g.png', hr)
    sr = np.random.default_rng(3).random((20, 22)).astype(np.float32)  # 0..1
    Image.fromarray(sr).save(d_sr / 'g_x2_SR.tif')
    (d_sr / 'notes.txt').write_text('not an image')
    got = scoring.read_image(d_sr / 'g_x2_SR.tif')
    np.testing.assert_array_equal(got, common.read_image(str(d_sr / 'g_x2_SR.tif'), 1)[:, :, 0])
    np.testing.assert_array_equal(got, np.floor(sr.astype(np.float64) * 255 + 0.5))
    code, out, err = run_main(['--sr', d_sr, '--hr', d_hr, '--scale', 2], capsys)
    assert code == 0, err
    assert err.strip() == 'evaluate.py: warning: skipping non-image file %s' % (d_sr / 'notes.txt')
    with pytest.warns(UserWarning, match='notes.txt'):
        res = scoring.evaluate(d_sr, d_hr, 2)
    assert res['images']['g']['psnr'] == metrics.psnr(got, hr, 2)


def test_unreadable_image_is_one_line_error(folders, capsys):
    sr_dir, hr_dir, _, _ = folders
    (sr_dir / 'birdx2.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
    code, out, err = run_main(['--sr', sr_dir, '--hr', hr_dir, '--scale', 2], capsys)
    assert code == 1 and err.startswith('evaluate.py: error:') and 'birdx2.png' in err
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err


# ---- several methods ----------------------------------------------------------

def smooth_img(seed):
    """48x48 colour test image with texture that bicubic x2 cannot restore."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:48] / 48.
    ch = [128 + 50 * np.sin(2 * np.pi * (rng.uniform(6, 12) * x + rng.uniform(6, 12) * y))
          + 30 * np.sin(2 * np.pi * rng.uniform(1, 3) * x) for _ in range(3)]
    return np.clip(np.round(np.dstack(ch)), 0, 255).astype(np.uint8)


@pytest.fixture
def methods(tmp_path):
    """HR set and three methods' folders, each in another naming convention."""
    from data.imresize import imresize
    hr_dir = tmp_path / 'Set3' / 'HR'
    hr_dir.mkdir(parents=True)
    dirs = {n: tmp_path / n for n in ('Bicubic', 'Noisy', 'Oracle')}
    for d in dirs.values():
        d.mkdir()
    for i, stem in enumerate(['baby', 'bird', 'img_001']):
        hr = smooth_img(i)
        iio.imwrite(hr_dir / (stem + '.png'), hr)
        bic = imresize(imresize(hr, 0.5), 2)
        assert bic.dtype == np.uint8 and bic.shape == hr.shape
        iio.imwrite(dirs['Bicubic'] / (stem + '_x2_SR.png'), bic)
        noise = np.random.default_rng(100 + i).normal(0, 3, hr.shape)
        iio.imwrite(dirs['Noisy'] / (stem + '_RCAN_x2.png'),
                    np.clip(np.round(hr + noise), 0, 255).astype(np.uint8))
        iio.imwrite(dirs['Oracle'] / (stem + '_GT.png'), hr)
    iio.imwrite(dirs['Bicubic'] / 'baby_x2_LR.png', smooth_img(9)[:24, :24])  # ignored
    return tmp_path / 'Set3', dirs


def method_args(dirs):
    args = []
    for name, d in dirs.items():
        args += ['--sr', '%s=%s' % (name, d)]
    return args


def test_match_stem_method_conventions():
    hr = {'baby', 'img_001'}
    assert scoring.match_stem('baby_RCAN_x2', hr, 2) == 'baby'
    assert scoring.match_stem('img_001_RDN_x2', hr, 2) == 'img_001'
    assert scoring.match_stem('baby_RealESRGAN', hr, 2) == 'baby'
    assert scoring.match_stem('img_001_GT', hr, 2) == 'img_001'
    assert scoring.match_stem('baby_x3', hr, 2) is None  # x<n> is a scale, not a method
    assert scoring.match_stem('baby_RCAN_x3', hr, 2) is None
    assert scoring.match_stem('baby_a_b', hr, 2) is None  # one token only
    assert scoring.match_stem('img', hr, 2) is None


def test_methods_ranks_tables_json(methods, tmp_path, capsys):
    hr_set, dirs = methods
    out_json, out_md, out_tex = tmp_path / 'r.json', tmp_path / 'r.md', tmp_path / 'r.tex'
    code, out, err = run_main(method_args(dirs) + ['--hr', hr_set, '--scale', 2, '--json', out_json,
                                                   '--markdown', out_md, '--latex', out_tex], capsys)
    assert code == 0, err
    data = json.loads(out_json.read_text())
    assert data['scale'] == 2 and data['shave'] == 2
    res = data['methods']
    assert list(res) == ['Bicubic', 'Noisy', 'Oracle']
    for key in ('psnr', 'ssim'):
        assert [res[n]['rank'][key] for n in res] == [3, 2, 1]
    assert res['Oracle']['mean'] == {'psnr': None, 'ssim': 1.0}
    assert set(res['Noisy']['images']) == {'baby', 'bird', 'img_001'}
    assert out_md.read_text() == out
    b, n = res['Bicubic']['mean'], res['Noisy']['mean']
    assert '| Oracle | **inf** | **1.0000** |' in out
    assert '| Noisy | %.2f | %.4f |' % (n['psnr'], n['ssim']) in out
    assert '| mean | %.2f / %.4f | %.2f / %.4f | inf / 1.0000 |' % (b['psnr'], b['ssim'], n['psnr'], n['ssim']) in out
    tex = out_tex.read_text()
    for s in ('\\toprule', '\\midrule', '\\bottomrule',
              'Bicubic & %.2f & %.4f \\\\' % (b['psnr'], b['ssim']),
              'Noisy & \\underline{%.2f} & \\underline{%.4f} \\\\' % (n['psnr'], n['ssim']),
              'Oracle & \\textbf{$\\infty$} & \\textbf{1.0000} \\\\'):
        assert s in tex
    assert tex.count('\\textbf') == 2 and tex.count('\\underline') == 2


def test_methods_match_test_only_metrics(methods):
    """Means equal evaluator.score() on the tensors --test_only builds (rgb_range 255)."""
    import evaluator
    from data import common
    hr_set, dirs = methods
    res = scoring.evaluate_methods(list(dirs.items()), hr_set, 2)['methods']
    for name, d in dirs.items():
        scores = []
        for hr_path in sorted((hr_set / 'HR').glob('*.png')):
            sr_path = [p for p in d.iterdir() if p.name.startswith(hr_path.stem + '_')
                       and not p.stem.endswith('_LR')][0]
            sr, hr = (common.np2tensor(common.read_image(str(p), 3), 255)[None]
                      for p in (sr_path, hr_path))
            scores.append(evaluator.score(sr, hr, 2, 255))
        for k, key in enumerate(('psnr', 'ssim')):
            want = float(np.mean([s[k] for s in scores]))
            got = res[name]['mean'][key]
            assert got == want if np.isinf(want) else got == pytest.approx(want, abs=1e-9)


def test_ties_share_the_mark(methods, tmp_path, capsys):
    hr_set, dirs = methods
    dirs['Copy'] = dirs['Noisy']
    out_tex = tmp_path / 't.tex'
    code, out, err = run_main(method_args(dirs) + ['--hr', hr_set, '--scale', 2, '--latex', out_tex], capsys)
    assert code == 0, err
    tex = out_tex.read_text()
    assert tex.count('\\underline') == 4 and tex.count('\\textbf') == 2


@pytest.mark.parametrize('drop', ['hr', 'sr'])
def test_methods_unmatched_file_is_one_line_error(methods, capsys, drop):
    hr_set, dirs = methods
    if drop == 'hr':
        (dirs['Noisy'] / 'bird_RCAN_x2.png').unlink()
    else:
        iio.imwrite(dirs['Noisy'] / 'zebra_RCAN_x2.png', smooth_img(5))
    code, out, err = run_main(method_args(dirs) + ['--hr', hr_set, '--scale', 2], capsys)
    assert code == 1 and out == ''
    assert err.startswith('evaluate.py: error: method Noisy:')
    assert ('bird.png' if drop == 'hr' else 'zebra_RCAN_x2.png') in err
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err


def test_single_folder_tables_and_duplicate_names(methods, tmp_path, capsys):
    hr_set, dirs = methods
    out_tex, out_json = tmp_path / 's.tex', tmp_path / 's.json'
    code, out, err = run_main(['--sr', dirs['Noisy'], '--hr', hr_set, '--scale', 2,
                               '--latex', out_tex, '--json', out_json], capsys)
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith('mean')  # today's table
    assert set(json.loads(out_json.read_text())) == {'images', 'mean', 'provenance'}  # today's layout
    assert 'Noisy & \\textbf{' in out_tex.read_text()
    with pytest.raises(SystemExit):
        evaluate.main(['--sr', 'a=%s' % dirs['Noisy'], '--sr', 'a=%s' % dirs['Oracle'],
                       '--hr', str(hr_set), '--scale', '2'])
    assert 'method names must differ' in capsys.readouterr().err


def test_two_methods_have_no_underline(methods, tmp_path, capsys):
    """With two methods the second best is the worse one: only the best is marked."""
    hr_set, dirs = methods
    del dirs['Oracle']
    out_tex = tmp_path / 'two.tex'
    code, out, err = run_main(method_args(dirs) + ['--hr', hr_set, '--scale', 2, '--latex', out_tex], capsys)
    assert code == 0, err
    tex = out_tex.read_text()
    assert '\\underline' not in tex and tex.count('\\textbf') == 2
    assert 'Noisy & \\textbf{' in tex


def test_single_set_per_image_latex(methods, tmp_path, capsys):
    hr_set, dirs = methods
    out_tex = tmp_path / 'p.tex'
    code, out, err = run_main(method_args(dirs) + ['--hr', hr_set, '--scale', 2, '--latex', out_tex,
                                                   '--per_image'], capsys)
    assert code == 0, err
    tex = out_tex.read_text()
    assert tex.count('\\begin{tabular}') == 2  # the means, then Set3 x2 per image
    assert 'Set3 $\\times$2 & \\multicolumn{2}{c}{Bicubic} & \\multicolumn{2}{c}{Noisy}' in tex
    assert 'img\\_001 & ' in tex and '\nMean & ' in tex


# ---- several sets and scales in one call ---------------------------------------

SCALES = (2, 3, 4)
SETS = {'Set5': ['baby', 'bird'], 'Set14': ['ppt3', 'zebra']}


def gauss(img, sigma, seed):
    noise = np.random.default_rng(seed).normal(0, sigma, img.shape)
    return np.clip(np.round(img + noise), 0, 255).astype(np.uint8)


@pytest.fixture
def bench(tmp_path):
    """benchmark/<Set>/HR for Set5+Set14 and three methods at x2, x3, x4, one layout each:
    Bicubic  pattern   bicubic/<Set>/x<s>/<stem>x<s>.png
    EDSR     srlab run edsr_run/results-<Set>/<stem>_x<s>_SR.png (+ _LR, _HR), all scales
    RCAN     per set   rcan/<Set>/<stem>_RCAN_x<s>.png, all scales in one folder
    EDSR adds noise of sigma s and RCAN of s / 2, so each scale has its own numbers."""
    from data.imresize import imresize
    root = tmp_path / 'benchmark'
    sr = {}
    for i, (set_name, stems) in enumerate(SETS.items()):
        (root / set_name / 'HR').mkdir(parents=True)
        (root / set_name / 'LR_bicubic').mkdir()  # not read
        for d in (tmp_path / 'edsr_run' / ('results-' + set_name), tmp_path / 'rcan' / set_name):
            d.mkdir(parents=True)
        for j, stem in enumerate(stems):
            hr = smooth_img(10 * i + j)
            iio.imwrite(root / set_name / 'HR' / (stem + '.png'), hr)
            for s in SCALES:
                lr = imresize(hr, output_shape=(48 // s, 48 // s))
                sr['Bicubic', set_name, s, stem] = imresize(lr, output_shape=(48, 48))
                sr['EDSR', set_name, s, stem] = gauss(hr, s, 100 * s + 10 * i + j)
                sr['RCAN', set_name, s, stem] = gauss(hr, s / 2, 1000 * s + 10 * i + j)
                bic = tmp_path / 'bicubic' / set_name / ('x%d' % s)
                bic.mkdir(parents=True, exist_ok=True)
                iio.imwrite(bic / ('%sx%d.png' % (stem, s)), sr['Bicubic', set_name, s, stem])
                run = tmp_path / 'edsr_run' / ('results-' + set_name)
                iio.imwrite(run / ('%s_x%d_SR.png' % (stem, s)), sr['EDSR', set_name, s, stem])
                iio.imwrite(run / ('%s_x%d_LR.png' % (stem, s)), lr)
                iio.imwrite(run / ('%s_x%d_HR.png' % (stem, s)), hr)
                iio.imwrite(tmp_path / 'rcan' / set_name / ('%s_RCAN_x%d.png' % (stem, s)),
                            sr['RCAN', set_name, s, stem])
    specs = {'Bicubic': str(tmp_path / 'bicubic' / '{set}' / 'x{scale}'),
             'EDSR': str(tmp_path / 'edsr_run'), 'RCAN': str(tmp_path / 'rcan')}
    return root, specs, sr


def bench_args(root, specs, sets='Set5+Set14', scales='2+3+4'):
    args = ['--hr', root, '--sets', sets, '--scale', scales]
    for name, spec in specs.items():
        args += ['--sr', '%s=%s' % (name, spec)]
    return args


def expected(root, sr, method, set_name, scale):
    """Per-image and mean (psnr, ssim) computed directly with metrics.calc_metrics."""
    images = {}
    for stem in SETS[set_name]:
        hr = iio.imread(root / set_name / 'HR' / (stem + '.png'))
        images[stem] = metrics.calc_metrics(sr[method, set_name, scale, stem], hr, scale)
    mean = tuple(float(np.mean([v[k] for v in images.values()])) for k in (0, 1))
    return images, mean


def test_sets_and_scales_in_one_call(bench, tmp_path, capsys):
    root, specs, sr = bench
    out_json, out_md, out_tex = tmp_path / 'r.json', tmp_path / 'r.md', tmp_path / 'r.tex'
    code, out, err = run_main(bench_args(root, specs) + ['--json', out_json, '--markdown', out_md,
                                                         '--latex', out_tex], capsys)
    assert code == 0, err
    data = json.loads(out_json.read_text())
    assert data['shave'] == {'2': 2, '3': 3, '4': 4}
    assert list(data['sets']) == ['Set5', 'Set14']
    md_rows = out.splitlines()
    assert md_rows[0] == '| Method | Scale | Set5 PSNR / SSIM | Set14 PSNR / SSIM |'
    assert out_md.read_text() == out
    tex = out_tex.read_text()
    for s in SCALES:
        cells = {m: [] for m in specs}
        tex_cells = {m: [] for m in specs}
        for set_name in SETS:
            res = data['sets'][set_name][str(s)]
            assert list(res) == ['Bicubic', 'EDSR', 'RCAN']
            for m in specs:
                assert set(res[m]) == {'images', 'mean', 'rank'}
                images, mean = expected(root, sr, m, set_name, s)
                assert list(res[m]['images']) == SETS[set_name]
                for stem, (p, q) in images.items():
                    assert res[m]['images'][stem] == {'psnr': pytest.approx(p, abs=1e-9),
                                                      'ssim': pytest.approx(q, abs=1e-12)}
                assert res[m]['mean'] == {'psnr': pytest.approx(mean[0], abs=1e-9),
                                          'ssim': pytest.approx(mean[1], abs=1e-12)}
                rank = {'RCAN': 1, 'EDSR': 2, 'Bicubic': 3}[m]
                assert res[m]['rank'] == {'psnr': rank, 'ssim': rank}
                p, q = '%.2f' % mean[0], '%.4f' % mean[1]
                cells[m].append('**%s** / **%s**' % (p, q) if rank == 1 else '%s / %s' % (p, q))
                tex_cells[m] += [{1: '\\textbf{%s}', 2: '\\underline{%s}', 3: '%s'}[rank] % v for v in (p, q)]
        for m in specs:
            assert '| %s | x%d | %s |' % (m, s, ' | '.join(cells[m])) in md_rows
            assert '%s & $\\times$%d & %s \\\\' % (m, s, ' & '.join(tex_cells[m])) in tex
    assert '\\toprule\n &  & \\multicolumn{2}{c}{Set5} & \\multicolumn{2}{c}{Set14} \\\\\n' \
           '\\cmidrule(lr){3-4} \\cmidrule(lr){5-6}\nMethod & Scale & PSNR & SSIM & PSNR & SSIM \\\\\n' in tex
    assert tex.count('\\midrule') == 3  # below the head, between x2/x3 and x3/x4
    assert tex.count('\\textbf') == 12 and tex.count('\\underline') == 12
    assert 'baby' not in out and 'baby' not in tex  # means only without --per_image


def test_per_image_tables(bench, tmp_path, capsys):
    root, specs, sr = bench
    out_tex = tmp_path / 'p.tex'
    code, out, err = run_main(bench_args(root, specs, scales='2+4') + ['--per_image', '--latex', out_tex], capsys)
    assert code == 0, err
    tex = out_tex.read_text()
    assert tex.count('\\begin{tabular}') == 1 + 2 * 2
    for set_name in SETS:
        for s in (2, 4):
            assert '### %s x%d, per image (PSNR / SSIM)' % (set_name, s) in out
            assert ('%s $\\times$%d & \\multicolumn{2}{c}{Bicubic} & \\multicolumn{2}{c}{EDSR} & '
                    '\\multicolumn{2}{c}{RCAN} \\\\' % (set_name, s)) in tex
            stem = SETS[set_name][1]
            vals = {m: expected(root, sr, m, set_name, s)[0][stem] for m in specs}
            assert '| %s | %.2f / %.4f | %.2f / %.4f | **%.2f** / **%.4f** |' % (
                stem, *vals['Bicubic'], *vals['EDSR'], *vals['RCAN']) in out.splitlines()
            assert '%s & %.2f & %.4f & \\underline{%.2f} & \\underline{%.4f} & \\textbf{%.2f} & \\textbf{%.4f} \\\\' % (
                stem, *vals['Bicubic'], *vals['EDSR'], *vals['RCAN']) in tex
    assert '### Set5 x3' not in out and '\nMean & ' in tex


def test_run_folder_with_mixed_scales(bench, tmp_path, capsys):
    """experiment/<save>/results-<Set> holds x2, x3 and x4 (SR, LR, HR): each scale picks its own."""
    root, specs, sr = bench
    run = specs['EDSR']
    for s in SCALES:
        res = scoring.evaluate(Path(run) / 'results-Set14', root / 'Set14', s)
        images, mean = expected(root, sr, 'EDSR', 'Set14', s)
        assert res['mean']['psnr'] == pytest.approx(mean[0], abs=1e-9)
    out_json = tmp_path / 'one.json'  # one set by --hr (no --sets), one scale: the single-set interface
    code, out, err = run_main(['--sr', 'EDSR=%s' % run, '--hr', root / 'Set5', '--scale', 3,
                               '--json', out_json], capsys)
    assert code == 0, err
    data = json.loads(out_json.read_text())
    assert data['methods']['EDSR']['mean']['psnr'] == pytest.approx(
        expected(root, sr, 'EDSR', 'Set5', 3)[1][0], abs=1e-9)
    code, out, err = run_main(['--sr', 'EDSR=%s' % run, '--hr', root / 'Set5' / 'HR', '--scale', '4+2',
                               '--json', out_json], capsys)
    assert code == 0, err
    data = json.loads(out_json.read_text())
    assert list(data['sets']) == ['Set5'] and list(data['sets']['Set5']) == ['4', '2']
    assert out.splitlines()[0] == '| Method | Scale | Set5 PSNR / SSIM |'


def test_pattern_layout(bench, tmp_path, capsys):
    root, specs, sr = bench
    out_json = tmp_path / 'pat.json'
    code, out, err = run_main(bench_args(root, {'Bicubic': specs['Bicubic']}, scales='3')
                              + ['--json', out_json], capsys)
    assert code == 0, err
    data = json.loads(out_json.read_text())
    for set_name in SETS:
        mean = expected(root, sr, 'Bicubic', set_name, 3)[1]
        assert data['sets'][set_name]['3']['Bicubic']['mean']['psnr'] == pytest.approx(mean[0], abs=1e-9)
    assert data['shave'] == {'3': 3}


def test_lookup_rule(tmp_path):
    for d in ('p/Set5/x2', 'run/results-Set5', 'run/Set5', 'per_set/Set5/X3', 'flat'):
        (tmp_path / d).mkdir(parents=True)
    t = str(tmp_path)
    assert scoring.sr_folder(t + '/p/{set}/x{scale}', 'Set5', 2, False) == tmp_path / 'p/Set5/x2'
    assert scoring.sr_folder(t + '/p/{set}', 'Set5', 2, False) == tmp_path / 'p/Set5/x2'
    assert scoring.sr_folder(t + '/run', 'Set5', 2, False) == tmp_path / 'run/results-Set5'  # first
    assert scoring.sr_folder(t + '/per_set', 'Set5', 3, False) == tmp_path / 'per_set/Set5/X3'
    assert scoring.sr_folder(t + '/per_set', 'Set5', 2, False) == tmp_path / 'per_set/Set5'
    assert scoring.sr_folder(t + '/flat', 'Set5', 2, True) == tmp_path / 'flat'  # one set: SPEC itself
    with pytest.raises(scoring.EvalError, match='results-Set5 or .*flat/Set5'):
        scoring.sr_folder(t + '/flat', 'Set5', 2, False)


def test_other_scales_are_skipped_not_matched():
    hr = {'baby', 'ppt3'}
    for stem in ('baby_x3_SR', 'babyx3', 'baby_x3', 'baby_RCAN_x3', 'ppt3_x4_SR'):
        assert scoring.other_scale(stem, hr, 2), stem
    for stem in ('baby_x2_SR', 'zebra_x3_SR', 'baby_a_b', 'ppt3'):
        assert not scoring.other_scale(stem, hr, 2), stem


def one_error_line(err, *needles):
    assert err.startswith('evaluate.py: error: ') and 'Traceback' not in err
    assert len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)


def test_unknown_set_folder(bench, capsys):
    root, specs, _ = bench
    code, out, err = run_main(bench_args(root, specs, sets='Set5+Set99'), capsys)
    assert code == 1 and out == ''
    one_error_line(err, 'Set99', 'Set14, Set5')


@pytest.mark.parametrize('missing', ['set', 'scale', 'pattern'])
def test_method_missing_a_set_or_scale(bench, capsys, missing):
    import shutil
    root, specs, _ = bench
    if missing == 'set':
        shutil.rmtree(Path(specs['EDSR']) / 'results-Set14')
        needles = ['method EDSR, Set14 x2:', 'results-Set14']
    elif missing == 'scale':
        for p in (Path(specs['EDSR']) / 'results-Set5').glob('*_x4_SR.png'):
            p.unlink()
        needles = ['method EDSR, Set5 x4:', 'baby.png', '4 image(s) of other scales ignored']
    else:
        shutil.rmtree(Path(specs['Bicubic'].format(set='Set14', scale=3)))
        # every folder is looked up before any image is read: the damaged image is not reached
        (Path(specs['EDSR']) / 'results-Set5' / 'baby_x2_SR.png').write_bytes(b'garbage')
        needles = ['method Bicubic, Set14 x3:', 'not a directory']
    code, out, err = run_main(bench_args(root, specs), capsys)
    assert code == 1 and out == ''
    one_error_line(err, *needles)


@pytest.mark.parametrize('flag,value', [('--scale', '2+x'), ('--scale', '0'), ('--scale', '2+2'),
                                        ('--scale', '2++3'), ('--sets', 'Set5++Set14'),
                                        ('--sets', 'Set5+Set5'), ('--sets', '../Set5'), ('--sets', '')])
def test_bad_list_values_exit_2(bench, capsys, flag, value):
    root, specs, _ = bench
    args = [str(a) for a in bench_args(root, specs)]
    args[args.index(flag) + 1] = value
    with pytest.raises(SystemExit) as e:
        evaluate.main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('evaluate.py: error: %s' % flag) and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize('sr,needle', [('RCAN=a/{set}/{name}', 'placeholders are {set} and {scale}'),
                                       ('a/{set}/x{scale}', 'name the method'),
                                       ('RCAN=a/x{scale}', 'several sets need {set}'),
                                       ('RCAN=a/{set', "--sr RCAN=a/{set: "),
                                       ])
def test_bad_patterns_exit_2(bench, capsys, sr, needle):
    root, _, _ = bench
    with pytest.raises(SystemExit) as e:
        evaluate.main([str(a) for a in bench_args(root, {})] + ['--sr', sr])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('evaluate.py: error: --sr') and needle in err and len(err.strip().splitlines()) == 1


# ---- tables() for main.py ------------------------------------------------------

def test_tables_function_marks_order_and_missing():
    res = {'Set5': {2: {'A': {'mean': {'psnr': 30.0, 'ssim': 0.9}},
                        'B': {'mean': {'psnr': 31.0, 'ssim': 0.91}}},
                    4: {'A': {'mean': {'psnr': 25.0, 'ssim': 0.7}},
                        'B': {'mean': {'psnr': 26.0, 'ssim': 0.75}},
                        'C': {'mean': {'psnr': None, 'ssim': 0.8}}}},  # None: identical (inf)
           'B100': {'2': {'A': {'mean': {'psnr': 29.0, 'ssim': 0.85}},
                          'B': {'mean': {'psnr': 29.001, 'ssim': 0.86}}}}}  # a tie at 2 decimals
    md, tex = tables.tables(res, methods_order=['B'])
    rows = md.splitlines()
    assert rows[0] == '| Method | Scale | Set5 PSNR / SSIM | B100 PSNR / SSIM |'
    assert rows[2:] == ['| B | x2 | **31.00** / **0.9100** | **29.00** / **0.8600** |',
                        '| A | x2 | 30.00 / 0.9000 | **29.00** / 0.8500 |',
                        '| B | x4 | 26.00 / 0.7500 | - / - |',
                        '| A | x4 | 25.00 / 0.7000 | - / - |',
                        '| C | x4 | **inf** / **0.8000** | - / - |']
    assert 'B & $\\times$2 & \\textbf{31.00} & \\textbf{0.9100} & \\textbf{29.00} & \\textbf{0.8600} \\\\' in tex
    assert 'A & $\\times$2 & 30.00 & 0.9000 & \\textbf{29.00} & 0.8500 \\\\' in tex  # two methods: no underline
    assert 'B & $\\times$4 & \\underline{26.00} & \\underline{0.7500} & - & - \\\\' in tex
    assert 'C & $\\times$4 & \\textbf{$\\infty$} & \\textbf{0.8000} & - & - \\\\' in tex
    assert tex.count('\\underline') == 2
    assert tables.tables(res, per_image=True) == tables.tables(res)  # no per-image values given
    with pytest.raises(ValueError, match='unknown method'):
        tables.tables(res, methods_order=['D'])


def test_tables_from_run_results_and_json(bench, tmp_path, capsys):
    run_json = {'Set5': {'2': {'psnr': 33.0, 'ssim': 0.92, 'bicubic_psnr': 30.0, 'bicubic_ssim': 0.88,
                               'seconds_per_image': 0.1}},
                'Demo': {'2': {'seconds_per_image': 0.1}}}  # saved only, no HR: left out
    res = tables.from_run_results(run_json, 'EDSR')
    assert res == {'Set5': {'2': {'Bicubic': {'mean': {'psnr': 30.0, 'ssim': 0.88}},
                                  'EDSR': {'mean': {'psnr': 33.0, 'ssim': 0.92}}}}}
    md, _ = tables.tables(res)
    assert md.splitlines()[2:] == ['| Bicubic | x2 | 30.00 / 0.8800 |', '| EDSR | x2 | **33.00** / **0.9200** |']
    root, specs, _ = bench  # the JSON's 'sets' is tables() input: same tables as the command wrote
    out_json, out_tex = tmp_path / 'g.json', tmp_path / 'g.tex'
    code, out, err = run_main(bench_args(root, specs, scales='2') + ['--per_image', '--json', out_json,
                                                                     '--latex', out_tex], capsys)
    assert code == 0, err
    assert tables.tables(json.loads(out_json.read_text())['sets'], per_image=True) == (out, out_tex.read_text())
