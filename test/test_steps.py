"""--steps: a run of N steps (the schedule spans exactly them), or auto: N
fitted to --time_budget from the rate of the warmup's steps, saved with the
run, logged and in results.json, so that `--steps N` replays the run."""
import json
import re

import pytest
import torch

from conftest import REPO, run_main

TINY = ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--scale', '2', '--data_train', 'Sample',
        '--data_test', 'Sample', '--patch_size', '48', '--batch_size', '4', '--lr', '1e-3', '--n_threads', '0',
        '--cpu', '--print_every', '100', '--decay', 'cosine']


def weights(save):
    return torch.load(REPO / 'experiment' / save / 'model' / 'model_latest.pt', weights_only=True)


def test_steps_n_is_the_run_and_its_schedule(capsys, exp_name):
    save = exp_name()
    code, out, err = run_main(TINY + ['--steps', '7', '--test_every', '3', '--save', save], capsys)
    assert code == 0, err
    assert out.count('Evaluation:') == 3 and '--steps 7 done' in out  # epochs of 3, 3 and 1 steps
    d = REPO / 'experiment' / save
    st = torch.load(d / 'state.pt', weights_only=True)
    assert st['epoch'] == 3 and st['train_steps'] == 7
    assert st['optimizer']['param_groups'][0]['lr'] == 0  # the cosine ends at the 7th step
    entry = json.loads((d / 'results.json').read_text())['Sample']['2']
    assert entry['train_steps'] == 7 and entry['total_steps'] == 7


def test_auto_fits_the_budget_and_steps_n_replays_it(capsys, exp_name, monkeypatch):
    import clock
    ticks = iter(range(10 ** 6))
    monkeypatch.setattr(clock.time, 'perf_counter', lambda: next(ticks) * 0.02)  # a machine of fixed speed
    auto = exp_name()
    code, out, err = run_main(TINY + ['--steps', 'auto', '--time_budget', '0.2', '--warmup', '20', '--test_every', '10',
                                      '--seed', '3', '--save', auto], capsys)
    assert code == 0, err
    m = re.search(r'--steps auto: ([\d.]+) steps/s over steps 11-20 of the warmup; (\d+) steps fit the 0.2 min '
                  r'budget, fitted again at step (\d+)', out)
    assert m, out
    first = int(m[2])
    assert 20 < first < 12 / 0.02 and int(m[3]) == int(0.9 * first)  # the loss never changes its terms: F = 1
    again = re.search(rf'--steps auto: fitted again at step {m[3]}: [\d.]+ steps/s over steps {int(m[3]) // 2 + 1}-'
                      rf'{m[3]}; (\d+) steps \(replay this run on any machine with --steps {first}:(\d+)\)', out)
    assert again and again[1] == again[2], out
    n = int(again[1])
    assert int(m[3]) < n < 12 / 0.02  # inside the budget: 12 s at no less than 0.02 s a step
    st = torch.load(REPO / 'experiment' / auto / 'state.pt', weights_only=True)
    assert st['total_steps'] == n and st['train_steps'] == n and st['flags']['steps'] == 'auto'
    assert st['first_steps'] == first and st['refitted']
    entry = json.loads((REPO / 'experiment' / auto / 'results.json').read_text())['Sample']['2']
    assert entry['total_steps'] == n == entry['train_steps'] and entry['steps'] == f'{first}:{n}'
    replay = exp_name()
    code, out, err = run_main(TINY + ['--steps', f'{first}:{n}', '--time_budget', '0.2', '--warmup', '20',
                                      '--test_every', '10', '--seed', '3', '--save', replay], capsys)
    assert code == 0, err
    assert f'--steps {first}:{n}: fitted again at step {m[3]}: {n} steps' in out, out
    a, b = weights(auto), weights(replay)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same run, step for step
    # resumed, the run keeps its count: it is finished, whatever the budget now allows
    code, out, err = run_main(['--load', auto, '--resume', '-1', '--time_budget', '10'], capsys)
    assert code == 0 and 'is finished' in out, out + err


def test_a_machine_that_slows_gets_fewer_steps_and_ends_inside_its_budget(capsys, exp_name, monkeypatch):
    """The speedrun's loss changes its terms at 80% of the run, so the second fit comes at 72% (0.9 x 0.8),
    timed since 36%. The machine here slows by a fifth after its warmup: the second count is the smaller,
    the run ends inside its budget, and --steps N:N2 replays it exactly."""
    import clock
    calls = iter(range(10 ** 6))
    elapsed = [0.0]

    def now():  # a machine of fixed speed for its first 150 clock readings, then a fifth slower
        elapsed[0] += 0.04 if next(calls) < 150 else 0.048
        return elapsed[0]
    monkeypatch.setattr(clock.time, 'perf_counter', now)
    flags = ['--loss', '1*L1[:0.8]+0.1*MSE[0.8:]', '--time_budget', '0.4', '--warmup', '20', '--test_every', '100',
             '--seed', '3']
    auto = exp_name()
    code, out, err = run_main(TINY + flags + ['--steps', 'auto', '--save', auto], capsys)
    assert code == 0, err
    m = re.search(r'(\d+) steps fit the 0.4 min budget, fitted again at step (\d+)', out)
    first, at = int(m[1]), int(m[2])
    assert at == int(0.9 * 0.8 * first)
    again = re.search(rf'fitted again at step {at}: [\d.]+ steps/s over steps {at // 2 + 1}-{at}; (\d+) steps', out)
    n = int(again[1])
    assert at / 0.8 < n < first  # the machine slowed: fewer steps, and step `at` is still before the MSE tail
    st = torch.load(REPO / 'experiment' / auto / 'state.pt', weights_only=True)
    assert st['total_steps'] == n == st['train_steps'] and st['train_seconds'] <= 24  # inside its budget
    replay = exp_name()
    code, out, err = run_main(TINY + flags + ['--steps', f'{first}:{n}', '--save', replay], capsys)
    assert code == 0, err
    a, b = weights(auto), weights(replay)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same run, step for step


def test_a_fitted_count_survives_a_resume():
    """Stopped after the warmup, the clock of the resumed session has the saved count and fits nothing."""
    import option
    from clock import Clock
    args = option.parse_args(TINY + ['--steps', 'auto', '--time_budget', '1', '--warmup', '20'])
    logs = []
    c = Clock.from_args(args, 10, None, None, logs.append)
    c.start()
    for i in range(1, 21):
        c.tick(i)
    assert c.total_steps and len(logs) == 1
    again = Clock.from_args(args, 10, None, None, logs.append)
    again.load_state_dict(c.state_dict())
    again.start()
    again.tick(21)
    assert again.total_steps == c.total_steps and len(logs) == 1
    assert again.position(21).progress == pytest.approx(21 / c.total_steps)
    assert again.refit_step() == c.refit_step() == int(0.9 * c.total_steps)  # the second fit still to come


def test_a_replay_resumed_before_its_second_fit_makes_it():
    """--steps 100:90: 100 steps until step 90 (0.9 x 100), then 90... at least 91: step 90 stays inside the run.
    Stopped at step 50 and resumed, the clock still changes the count at step 90."""
    import option
    from clock import Clock
    args = option.parse_args(TINY + ['--steps', '100:95'])
    assert args.steps == '100:95' and args.epochs == 1
    c = Clock.from_args(args, 10, None, None, print)
    c.start()
    for i in range(1, 51):
        assert c.tick(i) is None
    again = Clock.from_args(args, 10, None, None, print)
    again.load_state_dict(c.state_dict())
    again.start()
    moved = [i for i in range(51, 96) if again.tick(i) is not None]
    assert moved == [90] and again.total_steps == 95 and again.replay() == '100:95'
    assert again.position(90).progress == pytest.approx(90 / 95) and again.finished()


@pytest.mark.parametrize('flags, text', [
    (['--steps', 'auto', '--warmup', '20'], '--steps auto: fits the step count to --time_budget'),
    (['--steps', 'auto', '--time_budget', '5'], '--steps auto: times the --warmup steps; needs --warmup 20'),
    (['--steps', 'many'], "--steps: 'many' must be a number of steps, N:N2 (a replay of --steps auto"),
    (['--steps', '100:0'], "--steps: '100:0' must be a number of steps, N:N2"),
])
def test_bad_steps_are_one_line(capsys, flags, text):
    code, out, err = run_main(TINY + flags, capsys)
    assert code == 2 and err.count('\n') == 1 and text in err, err


def test_curve_sets_test_between_and_every_set_at_the_end(capsys, exp_name, tmp_path):
    import imageio.v3 as iio
    import numpy as np
    hr = tmp_path / 'benchmark' / 'Mini' / 'HR'
    hr.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        iio.imwrite(hr / f'{i}.png', rng.integers(0, 256, (40, 44, 3), dtype=np.uint8))
    save = exp_name()
    code, out, err = run_main(TINY + ['--data_test', 'Sample+Mini', '--dir_data', tmp_path, '--curve_sets', 'Sample',
                                      '--epochs', '3', '--test_every', '2', '--save', save], capsys)
    assert code == 0, err
    assert out.count('[Sample x2]') == 3 and out.count('[Mini x2]') == 1  # Mini only in the final test
    log = torch.load(REPO / 'experiment' / save / 'psnr_log.pt', weights_only=True)
    assert log.shape == (3, 2, 1) and torch.isnan(log[:2, 1]).all() and not torch.isnan(log[2]).any()
    assert not torch.isnan(log[:, 0]).any()
    code, out, err = run_main(TINY + ['--data_test', 'Sample', '--dir_data', tmp_path, '--curve_sets', 'Mini',
                                      '--save', exp_name()], capsys)
    assert code == 2 and '--curve_sets: Mini not among --data_test Sample' in err, err
