"""Reliability (issue 5): a run survives SIGKILL at any point (during steps,
tests and inside atomic file writes), SIGTERM/SIGINT, NaN losses and failed
writes without losing work -- the finished run equals an uninterrupted one --
and every bad input gets one clear error line (or a warning and a skip).

The kill counts are reported on the terminal at the end of the module:
    fault suite: survived N SIGKILLs (...), 2 SIGTERM, 1 SIGINT
"""
import errno
import os
import random
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / 'src'
EXP = REPO / 'experiment'
sys.path.insert(0, str(SRC))

import option  # noqa: E402
import errors  # noqa: E402
import utility  # noqa: E402
import zygote  # noqa: E402
from faultpoints import fail_nth_write  # noqa: E402
from dataloader import WORKER_DIED  # noqa: E402

BATCH = 4
STEPS = 6       # --test_every: batches per epoch
EPOCHS = 4
TIMEOUT = 240   # seconds for one launch (2 busy cores)
FLAGS = ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--scale', '2+3+4',
         '--data_train', 'Sample', '--data_test', 'Sample', '--patch_size', '48', '--batch_size', str(BATCH),
         '--test_every', str(STEPS), '--epochs', str(EPOCHS), '--lr', '1e-3', '--decay', '2-3', '--gamma', '0.5',
         '--n_threads', '0', '--cpu', '--print_every', '1']

# what the module survived, printed at its end
SURVIVED = {'SIGKILL': Counter(), 'SIGKILL_save': [], 'SIGTERM': 0, 'SIGINT': 0}


# ---- fixtures ----------------------------------------------------------------
@pytest.fixture(scope='module', autouse=True)
def report(request):
    yield
    k = SURVIVED['SIGKILL']
    saves = SURVIVED['SIGKILL_save']
    n = sum(v for p, v in k.items() if p != 'before_first_save') + len(saves)
    parts = [f'{k[p]} during {p}' for p in ('startup', 'steps', 'tests', 'saves') if k[p]]
    if k['loader workers']:
        parts.append(f'{k["loader workers"]} of a loader worker')
    if saves:
        parts.append(f'{len(saves)} inside atomic writes of {", ".join(sorted(set(saves)))}')
    if k['before_first_save']:
        parts.append(f'{k["before_first_save"]} of them before the first save')
    line = (f'fault suite: survived {n} SIGKILLs ({"; ".join(parts)}), '
            f'{SURVIVED["SIGTERM"]} SIGTERM, {SURVIVED["SIGINT"]} SIGINT')
    tr = request.config.pluginmanager.get_plugin('terminalreporter')
    if tr is not None:
        tr.write_line('')
        tr.write_line(line)
    else:
        print(line)


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    """The module's --dir_cache, with the Sample tiles already cut (tests that look into it, such
    as the unwritable-results one, find them whichever test runs first)."""
    import data
    import option
    d = str(tmp_path_factory.mktemp('fault_cache'))
    data.Data(option.parse_args(flags(d, '--test_only', '--pre_train', 'none')))
    return d


@pytest.fixture(scope='module')
def names():
    """Unique experiment names; experiment/<name> removed at the end of the module."""
    made = []

    def make(tag):
        n = f'pytest_faults_{tag}_{uuid.uuid4().hex[:8]}'
        made.append(n)
        return n
    yield make
    for n in made:
        shutil.rmtree(EXP / n, ignore_errors=True)


def flags(cache, *extra):
    return FLAGS + ['--dir_cache', cache, *extra]


# ---- launching and signalling main.py ---------------------------------------
STEP_RE = re.compile(r'^\[(\d+)/\d+\]\t')
EPOCH_RE = re.compile(r'^\[Epoch (\d+)\]')
RESUMED_RE = re.compile(r'^Resumed from .*continuing at epoch (\d+)')
TABLE_LAST_RE = re.compile(r'^Sample\s+x4\s')     # the last line printed before an epoch's save
PHASES = {0: 'startup', 1: 'steps', 2: 'tests', 3: 'saves'}


def advance(pos, line):
    """Where the run is after printing `line`: (epoch, phase, batches done);
    phase 0 startup, 1 training steps, 2 test, 3 saving the epoch."""
    e = pos[0]
    if m := EPOCH_RE.match(line):
        return (int(m[1]), 1, 0)
    if m := STEP_RE.match(line):
        return (e, 1, int(m[1]) // BATCH)
    if m := RESUMED_RE.match(line):
        return (int(m[1]) - 1, 2, 0)
    if line.startswith(('Scales drawn', 'Evaluation:')):
        return (e, 2, 0)
    if TABLE_LAST_RE.match(line):
        return (e, 3, 0)
    return pos


class Launch:
    """main.py argv in a real process (zygote.py: forked from a server that has
    imported torch and srlab), its stdout followed line by line."""

    def __init__(self, argv, env=None, fsize=None, fresh=False):
        self.dir = tempfile.mkdtemp(prefix='srlab_launch_')
        self.out_path, self.err_path = Path(self.dir, 'out'), Path(self.dir, 'err')
        env = dict(env or {})
        kill = env.pop('SRLAB_FAULT_KILL_ON_SAVE', None)
        self.argv = list(map(str, argv))
        self.p = zygote.start(self.argv, self.out_path, self.err_path, env, fsize,
                              None if kill is None else int(kill), fresh)
        self.pid = self.p.pid
        self.out = None
        self.rest = ''
        self.timed_out = False
        self.watchdog = threading.Timer(TIMEOUT, self._expire)
        self.watchdog.start()
        self.lines = []
        self.pos = (0, 0, 0)

    def _expire(self):
        self.timed_out = True
        self.p.kill()

    def send_signal(self, signum):
        os.kill(self.pid, signum)

    def _read(self):
        """The complete lines printed since the last call."""
        if self.out is None:
            if not self.out_path.exists():
                return []
            self.out = open(self.out_path)
        lines = (self.rest + self.out.read()).split('\n')
        self.rest = lines.pop()
        return lines

    def _follow(self):
        """Each line the process prints, until it has ended and all are read."""
        while True:
            alive = self.p.is_alive()  # before reading: once it has ended, all it printed is in the file
            lines = self._read() + ([] if alive or not self.rest else [self.rest])
            for line in lines:
                self.lines.append(line)
                self.pos = advance(self.pos, line)
                yield line
            if not alive:
                return
            time.sleep(0.005)

    def until(self, target, signum=None):
        """Send `signum` (if any) as soon as the run reaches position `target`;
        False when the run ended before."""
        for _ in self._follow():
            if self.pos >= target:
                if signum is not None:
                    self.send_signal(signum)
                return True
        return False

    def finish(self):
        """(returncode, stdout, stderr); the position is that of the last line printed."""
        for _ in self._follow():
            pass
        self.p.join()
        self.watchdog.cancel()
        assert not self.timed_out, f'main.py {" ".join(self.argv)} ran past {TIMEOUT} s'
        if self.out is not None:
            self.out.close()
        err = self.err_path.read_text() if self.err_path.exists() else ''
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.p.exitcode, '\n'.join(self.lines), err


def run(argv, **kw):
    launch = Launch(argv, **kw)
    return launch.finish()


def load_weights(name):
    return torch.load(EXP / name / 'model' / 'model_latest.pt', weights_only=True)


def assert_same_weights(a, b, atol):
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= atol, f'weights differ from the uninterrupted run by {worst:.3g} (> {atol})'


def assert_files_load(name):
    """Every file a run saved loads completely (atomic writes: never a partial file)."""
    d = EXP / name
    for p in list(d.glob('*.pt')) + list((d / 'model').glob('*.pt')):
        obj = torch.load(p, weights_only=True)
        if p.name.startswith('model_'):
            assert all(torch.isfinite(v).all() for v in obj.values() if v.is_floating_point()), p
    if (d / 'state.pt').exists():
        st = torch.load(d / 'state.pt', weights_only=True)
        assert 0 <= st['epoch'] <= EPOCHS and 0 <= st['start_batch'] < STEPS


def temps(name):
    d = EXP / name
    return sorted(p.name for p in list(d.glob('.*.tmp')) + list((d / 'model').glob('.*.tmp')))


def resume_argv(cache, name, *extra):
    return flags(cache, '--load', name, '--resume', '-1', *extra)


def error_lines(err):
    """stderr lines that are not warnings (warnings.warn prints the message and the source line)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return [ln for ln in lines if 'Warning:' not in ln and not ln.startswith(' ')]


@pytest.fixture(scope='module')
def reference(cache, names):
    """The uninterrupted run: final weights, loss log and PSNR log."""
    name = names('ref')
    rc, out, err = run(flags(cache, '--save', name))
    assert rc == 0, err[-3000:]
    st = torch.load(EXP / name / 'state.pt', weights_only=True)
    assert st['epoch'] == EPOCHS
    return {'weights': load_weights(name), 'loss_log': st['loss_log'], 'psnr_log': st['psnr_log'], 'name': name}


def copy_of(reference, names, tag):
    """A run to damage or resume: a copy of the finished reference run (EPOCHS epochs)."""
    name = names(tag)
    shutil.copytree(EXP / reference['name'], EXP / name)
    return name


def assert_like_reference(name, reference, atol=1e-6):
    assert temps(name) == [], 'temp files of killed writes are removed when the run is resumed'
    assert_files_load(name)
    assert_same_weights(load_weights(name), reference['weights'], atol)
    st = torch.load(EXP / name / 'state.pt', weights_only=True)
    assert st['epoch'] == EPOCHS
    assert st['loss_log'].shape == reference['loss_log'].shape
    assert torch.allclose(st['loss_log'], reference['loss_log'], atol=1e-3, rtol=0)
    assert st['psnr_log'].shape == reference['psnr_log'].shape == (EPOCHS, 1, 3)
    assert torch.allclose(st['psnr_log'], reference['psnr_log'], atol=1e-3, rtol=0)


# ---- a. SIGKILL at random points --------------------------------------------
def kill_plan(seed=5, kills=20):
    """Positions to SIGKILL at, in order (a soak of `kills` kills): once at
    startup, then in every epoch after random numbers of steps, during its
    test and during its save."""
    rng = random.Random(seed)
    per_epoch, extra = divmod(kills - 1, EPOCHS)
    plan = [(0, 0, 0)]
    for e in range(1, EPOCHS + 1):
        steps = sorted(rng.sample(range(1, STEPS - 1), per_epoch - 2 + (e <= extra)))
        plan += [(e, 1, k) for k in steps] + [(e, 2, 0), (e, 3, 0)]
    return plan


def committed_epoch(name):
    """The epoch of the last committed state (state.pt, or state.pt.prev between a save's renames)."""
    for f in ('state.pt', 'state.pt.prev'):
        if (EXP / name / f).exists():
            return torch.load(EXP / name / f, weights_only=True)['epoch']
    return 0


def test_sigkill_at_random_points_then_resume_equals_uninterrupted_run(cache, names, reference):
    name = names('kill')
    plan = kill_plan()
    argv = flags(cache, '--save', name)
    seen = Counter()
    committed = 0
    for target in plan:
        launch = Launch(argv)
        fired = launch.until(target, signal.SIGKILL)
        rc, out, err = launch.finish()
        if not fired:  # the run already finished (cannot happen with this plan)
            assert rc == 0, err[-3000:]
            break
        assert rc == -signal.SIGKILL, err[-3000:]
        phase = PHASES[launch.pos[1]]
        seen[phase] += 1
        SURVIVED['SIGKILL'][phase] += 1
        if not (EXP / name / 'state.pt').exists():
            SURVIVED['SIGKILL']['before_first_save'] += 1
        assert_files_load(name)
        assert committed_epoch(name) >= committed, 'a complete epoch was lost'  # the run lock and the fallback
        committed = committed_epoch(name)
        argv = resume_argv(cache, name)
    rc, out, err = run(argv)
    assert rc == 0, err[-3000:]
    assert sum(seen.values()) == len(plan)
    assert seen['startup'] and seen['steps'] >= EPOCHS and seen['tests'] and seen['saves'], seen
    assert_like_reference(name, reference)


# ---- b. SIGKILL inside atomic writes (SRLAB_FAULT_KILL_ON_SAVE) --------------
# Each launch counts its own writes. An epoch writes results.json, model_latest.pt,
# model_best.pt (when the PSNR improved), loss.pt, loss_log.pt, state.pt, psnr_log.pt.
SAVE_KILLS = (2, 3, 6, 7, 5, 8, 11)


def test_sigkill_inside_atomic_writes_then_resume_equals_uninterrupted_run(cache, names, reference):
    name = names('killsave')
    argv = flags(cache, '--save', name)
    hit = []
    for n in SAVE_KILLS:
        rc, out, err = run(argv, env={'SRLAB_FAULT_KILL_ON_SAVE': str(n)})
        assert rc == -signal.SIGKILL, f'write {n} was not reached: {err[-2000:]}'
        left = temps(name)
        assert len(left) == 1, left  # the killed write's temp file; the target itself is untouched
        target = re.sub(r'^\.(.+)\.[^.]+\.tmp$', r'\1', left[0])
        hit.append(target)
        SURVIVED['SIGKILL_save'].append(target)
        assert_files_load(name)
        argv = resume_argv(cache, name)
    rc, out, err = run(argv)
    assert rc == 0, err[-3000:]
    assert {'model_latest.pt', 'model_best.pt', 'loss.pt', 'loss_log.pt', 'state.pt', 'psnr_log.pt',
            'results.json'} <= set(hit), hit
    assert_like_reference(name, reference)
    log = (EXP / name / 'log.txt').read_text()
    assert 'the first epoch was not completely saved' in log  # killed between model_latest.pt and state.pt


# ---- c. SIGTERM and SIGINT: a complete state, mid-epoch or mid-test ------------
def resume_command(err):
    m = re.search(r'^Resume with: python main\.py (.*)$', err, re.M)
    assert m, err[-2000:]
    return shlex.split(m[1])


def test_sigint_sigterm_save_mid_epoch_and_resume_equals_uninterrupted_run(cache, names, reference):
    name = names('term')
    argv = flags(cache, '--save', name)
    # SIGINT mid-epoch 1 (before any save), SIGTERM mid-epoch 2, SIGTERM during the test of epoch 3
    for target, signum in (((1, 1, 2), signal.SIGINT), ((2, 1, 3), signal.SIGTERM), ((3, 2, 0), signal.SIGTERM)):
        launch = Launch(argv)
        assert launch.until(target, signum)
        rc, out, err = launch.finish()
        assert rc == 128 + signum, err[-3000:]
        SURVIVED[signal.Signals(signum).name] += 1
        assert f'complete state saved in {EXP / name}' in err
        assert_files_load(name)
        assert temps(name) == []
        st = torch.load(EXP / name / 'state.pt', weights_only=True)
        if target[1] == 1:  # mid-epoch: the position in the epoch is saved
            assert st['epoch'] == target[0] - 1 and st['start_batch'] >= target[2], (st['epoch'], st['start_batch'])
        argv = resume_command(err)
        assert argv[argv.index('--load') + 1] == name and argv[argv.index('--resume') + 1] == '-1'
    rc, out, err = run(argv)
    assert rc == 0, err[-3000:]
    assert re.search(r'^Resumed from .*continuing at epoch 3', out, re.M) or 'Evaluation:' in out
    assert_like_reference(name, reference, atol=1e-5)


# ---- d. numerical faults -------------------------------------------------------
def run_in_process(argv, capsys):
    """main.main(argv) here -> (exit code, stdout, stderr); option errors exit via SystemExit."""
    import main
    try:
        code = main.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def all_finite(obj):
    if torch.is_tensor(obj):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, dict):
        return all(all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(all_finite(v) for v in obj)
    return True


def test_nan_losses_stop_with_one_line_and_the_last_good_state(cache, names, capsys, monkeypatch):
    """From the 3rd batch of epoch 2 every input is NaN: the batches are skipped,
    the 3rd skip in a row stops the run with one line, and what is saved is the
    state after the last good step -- finite everywhere."""
    import trainer as trainer_mod
    name = names('nan')
    step = trainer_mod.Trainer.step
    good = {}

    def poisoned(self, lr, hr, idx_scale, batch_names):
        if self.epoch == 1 and self.start_batch >= 2:
            good.setdefault('w', {k: v.clone() for k, v in self.model.state_dict().items()})
            lr = torch.full_like(lr, float('nan'))
        return step(self, lr, hr, idx_scale, batch_names)
    monkeypatch.setattr(trainer_mod.Trainer, 'step', poisoned)
    code, out, err = run_in_process(flags(cache, '--save', name, '--max_skips', '3'), capsys)
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == 1 and '--max_skips 3' in lines[0] and str(EXP / name) in lines[0], err
    assert out.count('Skipped batch (loss is nan)') == 3
    d = EXP / name
    st = torch.load(d / 'state.pt', weights_only=True)
    assert (st['epoch'], st['start_batch']) == (1, 4)
    for f in ('state.pt', 'loss.pt', 'loss_log.pt', 'psnr_log.pt', 'model/model_latest.pt', 'model/model_best.pt'):
        assert all_finite(torch.load(d / f, weights_only=True)), f
    assert_same_weights(torch.load(d / 'model' / 'model_latest.pt'), good['w'], 0)
    assert_same_weights(st['model'], good['w'], 0)


def test_weights_overflowing_to_inf_are_never_saved(cache, names, capsys):
    """SGD with --lr 3e38 overflows the first update to inf (gradients above ~1.1):
    the next batch's loss is NaN, the run stops at once with one line naming the
    weights, and nothing is saved over the (here: absent) last good state."""
    name = names('inf')
    code, out, err = run_in_process(flags(cache, '--save', name, '--optimizer', 'SGD', '--lr', '3e38',
                                          '--epochs', '1'), capsys)
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == 1 and 'non-finite' in lines[0] and str(EXP / name) in lines[0], err
    assert out.count('Skipped batch') == 1 and 'Evaluation' not in out  # stopped at the first NaN
    d = EXP / name
    assert not (d / 'state.pt').exists() and not list((d / 'model').glob('*.pt'))


def test_non_finite_weights_are_not_saved_on_interrupt(cache, tmp_path):
    """The NaN guard also covers the save after a signal or --max_skips."""
    import data
    import loss
    import model
    from trainer import Trainer
    args = option.parse_args(flags(cache, '--save', 'x', '--scale', '2'))
    ckp = utility.checkpoint(args, root=tmp_path)
    t = Trainer(args, data.Data(args), model.Model(args, ckp), loss.Loss(args, ckp), ckp)
    try:
        t.loss.start_log()
        t.save_interrupted()
        good = (tmp_path / 'x' / 'state.pt').read_bytes()
        with torch.no_grad():
            next(t.model.parameters())[0].fill_(float('inf'))
        with pytest.raises(errors.SRLabError, match='non-finite'):
            t.save_interrupted()
        with pytest.raises(errors.SRLabError, match='non-finite'):
            t.save()
        assert (tmp_path / 'x' / 'state.pt').read_bytes() == good
        assert all_finite(torch.load(tmp_path / 'x' / 'model' / 'model_latest.pt'))
    finally:
        t.close()
        ckp.done()


# ---- e. storage faults ---------------------------------------------------------
def test_failed_write_keeps_the_previous_state_and_stops_with_one_line(cache, names, reference):
    """A real write failure as root (chmod does not stop root): RLIMIT_FSIZE below
    the size of state.pt makes its write fail with EFBIG, as a full disk fails
    with ENOSPC. The previous state.pt is kept, no temp file is left, and the
    run, resumed with room to write, equals the uninterrupted one."""
    name = names('fsize')
    rc, out, err = run(flags(cache, '--save', name, '--epochs', '2'))
    assert rc == 0, err[-3000:]
    d = EXP / name
    state_size = (d / 'state.pt').stat().st_size
    before = (d / 'state.pt').read_bytes()
    limit = state_size // 2
    assert max((d / 'model' / 'model_latest.pt').stat().st_size, (d / 'loss_L1.png').stat().st_size) < limit
    rc, out, err = run(resume_argv(cache, name), fsize=limit)
    assert rc == 1, err[-3000:]
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert lines[0] == f'main.py: error: cannot write {d / "state.pt"}: File too large; the previous file is kept'
    assert (d / 'state.pt').read_bytes() == before
    assert temps(name) == []
    assert_files_load(name)
    assert torch.load(d / 'state.pt', weights_only=True)['epoch'] == 2
    rc, out, err = run(resume_argv(cache, name))
    assert rc == 0, err[-3000:]
    assert_like_reference(name, reference)


def test_enospc_during_a_save_through_main(cache, names, capsys, monkeypatch):
    """ENOSPC in the middle of the 9th write (epoch 2's model_latest.pt): one
    line naming the file, the previous one kept, no temp file."""
    name = names('enospc')
    fail_nth_write(monkeypatch, 9, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    code, out, err = run_in_process(flags(cache, '--save', name, '--epochs', '2'), capsys)
    assert code == 1
    lines = error_lines(err)
    d = EXP / name
    assert lines == [f'main.py: error: cannot write {d / "model" / "model_latest.pt"}: No space left on device; '
                     'the previous file is kept'], err
    assert temps(name) == []
    assert torch.load(d / 'state.pt', weights_only=True)['epoch'] == 1
    assert_same_weights(torch.load(d / 'model' / 'model_latest.pt'),
                        torch.load(d / 'state.pt', weights_only=True)['model'], 0)


def test_unwritable_results_are_reported_without_hanging(cache, names, tmp_path):
    """--save_results where the images cannot be written (a folder in the place
    of each x2 image): the run finishes testing, reports the failures in one
    line and exits non-zero -- within the timeout, i.e. without hanging."""
    name = names('results')
    d = EXP / name / 'results-Sample'
    val = Path(cache) / 'Sample_tiles' / 'val'
    run_in_dir = flags(cache, '--test_only', '--pre_train', 'none', '--save_results', '--save', name)
    for p in sorted(val.glob('*.png')):
        (d / f'{p.stem}_x2_SR.png').mkdir(parents=True)
    rc, out, err = run(run_in_dir)
    assert rc == 1, out[-3000:] + err[-2000:]
    lines = error_lines(err)
    n = len(list(val.glob('*.png')))
    assert len(lines) == 1 and f'{n} result image(s) could not be written' in lines[0], err
    assert len(list(d.glob('*_x3_SR.png'))) == n and not list(d.glob('*.tmp*'))
    # the results folder is a file: one line naming it
    shutil.rmtree(d)
    d.write_text('not a folder')
    rc, out, err = run(run_in_dir)
    assert rc == 1
    lines = error_lines(err)
    assert len(lines) == 1 and str(d) in lines[0], err


# ---- f. one writer per run, the run's identity, damaged states, dead loader workers --------
def snapshot(d):
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob('*') if p.is_file()}


def test_a_second_process_on_a_run_is_refused_and_touches_nothing(cache, names):
    name = names('lock')
    first = Launch(flags(cache, '--save', name, '--epochs', '40'))
    assert first.until((1, 1, 2), signal.SIGSTOP)  # frozen mid-epoch, holding the run's lock
    try:
        before = snapshot(EXP / name)
        for argv in (resume_argv(cache, name), flags(cache, '--save', name, '--reset')):
            rc, out, err = run(argv)
            lines = error_lines(err)
            assert rc == 1 and len(lines) == 1, err
            assert f'experiment/{name} is in use by process {first.pid}' in lines[0], lines[0]
            assert snapshot(EXP / name) == before  # not even --reset touched it
    finally:
        first.send_signal(signal.SIGKILL)
        first.finish()
    SURVIVED['SIGKILL']['steps'] += 1
    rc, out, err = run(resume_argv(cache, name, '--epochs', '1'))  # the kernel dropped the dead process's lock
    assert rc == 0, err[-3000:]


def test_resume_refuses_another_run_and_logs_allowed_changes(cache, names, reference):
    name = copy_of(reference, names, 'identity')
    state = (EXP / name / 'state.pt').read_bytes()
    rc, out, err = run(resume_argv(cache, name, '--scale', '2+3', '--n_feats', '16'))
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1, err  # a command-line mistake, refused from state.pt's flags
    assert 'Data ready' not in out and 'Making model' not in out, out  # before any data are read
    assert '--n_feats 8 -> 16' in lines[0] and '--scale 2+3+4 -> 2+3' in lines[0] and '--pre_train' in lines[0]
    assert (EXP / name / 'state.pt').read_bytes() == state
    rc, out, err = run(resume_argv(cache, name, '--epochs', str(EPOCHS + 1), '--print_every', '2'))
    assert rc == 0, err[-3000:]
    assert f'Changed since the saved session: --epochs {EPOCHS} -> {EPOCHS + 1}; --print_every 1 -> 2' in out
    assert committed_epoch(name) == EPOCHS + 1


def test_damaged_state_resumes_from_the_previous_one(cache, names, reference):
    name = copy_of(reference, names, 'damaged')
    d = EXP / name
    for epochs, damage in ((EPOCHS + 1, 'truncate'), (EPOCHS + 2, 'flip')):
        prev = torch.load(d / 'state.pt.prev', weights_only=True)['epoch']
        data = bytearray((d / 'state.pt').read_bytes())
        if damage == 'truncate':
            data = data[:len(data) // 2]
        else:
            data[len(data) // 2] ^= 0xFF
        (d / 'state.pt').write_bytes(bytes(data))
        rc, out, err = run(resume_argv(cache, name, '--epochs', str(epochs)))
        assert rc == 0, err[-3000:]
        warn = [ln for ln in out.splitlines() if ln.startswith('warning: --resume -1: state.pt ')]
        assert len(warn) == 1 and f'previous state state.pt.prev at epoch {prev + 1}' in warn[0], out
        assert f'Resumed from {d / "state.pt.prev"}: continuing at epoch {prev + 1}' in out
        assert committed_epoch(name) == epochs
    for f in ('state.pt', 'state.pt.prev'):
        (d / f).write_bytes((d / f).read_bytes()[:1000])
    rc, out, err = run(resume_argv(cache, name, '--epochs', str(EPOCHS + 3)))
    lines = error_lines(err)
    assert rc == 1 and len(lines) == 1 and 'no complete state is left' in lines[0], err


def workers(pid):
    with open(f'/proc/{pid}/task/{pid}/children') as f:
        return [int(c) for c in f.read().split()]


def test_killed_loader_worker_stops_with_one_line_and_a_state_that_resumes(cache, names):
    name = names('worker')
    argv = flags(cache, '--save', name, '--n_threads', '2', '--test_every', '40', '--epochs', '1')
    launch = Launch(argv, fresh=True)  # loader workers start far faster in a fresh interpreter
    assert launch.until((1, 1, 3))
    os.kill(workers(launch.pid)[0], signal.SIGKILL)  # as the out-of-memory killer does
    rc, out, err = launch.finish()
    lines = error_lines(err)
    assert rc == 1 and len(lines) == 1 and 'Traceback' not in err, err
    # torch reports the death several ways (its SIGCHLD handler, its queue, the queue's pipe): one line for all
    assert WORKER_DIED in lines[0], lines[0]
    SURVIVED['SIGKILL']['loader workers'] += 1
    st = torch.load(EXP / name / 'state.pt', weights_only=True)
    assert st['epoch'] == 0 and st['start_batch'] >= 3
    rc, out, err = run(resume_argv(cache, name, '--n_threads', '2', '--test_every', '40', '--epochs', '1'), fresh=True)
    assert rc == 0, err[-3000:]
    assert f'continuing at epoch 1, batch {st["start_batch"]}' in out


# every way torch reports a dead loader worker, injected: from the loader's queue (its own RuntimeError, or the
# pipe of a worker killed while sending a batch), and torch's SIGCHLD handler raising in the middle of a step
QUEUE_SURFACES = {
    'sigchld': RuntimeError('DataLoader worker (pid 4242) is killed by signal: Killed. '),
    'exited': RuntimeError('DataLoader worker (pid(s) 4242) exited unexpectedly'),
    'reset': ConnectionResetError(104, 'Connection reset by peer'),
    'eof': EOFError(),
    'pipe': BrokenPipeError(32, 'Broken pipe'),
}


@pytest.mark.parametrize('surface', sorted(QUEUE_SURFACES))
def test_each_way_a_dead_worker_surfaces_from_the_queue_gives_one_line(surface):
    """The loader's iterator translates each report into the same WorkerDied, only for a loader with workers."""
    import dataloader
    from torch.utils.data import DataLoader

    class Failing(DataLoader):
        def __iter__(self):
            yield 'batch'
            raise QUEUE_SURFACES[surface]

    class Loader(dataloader.MSDataLoader, Failing):
        pass
    for workers in (2, 0):
        loader = Loader.__new__(Loader)
        loader.__dict__['num_workers'] = workers  # (DataLoader's attributes without building one)
        it = iter(loader)
        assert next(it) == 'batch'
        if workers or isinstance(QUEUE_SURFACES[surface], RuntimeError):
            with pytest.raises(dataloader.WorkerDied) as e:
                next(it)
            assert str(e.value) == WORKER_DIED
        else:  # a connection error of a loader without workers is no worker's death
            with pytest.raises(type(QUEUE_SURFACES[surface])):
                next(it)


@pytest.mark.parametrize('surface', ['sigchld', 'reset'])
def test_injected_worker_death_stops_the_run_with_one_line_and_a_state(cache, names, capsys, monkeypatch, surface):
    """Through main.py: the death reported by torch's SIGCHLD handler in the middle of a step (not from the
    queue), or as a connection reset from the queue of a loader with a worker, stops the run with the same one line, exit 1, and the
    state after the last finished step."""
    import trainer as trainer_mod
    name = names(f'worker_{surface}')
    error = QUEUE_SURFACES[surface]
    if surface == 'sigchld':
        step = trainer_mod.Trainer.step

        def dying(self, *a):
            if self.start_batch >= 3:
                raise error
            return step(self, *a)
        monkeypatch.setattr(trainer_mod.Trainer, 'step', dying)
    else:
        real = torch.utils.data.DataLoader.__iter__

        def dying(self):
            for i, batch in enumerate(real(self)):
                if i == 3 and self.batch_sampler.__class__.__name__ == 'ScaleBatchSampler':
                    raise error
                yield batch
        monkeypatch.setattr(torch.utils.data.DataLoader, '__iter__', dying)
    workers = ['--n_threads', '1'] if surface == 'reset' else []  # a connection error means a death with workers
    code, out, err = run_in_process(flags(cache, '--save', name, *workers), capsys)
    lines = error_lines(err)
    assert code == 1 and len(lines) == 1 and 'Traceback' not in err, err
    assert WORKER_DIED in lines[0] and str(EXP / name) in lines[0], lines[0]
    st = torch.load(EXP / name / 'state.pt', weights_only=True)
    assert (st['epoch'], st['start_batch']) == (0, 3)


def test_a_late_sigchld_report_during_the_save_still_saves(cache, names, capsys, monkeypatch):
    """The death surfaced from the queue; torch's SIGCHLD handler then raises its own report in the middle of
    the save that follows: the save runs again and the state after the last finished step is there."""
    import trainer as trainer_mod
    name = names('worker_late')
    step, save = trainer_mod.Trainer.step, trainer_mod.Trainer.save_interrupted
    calls = []

    def dying(self, *a):
        if self.start_batch >= 3:
            raise ConnectionResetError(104, 'Connection reset by peer')
        return step(self, *a)

    def late(self):
        calls.append(1)
        if len(calls) == 1:
            raise QUEUE_SURFACES['sigchld']
        return save(self)
    monkeypatch.setattr(trainer_mod.Trainer, 'step', dying)
    monkeypatch.setattr(trainer_mod.Trainer, 'save_interrupted', late)
    monkeypatch.setattr(trainer_mod, 'worker_death', lambda e, from_queue=False: __import__('dataloader').worker_death(
        e, from_queue=True))
    code, out, err = run_in_process(flags(cache, '--save', name), capsys)
    assert code == 1 and len(error_lines(err)) == 1 and WORKER_DIED in err, err
    assert len(calls) == 2
    st = torch.load(EXP / name / 'state.pt', weights_only=True)
    assert (st['epoch'], st['start_batch']) == (0, 3)
