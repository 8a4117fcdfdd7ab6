"""Every integer scale from x2 to x8 end to end: sub-pixel tails (EDSR, RCAN,
RDN, SwinIR, MDSR), DDBPN and Bicubic give s*h x s*w, multi-scale models
re-key per-scale tails by scale, and the released x2/x3/x4 layouts are kept."""
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

import option  # noqa: E402
from model import common  # noqa: E402
from model import build_network  # noqa: E402

SCALES = list(range(2, 9))
TINY = {
    'EDSR': ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8'],
    'EDSR_direct': ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--upsampler', 'pixelshuffledirect'],
    'EDSR_skip': ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--upsampler', 'pixelshuffledirect',
                  '--global_skip', 'bicubic'],
    'RCAN': ['--model', 'RCAN', '--n_resgroups', '1', '--n_resblocks', '1', '--n_feats', '16', '--reduction', '4'],
    'RDN': ['--model', 'RDN', '--RDNconfig', '2-2-8', '--G0', '8'],
}
TAIL = {'EDSR': 'tail', 'EDSR_direct': 'tail', 'EDSR_skip': 'tail', 'RCAN': 'tail', 'RDN': 'UPNet'}

DATA = tempfile.mkdtemp(prefix='srlab_scales_')  # an empty benchmark/Set5 for option validation
os.makedirs(os.path.join(DATA, 'benchmark', 'Set5'))
atexit.register(shutil.rmtree, DATA, True)


pytestmark = pytest.mark.usefixtures('one_thread')


def build(argv, scales, seed=0):
    args = option.parse_args(list(argv) + ['--scale', '+'.join(map(str, scales)), '--test_only', '--pre_train', 'none',
                                           '--data_test', 'Set5', '--dir_data', DATA])
    assert args.scale == list(scales)
    torch.manual_seed(seed)
    return build_network(args)[0].eval()


def lr_batch(h=10, w=12):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)) * 255


def run(net, x, idx=0):
    if hasattr(net, 'set_scale'):
        net.set_scale(idx)
    with torch.no_grad():
        return net(x)


def test_shuffle_steps():
    assert [common.shuffle_steps(s) for s in SCALES] == [[2], [3], [2, 2], [5], [2, 3], [7], [2, 2, 2]]
    with pytest.raises(ValueError, match='--scale'):
        common.shuffle_steps(1)


@pytest.mark.parametrize('name', list(TINY))
@pytest.mark.parametrize('s', SCALES)
def test_single_scale_sizes(name, s):
    net = build(TINY[name], (s,))
    y = run(net, lr_batch())
    assert y.shape == (1, 3, 10 * s, 12 * s) and torch.isfinite(y).all()
    tail = {k[len(TAIL[name]) + 1:]: v for k, v in net.state_dict().items() if k.startswith(TAIL[name] + '.')}
    assert net.scale_of(tail) == s


@pytest.mark.parametrize('s', SCALES)
def test_bicubic_sizes(s):
    y = run(build(['--model', 'Bicubic'], (s,)), lr_batch(5, 6))
    assert y.shape == (1, 3, 5 * s, 6 * s)


@pytest.mark.parametrize('s', [5, 6, 7, 8])
def test_ddbpn_sizes(s):
    net = build(['--model', 'DDBPN', '--dbpn_stages', '2', '--dbpn_n0', '8', '--dbpn_nr', '4'], (s,))
    assert run(net, lr_batch(5, 7)).shape == (1, 3, 5 * s, 7 * s)


def test_swinir_and_mdsr_multi_scale():
    swin = ['--model', 'SwinIR', '--embed_dim', '12', '--depths', '2', '--num_heads', '2', '--window_size', '4']
    mdsr = ['--model', 'MDSR', '--n_resblocks', '1', '--n_feats', '8']
    for argv in (swin, swin + ['--swin_upsampler', 'pixelshuffledirect'], mdsr):
        net = build(argv, (5, 6, 7))
        for i, s in enumerate((5, 6, 7)):
            assert run(net, lr_batch(6, 5), i).shape == (1, 3, 6 * s, 5 * s), (argv, s)


@pytest.mark.parametrize('name', list(TINY))
def test_multi_scale_and_remap(name):
    """A 2+5+8 model gives each tail's size; x5 weights land in its x5 slot."""
    x = lr_batch()
    multi = build(TINY[name], (2, 5, 8), seed=1)
    for i, s in enumerate((2, 5, 8)):
        assert run(multi, x, i).shape == (1, 3, 10 * s, 12 * s)
    five = build(TINY[name], (5,), seed=0)
    prefix = TAIL[name] + '.'
    missing, unexpected = multi.load_state_dict(multi.adapt_state_dict(five.state_dict()), strict=False)
    assert not unexpected and missing and all(k.startswith((prefix + '0.', prefix + '2.')) for k in missing)
    assert torch.equal(run(multi, x, 1), run(five, x))


def test_mdsr_remap_by_scale():
    argv = ['--model', 'MDSR', '--n_resblocks', '1', '--n_feats', '8']
    src, dst = build(argv, (6, 3), seed=0), build(argv, (3, 6), seed=1)
    dst.load_state_dict(dst.adapt_state_dict(src.state_dict()))
    x = lr_batch(6, 5)
    assert torch.equal(run(dst, x, 1), run(src, x, 0))


EDSR_X4_TAIL = [('tail.0.0.weight', (32, 8, 3, 3)), ('tail.0.0.bias', (32,)),
                ('tail.0.2.weight', (32, 8, 3, 3)), ('tail.0.2.bias', (32,)),
                ('tail.1.weight', (3, 8, 3, 3)), ('tail.1.bias', (3,))]
EDSR_TAILS = {
    2: [('tail.0.0.weight', (32, 8, 3, 3)), ('tail.0.0.bias', (32,)),
        ('tail.1.weight', (3, 8, 3, 3)), ('tail.1.bias', (3,))],
    3: [('tail.0.0.weight', (72, 8, 3, 3)), ('tail.0.0.bias', (72,)),
        ('tail.1.weight', (3, 8, 3, 3)), ('tail.1.bias', (3,))],
    4: EDSR_X4_TAIL,
}


@pytest.mark.parametrize('s', [2, 3, 4])
def test_released_edsr_layout(s):
    state = build(TINY['EDSR'], (s,)).state_dict()
    tail = [(k, tuple(v.shape)) for k, v in state.items() if k.startswith('tail.')]
    assert tail == EDSR_TAILS[s]
    assert common.upsampler_scale(state, 'tail.0.') == s
