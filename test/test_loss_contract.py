"""A loss term is a class with a contract: the Term base class and its hooks,
one class per GAN variant, declared flags, create_loss from Python, 'did you
mean' for names, and README's 'Adding a loss' example (one file, nothing else)."""
import re
import subprocess
import sys
import uuid

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO, SRC, run_main

import loss  # noqa: E402
import option  # noqa: E402
from loss import Term, create_loss  # noqa: E402
from loss.adversarial import GAN, RGAN, WGAN_GP, Adversarial  # noqa: E402
from loss.term import OPTIMIZER_DEFAULTS, Training  # noqa: E402
from registry import LOSSES  # noqa: E402


class Ckp:
    def __init__(self):
        self.lines = []

    def write_log(self, text, quiet=False):
        self.lines.append(text)


# ---- the base class and its hooks -------------------------------------------------
def test_every_term_derives_from_term_and_a_term_needs_only_forward(tmp_path):
    assert all(issubclass(LOSSES.get(n), Term) for n in LOSSES.names())
    calls = []

    class Halved(Term):  # forward only: every hook has its default
        def forward(self, sr, hr):
            return (sr - hr).abs().mean() / 2

    class Recorder(Halved):
        def step_discriminator(self, fake, real):
            calls.append(('step_discriminator', fake.requires_grad))

        def commit(self):
            calls.append('commit')

        def reject(self):
            calls.append('reject')

        def start_log(self):
            calls.append('start_log')

        def end_log(self):
            calls.append('end_log')

        def display(self):
            return '[recorded]'

        def summary(self):
            return 'recorder summary'

        def plot(self, apath):
            calls.append(('plot', apath))
    ckp = Ckp()
    s = loss.LossSum([(1.0, 'Halved', Halved()), (2.0, 'Recorder', Recorder())], ckp.write_log)
    sr = torch.zeros(1, 3, 4, 4, requires_grad=True)
    hr = torch.full((1, 3, 4, 4), 4.0)
    s.start_log()
    s.step_discriminators(sr, hr)
    assert s(sr, hr).item() == pytest.approx(2 + 2 * 2)
    s.commit()
    s.step_discriminators(sr, hr)
    s(sr, hr)
    s.reject()
    assert s.display_loss(0).endswith('[recorded]')
    s.end_log(1)
    s.plot_loss(str(tmp_path), 1)
    assert calls == ['start_log', ('step_discriminator', False), 'commit', ('step_discriminator', False), 'reject',
                     'end_log', ('plot', str(tmp_path))]
    assert ckp.lines[:2] == ['1.000 * Halved', '2.000 * Recorder'] and ckp.lines[-1] == 'recorder summary'
    assert s.log[-1].tolist() == pytest.approx([2, 4, 6])  # the rejected batch left the log


def test_a_misspelt_hook_is_refused_when_the_class_is_defined():
    with pytest.raises(TypeError, match=r'comit \(commit\) looks like a misspelt hook'):
        class Wrong(Term):
            def comit(self):
                pass
    with pytest.raises(TypeError, match=r'end_logs \(end_log\)'):
        class Wrong2(Term):
            def end_logs(self):
                pass

    class Fine(Term):  # helpers far from any hook's name are fine
        def features(self, x):
            return x


def test_a_registered_class_that_is_no_term_is_refused_in_one_line(monkeypatch):
    monkeypatch.setitem(LOSSES._items, 'plainl1', ('PlainL1', torch.nn.L1Loss))
    with pytest.raises(TypeError, match='PlainL1: .* does not derive from loss.Term'):
        create_loss('1*PlainL1')


def test_each_gan_variant_is_its_own_class_and_no_term_reads_args():
    assert {LOSSES.get(n) for n in ('GAN', 'RGAN', 'WGAN_GP')} == {GAN, RGAN, WGAN_GP}
    assert all(issubclass(c, Adversarial) for c in (GAN, RGAN, WGAN_GP))
    text = (SRC / 'loss' / 'adversarial.py').read_text()
    assert 'self.name' not in text and 'hasattr' not in (SRC / 'loss' / '__init__.py').read_text()
    from loss.flags import parameters
    assert not [n for n in LOSSES.names() if 'args' in parameters(LOSSES.get(n))]
    for f in ('adversarial.py', 'vgg.py', 'discriminator.py'):  # only Loss and Training.from_args read the flags
        assert not re.search(r'\bargs\b', (SRC / 'loss' / f).read_text()), f


# ---- flags ------------------------------------------------------------------------
def test_terms_declare_their_flags_and_the_old_command_lines_keep_working(capsys):
    args = option.parse_args(['--loss', '1*L1+0.1*WGAN_GP', '--gan_arch', 'patch', '--gan_k', '2',
                              '--gp_weight', '5', '--data_test', 'Sample', '--cpu'])
    assert (args.gan_arch, args.gan_k, args.gp_weight) == ('patch', 2, 5.0)
    from loss.flags import term_kwargs
    assert term_kwargs('WGAN_GP', args) == dict(n_colors=3, patch_size=args.patch_size, gan_arch='patch', gan_k=2,
                                                gp_weight=5.0)
    adv = loss.Loss(args, Ckp()).loss_module[1]
    assert adv.gan_k == 2 and adv.gp_weight == 5.0 and adv.optimizer.param_groups[0]['betas'] == (0.0, 0.9)
    defaults = option.parse_args(['--data_test', 'Sample', '--cpu'])
    assert (defaults.gan_arch, defaults.gan_k, defaults.gp_weight, defaults.vgg_weights) == ('srgan', 1, 10.0, '')
    for bad in (['--gan_k', '0'], ['--gan_arch', 'unet']):
        with pytest.raises(SystemExit) as e:
            option.parse_args(['--data_test', 'Sample', '--cpu', *bad])
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--gan_k: must be a positive integer, got '0'" in err and "invalid choice: 'unet'" in err
    parser = option.build_parser()
    group = next(g for g in parser._action_groups if g.title.startswith('loss term flags'))
    assert {a.dest for a in group._group_actions} >= {'gan_arch', 'gan_k', 'gp_weight', 'vgg_weights'}


def test_optimizer_defaults_from_python_are_the_command_lines():
    args = option.parse_args(['--data_test', 'Sample', '--cpu'])
    for k, v in vars(OPTIMIZER_DEFAULTS).items():
        assert getattr(args, k) == v, k


def test_a_misspelt_loss_name_gets_did_you_mean():
    code, _, err = run_main(['--loss', '1*L1+0.1*RGAM', '--data_test', 'Sample', '--cpu'])
    assert code == 2 and "unknown term 'RGAM'" in err and 'did you mean RGAN?' in err
    with pytest.raises(ValueError, match='did you mean MSE'):
        create_loss('1*MSR')


# ---- create_loss ------------------------------------------------------------------
def test_create_loss_builds_the_sum_from_python():
    torch.manual_seed(0)
    s = create_loss('1*L1+0.1*RGAN', patch_size=24, gan_arch='patch', gan_k=2)
    l1, rgan = s.loss_module
    assert isinstance(rgan, RGAN) and rgan.gan_k == 2 and rgan.stepper.lr() == 1e-4
    sr, hr = torch.rand(2, 3, 24, 24) * 255, torch.rand(2, 3, 24, 24) * 255
    expected = F.l1_loss(sr, hr) + 0.1 * rgan(sr, hr)
    assert s(sr, hr).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(TypeError, match="no term of '1\\*L1' takes gan_k"):
        create_loss('1*L1', gan_k=2)
    sgd = Training(optimizer=lambda params, **kw: torch.optim.SGD(params, lr=0.5))
    assert isinstance(create_loss('1*GAN', training=sgd, patch_size=24).loss_module[0].optimizer, torch.optim.SGD)


# ---- README: adding a loss ----------------------------------------------------------
def readme_example():
    """The code block of README.md's 'Adding a loss' that registers a term."""
    section = (REPO / 'README.md').read_text().split('## Adding a loss', 1)[1].split('\n## ', 1)[0]
    return next(b for b in re.findall(r'```python\n(.*?)```', section, re.S) if '@LOSSES.register' in b)


def test_readme_loss_example_is_one_file_with_its_flag(tmp_path, exp_name):
    code = readme_example()
    assert len(code.splitlines()) <= 25
    name = f'PytestLoss{uuid.uuid4().hex[:6]}'
    registered = re.search(r"@LOSSES\.register\('(\w+)'\)", code).group(1)
    path = SRC / 'loss' / f'{name.lower()}.py'
    path.write_text(code.replace(f"register('{registered}')", f"register('{name}')"))
    save = exp_name('charbonnier')
    try:
        p = subprocess.run(
            [sys.executable, '-c', f'import loss, option, torch; s = loss.create_loss("1*{name}", eps=0.5); '
             'print(s(torch.zeros(1, 1, 1, 2), torch.tensor([[[[0.0, 1.2]]]])).item()); '
             f'args = option.parse_args(["--loss", "1*{name}", "--eps", "0.25", "--data_test", "Sample", "--cpu"]); '
             'print(loss.Loss(args, None).loss_module[0].eps)'],
            cwd=SRC, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        value, eps = map(float, p.stdout.split())
        assert value == pytest.approx((0.5 + 1.3) / 2) and eps == 0.25   # sqrt(0 + .25), sqrt(1.44 + .25)
        p = subprocess.run(
            [sys.executable, 'main.py', '--loss', f'1*{name.upper()}', '--eps', '0.01', '--model', 'EDSR',
             '--n_resblocks', '1', '--n_feats', '8', '--scale', '2', '--data_train', 'Sample', '--data_test', 'Sample',
             '--patch_size', '24', '--batch_size', '2', '--test_every', '2', '--epochs', '1', '--n_threads', '0',
             '--cpu', '--dir_cache', str(tmp_path), '--save', save],
            cwd=SRC, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        log = (REPO / 'experiment' / save / 'log.txt').read_text()
        assert f'1.000 * {name}' in log and (REPO / 'experiment' / save / f'loss_{name}.png').exists()
        assert 'eps: 0.01' in (REPO / 'experiment' / save / 'config.txt').read_text().splitlines()
    finally:
        path.unlink()
