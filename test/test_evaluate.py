import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[1] / 'src'
sys.path.insert(0, str(SRC))

import evaluate  # noqa: E402
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
    res = evaluate.evaluate(sr_dir, hr_dir, 2, shave=5)
    p, s = metrics.calc_metrics(sr['bird'], hr['bird'], 5)
    assert res['images']['bird'] == {'psnr': p, 'ssim': s}
    assert evaluate.evaluate(sr_dir, hr_dir, 2)['images']['bird']['psnr'] == metrics.psnr(sr['bird'], hr['bird'], 2)


def test_match_stem_rule():
    hr = {'baby', 'bird', 'a_SR'}
    assert evaluate.match_stem('baby', hr, 2) == 'baby'
    assert evaluate.match_stem('baby_x2_SR', hr, 2) == 'baby'
    assert evaluate.match_stem('baby_SR', hr, 2) == 'baby'
    assert evaluate.match_stem('babyx2', hr, 2) == 'baby'
    assert evaluate.match_stem('baby_x2', hr, 2) == 'baby'
    assert evaluate.match_stem('a_SR', hr, 2) == 'a_SR'  # exact stem first
    assert evaluate.match_stem('baby_x3_SR', hr, 2) is None  # other scale
    assert evaluate.match_stem('bab', hr, 2) is None


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


def test_read_image_modes(tmp_path):
    from PIL import Image

    rgb = rand_img(1, (6, 7, 3))
    Image.fromarray(rgb).convert('P').save(tmp_path / 'p.png')
    pal = evaluate.read_image(tmp_path / 'p.png')
    assert pal.shape == (6, 7, 3)
    np.testing.assert_array_equal(pal, np.asarray(Image.open(tmp_path / 'p.png').convert('RGB')))
    Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])).save(tmp_path / 'rgba.png')
    np.testing.assert_array_equal(evaluate.read_image(tmp_path / 'rgba.png'), rgb)
    Image.fromarray(rgb[:, :, 0]).convert('LA').save(tmp_path / 'la.png')
    np.testing.assert_array_equal(evaluate.read_image(tmp_path / 'la.png'), rgb[:, :, 0])
    g16 = np.array([[0, 128, 129, 257], [385, 386, 65535, 65407]], np.uint16)
    iio.imwrite(tmp_path / 'g16.png', g16)
    np.testing.assert_array_equal(evaluate.read_image(tmp_path / 'g16.png'),
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
    got = evaluate.read_image(d_sr / 'g_x2_SR.tif')
    np.testing.assert_array_equal(got, common.read_image(str(d_sr / 'g_x2_SR.tif'), 1)[:, :, 0])
    np.testing.assert_array_equal(got, np.floor(sr.astype(np.float64) * 255 + 0.5))
    code, out, err = run_main(['--sr', d_sr, '--hr', d_hr, '--scale', 2], capsys)
    assert code == 0, err
    assert err.strip() == 'evaluate.py: warning: skipping non-image file %s' % (d_sr / 'notes.txt')
    with pytest.warns(UserWarning, match='notes.txt'):
        res = evaluate.evaluate(d_sr, d_hr, 2)
    assert res['images']['g']['psnr'] == metrics.psnr(got, hr, 2)


def test_unreadable_image_is_one_line_error(folders, capsys):
    sr_dir, hr_dir, _, _ = folders
    (sr_dir / 'birdx2.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
    code, out, err = run_main(['--sr', sr_dir, '--hr', hr_dir, '--scale', 2], capsys)
    assert code == 1 and err.startswith('evaluate.py: error:') and 'birdx2.png' in err
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err
