"""utility: the experiment directory (checkpoint), results.json, PSNR plots,
the background image writer, atomic saves, --reset and the refusal to
overwrite a training run."""
import json
import os
import pickle
import sys
import threading
import types
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

import option  # noqa: E402
import atomic  # noqa: E402
import errors  # noqa: E402
import utility  # noqa: E402
from conftest import error_lines, run_main  # noqa: E402


def ckp_args(*argv, save='run'):
    return option.parse_args(['--test_only', '--pre_train', 'none', '--cpu', '--data_test', 'Demo', '--save', save]
                             + list(argv))


def train_args(*argv, save='run'):
    return option.parse_args(['--cpu', '--data_test', 'Demo', '--data_train', 'Sample', '--save', save,
                              '--scale', '2+3', '--data_test', 'Demo'] + list(argv))


def test_checkpoint_creates_run_dir(tmp_path):
    ckp = utility.checkpoint(ckp_args(), root=tmp_path)
    d = tmp_path / 'run'
    assert Path(ckp.dir) == d
    ckp.write_log('hello', quiet=True)
    ckp.done()
    assert (d / 'config.txt').read_text().count('scale: [4]') == 1
    assert (d / 'log.txt').read_text().splitlines() == ['hello']
    # a second run appends, it never deletes
    (d / 'keep.txt').write_text('x')
    ckp = utility.checkpoint(ckp_args(), root=tmp_path)
    ckp.write_log('again', quiet=True)
    ckp.done()
    assert (d / 'log.txt').read_text().splitlines() == ['hello', 'again']
    assert (d / 'keep.txt').exists() and (d / 'config.txt').read_text().count('scale: [4]') == 2


def test_reset_is_the_only_delete(tmp_path):
    d = tmp_path / 'run'
    (d / 'model').mkdir(parents=True)
    (d / 'model' / 'model_latest.pt').write_bytes(b'x')
    (d / 'log.txt').write_text('old\n')
    utility.checkpoint(ckp_args(), root=tmp_path).done()  # test-only into a training run: kept
    assert (d / 'model' / 'model_latest.pt').exists()
    utility.checkpoint(ckp_args('--reset'), root=tmp_path).done()
    assert not (d / 'model' / 'model_latest.pt').exists()
    assert (d / 'log.txt').read_text() == ''


def test_a_locked_run_names_the_holder_even_before_it_wrote_its_pid(tmp_path):
    """A process that has taken the lock of experiment/run but not yet
    written its PID into the lock file is still named (the kernel's /proc/locks)."""
    import subprocess
    (tmp_path / 'run').mkdir()
    holder = subprocess.Popen([sys.executable, '-c', (
        'import fcntl, sys, time\n'
        f'f = open({str(tmp_path / "run" / ".lock")!r}, "a+")\n'
        'fcntl.flock(f, fcntl.LOCK_EX)\nprint("locked", flush=True)\ntime.sleep(60)')],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        assert (tmp_path / 'run' / '.lock').read_text() == ''
        with pytest.raises(errors.SRLabError) as e:
            utility.checkpoint(train_args(), root=tmp_path)
        assert f'experiment/run is in use by process {holder.pid} ' in str(e.value)
    finally:
        holder.kill()
        holder.wait()


def test_existing_training_run_is_refused(tmp_path):
    d = tmp_path / 'run'
    (d / 'model').mkdir(parents=True)
    atomic.atomic_save({}, d / 'model' / 'model_latest.pt')
    with pytest.raises(errors.SRLabError) as e:
        utility.checkpoint(train_args(), root=tmp_path)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and '--save' in msg and '--load' in msg and '--reset' in msg
    assert (d / 'model' / 'model_latest.pt').exists()
    utility.checkpoint(train_args('--reset'), root=tmp_path).done()
    assert not (d / 'model' / 'model_latest.pt').exists()


def test_test_only_run_is_not_a_training_run(tmp_path):
    """A --test_only run leaves no weights: training with the same --save afterwards is allowed."""
    utility.checkpoint(ckp_args(), root=tmp_path).done()
    ckp = utility.checkpoint(train_args(), root=tmp_path)
    ckp.done()


def test_refusal_through_main(tmp_path, exp_name, exp_dir, capsys):
    save = exp_name('refuse')
    d = exp_dir(save)
    (d / 'model').mkdir(parents=True)
    atomic.atomic_save({}, d / 'model' / 'model_latest.pt')
    code, out, err = run_main(['--save', save, '--data_train', 'Sample', '--data_test', 'Demo', '--cpu',
                               '--dir_cache', tmp_path / 'cache', '--n_threads', '0'], capsys)
    assert code != 0
    lines = error_lines(err)
    assert len(lines) == 1 and '--save' in lines[0], err
    assert (d / 'model' / 'model_latest.pt').exists()


def stub_loaders(*names):
    """Stand-ins for the test loaders of sets `names` (the Evaluator's columns)."""
    return [types.SimpleNamespace(dataset=types.SimpleNamespace(name=n)) for n in names]


def test_results_json_and_psnr_plots(tmp_path):
    from evaluator import Evaluator
    from state import Keyed, RunState
    args = train_args('--data_test', 'Demo').replace(data_test=['SetA', 'SetB'])
    ckp = utility.checkpoint(args, root=tmp_path)
    ev = Evaluator(args, stub_loaders('SetA', 'SetB'), ckp)
    results = {'SetA': {'2': {'psnr': 30.5, 'ssim': 0.9, 'seconds_per_image': 0.1}}}
    ev.add('SetA', 2, results['SetA']['2'])
    ev.write_results()
    written = json.loads((tmp_path / 'run' / 'results.json').read_text())
    assert written.pop('provenance')['precision'] == 'fp32' and written == results  # and where they came from
    log = torch.cat([torch.tensor([[[30.0 + epoch, 28.0], [25.0, 24.0 + epoch]]]) for epoch in (1, 2)])
    ev.load_state_dict({'psnr_log': log, 'best': {}, 'bicubic': {}, 'results': results})
    # a save: exported files (weights, psnr_log.pt and plots), then state.pt
    calls = []
    model = types.SimpleNamespace(export=lambda *a, **k: calls.append(('model', a, k)),
                                  state_dict=lambda: {'w': torch.zeros(2)})
    run = RunState(ckp.dir, [Keyed('model', model), ev])
    run.save(lambda: (model.export(ckp.get_path('model'), 2, is_best=True), ev.export()))
    calls.append('state') if (tmp_path / 'run' / 'state.pt').exists() else None
    ckp.done()
    d = tmp_path / 'run'
    for name in ('SetA', 'SetB'):
        img = iio.imread(d / f'test_{name}.png')
        assert img.ndim == 3 and img.shape[0] > 100
        assert (d / f'test_{name}.pdf').stat().st_size > 0
    log = torch.load(d / 'psnr_log.pt')
    assert log.shape == (2, 2, 2) and log[1, 1, 1] == 26.0
    assert calls[0][:2] == ('model', (str(d / 'model'), 2)) and calls[0][2]['is_best'] is True
    assert 'state' in calls
    # a resumed session may test other sets: the log keeps a column per set of this session
    ev = Evaluator(args.replace(data_test=['SetC', 'SetB']), stub_loaders('SetC', 'SetB'), ckp)
    ev.load_state_dict(torch.load(d / 'state.pt', weights_only=True))
    assert ev.log.shape == (2, 2, 2) and ev.log[:, 0].isnan().all() and torch.equal(ev.log[:, 1], log[:, 1])


# ---- ImageWriter -------------------------------------------------------------
def _close_with_timeout(writer, seconds=20):
    box = {}

    def target():
        try:
            box['n'] = writer.close()
        except Exception as e:  # noqa: BLE001
            box['err'] = e
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), 'ImageWriter.close() hangs'
    return box


def test_image_writer_writes_everything(tmp_path):
    rng = np.random.default_rng(0)
    w = utility.ImageWriter(n_threads=2, maxsize=2)  # a tiny queue: the producer must wait, not drop
    imgs = {}
    for i in range(40):
        imgs[i] = rng.integers(0, 256, (8, 9, 3) if i % 2 else (8, 9), dtype=np.uint8)
        w.put(str(tmp_path / f'{i}.png'), imgs[i])
    box = _close_with_timeout(w)
    assert box == {'n': 40}
    for i, a in imgs.items():
        np.testing.assert_array_equal(iio.imread(tmp_path / f'{i}.png'), a)
    assert sorted(os.listdir(tmp_path)) == sorted(f'{i}.png' for i in imgs)  # no temp files left


def test_image_writer_reports_failures_at_close(tmp_path):
    w = utility.ImageWriter(n_threads=2, maxsize=1)
    bad = str(tmp_path / 'no' / 'such' / 'dir' / 'x.png')
    for i in range(5):
        w.put(bad.replace('x.png', f'{i}.png'), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / 'adir.png').mkdir()  # the temp file is written, the rename over a directory fails
    w.put(str(tmp_path / 'adir.png'), np.zeros((4, 4, 3), np.uint8))
    for i in range(10):  # images after the failures are still written
        w.put(str(tmp_path / f'ok{i}.png'), np.full((4, 4, 3), i, np.uint8))
    box = _close_with_timeout(w)
    assert isinstance(box.get('err'), errors.SRLabError)
    msg = str(box['err'])
    assert '6 result image(s)' in msg and 'no/such/dir' in msg and len(msg.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(['adir.png'] + [f'ok{i}.png' for i in range(10)])
    assert _close_with_timeout(w) == {'n': 10}  # closing again: no hang, nothing new
    with pytest.raises(errors.SRLabError):
        w.put(str(tmp_path / 'late.png'), np.zeros((4, 4, 3), np.uint8))


def test_checkpoint_save_results_with_writer(tmp_path):
    args = ckp_args('--save_results', '--save_gt')
    ckp = utility.checkpoint(args, root=tmp_path)
    ds = types.SimpleNamespace(name='SetX')
    sr = torch.full((1, 3, 8, 8), 100.4)
    lr = torch.full((1, 3, 4, 4), 3.0)
    hr = torch.full((1, 3, 8, 8), 250.0)
    ckp.save_results(ds, 'img', [sr, lr, hr], 2)
    ckp.done()
    d = tmp_path / 'run' / 'results-SetX'
    assert sorted(p.name for p in d.iterdir()) == ['img_x2_HR.png', 'img_x2_LR.png', 'img_x2_SR.png']
    assert (iio.imread(d / 'img_x2_SR.png') == 100).all() and iio.imread(d / 'img_x2_LR.png').shape == (4, 4, 3)


# ---- atomic_save -------------------------------------------------------------
class Unpicklable:
    def __reduce__(self):
        raise pickle.PicklingError('refusing to pickle')


def test_atomic_save_never_leaves_partial_file(tmp_path):
    path = tmp_path / 'state.pt'
    atomic.atomic_save({'a': torch.arange(5)}, path)
    good = path.read_bytes()
    big = torch.zeros(1 << 20)  # written first: the failure comes half-way through
    with pytest.raises(Exception):
        atomic.atomic_save({'big': big, 'bad': Unpicklable()}, path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ['state.pt']
    assert torch.equal(torch.load(path)['a'], torch.arange(5))


def test_atomic_write_os_error_is_one_line(tmp_path):
    path = tmp_path / 'f.txt'
    atomic.atomic_write_text('old', path)

    def failing(f):
        f.write(b'partial')
        raise OSError(28, 'No space left on device')
    with pytest.raises(errors.SRLabError) as e:
        atomic._atomic(path, failing)
    assert 'No space left' in str(e.value) and len(str(e.value).splitlines()) == 1
    assert path.read_text() == 'old' and os.listdir(tmp_path) == ['f.txt']
    with pytest.raises(errors.SRLabError):
        atomic.atomic_save({}, tmp_path / 'missing_dir' / 'x.pt')


def test_a_point_with_no_neighbour_is_drawn_in_a_long_series():
    """A set tested only at the end of a long run (the speedrun's Set14 and B100: NaN at the 39 curve
    points, a PSNR at the 40th), or a final point after a gap in a long curve, is a dot on the
    figure: a line alone draws nothing there."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from plot import MARKERS_UP_TO, draw_series

    def dots(ax):
        """The finite (x, y) points drawn with a marker."""
        return {(float(x), float(y)) for ln in ax.lines if ln.get_marker() == 'o'
                for x, y in zip(ln.get_xdata(), ln.get_ydata()) if np.isfinite(y)}

    n = MARKERS_UP_TO + 10
    x = np.arange(1.0, n + 1)
    fig, ax = plt.subplots()
    try:
        end_only = np.full(n, np.nan)
        end_only[-1] = 33.0
        draw_series(ax, x, end_only, 'Set14', 'C0')
        assert dots(ax) == {(n, 33.0)}
        ax.cla()
        gap = 30 + x / n  # a long joined curve, then a gap, then one last point
        gap[-2] = np.nan
        draw_series(ax, x, gap, 'Set5', 'C0')
        assert dots(ax) == {(n, gap[-1])} and len(ax.lines) == 2
        ax.cla()
        draw_series(ax, x[:-2], gap[:-2], 'Set5', 'C0')  # long and joined: a plain line, no dot
        assert dots(ax) == set() and len(ax.lines) == 1
        ax.cla()
        draw_series(ax, x[:MARKERS_UP_TO], gap[:MARKERS_UP_TO], 'Set5', 'C0')  # short: a dot at each point
        assert len(dots(ax)) == MARKERS_UP_TO
    finally:
        plt.close(fig)
