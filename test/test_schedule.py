"""Learning-rate schedules: registered functions of the run's progress, a
step-based warmup before any of them, set every step, exact across resume; a
run extended on resume goes on from where its schedule stood; flags changed
on resume take effect; README's 'Adding a schedule' example."""
import math
import re
import uuid

import pytest
import torch

from conftest import REPO, run_main

import option  # noqa: E402
import schedule  # noqa: E402
from clock import Clock  # noqa: E402
from registry import SCHEDULES  # noqa: E402
from schedule import Schedule  # noqa: E402


def optimizer(lr=1e-3):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def rates(sched, steps, total, start=0):
    """The lr of each step from `start`: set after the previous one (follow), as the Trainer does."""
    clock = Clock(total_steps=total, steps_per_epoch=10)
    out = []
    for i in range(start, steps):
        out.append(sched.lr())
        sched.follow(clock.position(i + 1))
    return out


def test_the_built_in_schedules():
    assert [schedule.step(e, (2, 4), 0.5) for e in (0, 1.9, 2, 3.5, 4, 9)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert schedule.cosine(0) == 1 and schedule.cosine(0.5) == pytest.approx(0.5) and schedule.cosine(1) == 0
    assert schedule.linear(0.25) == 0.75
    assert {'step', 'cosine', 'linear'} <= set(SCHEDULES.names())
    assert schedule.follows_progress('cosine') and not schedule.follows_progress('step')


def test_wsd_holds_then_decays():
    """wsd: --lr until 80% of the schedule, then 1 - sqrt to 0."""
    wsd = schedule.warmup_stable_decay
    assert [wsd(p) for p in (0, 0.5, 0.7999)] == [1, 1, 1] and wsd(1) == 0
    assert wsd(0.85) == pytest.approx(0.5) and wsd(0.95) == pytest.approx(1 - 0.75 ** 0.5)
    assert 'wsd' in SCHEDULES.names() and schedule.follows_progress('wsd')


def test_a_moved_end_continues_the_curve_over_the_new_count():
    """A cosine of 100 steps (10 of warmup) whose count becomes 130 at step 50 (a second --steps auto fit):
    the same lr up to there, then the rest of the curve from where it was, reaching 0 at step 130; the
    lr does not jump."""
    from schedule import Position
    moved, lrs = Schedule(optimizer(), 'cosine', warmup=10), []
    for i in range(130):
        lrs.append(moved.lr())
        if i + 1 == 50:
            moved.move_end(Position(50, 1, 50 / 100), Position(50, 1, 50 / 130))
        else:
            moved.follow(Position(i + 1, 1, (i + 1) / (100 if i < 49 else 130)))
    straight = rates(Schedule(optimizer(), 'cosine', warmup=10), 100, 100)
    assert lrs[:51] == straight[:51]  # (the 51st step's lr: the curve at step 50 of either count)
    p50 = 40 / 90
    assert lrs[51] == pytest.approx(1e-3 * schedule.cosine(p50 + (1 - p50) / 80), rel=1e-9)
    assert abs(lrs[51] - lrs[50]) < abs(lrs[50] - lrs[49]) and moved.lr() == 0


def test_warmup_then_cosine_is_exactly_that():
    """100 steps of linear warmup, then the whole half cosine over the 900 steps left."""
    lrs = rates(Schedule(optimizer(), 'cosine', warmup=100), 1000, 1000)
    assert lrs[:100] == pytest.approx([1e-3 * (i + 1) / 100 for i in range(100)], rel=1e-15)
    for i in range(100, 1000):
        assert lrs[i] == pytest.approx(1e-3 * (1 + math.cos(math.pi * (i - 100) / 900)) / 2, rel=1e-12, abs=1e-18)
    assert lrs[100] == 1e-3
    end = Schedule(optimizer(), 'cosine', warmup=100)
    rates(end, 1000, 1000)
    assert end.lr() == 0  # after the last step: the end of the curve


def test_step_decay_keeps_its_epochs_and_the_first_step_of_an_epoch_has_its_rate():
    sched = Schedule(optimizer(), 'step', gamma=0.1, milestones=(2, 4))
    lrs = rates(sched, 50, 50)  # 10 steps an epoch
    assert lrs[::10] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5]) and lrs[19] == lrs[10] and lrs[20] < lrs[19]


@pytest.mark.parametrize('name, warmup', [('cosine', 7), ('linear', 0), ('step', 3)])
def test_a_resumed_schedule_gives_the_same_rates(name, warmup):
    straight = rates(Schedule(optimizer(), name, warmup, 0.5, (2,)), 40, 40)
    first = Schedule(optimizer(), name, warmup, 0.5, (2,))
    head = rates(first, 13, 40)
    saved = first.state_dict()
    again = Schedule(optimizer(), name, warmup, 0.5, (2,))
    again.load_state_dict(saved)
    assert again.resume(Clock(total_steps=40, steps_per_epoch=10).position(13)) == ''
    assert head + rates(again, 40, 40, start=13) == straight  # exactly


def test_an_extended_run_goes_on_from_where_its_schedule_stood():
    """A cosine of 100 steps: extended to 200 at step 50 it goes on from 0.5 to 0 at step 200; extended when
    finished (lr 0) it stays at 0: it never starts again from the top."""
    for at, factor in ((50, 0.5), (100, 0.0)):
        first = Schedule(optimizer(), 'cosine')
        rates(first, at, 100)
        again = Schedule(optimizer(), 'cosine')
        again.load_state_dict(first.state_dict())
        note = again.resume(Clock(total_steps=200, steps_per_epoch=10).position(at))
        assert ('goes on from its progress 0.500' in note) if at == 50 else ('had reached its end' in note)
        assert again.lr() == pytest.approx(1e-3 * factor, abs=1e-18)
        rest = rates(again, 200, 200, start=at)
        assert rest[0] == pytest.approx(1e-3 * factor, abs=1e-18) and again.lr() == pytest.approx(0, abs=1e-18)
        assert all(a >= b for a, b in zip(rest, rest[1:]))  # continues down, never back up


def test_changed_flags_take_effect_on_resume():
    first = Schedule(optimizer(1e-3), 'step', 0, 0.5, (2,))
    rates(first, 30, 30)                                    # at epoch 3: lr x 0.5
    again = Schedule(optimizer(1e-2), 'step', 0, 0.1, (1,))  # --lr 1e-2 --decay 1 --gamma 0.1
    again.load_state_dict(first.state_dict())
    assert again.lr() == pytest.approx(1e-3)
    again = Schedule(optimizer(1e-2), 'cosine', warmup=40)   # still warming up at step 30 of 40
    again.load_state_dict(first.state_dict())
    again.resume(Clock(total_steps=100, steps_per_epoch=10).position(30))
    assert again.lr() == pytest.approx(1e-2 * 31 / 40)


def test_decay_flag_names_a_schedule_or_epochs():
    base = ['--data_test', 'Sample']
    assert option.parse_args(base + ['--decay', 'Cosine']).decay == 'cosine'
    a = option.parse_args(base + ['--decay', '5-7', '--warmup', '10'])
    assert (a.decay, a.decay_epochs, a.warmup) == ('5-7', [5, 7], 10)
    with pytest.raises(SystemExit):
        option.parse_args(base + ['--decay', 'cosin'])


# ---- README 'Adding a schedule' --------------------------------------------------------------------
def readme_example():
    section = (REPO / 'README.md').read_text().split('## Adding a schedule', 1)[1]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


def test_readme_schedule_example_is_one_function_that_runs():
    code = readme_example()
    assert len(code.splitlines()) <= 8
    name = f'pytest_exp_{uuid.uuid4().hex[:6]}'
    registered = re.search(r"@SCHEDULES\.register\('(\w+)'\)", code).group(1)
    scope = {'SCHEDULES': SCHEDULES}
    exec(code.replace(f"register('{registered}')", f"register('{name}')"), scope)
    args = option.parse_args(['--data_test', 'Sample', '--decay', name, '--gamma', '0.7', '--warmup', '5'])
    sched = Schedule.from_args(args, optimizer(1e-3))
    lrs = rates(sched, 105, 105)
    assert lrs[:5] == pytest.approx([1e-3 * (i + 1) / 5 for i in range(5)], rel=1e-15) and lrs[5] == 1e-3
    assert lrs[55] == pytest.approx(1e-3 * 0.7 ** 5) and sched.lr() == pytest.approx(1e-3 * 0.7 ** 10)


# ---- end to end ------------------------------------------------------------------------------------
def tiny(cache, *extra):
    return ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--scale', '2', '--data_train', 'Sample',
            '--data_test', 'Sample', '--data_range', '1-800/801-802', '--patch_size', '48', '--batch_size', '4',
            '--test_every', '4', '--n_threads', '0', '--cpu', '--dir_cache', cache, *extra]


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp('cache'))


def saved_lr(name):
    st = torch.load(REPO / 'experiment' / name / 'state.pt', weights_only=True)
    return st['optimizer']['param_groups'][0]['lr']


def test_a_cosine_run_extended_on_resume_continues_its_schedule(cache, exp_name, capsys):
    """The trial: --decay cosine --epochs 1, then resumed with --epochs 2. The lr was 0 at the end, and
    stays 0: the printed lr is the one in use, and the weights do not move."""
    name = exp_name('extend')
    assert run_main(tiny(cache, '--decay', 'cosine', '--lr', '1e-3', '--epochs', '1', '--save', name), capsys)[0] == 0
    before = torch.load(REPO / 'experiment' / name / 'model' / 'model_latest.pt')
    assert saved_lr(name) == 0
    code, out, err = run_main(['--load', name, '--resume', '-1', '--epochs', '2', '--dir_cache', cache], capsys)
    assert code == 0, err
    assert 'lr 0.00e+00; the cosine schedule had reached its end (lr x 0) and stays there' in out
    assert '[Epoch 2]\tLearning rate: 0.00e+00' in out and saved_lr(name) == 0
    after = torch.load(REPO / 'experiment' / name / 'model' / 'model_latest.pt')
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_changed_lr_on_resume_takes_effect(cache, exp_name, capsys):
    name = exp_name('lr')
    assert run_main(tiny(cache, '--lr', '1e-3', '--decay', '1', '--epochs', '1', '--save', name), capsys)[0] == 0
    assert saved_lr(name) == pytest.approx(5e-4)  # epoch 1 ended: x 0.5
    code, out, err = run_main(['--load', name, '--resume', '-1', '--epochs', '2', '--lr', '1e-2', '--gamma', '0.1',
                               '--dir_cache', cache], capsys)
    assert code == 0, err
    assert 'Changed since the saved session: --epochs 1 -> 2; --gamma 0.5 -> 0.1; --lr 0.001 -> 0.01' in out
    assert re.search(r'Resumed from .*lr 1\.00e-03\n', out) and '[Epoch 2]\tLearning rate: 1.00e-03' in out
    assert saved_lr(name) == pytest.approx(1e-3)


def test_warmup_and_cosine_stopped_and_resumed_equal_a_straight_run(cache, exp_name):
    """Two epochs of 4 steps with --warmup 3 --decay cosine and a loss that changes at half the run: one
    session, or two (the first stopped after its first epoch, as a signal would stop it), end with the same
    weights and lr."""
    import data
    import loss
    import model
    import utility
    from trainer import Trainer

    def session(argv, epochs):
        args = option.parse_args(argv)
        ckp = utility.checkpoint(args)
        t = Trainer(args, data.Data(args), model.Model(args, ckp), loss.Loss(args, ckp), ckp)
        try:
            for _ in range(epochs):
                t.train()
                t.test()
        finally:
            t.close()
            ckp.done()
    flags = ['--warmup', '3', '--decay', 'cosine', '--lr', '1e-3', '--epochs', '2', '--loss', '1*L1[:0.5]+1*MSE[0.5:]']
    a, b = exp_name('warm'), exp_name('warm')
    torch.manual_seed(1)
    session(tiny(cache, *flags, '--save', a), 2)
    torch.manual_seed(1)
    session(tiny(cache, *flags, '--save', b), 1)
    session(tiny(cache, '--load', b, '--resume', '-1'), 1)
    wa = torch.load(REPO / 'experiment' / a / 'model' / 'model_latest.pt')
    wb = torch.load(REPO / 'experiment' / b / 'model' / 'model_latest.pt')
    assert all(torch.equal(wa[k], wb[k]) for k in wa) and saved_lr(a) == saved_lr(b) == 0


def test_a_loss_term_holds_in_its_window_of_the_run(cache, exp_name, capsys):
    """--loss '1*L1[:0.5]+1*MSE[0.5:]' over two epochs of 4 steps: the first epoch's 4 steps train with L1
    only, the second's with MSE only (the logged means per epoch say which term each step computed)."""
    name = exp_name('window')
    code, out, err = run_main(tiny(cache, '--loss', '1*L1[:0.5]+1*MSE[0.5:]', '--epochs', '2', '--save', name), capsys)
    assert code == 0, err
    log = torch.load(REPO / 'experiment' / name / 'loss_log.pt')  # epochs x (L1, MSE, Total)
    assert log.shape == (2, 3) and log[0, 0] > 0 and log[0, 1] == 0 and log[1, 0] == 0 and log[1, 1] > 0
    assert torch.allclose(log[:, 2], log[:, 0] + log[:, 1])
    text = (REPO / 'experiment' / name / 'log.txt').read_text()
    assert '1.000 * L1 (progress 0 to 0.5)' in text and '1.000 * MSE (progress 0.5 to 1)' in text
    assert '* Total' not in text  # the sum is no term
