"""Inputs a user brings are read as a viewer shows them (data/common.decode):
EXIF orientation applied, CMYK and palette images as Pillow's RGB, 16-bit
images at full precision where the path allows (Demo) and one warning line
where it does not; dataset names in one spelling (`video` in any case is the
video mode, an unknown name is refused in one line)."""
import shutil
import struct
import uuid
import warnings
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SHARED, run_main
from data import common


def photo(h=64, w=80):
    """A smooth colour image (no flat areas: orientation and colours are visible)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (h + w)], axis=2).astype(np.uint8)


def png16(path, a):
    """A 16-bit PNG written by hand (Pillow writes no 16-bit colour PNG): colour type 2 (RGB) or 0 (gray)."""
    h, w = a.shape[:2]
    colour = 2 if a.ndim == 3 else 0
    raw = b''.join(b'\x00' + a[y].astype('>u2').tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    head = struct.pack('>IIBBBBB', w, h, 16, colour, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', head) + chunk(b'IDAT', zlib.compress(raw))
                     + chunk(b'IEND', b''))
    return path


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(common, 'WARNED', set())


def test_exif_orientation_is_applied(tmp_path):
    """A phone photo held upright: stored 80 wide and 64 high with orientation 6 (rotate 90 clockwise to view)."""
    img = Image.fromarray(photo())
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / 'phone.jpg'
    img.save(path, quality=95, exif=exif)
    got = common.read_image(str(path))
    assert got.shape == (80, 64, 3)  # shown 64 wide and 80 high
    want = np.asarray(Image.open(path).convert('RGB').transpose(Image.Transpose.ROTATE_270))
    assert (got == want).all()


def test_phone_photo_comes_out_of_demo_upright(tmp_path, capsys):
    folder = tmp_path / 'demo'
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo()).save(folder / 'phone.jpg', quality=95, exif=exif)
    save = f'_test_inputs_{uuid.uuid4().hex[:8]}'
    try:
        code, out, err = run_main(['--model', 'Bicubic', '--scale', '2', '--data_test', 'Demo', '--dir_demo', folder,
                                   '--test_only', '--save', save, '--cpu', '--n_threads', '0'], capsys)
        assert code == 0, err
        sr = iio.imread(REPO / 'experiment' / save / 'results-Demo' / 'phone_x2_SR.png')
        assert sr.shape == (160, 128, 3)  # 128 wide and 160 high: upright
    finally:
        shutil.rmtree(REPO / 'experiment' / save, ignore_errors=True)


def test_cmyk_jpeg_gives_pillows_rgb(tmp_path):
    path = tmp_path / 'cmyk.jpg'
    Image.fromarray(photo()).convert('CMYK').save(path, quality=95)
    assert Image.open(path).mode == 'CMYK'
    got = common.read_image(str(path))
    want = np.asarray(Image.open(path).convert('RGB'))
    assert got.shape == want.shape and (got == want).all()
    assert np.abs(got.reshape(-1, 3).mean(0) - photo().reshape(-1, 3).mean(0)).max() < 3  # colours kept


def test_palette_images_give_pillows_rgb(tmp_path):
    src = Image.fromarray(photo()).quantize(colors=32)
    for name, extra in (('pal.png', {}), ('pal_alpha.png', {'transparency': 0}), ('pal.gif', {})):
        path = tmp_path / name
        src.save(path, **extra)
        got = common.read_image(str(path))
        want = np.asarray(Image.open(path).convert('RGB'))
        assert got.shape == (64, 80, 3) and (got == want).all(), name


def test_16bit_gray_png_at_full_precision_through_demo(tmp_path, fresh_warnings):
    a = (np.arange(64 * 80).reshape(64, 80) * 13 % 65536).astype(np.uint16)
    path = str(png16(tmp_path / 'g16.png', a))
    got = common.read_image(path, n_colors=1, bits=16)
    assert got.dtype == np.uint16 and (got[..., 0] == a).all()
    t = common.np2tensor(got, 255)
    assert abs(t[0, 5, 7].item() - a[5, 7] / 65535 * 255) < 1e-4  # scaled to --rgb_range, not cut to 8 bits
    assert len(np.unique(t.numpy())) > 256
    from data.demo import make_dataset  # the Demo set reads 16 bits
    import option
    args = option.parse_args(['--model', 'Bicubic', '--scale', '2', '--data_test', 'Demo', '--dir_demo',
                              str(tmp_path), '--test_only', '--n_colors', '1'])
    lr = make_dataset(args, 'Demo', train=False)[0][0]
    assert len(np.unique(lr.numpy())) > 256


def test_16bit_reduced_to_8_bits_warns_once(tmp_path, fresh_warnings):
    a = (np.arange(64 * 80).reshape(64, 80) * 13 % 65536).astype(np.uint16)
    paths = [str(png16(tmp_path / f'g{i}.png', a)) for i in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        got = [common.read_image(p, n_colors=1) for p in paths]
    assert got[0].dtype == np.uint8 and (got[0][..., 0] == np.floor(a / 257 + 0.5)).all()
    lines = [str(w.message) for w in caught]
    assert len(lines) == 1 and paths[0] in lines[0] and '16-bit' in lines[0] and '8 bits' in lines[0]


def test_16bit_colour_png_says_it_is_decoded_to_8_bits(tmp_path, fresh_warnings):
    a = (np.random.default_rng(0).random((8, 10, 3)) * 65535).astype(np.uint16)
    path = str(png16(tmp_path / 'rgb16.png', a))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        got = common.read_image(path, bits=16)
    assert got.dtype == np.uint8 and (got == a >> 8).all()
    assert len(caught) == 1 and path in str(caught[0].message) and 'TIFF' in str(caught[0].message)


def test_16bit_tiff_at_full_precision(tmp_path):
    a = (np.random.default_rng(0).random((8, 10, 3)) * 65535).astype(np.uint16)
    path = tmp_path / 'rgb16.tif'
    iio.imwrite(path, a)
    got = common.read_image(str(path), bits=16)
    assert got.dtype == np.uint16 and (got == a).all()


def test_dataset_names_take_one_spelling(tmp_path):
    import option
    if not (SHARED / 'benchmark' / 'Set5').is_dir():
        pytest.skip(f'needs {SHARED}/benchmark/Set5')
    args = option.parse_args(['--model', 'Bicubic', '--data_test', 'sEt5+sample+DEMO', '--dir_data', str(SHARED),
                              '--test_only', '--dir_demo', str(tmp_path)])
    assert args.data_test == ['Set5', 'Sample', 'Demo']


@pytest.mark.parametrize('spelling', ['Video', 'VIDEO', 'video'])
def test_video_in_any_case_is_the_video_mode(tmp_path, capsys, spelling):
    frames = tmp_path / 'frames'
    frames.mkdir()
    for i in range(3):
        iio.imwrite(frames / f'{i:03d}.png', np.roll(photo(16, 24), i, axis=1))
    save = f'_test_inputs_{uuid.uuid4().hex[:8]}'
    try:
        code, out, err = run_main(['--model', 'Bicubic', '--scale', '2', '--data_test', spelling, '--dir_demo',
                                   frames, '--test_only', '--save', save, '--cpu', '--n_threads', '0'], capsys)
        assert code == 0, err
        assert '3 frames in' in out
        assert list((REPO / 'experiment' / save).glob('*_x2.mp4'))
    finally:
        shutil.rmtree(REPO / 'experiment' / save, ignore_errors=True)


def test_a_name_that_is_no_set_is_refused_in_one_line(capsys):
    code, out, err = run_main(['--model', 'Bicubic', '--data_test', 'Vidoe', '--test_only'], capsys)
    assert code == 2 and err.count('\n') == 1 and "unknown dataset 'Vidoe'" in err and 'did you mean' in err
    code, out, err = run_main(['--model', 'Bicubic', '--data_test', 'Video', '--dir_demo', '/nonexistent/clip.mp4',
                               '--test_only'], capsys)
    assert code == 2 and err.count('\n') == 1 and '--dir_demo' in err and '/nonexistent/clip.mp4' in err
