"""Model zoo: VDSR, SRResNet, RCAN, RDN, DDBPN, SwinIR (classical and light).

Small configurations run forwards and training steps; the paper
configurations are only built to count their parameters."""
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
import errors  # noqa: E402
from data.imresize import imresize_tensor  # noqa: E402
from model import Model, build_network, create_model, released  # noqa: E402
from model.common import count_parameters  # noqa: E402


pytestmark = pytest.mark.usefixtures('one_thread')


SMALL = {
    'VDSR': ['--model', 'VDSR', '--n_resblocks', '4', '--n_feats', '16'],
    'SRResNet': ['--model', 'SRResNet', '--n_resblocks', '2', '--n_feats', '16'],
    'RCAN': ['--model', 'RCAN', '--n_resgroups', '2', '--n_resblocks', '2', '--n_feats', '16', '--reduction', '4'],
    'RDN': ['--model', 'RDN', '--G0', '16', '--RDNconfig', '3-3-8'],
    'DDBPN': ['--model', 'DDBPN', '--dbpn_stages', '3', '--dbpn_n0', '16', '--dbpn_nr', '8'],
    'SwinIR': ['--model', 'SwinIR', '--embed_dim', '12', '--depths', '2+2', '--num_heads', '2+3',
               '--window_size', '4'],
    'SwinIR_light': ['--model', 'SwinIR', '--embed_dim', '12', '--depths', '2+2', '--num_heads', '2+3',
                     '--window_size', '4', '--swin_upsampler', 'pixelshuffledirect'],
    'SRCNN': ['--model', 'SRCNN', '--n_feats', '16', '--srcnn_n2', '8'],
    'FSRCNN': ['--model', 'FSRCNN', '--fsrcnn_d', '16', '--fsrcnn_s', '8', '--fsrcnn_m', '2'],
    'ESPCN': ['--model', 'ESPCN', '--n_feats', '16', '--espcn_n2', '8'],
}
MULTI = ['VDSR', 'SRResNet', 'RCAN', 'RDN', 'SwinIR', 'SwinIR_light', 'SRCNN', 'FSRCNN', 'ESPCN']  # one model, 2+3+4
PER_SCALE = {'SRResNet': 'tail', 'RCAN': 'tail', 'RDN': 'UPNet', 'SwinIR': 'upsample', 'SwinIR_light': 'upsample',
             'FSRCNN': 'tail', 'ESPCN': 'tail'}

SWIN_M = ['--model', 'SwinIR']
SWIN_S = ['--model', 'SwinIR', '--embed_dim', '60', '--depths', '6+6+6+6', '--num_heads', '6+6+6+6',
          '--swin_upsampler', 'pixelshuffledirect']
# network, config, flags, scale, our count (trainable), paper / release value
PARAMS = [
    ('VDSR', 'D20 F64, Y input (paper)', ['--model', 'VDSR', '--n_resblocks', '20', '--n_colors', '1'], 2,
     665_921, 665e3),
    ('VDSR', 'D20 F64, RGB', ['--model', 'VDSR', '--n_resblocks', '20'], 2, 668_227, None),
    ('SRResNet', 'B16 F64', ['--model', 'SRResNet', '--n_resblocks', '16'], 4, 1_549_588, 1.5e6),
    ('RCAN', 'G10 B20 F64 r16', ['--model', 'RCAN', '--n_resgroups', '10', '--n_resblocks', '20'], 2,
     15_444_643, 15.44e6),
    ('RCAN', 'G10 B20 F64 r16', ['--model', 'RCAN', '--n_resgroups', '10', '--n_resblocks', '20'], 4,
     15_592_355, 15.59e6),
    ('RDN', 'D16 C8 G64 G0=64', ['--model', 'RDN'], 2, 22_123_395, 22.12e6),
    ('RDN', 'D16 C8 G64 G0=64', ['--model', 'RDN'], 4, 22_271_107, 22.27e6),
    ('DDBPN', 'T7 n0=256 nr=64', ['--model', 'DDBPN'], 4, 10_429_763, 10.4e6),
    ('DDBPN', 'EDSR-PyTorch T6 n0=128 nr=32',
     ['--model', 'DDBPN', '--dbpn_stages', '6', '--dbpn_n0', '128', '--dbpn_nr', '32'], 4, 2_207_043, None),
    ('SwinIR', 'classical (SwinIR-M)', SWIN_M, 2, 11_752_487, 11.75e6),
    ('SwinIR', 'classical (SwinIR-M)', SWIN_M, 4, 11_900_199, 11.9e6),
    ('SwinIR', 'lightweight (SwinIR-S)', SWIN_S, 2, 910_152, 878e3),
    ('SwinIR', 'lightweight (SwinIR-S)', SWIN_S, 4, 929_628, 897e3),
]

DATA = tempfile.mkdtemp(prefix='srlab_zoo_')  # holds an empty benchmark/Set5 for option validation
os.makedirs(os.path.join(DATA, 'benchmark', 'Set5'))
atexit.register(shutil.rmtree, DATA, True)


def make_args(argv, scale=(2,), testing=True):
    args = option.parse_args(['--pre_train', 'none'] + list(argv) + ['--scale', '+'.join(map(str, scale))]
                             + ['--test_only'] * testing + ['--data_test', 'Set5', '--dir_data', DATA])
    assert args.scale == list(scale)
    return args


def build(argv, scale=(2,), seed=0, **flags):
    args = make_args(argv, scale).replace(**flags)
    torch.manual_seed(seed)
    return build_network(args)[0]


def lr_batch(n=1, h=11, w=9, seed=0, rgb_range=255):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g) * rgb_range


@pytest.mark.parametrize('name', list(SMALL))
def test_forward_sizes(name):
    x = lr_batch(h=11, w=9)
    for_scales = [(2, 3, 4)] if name in MULTI else [(2,), (3,), (4,)]
    for scales in for_scales:
        net = build(SMALL[name], scales).eval()
        for i, s in enumerate(scales):
            if hasattr(net, 'set_scale'):
                net.set_scale(i)
            with torch.no_grad():
                y = net(x)
            assert y.shape == (1, 3, 11 * s, 9 * s), (name, s, y.shape)
            assert torch.isfinite(y).all()


@pytest.mark.parametrize('name', list(SMALL))
def test_training_step_reduces_loss(name):
    net = build(SMALL[name] + ['--rgb_range', '1'], (2,), drop_path=0.0).train()
    x = lr_batch(n=2, h=12, w=12, rgb_range=1)
    target = 0.4 + 0.2 * torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.l1_loss(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.95 * losses[0], (name, losses)


def test_parameter_counts():
    rows = []
    for net_name, config, argv, scale, ours, paper in PARAMS:
        net = build(argv, (scale,))
        n = count_parameters(net)
        rpb = sum(p.numel() for k, p in net.named_parameters() if k.endswith('relative_position_bias_table'))
        rows.append((net_name, config, scale, n, rpb, paper))
        assert n == ours, (net_name, config, scale, n)
        if paper is not None:
            # SwinIR-S's published counts leave out the relative position bias tables
            comparable = n - rpb if 'SwinIR-S' in config else n
            assert abs(comparable - paper) / paper < 0.035, (net_name, config, scale, comparable, paper)
    print(f"\n{'network':9} {'config':30} {'scale':>5} {'params':>12} {'w/o rel.pos.bias':>17} {'paper':>10}")
    for net_name, config, scale, n, rpb, paper in rows:
        extra = f'{n - rpb:,}' if rpb else ''
        ref = f'{paper / 1e6:.4g}M' if paper else '-'
        print(f'{net_name:9} {config:30} {scale:>5} {n:>12,} {extra:>17} {ref:>10}')


@pytest.mark.parametrize('name', list(PER_SCALE))
def test_single_multi_remap(name):
    """x2 weights loaded into a 2+3+4 model give the same x2 output, and the
    x3 slot of the 2+3+4 model loaded into an x3 model gives its x3 output."""
    x = lr_batch(h=8, w=10)
    single = build(SMALL[name], (2,), seed=0).eval()
    multi = build(SMALL[name], (2, 3, 4), seed=1).eval()
    prefix = PER_SCALE[name] + '.'
    missing, unexpected = multi.load_state_dict(multi.adapt_state_dict(single.state_dict()), strict=False)
    assert not unexpected and missing and all(k.startswith((prefix + '1.', prefix + '2.')) for k in missing)
    multi.set_scale(0)
    with torch.no_grad():
        assert torch.equal(single(x), multi(x))

    three = build(SMALL[name], (3,), seed=2).eval()
    missing, unexpected = three.load_state_dict(three.adapt_state_dict(multi.state_dict()), strict=False)
    assert not missing and unexpected and all(k.startswith(prefix + 'unused') for k in unexpected)
    multi.set_scale(1)
    with torch.no_grad():
        assert torch.equal(three(x), multi(x))


class Ckp:
    def __init__(self, root):
        self.root = root
        self.log = []

    def get_path(self, *parts):
        return str(Path(self.root, *parts))

    def write_log(self, text):
        self.log.append(text)


def wrapper(argv, scale, tmp_path, pre_train):
    """The wrapper with a file loaded to train on (a file may lack some of the scales)."""
    args = make_args(list(argv) + ['--cpu', '--pre_train', str(pre_train)], scale, testing=False)
    ckp = Ckp(tmp_path)
    return Model(args, ckp).eval(), ckp


@pytest.mark.parametrize('name', ['RCAN', 'RDN', 'SwinIR'])
def test_wrapper_loads_single_into_multi(name, tmp_path):
    """Through the Model wrapper (strict --pre_train): x2 file into a 2+3+4 model."""
    single = build(SMALL[name], (2,)).eval()
    path = tmp_path / 'x2.pt'
    torch.save(single.state_dict(), path)
    model, ckp = wrapper(SMALL[name], (2, 3, 4), tmp_path, path)
    x = lr_batch(h=8, w=8)
    with torch.no_grad():
        assert torch.equal(model(x, 0), single(x))
        assert model(x, 2).shape == (1, 3, 32, 32)
    assert any('Loaded' in line for line in ckp.log)


def rcan_to_basicsr(state, n_groups, n_blocks):
    """Released RCAN names -> BasicSR rcan_arch names (the inverse of RCAN.from_basicsr)."""
    out = {}
    for k, v in state.items():
        if k.startswith(('sub_mean.', 'add_mean.')):
            continue
        p = k.split('.')
        if p[0] == 'head':
            k = 'conv_first.' + p[-1]
        elif p[0] == 'tail':
            k = ('upsample.' + '.'.join(p[2:])) if p[1] == '0' else 'conv_last.' + p[-1]
        elif p[1] == str(n_groups):
            k = 'conv_after_body.' + p[-1]
        elif p[3] == str(n_blocks):
            k = f'body.{p[1]}.conv.{p[-1]}'
        else:
            rest = '.'.join(p[5:]).replace('3.conv_du.0.', '3.attention.1.').replace('3.conv_du.2.', '3.attention.3.')
            k = f'body.{p[1]}.residual_group.{p[3]}.rcab.{rest}'
        out[k] = v
    return out


def test_basicsr_rcan(tmp_path):
    net = build(SMALL['RCAN'], (4,), seed=3).eval()
    state = rcan_to_basicsr(net.state_dict(), 2, 2)
    assert {'conv_first.weight', 'body.1.residual_group.1.rcab.3.attention.3.bias', 'body.0.conv.weight',
            'conv_after_body.weight', 'upsample.2.weight', 'conv_last.bias'} <= set(state)
    assert len(state) == len(net.state_dict()) - 4  # no MeanShift in BasicSR
    path = tmp_path / 'rcan_basicsr.pth'
    torch.save({'params': state}, path)
    model, _ = wrapper(SMALL['RCAN'], (4,), tmp_path, path)
    x = lr_batch(h=6, w=7)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))


def test_basicsr_swinir(tmp_path):
    """An official/BasicSR SwinIR file ({'params': ...} with the buffers
    relative_position_index and attn_mask stored) loads by name."""
    for argv in (SMALL['SwinIR'], SMALL['SwinIR_light']):
        net = build(argv, (3,), seed=4).eval()
        state = dict(net.state_dict())
        for k, v in net.named_buffers():
            if k.endswith('relative_position_index'):
                state[k] = v.clone()
        state['layers.0.residual_group.blocks.1.attn_mask'] = torch.zeros(4, 16, 16)
        assert 'patch_embed.norm.weight' in state and 'layers.1.residual_group.blocks.1.mlp.fc2.bias' in state
        assert ('conv_before_upsample.0.weight' in state) == ('pixelshuffledirect' not in argv)
        path = tmp_path / 'swinir.pth'
        torch.save({'params': state}, path)
        model, _ = wrapper(argv, (2, 3), tmp_path, path)
        x = lr_batch(h=9, w=6)
        with torch.no_grad():
            assert torch.equal(model(x, 1), net(x))


def test_ddbpn_rejects_several_scales():
    with pytest.raises(errors.SRLabError, match='--scale'):
        build(SMALL['DDBPN'], (2, 4))


def test_ddbpn_any_size():
    net = build(SMALL['DDBPN'], (3,)).eval()
    with torch.no_grad():
        assert net(lr_batch(h=7, w=5)).shape == (1, 3, 21, 15)


def test_swinir_pads_and_crops():
    net = build(SMALL['SwinIR'], (2,)).eval()
    with torch.no_grad():
        for h, w in ((1, 1), (3, 2), (5, 13), (8, 4)):
            assert net(lr_batch(h=h, w=w)).shape == (1, 3, 2 * h, 2 * w)
        # a 7x6 input is reflect-padded to 8x8 at the bottom/right, and cropped back
        x = lr_batch(h=7, w=6)
        padded = torch.nn.functional.pad(x, (0, 2, 0, 1), mode='reflect')
        assert torch.allclose(net(x), net(padded)[..., :14, :12], atol=1e-4)


def test_vdsr_is_bicubic_plus_residual():
    net = build(SMALL['VDSR'], (2, 3)).eval()
    last = net.body[-1][0]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    x = lr_batch(h=6, w=5)
    with torch.no_grad():
        for i, s in enumerate((2, 3)):
            net.set_scale(i)
            assert torch.allclose(net(x), imresize_tensor(x, s), atol=1e-4)


def test_bad_flags_name_the_flag():
    with pytest.raises(errors.SRLabError, match='--num_heads'):
        build(['--model', 'SwinIR', '--embed_dim', '12', '--depths', '2+2', '--num_heads', '5+5'])
    with pytest.raises(SystemExit):  # the command line refuses it: not integers joined with '+'
        build(['--model', 'SwinIR', '--depths', '6x6'])
    with pytest.raises(ValueError, match='--depths'):
        create_model('SwinIR', depths=(6, 0))
    with pytest.raises(errors.SRLabError, match='--RDNconfig'):
        build(['--model', 'RDN', '--RDNconfig', 'C'])
    with pytest.raises(errors.SRLabError, match="--upsampler: 'pixelshuffle_direct' must be one of"):
        build(['--model', 'EDSR', '--upsampler', 'pixelshuffle_direct'])
    with pytest.raises(errors.SRLabError, match="--global_skip: 'linear' must be one of none, bicubic, nearest"):
        build(['--model', 'EDSR', '--global_skip', 'linear'])
    with pytest.raises(errors.SRLabError, match='--expansion: must be a whole number of 1 or more, got 0'):
        build(['--model', 'EDSR', '--expansion', '0'])


def test_edsr_direct_tail():
    """--upsampler pixelshuffledirect: each scale's tail is one conv to 3 x s^2 maps and a shuffle, the
    speedrun network's 1,410,249 trainable parameters become 679,767 (the body and head unchanged)."""
    argv = ['--model', 'EDSR', '--n_resblocks', '8', '--n_feats', '64']
    full, direct = build(argv, (2, 3, 4)), build(argv + ['--upsampler', 'pixelshuffledirect'], (2, 3, 4))
    assert [sum(p.numel() for p in n.parameters() if p.requires_grad) for n in (full, direct)] == [1_410_249, 679_767]
    for i, s in enumerate((2, 3, 4)):
        assert {k: tuple(v.shape) for k, v in direct.tail[i].state_dict().items()} == {
            '0.weight': (3 * s * s, 64, 3, 3), '0.bias': (3 * s * s,)}
    body = {k: tuple(v.shape) for k, v in full.state_dict().items() if not k.startswith('tail.')}
    assert body == {k: tuple(v.shape) for k, v in direct.state_dict().items() if not k.startswith('tail.')}


@pytest.mark.parametrize('skip', ['bicubic', 'nearest'])
def test_edsr_global_skip(skip):
    """--global_skip adds the input upsampled at the current scale to the output: no weights of its own,
    and with the tails' convs zeroed the network is that upsampling, at each of its scales."""
    argv = ['--model', 'EDSR', '--n_resblocks', '2', '--n_feats', '16', '--upsampler', 'pixelshuffledirect']
    plain, net = build(argv, (2, 3, 4)), build(argv + ['--global_skip', skip], (2, 3, 4))
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
    x = lr_batch(2, 7, 5)
    with torch.no_grad():
        for tail in net.tail:
            tail[0].weight.zero_(), tail[0].bias.zero_()
        for s in (2, 3, 4):
            y = net(x, scale=s)
            if skip == 'nearest':
                want = x.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
            else:
                want = torch.nn.functional.interpolate(x, scale_factor=s, mode='bicubic', align_corners=False)
            assert y.shape == (2, 3, 7 * s, 5 * s)
            torch.testing.assert_close(y, want, rtol=0, atol=1e-3)
            assert not torch.equal(plain(x, scale=s), y)


def test_released(tmp_path):
    args = make_args(['--model', 'EDSR', '--dir_models', str(tmp_path)], (2,))
    with pytest.raises(errors.SRLabError, match='edsr_baseline_x2-1bc95232.pt') as e:
        released.find_released(args)
    assert 'https://cv.snu.ac.kr/research/EDSR/models/edsr_baseline_x2-1bc95232.pt' in str(e.value)
    assert str(tmp_path) in str(e.value) and '\n' not in str(e.value)
    (tmp_path / 'edsr_baseline_x2-1bc95232.pt').write_bytes(b'not the file')
    with pytest.raises(errors.SRLabError, match='SHA-256'):
        released.find_released(args)
    args = args.replace(scale=[2, 3, 4])
    with pytest.raises(errors.SRLabError, match='--scale'):
        released.find_released(args)
    f = tmp_path / 'file.bin'
    f.write_bytes(b'abc')
    assert released.check_file(str(f), released.sha256_prefix(str(f)), 'url') == str(f)

    args = make_args(SWIN_S + ['--dir_models', str(tmp_path)], (4,))
    (tmp_path / '002_lightweightSR_DIV2K_s64w8_SwinIR-S_x4.pth').write_bytes(b'x')  # no published hash
    assert released.find_released(args).endswith('002_lightweightSR_DIV2K_s64w8_SwinIR-S_x4.pth')
    args = make_args(['--model', 'MDSR', '--dir_models', str(tmp_path)], (2, 3, 4))
    with pytest.raises(errors.SRLabError, match='mdsr_baseline-a00cab12.pt'):
        released.find_released(args)
    for name in ('VDSR', 'SRResNet', 'RCAN', 'RDN', 'DDBPN'):
        args = make_args(SMALL[name] + ['--dir_models', str(tmp_path)], (2,))
        with pytest.raises(errors.SRLabError, match='no released weights'):
            released.find_released(args)


# ---- the classic networks: SRCNN, FSRCNN, ESPCN ---------------------------------------
def weights_only(net):
    """Filter weights without biases or PReLU slopes: what the SRCNN and FSRCNN papers count."""
    return sum(p.numel() for n, p in net.named_parameters() if n.endswith('weight') and p.dim() > 1)


@pytest.mark.parametrize('template,scale,paper', [
    ('SRCNN', 3, 8_032),        # Dong et al. TPAMI 2016, Sec. 4.3: 9-1-5 (n1 64, n2 32)
    ('SRCNN_955', 3, 57_184),   # 9-5-5; FSRCNN paper Table 1 lists SRCNN-Ex with 57,184
    ('FSRCNN', 3, 12_464),      # FSRCNN paper Table 1: FSRCNN(56, 12, 4)
    ('FSRCNN_s', 3, 3_937),     # FSRCNN-s(32, 5, 1): 5^2*32 + 32*5 + 9*5^2 + 5*32 + 9^2*32
    ('ESPCN', 3, 5 * 5 * 64 + 3 * 3 * 64 * 32 + 3 * 3 * 32 * 9),  # Shi et al. 5-3-3, (64, 32), r = 3, Y
])
def test_classic_templates_give_the_papers_networks(template, scale, paper, tmp_path):
    (tmp_path / 'benchmark' / 'Set5').mkdir(parents=True)
    args = option.parse_args(['--template', template, '--scale', str(scale), '--test_only', '--pre_train', 'none',
                              '--data_test', 'Set5',
                              '--dir_data', str(tmp_path)])
    assert args.n_colors == 1  # they work on the Y channel, as the papers
    net, meta = build_network(args)
    assert weights_only(net) == paper
    with torch.no_grad():
        assert net(torch.rand(1, 1, 7, 9) * 255).shape == (1, 1, 7 * scale, 9 * scale)


@pytest.mark.parametrize('name', ['SRCNN', 'FSRCNN', 'ESPCN'])
def test_classic_networks_chop_and_self_ensemble(name, tmp_path):
    """--chop with an overlap covering the receptive field equals the untiled
    output; --self_ensemble is the mean of the eight flips and transposes."""
    x = lr_batch(h=30, w=26)
    torch.manual_seed(0)
    plain = Model(make_args(SMALL[name] + ['--cpu'], (2, 3)), Ckp(tmp_path)).eval()
    sd = plain.state_dict()
    chop = Model(make_args(SMALL[name] + ['--cpu', '--chop', '--chop_size', '16', '--chop_overlap', '7'], (2, 3)),
                 Ckp(tmp_path)).eval()
    ens = Model(make_args(SMALL[name] + ['--cpu', '--self_ensemble'], (2, 3)), Ckp(tmp_path)).eval()
    chop.load_state_dict(sd)
    ens.load_state_dict(sd)
    from model.forward import inverse_transform, transform
    with torch.no_grad():
        for i in (0, 1):
            want = plain(x, i)
            assert (chop(x, i) - want).abs().max() < 1e-3
            mean = sum(inverse_transform(plain(transform(x, t), i), t) for t in range(8)) / 8
            assert (ens(x, i) - mean).abs().max() < 1e-3


@pytest.mark.parametrize('name', ['VDSR', 'SRResNet', 'RCAN', 'RDN', 'DDBPN', 'SwinIR', 'SwinIR_light',
                                  'SRCNN', 'SRCNN_955', 'FSRCNN', 'FSRCNN_s', 'ESPCN'])
def test_templates(name, tmp_path):
    (tmp_path / 'benchmark' / 'Set5').mkdir(parents=True)
    args = option.parse_args(['--template', name, '--test_only', '--pre_train', 'none', '--data_test', 'Set5',
                              '--dir_data', str(tmp_path),
                              '--dir_cache', str(tmp_path / 'cache')])
    assert args.model == name.split('_')[0]
    assert args.patch_size % max(args.scale) == 0
