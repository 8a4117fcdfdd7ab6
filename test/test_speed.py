"""Speed and scale: torchrun DDP equals one process, EMA (closed form, saved,
tested, resumed), --amp/--channels_last/--compile against fp32 eager, the
--compile fallback, and src/speed.py."""
import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from conftest import REPO, SRC, run_cli, run_main

import loss as loss_mod  # noqa: E402
import model as model_mod  # noqa: E402
import option  # noqa: E402
import utility  # noqa: E402
from dataloader import TestSampler  # noqa: E402
from stepper import EMA  # noqa: E402
from trainer import Trainer  # noqa: E402

NO_DATA = types.SimpleNamespace(loader_train=[], loader_test=[])  # the steps below are fed by hand


class LogLines:
    """The lines of a run's log.txt."""

    def __init__(self, ckp):
        self.path = Path(ckp.get_path('log.txt'))

    @property
    def lines(self):
        return self.path.read_text().splitlines()


def tiny(cache, *extra):
    return ['--model', 'EDSR', '--n_resblocks', '2', '--n_feats', '16', '--scale', '2+3',
            '--data_train', 'Sample', '--data_test', 'Sample', '--patch_size', '48', '--batch_size', '4',
            '--test_every', '3', '--cpu', '--n_threads', '0', '--seed', '7', '--dir_cache', str(cache), *extra]


TORCHRUN = ('-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2')


def run(argv, torchrun=False):
    """main.py under torchrun (2 processes), else in this process."""
    if not torchrun:
        code, out, err = run_main(argv)
        assert code == 0, err[-3000:]
        return types.SimpleNamespace(returncode=code, stdout=out, stderr=err)
    p = run_cli(argv, timeout=300, env={'OMP_NUM_THREADS': '1'}, launcher=TORCHRUN)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def weights(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def files(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob('*'))


# ---- torchrun -----------------------------------------------------------------
def test_torchrun_two_ranks_equal_one_process_and_resume(tmp_path, exp_name):
    """2 gloo ranks x 2 samples and 1 process x 4 samples: same weights after
    each 3-step epoch (2 scales, so every rank must draw the same one), the
    second epoch resumed under torchrun; the same PSNR from the test sharded
    over the ranks (epoch 1) and from rank 0 alone (epoch 2, --save_results);
    rank 0 alone writes."""
    before = set(os.listdir(REPO / 'experiment'))
    one, two = exp_name('one'), exp_name('ddp')
    run(tiny(tmp_path / 'c1', '--epochs', '2', '--save_models', '--save_results', '--save', one))
    p = run(tiny(tmp_path / 'c2', '--epochs', '1', '--save_models', '--save', two, '--dist_timeout', '5'),
            torchrun=True)
    d1, d2 = REPO / 'experiment' / one, REPO / 'experiment' / two
    assert (d2 / 'log.txt').read_text().count('[Epoch 1]') == 1, p.stdout
    sharded = json.loads((d2 / 'results.json').read_text())
    run(tiny(tmp_path / 'c2', '--epochs', '2', '--save_models', '--save_results', '--load', two, '--resume', '-1'),
        torchrun=True)

    for e in (1, 2):
        diff = max_diff(weights(d1 / 'model' / f'model_{e}.pt'), weights(d2 / 'model' / f'model_{e}.pt'))
        assert diff < 1e-5, f'epoch {e}: weights differ by {diff}'
    s1, s2 = (torch.load(d / 'state.pt', weights_only=True) for d in (d1, d2))
    assert s2['psnr_log'].shape == s1['psnr_log'].shape
    assert torch.allclose(s1['loss_log'], s2['loss_log'], rtol=1e-4), (s1['loss_log'], s2['loss_log'])
    assert torch.allclose(s1['psnr_log'], s2['psnr_log'], atol=1e-4), (s1['psnr_log'], s2['psnr_log'])
    # epoch 1 of `one` (its results.json now holds epoch 2) is s1's first psnr_log row; the sharded test
    # of `two` summed over ranks gives the same means
    assert len(s1['psnr_log']) == 2
    for i, sc in enumerate(('2', '3')):
        assert abs(sharded['Sample'][sc]['psnr'] - s1['psnr_log'][0, 0, i].item()) < 1e-4, sharded
    assert (d2 / 'results-Sample').is_dir()
    # one set of outputs: the same files as the single process, each epoch logged once
    assert files(d2) == files(d1)
    log = (d2 / 'log.txt').read_text()
    assert log.count('[Epoch 1]') == 1 and log.count('[Epoch 2]') == 1, log
    assert set(os.listdir(REPO / 'experiment')) - before == {one, two}


def test_test_sampler_shards_are_disjoint_and_cover_the_set():
    shards = []
    for rank in range(3):
        t = TestSampler(8)
        t.rank, t.world_size = rank, 3
        shards.append([b[0][0] for b in t])
        assert len(t) == len(shards[-1])
    assert sorted(sum(shards, [])) == list(range(8))


# ---- EMA ----------------------------------------------------------------------
def test_ema_equals_closed_form_average():
    """After N SGD steps: shadow = sum_k c_k w_k with d_k = min(d, (k+1)/(k+10))
    at the k-th update, c_0 = prod d_k, c_k = (1 - d_(k-1)) prod_(j>=k) d_j;
    integer buffers hold the latest value."""
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    net.register_buffer('steps', torch.zeros((), dtype=torch.long))
    d, n = 0.8, 6
    ema = EMA(net, d)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    history = [{k: v.clone() for k, v in net.state_dict().items()}]
    for _ in range(n):
        opt.zero_grad()
        net(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
        net.steps += 1
        ema.update(net)
        history.append({k: v.clone() for k, v in net.state_dict().items()})
    dk = [min(d, (k + 1) / (k + 10)) for k in range(n)]
    c = [math.prod(dk)] + [(1 - dk[i - 1]) * math.prod(dk[i:]) for i in range(1, n + 1)]
    assert abs(sum(c) - 1) < 1e-12 and c[0] < 1e-3   # the initial weights: gone after 6 updates
    for k in ('weight', 'bias'):
        expect = sum(ci * h[k] for ci, h in zip(c, history))
        assert torch.allclose(ema.shadow[k], expect, atol=1e-7), k
        assert not torch.allclose(ema.shadow[k], history[-1][k])
    assert ema.shadow['steps'].item() == n


def test_ema_saved_tested_and_restored_on_resume(tmp_path, exp_name):
    a, b, c = exp_name('ema_a'), exp_name('ema_b'), exp_name('ema_c')
    flags = ['--ema', '0.5', '--lr', '1e-3', '--scale', '2', '--data_test', 'Sample']
    run(tiny(tmp_path / 'c', '--epochs', '2', '--save', a, *flags))
    run(tiny(tmp_path / 'c', '--epochs', '1', '--save', b, *flags))
    run(tiny(tmp_path / 'c', '--epochs', '2', '--load', b, '--resume', '-1', *flags))
    da, db = REPO / 'experiment' / a / 'model', REPO / 'experiment' / b / 'model'
    ema = weights(da / 'model_latest_ema.pt')
    assert max_diff(ema, weights(da / 'model_latest.pt')) > 1e-4  # really an average, not the weights
    assert max_diff(ema, torch.load(da.parent / 'state.pt', weights_only=True)['ema']) == 0
    assert max_diff(ema, weights(db / 'model_latest_ema.pt')) < 1e-6  # resume restored the average
    # the PSNR logged in training is that of the EMA weights
    trained = json.loads((da.parent / 'results.json').read_text())
    run(tiny(tmp_path / 'c', '--test_only', '--save', c, '--pre_train', da / 'model_latest_ema.pt', *flags))
    tested = json.loads((REPO / 'experiment' / c / 'results.json').read_text())
    assert abs(tested['Sample']['2']['psnr'] - trained['Sample']['2']['psnr']) < 1e-6


# ---- --amp / --channels_last / --compile ----------------------------------------
def make_trainer(tmp_path, *flags):
    args = option.parse_args(tiny(tmp_path, '--scale', '2', '--optimizer', 'SGD', '--lr', '0.1', *flags,
                                  '--save', f'run_{len(list(tmp_path.glob("run_*")))}'))
    ckp = utility.checkpoint(args, root=tmp_path)
    torch.manual_seed(0)
    m = model_mod.Model(args, ckp)
    t = Trainer(args, NO_DATA, m, loss_mod.Loss(args, ckp), ckp)
    t.loss.start_log()
    return t, LogLines(ckp)


def batch():
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(2, 3, 32, 32, generator=g) * 255
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    return lr, hr


def outputs(t):
    """(eval output on a 20x20 input under the option's autocast, weight update of one SGD step)."""
    lr, hr = batch()
    t.model.eval()
    with torch.no_grad(), t.stepper.autocast():
        sr = t.model(lr[:1, :, :20, :20], 0).float()
    t.model.train()
    w0 = {k: v.clone() for k, v in t.model.get_model().state_dict().items()}
    for _ in range(60):  # fp16: the gradient scaler lowers its scale first
        if t.step(lr, hr, 0, ['a', 'b']):
            break
        assert max_diff(w0, t.model.get_model().state_dict()) == 0  # no step on an overflow
    w1 = t.model.get_model().state_dict()
    t.close()  # the signal handlers go back to pytest's
    return sr, torch.cat([(w1[k] - w0[k]).flatten() for k in w0])


@pytest.fixture(scope='module')
def fp32(tmp_path_factory):
    t, _ = make_trainer(tmp_path_factory.mktemp('fp32'))
    return outputs(t)


# option -> (max |SR - fp32 SR| in levels of 255, min cosine of the SGD weight updates);
# measured on this tiny EDSR: channels_last 2e-5 / 1.0, bf16 0.61 / 0.9999, fp16 0.09 / 0.9999
TOLERANCE = {
    ('--channels_last',): (1e-3, 0.99999),
    ('--amp', 'bf16'): (2.0, 0.999),
    ('--amp', 'fp16'): (0.3, 0.999),
    ('--amp', 'bf16', '--channels_last'): (2.0, 0.999),
}


@pytest.mark.parametrize('flags', list(TOLERANCE), ids=lambda f: ' '.join(f))
def test_speed_option_matches_fp32_eager(tmp_path, fp32, flags):
    t, log = make_trainer(tmp_path, *flags)
    if 'fp16' in flags:  # a loss scale that overflows fp16 gradients: steps are held back, not skipped
        t.stepper.scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 36)
    sr, update = outputs(t)
    err = (sr - fp32[0]).abs().max().item()
    cos = torch.nn.functional.cosine_similarity(update, fp32[1], dim=0).item()
    max_err, min_cos = TOLERANCE[flags]
    assert err < max_err, f'{flags}: SR differs from fp32 by {err:.4f} levels'
    assert cos > min_cos, f'{flags}: weight update cosine {cos:.6f}'
    assert t.stepper.skips_total == 0, log.lines
    if 'fp16' in flags:
        assert t.stepper.scale_backoffs > 0 and \
            t.stepper.scaler.get_scale() < 2.0 ** 36 / 2 ** t.stepper.scale_backoffs * 1.01


def test_compile_matches_fp32_eager(tmp_path, fp32):
    t, log = make_trainer(tmp_path, '--compile')
    sr, update = outputs(t)
    assert t.model.compiled, log.lines
    assert (sr - fp32[0]).abs().max().item() < 1e-2
    assert torch.nn.functional.cosine_similarity(update, fp32[1], dim=0).item() > 0.9999


def test_compile_has_a_cache_of_its_own_under_an_emulated_capability(monkeypatch, tmp_path):
    """Under ATEN_CPU_CAPABILITY=avx2 the AVX-512 kernels cached by an earlier run made --compile's training
    NaN on every step (this module's test above, TooManySkips); the variable now selects a cache of its own."""
    from model.forward import cache_per_capability
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    monkeypatch.setenv('ATEN_CPU_CAPABILITY', 'avx2')
    monkeypatch.setenv('TORCHINDUCTOR_CACHE_DIR', os.path.abspath(default_cache_dir()))  # as torch leaves it
    cache_per_capability()
    assert os.environ['TORCHINDUCTOR_CACHE_DIR'] == default_cache_dir() + '_avx2'
    monkeypatch.setenv('TORCHINDUCTOR_CACHE_DIR', str(tmp_path))   # the user's own: kept
    cache_per_capability()
    assert os.environ['TORCHINDUCTOR_CACHE_DIR'] == str(tmp_path)
    monkeypatch.delenv('ATEN_CPU_CAPABILITY')
    monkeypatch.delenv('TORCHINDUCTOR_CACHE_DIR')
    cache_per_capability()
    assert 'TORCHINDUCTOR_CACHE_DIR' not in os.environ


def test_compile_falls_back_to_eager_with_a_message(tmp_path, fp32, monkeypatch):
    def unsupported(net, *a, **k):
        raise RuntimeError('no backend here\nsecond line')
    monkeypatch.setattr(torch, 'compile', unsupported)
    t, log = make_trainer(tmp_path, '--compile')
    assert '--compile: not supported here (RuntimeError: no backend here); running eager' in log.lines
    sr, _ = outputs(t)
    assert torch.equal(sr, fp32[0])

    class FailsAtFirstCall(nn.Module):
        def __init__(self, net):
            super().__init__()
            self._orig_mod = net

        def forward(self, x):
            raise RuntimeError('inductor: no C++ compiler')
    monkeypatch.setattr(torch, 'compile', FailsAtFirstCall)
    t, log = make_trainer(tmp_path, '--compile')
    sr, update = outputs(t)
    assert any(ln.startswith('--compile: failed (RuntimeError: inductor: no C++ compiler)') for ln in log.lines)
    assert not t.model.compiled
    assert torch.equal(sr, fp32[0]) and torch.allclose(update, fp32[1], atol=1e-6)


# ---- speed.py --------------------------------------------------------------------
def test_benchmark_smoke_prints_table_and_json(tmp_path):
    out = tmp_path / 'bench.json'
    p = subprocess.run([sys.executable, 'speed.py', '--smoke', '--n_threads', '2', '--json', str(out)], cwd=SRC,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    for head in ('loader', 'patches/s', 'option', 'it/s', 'x eager', 'infer MP/s'):
        assert head in p.stdout, p.stdout
    r = json.loads(out.read_text())
    assert set(r['loader']) == {'--ext img', '--ext sep', '--ext sep --cache_mem 0'}
    assert all(v['patches_per_s'] > 0 for v in r['loader'].values())
    rows = {o['option']: o for o in r['options']}
    measured = ['eager fp32', '--amp bf16', '--amp fp16', '--channels_last', 'bf16+channels_last']
    for name in measured:
        assert 'unsupported' not in rows[name], rows[name]
        assert rows[name]['it_per_s'] > 0 and rows[name]['infer_mp_per_s'] > 0
        assert rows[name]['wait_ms'] >= 0 and rows[name]['compute_ms'] > 0
    assert rows['eager fp32']['x_eager_train'] == 1.0
    e = rows['eager fp32']
    assert abs(rows['--amp bf16']['x_eager_train'] - rows['--amp bf16']['it_per_s'] / e['it_per_s']) < 1e-9
    assert 'skipped' in rows['--compile']  # --smoke leaves compilation out, and says so
    # the recommendation is --amp auto's own choice on this workload, and the figures say where they came from
    assert r['amp_auto']['amp'] in ('off', 'bf16', 'fp16') and 'recommended: --amp auto' in p.stdout
    prov = r['provenance']
    assert prov['torch'] == torch.__version__ and prov['device'].get('cpu') or prov['device'].get('gpu')
    assert prov['srlab']['commit'] is None or len(prov['srlab']['commit']) == 40
    assert prov['command'].startswith('speed.py --smoke')
    # distance to the hardware: the peak measured in the same run, each row's FLOPs and fractions of it
    assert 'peak GFLOP/s' in p.stdout and 'distance to the hardware' in p.stdout, p.stdout
    peak = r['peak']
    for prec in ('fp32', 'bf16') + (('fp16',) if peak['device'].startswith('cuda') else ()):
        ref = peak[prec]
        assert ref['matmul_gflops'] > 0 and ref['conv_gflops'] > 0 and ref['matmul_n'] > 0, ref
        assert ref['peak_gflops'] == max(ref['matmul_gflops'], ref['conv_gflops'])
    f = r['flops']['main']  # a step: 3 x the forward FLOPs (2 per multiply-add) of the batch's LR patches
    assert f['counted_on'] == 'meta' and f['lr_patch'] == '24x24'
    assert f['train_flops_per_step'] == 3 * 2 * r['config']['batch_size'] * f['multi_adds_lr_patch'] > 0
    for name in measured:
        o = rows[name]
        cuda_fp16 = 'fp16' in name and peak['device'].startswith('cuda')  # a CPU: fp16 rows against fp32
        assert o['peak_precision'] == ('bf16' if 'bf16' in name else 'fp16' if cuda_fp16 else 'fp32'), o
        assert o['train_flops_per_step'] > 0 and o['infer_flops_per_frame'] > 0
        assert abs(o['train_tflops'] - o['train_flops_per_step'] / o['compute_ms'] * 1e3 / 1e12) < 1e-12
        for k in ('train', 'infer'):
            assert o[f'{k}_tflops'] > 0
            assert 0 < o[f'{k}_x_peak'] <= o[f'{k}_x_conv'] < 2, o


def test_time_budget_under_torchrun_stops_every_rank_at_the_same_step(tmp_path, exp_name):
    """--time_budget under torchrun: the ranks agree on the step where the budget
    is spent (a rank that stopped alone would leave the other waiting in its next
    collective until --dist_timeout); the run tests, saves and exits 0."""
    name = exp_name('ddp_budget')
    p = run(tiny(tmp_path / 'c', '--time_budget', '0.02', '--epochs', '50', '--test_every', '400',
                 '--dist_timeout', '1', '--save', name), torchrun=True)
    log = (REPO / 'experiment' / name / 'log.txt').read_text()
    assert log.count('--time_budget spent') == 1 and log.count('Evaluation:') == 1, p.stdout
    st = torch.load(REPO / 'experiment' / name / 'state.pt', weights_only=True)
    # state.pt holds rank 0's clock; the rank that spent the 1.2 s first may have been another
    assert st['epoch'] == 1 and st['train_seconds'] >= 1.0
