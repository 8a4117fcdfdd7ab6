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
    monkeypatch.setattr(clock.time, 'perf_counter', lambda: next(ticks) * 0.05)  # a machine of fixed speed
    auto = exp_name()
    code, out, err = run_main(TINY + ['--steps', 'auto', '--time_budget', '0.1', '--warmup', '20', '--test_every', '10',
                                      '--seed', '3', '--save', auto], capsys)
    assert code == 0, err
    m = re.search(r'--steps auto: ([\d.]+) steps/s over steps 11-20 of the warmup; (\d+) steps fit the 0.1 min '
                  r'budget \(replay this run on any machine with --steps (\d+)\)', out)
    assert m and m[2] == m[3], out
    n = int(m[2])
    assert 20 < n < 6 / 0.05  # inside the budget: 6 s at no less than 0.05 s a step
    st = torch.load(REPO / 'experiment' / auto / 'state.pt', weights_only=True)
    assert st['total_steps'] == n and st['train_steps'] == n and st['flags']['steps'] == 'auto'
    entry = json.loads((REPO / 'experiment' / auto / 'results.json').read_text())['Sample']['2']
    assert entry['total_steps'] == n == entry['train_steps']
    replay = exp_name()
    code, out, err = run_main(TINY + ['--steps', str(n), '--time_budget', '0.1', '--warmup', '20', '--test_every',
                                      '10', '--seed', '3', '--save', replay], capsys)
    assert code == 0, err
    a, b = weights(auto), weights(replay)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same run, step for step
    # resumed, the run keeps its count: it is finished, whatever the budget now allows
    code, out, err = run_main(['--load', auto, '--resume', '-1', '--time_budget', '10'], capsys)
    assert code == 0 and 'is finished' in out, out + err


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


@pytest.mark.parametrize('flags, text', [
    (['--steps', 'auto', '--warmup', '20'], '--steps auto: fits the step count to --time_budget'),
    (['--steps', 'auto', '--time_budget', '5'], '--steps auto: times the --warmup steps; needs --warmup 20'),
    (['--steps', 'many'], "--steps: 'many' must be a number of steps or auto"),
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
