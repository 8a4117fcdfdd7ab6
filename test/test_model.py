"""Models: released EDSR/MDSR key names, shapes and parameter counts (derived
by hand here), --pre_train loading, per-scale tails, Bicubic, --chop and
--self_ensemble."""
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

import model  # noqa: E402
import option  # noqa: E402
import errors  # noqa: E402
from conftest import StubCkp, SRC  # noqa: E402
from data.imresize import imresize  # noqa: E402
from model import common  # noqa: E402
from model.common import count_parameters  # noqa: E402

MEAN = (0.4488, 0.4371, 0.4040)


FakeCkp = StubCkp


def make_args(*argv, testing=True):
    """Flags to test with (testing=False: to train on, e.g. from a file that lacks some scales)."""
    return option.parse_args(['--test_only'] * testing + ['--pre_train', 'none', '--cpu', '--n_threads', '0',
                                                          '--data_test', 'Demo'] + list(argv))


def build(*argv, ckp=None, testing=True):
    torch.manual_seed(0)
    m = model.Model(make_args(*argv, testing=testing), ckp or FakeCkp())
    m.eval()
    return m


# ---- released layouts, written out by hand --------------------------------
def _conv(sh, name, cin, cout, k=3):
    sh[name + '.weight'] = (cout, cin, k, k)
    sh[name + '.bias'] = (cout,)


def _upsampler(sh, prefix, scale, n):
    if scale == 3:
        _conv(sh, f'{prefix}.0', n, 9 * n)
    else:  # 2 or 4: conv(n->4n), shuffle(2) [, conv(n->4n), shuffle(2)]
        for j in range({2: 1, 4: 2}[scale]):
            _conv(sh, f'{prefix}.{2 * j}', n, 4 * n)


def edsr_shapes(n_resblocks, n_feats, scale):
    """EDSR-PyTorch edsr.py state_dict (single scale)."""
    sh = OrderedDict()
    _conv(sh, 'sub_mean', 3, 3, 1)
    _conv(sh, 'add_mean', 3, 3, 1)
    _conv(sh, 'head.0', 3, n_feats)
    for i in range(n_resblocks):
        _conv(sh, f'body.{i}.body.0', n_feats, n_feats)
        _conv(sh, f'body.{i}.body.2', n_feats, n_feats)
    _conv(sh, f'body.{n_resblocks}', n_feats, n_feats)
    _upsampler(sh, 'tail.0', scale, n_feats)
    _conv(sh, 'tail.1', n_feats, 3)
    return sh


def mdsr_shapes(n_resblocks, n_feats, scales=(2, 3, 4)):
    """EDSR-PyTorch mdsr.py state_dict."""
    sh = OrderedDict()
    _conv(sh, 'sub_mean', 3, 3, 1)
    _conv(sh, 'add_mean', 3, 3, 1)
    _conv(sh, 'head.0', 3, n_feats)
    for k in range(len(scales)):
        for b in range(2):
            _conv(sh, f'pre_process.{k}.{b}.body.0', n_feats, n_feats, 5)
            _conv(sh, f'pre_process.{k}.{b}.body.2', n_feats, n_feats, 5)
    for i in range(n_resblocks):
        _conv(sh, f'body.{i}.body.0', n_feats, n_feats)
        _conv(sh, f'body.{i}.body.2', n_feats, n_feats)
    _conv(sh, f'body.{n_resblocks}', n_feats, n_feats)
    for k, s in enumerate(scales):
        _upsampler(sh, f'upsample.{k}', s, n_feats)
    _conv(sh, 'tail.0', n_feats, 3)
    return sh


def trainable(shapes):
    return sum(int(np.prod(v)) for k, v in shapes.items() if not k.startswith(('sub_mean.', 'add_mean.')))


def random_state(shapes, seed=0, std=0.02):
    """Random weights under released names; MeanShift as released (the DIV2K mean)."""
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict((k, torch.randn(v, generator=g) * std) for k, v in shapes.items())
    eye = torch.eye(3).view(3, 3, 1, 1)
    sd['sub_mean.weight'], sd['add_mean.weight'] = eye.clone(), eye.clone()
    sd['sub_mean.bias'] = -255 * torch.tensor(MEAN)
    sd['add_mean.bias'] = 255 * torch.tensor(MEAN)
    return sd


def edsr_reference_forward(sd, x, n_resblocks, scale, res_scale=1.0):
    """EDSR written out with torch.nn.functional on a released state_dict."""
    def conv(t, name):
        w = sd[name + '.weight']
        return F.conv2d(t, w, sd[name + '.bias'], padding=w.shape[-1] // 2)
    x = conv(x, 'sub_mean')
    h = conv(x, 'head.0')
    r = h
    for i in range(n_resblocks):
        r = r + res_scale * conv(F.relu(conv(r, f'body.{i}.body.0')), f'body.{i}.body.2')
    r = conv(r, f'body.{n_resblocks}') + h
    if scale == 3:
        r = F.pixel_shuffle(conv(r, 'tail.0.0'), 3)
    else:
        for j in range({2: 1, 4: 2}[scale]):
            r = F.pixel_shuffle(conv(r, f'tail.0.{2 * j}'), 2)
    return conv(conv(r, 'tail.1'), 'add_mean')


def assert_layout(net, shapes):
    sd = net.state_dict()
    assert list(sd) == list(shapes)
    assert {k: tuple(v.shape) for k, v in sd.items()} == dict(shapes)


# ---- layouts and parameter counts ---------------------------------------
HAND_COUNTS = {
    # head 3*64*9+64, 32 body convs + 1 of 64*64*9+64, tail.1 64*3*9+3, upsampler:
    ('baseline', 2): 1792 + 33 * 36928 + 1731 + (64 * 256 * 9 + 256),
    ('baseline', 3): 1792 + 33 * 36928 + 1731 + (64 * 576 * 9 + 576),
    ('baseline', 4): 1792 + 33 * 36928 + 1731 + 2 * (64 * 256 * 9 + 256),
    # head 3*256*9+256, 65 convs of 256*256*9+256, tail.1 256*3*9+3, upsampler:
    ('paper', 2): 7168 + 65 * 590080 + 6915 + (256 * 1024 * 9 + 1024),
    ('paper', 3): 7168 + 65 * 590080 + 6915 + (256 * 2304 * 9 + 2304),
    ('paper', 4): 7168 + 65 * 590080 + 6915 + 2 * (256 * 1024 * 9 + 1024),
}


def test_hand_counts_are_the_known_numbers():
    assert HAND_COUNTS[('baseline', 2)] == 1_369_859
    assert HAND_COUNTS[('baseline', 3)] == 1_554_499
    assert HAND_COUNTS[('baseline', 4)] == 1_517_571
    assert HAND_COUNTS[('paper', 2)] == 40_729_603
    assert HAND_COUNTS[('paper', 3)] == 43_680_003
    assert HAND_COUNTS[('paper', 4)] == 43_089_923


@pytest.mark.parametrize('variant', ['baseline', 'paper'])
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_edsr_layout_and_count(variant, scale):
    flags = ['--template', 'EDSR_paper'] if variant == 'paper' else []
    ckp = FakeCkp()
    m = build('--model', 'EDSR', '--scale', str(scale), *flags, ckp=ckp)
    n_resblocks, n_feats = (32, 256) if variant == 'paper' else (16, 64)
    shapes = edsr_shapes(n_resblocks, n_feats, scale)
    assert_layout(m.get_model(), shapes)
    n = HAND_COUNTS[(variant, scale)]
    assert trainable(shapes) == n
    assert count_parameters(m.get_model()) == n
    assert f'Trainable parameters: {n:,}' in ckp.logs
    if variant == 'paper':
        assert m.get_model().body[0].res_scale == 0.1


def test_mdsr_layout_and_count():
    ckp = FakeCkp()
    m = build('--model', 'MDSR', '--scale', '2+3+4', ckp=ckp)
    shapes = mdsr_shapes(16, 64)
    assert_layout(m.get_model(), shapes)
    conv3, conv5 = 64 * 64 * 9 + 64, 64 * 64 * 25 + 64
    hand = (3 * 64 * 9 + 64) + 3 * 4 * conv5 + 33 * conv3 + (64 * 256 * 9 + 256) * 3 + (64 * 576 * 9 + 576) \
        + (64 * 3 * 9 + 3)
    assert hand == trainable(shapes) == count_parameters(m.get_model()) == 3_227_203
    assert f'Trainable parameters: {hand:,}' in ckp.logs


def test_expansion_is_wdsr_a_wide_activation_at_the_same_block_cost():
    """--expansion 4 at 32 maps: each block widens to 128 maps before the ReLU;
    its convs hold the weights (and per pixel the multiply-adds) of EDSR's 64-map
    block. --expansion 1 is EDSR's network, weight for weight."""
    wide = model.create_model('EDSR', scale=(2, 3, 4), n_resblocks=8, n_feats=32, expansion=4,
                              upsampler='pixelshuffledirect', global_skip='bicubic')
    block = wide.body[0].body
    assert block[0].weight.shape == (128, 32, 3, 3) and block[2].weight.shape == (32, 128, 3, 3)
    assert block[0].weight.numel() + block[2].weight.numel() == 2 * 64 * 64 * 9
    head, body_end = 3 * 32 * 9 + 32, 32 * 32 * 9 + 32
    blocks = 8 * ((32 * 128 * 9 + 128) + (128 * 32 * 9 + 32))
    tails = sum(32 * 3 * s * s * 9 + 3 * s * s for s in (2, 3, 4))
    assert count_parameters(wide) == head + blocks + body_end + tails == 626_391
    x = torch.rand(1, 3, 12, 12) * 255
    for i, s in enumerate((2, 3, 4)):
        wide.set_scale(i)
        assert wide(x).shape == (1, 3, 12 * s, 12 * s)
    torch.manual_seed(0)
    edsr_block = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(True),
                                     torch.nn.Conv2d(16, 16, 3, padding=1))
    torch.manual_seed(0)
    block = common.ResBlock(common.default_conv, 16, 3, expansion=1)
    assert [(k, v.shape) for k, v in block.body.state_dict().items()] == \
           [(k, v.shape) for k, v in edsr_block.state_dict().items()]
    assert all(torch.equal(a, b) for a, b in zip(block.body.state_dict().values(), edsr_block.state_dict().values()))
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match='--expansion'):
            model.create_model('EDSR', scale=(2,), n_resblocks=1, n_feats=8, expansion=bad)


# ---- --pre_train ---------------------------------------------------------
def test_released_names_load_strict_and_are_used(tmp_path):
    sd = random_state(edsr_shapes(16, 64, 2), seed=1)
    path = tmp_path / 'edsr_baseline_x2.pt'
    torch.save(sd, path)
    x = torch.rand(1, 3, 12, 10) * 255
    fresh = build('--model', 'EDSR', '--scale', '2')
    ckp = FakeCkp()
    m = build('--model', 'EDSR', '--scale', '2', '--pre_train', str(path), ckp=ckp)
    assert m.args.pre_train_strict is True
    for k, v in m.get_model().state_dict().items():
        assert torch.equal(v, sd[k]), k
    with torch.no_grad():
        out, ref, before = m(x), edsr_reference_forward(sd, x, 16, 2), fresh(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-3)
    assert (out - before).abs().max() > 1
    assert any(log.startswith(f'Loaded {len(sd)}/{len(sd)} tensors') for log in ckp.logs)


def test_mdsr_released_names_load(tmp_path):
    sd = random_state(mdsr_shapes(16, 64), seed=2)
    torch.save(sd, tmp_path / 'mdsr.pt')
    m = build('--model', 'MDSR', '--scale', '2+3+4', '--pre_train', str(tmp_path / 'mdsr.pt'))
    for k, v in m.get_model().state_dict().items():
        assert torch.equal(v, sd[k]), k
    # a 4-only MDSR takes the x4 branch (pre_process.2, upsample.2) of the released file
    m4 = build('--model', 'MDSR', '--scale', '4', '--pre_train', str(tmp_path / 'mdsr.pt'))
    own = m4.get_model().state_dict()
    assert torch.equal(own['pre_process.0.0.body.0.weight'], sd['pre_process.2.0.body.0.weight'])
    assert torch.equal(own['upsample.0.2.weight'], sd['upsample.2.2.weight'])
    x = torch.rand(1, 3, 8, 8) * 255
    with torch.no_grad():
        torch.testing.assert_close(m4(x, 0), m(x, 2), rtol=0, atol=1e-4)


def test_single_scale_weights_into_multi_scale_edsr(tmp_path):
    sd = random_state(edsr_shapes(16, 64, 2), seed=3)
    torch.save(sd, tmp_path / 'x2.pt')
    single = build('--model', 'EDSR', '--scale', '2', '--pre_train', str(tmp_path / 'x2.pt'))
    ckp = FakeCkp()
    multi = build('--model', 'EDSR', '--scale', '2+3+4', '--pre_train', str(tmp_path / 'x2.pt'), ckp=ckp,
                  testing=False)  # fine-tuning x3 and x4 from x2
    x = torch.rand(1, 3, 10, 11) * 255
    with torch.no_grad():
        assert torch.equal(single(x), multi(x, 0))
        assert multi(x, 1).shape[-2:] == (30, 33) and multi(x, 2).shape[-2:] == (40, 44)
    report = [log for log in ckp.logs if log.startswith('Loaded')]
    # not loaded: the x3 tail (tail.1.0.0, tail.1.1) and the x4 tail (tail.2.0.0, tail.2.0.2, tail.2.1)
    assert len(report) == 1 and report[0].startswith(f'Loaded {len(sd)}/{len(sd) + 10} tensors')
    assert 'not loaded: 10 missing (tail.1.' in report[0]


def test_bicubic_model_is_matlab_imresize():
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (13, 11, 3), dtype=np.uint8)
    for rgb_range in (255, 1):
        m = build('--model', 'Bicubic', '--scale', '2+3+4', '--rgb_range', str(rgb_range))
        assert count_parameters(m.get_model()) == 0
        x = torch.from_numpy(lr.transpose(2, 0, 1).copy()).float().unsqueeze(0) * (rgb_range / 255)
        for i, s in enumerate((2, 3, 4)):
            with torch.no_grad():
                sr = m(x, i)[0].double().numpy().transpose(1, 2, 0) * (255 / rgb_range)
            if rgb_range == 255:  # integer values, exactly
                np.testing.assert_array_equal(sr, imresize(lr, s))
            else:                 # k/255 in float32: exact after rounding
                assert np.abs(sr - np.round(sr)).max() < 1e-3
                np.testing.assert_array_equal(np.round(sr), imresize(lr, s))


def test_save_and_reload(tmp_path):
    m = build('--model', 'EDSR', '--scale', '2', '--n_resblocks', '2', '--n_feats', '8')
    m.export(str(tmp_path), epoch=3, is_best=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model_best.pt', 'model_latest.pt']
    assert not list(tmp_path.glob('.*'))
    torch.manual_seed(1)
    m2 = model.Model(make_args('--model', 'EDSR', '--scale', '2', '--n_resblocks', '2', '--n_feats', '8',
                               '--pre_train', str(tmp_path / 'model_latest.pt')), FakeCkp())
    for (k, v), v2 in zip(m.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(v, v2), k


# ---- --self_ensemble -------------------------------------------------------
def test_self_ensemble_is_mean_of_eight_passes():
    flags = ('--model', 'EDSR', '--scale', '2', '--n_resblocks', '2', '--n_feats', '8')
    plain = build(*flags)
    ens = build(*flags, '--self_ensemble')
    ens.get_model().load_state_dict(plain.get_model().state_dict())
    x = torch.rand(1, 3, 9, 13) * 255
    net = plain.get_model()
    outs = []
    with torch.no_grad():
        for hflip in (False, True):
            for vflip in (False, True):
                for transpose in (False, True):
                    t = x
                    t = t.flip(3) if hflip else t
                    t = t.flip(2) if vflip else t
                    t = t.transpose(2, 3) if transpose else t
                    y = net(t)
                    y = y.transpose(2, 3) if transpose else y
                    y = y.flip(2) if vflip else y
                    y = y.flip(3) if hflip else y
                    outs.append(y)
        want = torch.stack(outs).mean(0)
        got = ens(x)
        single = plain(x)
    assert got.shape == (1, 3, 18, 26)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
    assert (got - single).abs().max() > 1e-2  # not just the plain forward


# ---- --chop ----------------------------------------------------------------
def test_chop_tiling_is_exact_small_net():
    """A tiny EDSR (receptive radius: 7 convs at LR + 1 at x3 = 7.33 -> 8 LR px): many tiles,
    3 tiles per call, odd sizes, a batch of 2."""
    flags = ('--model', 'EDSR', '--scale', '3', '--n_resblocks', '2', '--n_feats', '8')
    plain = build(*flags)
    chop = build(*flags, '--chop', '--chop_size', '20', '--chop_overlap', '8', '--chop_batch', '3')
    chop.get_model().load_state_dict(plain.get_model().state_dict())
    x = torch.rand(2, 3, 47, 61) * 255
    calls = []
    net = chop.get_model()
    hook = net.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape))
    with torch.no_grad():
        got = chop(x)
    hook.remove()
    with torch.no_grad():
        want = plain(x)
    assert got.shape == want.shape == (2, 3, 141, 183)
    assert (got - want).abs().max() <= 1e-3
    assert len(calls) > 1 and all(c[0] <= 2 * 3 and c[-2] <= 20 and c[-1] <= 20 for c in calls)


def test_chop_edsr_baseline_x4_equals_untiled():
    """Receptive radius of EDSR-baseline x4 in LR pixels: 35 convs at LR (head, 32 in
    resblocks, body end, first upsampler conv) + 1 conv at 2x + 1 at 4x = 35.75 -> 36."""
    plain = build('--model', 'EDSR', '--scale', '4')
    chop = build('--model', 'EDSR', '--scale', '4', '--chop', '--chop_size', '128', '--chop_overlap', '36',
                 '--chop_batch', '4')
    chop.get_model().load_state_dict(plain.get_model().state_dict())
    x = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        want = plain(x)
        got = chop(x)
    assert got.shape == (1, 3, 640, 640)
    assert (got - want).abs().max().item() <= 1e-3


MEM_SCRIPT = textwrap.dedent('''
    import resource, sys
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.path.insert(0, {src!r})
    import torch, option, model
    class Ckp:
        def write_log(self, *a, **k): pass
        def get_path(self, *a): return '/nonexistent'
    torch.set_num_threads(2)
    args = option.parse_args(['--test_only', '--pre_train', 'none', '--cpu', '--data_test', 'Demo', '--model', 'EDSR', '--scale', '4']
                             + sys.argv[1:])
    m = model.Model(args, Ckp()).eval()
    x = torch.rand(1, 3, 160, 160) * 255
    with torch.no_grad():
        y = m(x)
    print(y.shape[-1], start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
''')
# Linux keeps the peak RSS of the process image a child was exec'ed from in its
# ru_maxrss, so a child of this (large) pytest process would report pytest's peak.
# A small Python in between gives the measuring process a clean start.
TRAMPOLINE = 'import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)'


def test_chop_lowers_peak_memory():
    script = MEM_SCRIPT.format(src=str(SRC))

    def peak(*flags):
        r = subprocess.run([sys.executable, '-c', TRAMPOLINE, sys.executable, '-c', script, *flags],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        size, start, kb = r.stdout.split()
        assert size == '640'
        assert int(start) < 100 * 1024, 'ru_maxrss did not start clean'
        return int(kb)
    untiled = peak()
    tiled = peak('--chop', '--chop_size', '96', '--chop_overlap', '16', '--chop_batch', '1')
    print(f'peak RSS: untiled {untiled / 1024:.0f} MiB, chop {tiled / 1024:.0f} MiB')
    assert tiled < untiled - 50 * 1024  # at least 50 MiB lower


# ---- wrapper errors ------------------------------------------------------
def test_pre_train_errors_are_srlab_errors(tmp_path):
    with pytest.raises(SystemExit) as e:  # a missing file is a usage error, found when the flags are read
        build('--model', 'EDSR', '--scale', '2', '--pre_train', str(tmp_path / 'missing.pt'))
    assert e.value.code == 2
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(errors.SRLabError, match='junk.pt'):
        build('--model', 'EDSR', '--scale', '2', '--pre_train', str(tmp_path / 'junk.pt'))
    sd = random_state(edsr_shapes(16, 64, 2))
    del sd['body.3.body.0.weight']
    torch.save(sd, tmp_path / 'partial.pt')
    with pytest.raises(errors.SRLabError, match=r'body\.3\.body\.0\.weight'):
        build('--model', 'EDSR', '--scale', '2', '--pre_train', str(tmp_path / 'partial.pt'))


# ---- networks from Python ------------------------------------------------------
def test_create_model_builds_from_keywords_and_loads_a_run_file(tmp_path):
    net = model.create_model('EDSR', scale=(2,), n_resblocks=16, n_feats=64)
    assert count_parameters(net) == 1_369_859
    # a file saved by main.py's wrapper (its export, with the run's flags) loads through pretrained=
    m = build('--model', 'EDSR', '--scale', '2', '--n_resblocks', '2', '--n_feats', '8')
    m.export(str(tmp_path), epoch=1)
    lines = []
    torch.manual_seed(7)
    loaded = model.create_model('EDSR', scale=(2,), n_resblocks=2, n_feats=8,
                                pretrained=str(tmp_path / 'model_latest.pt'), log=lines.append)
    for k, v in m.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert lines == [f'Loaded {len(m.state_dict())}/{len(m.state_dict())} tensors from {tmp_path / "model_latest.pt"}']
    # the same strict loading as --pre_train: other sizes are refused in one line
    with pytest.raises(errors.SRLabError, match='does not fit --model EDSR') as e:
        model.create_model('EDSR', scale=(2,), n_resblocks=3, n_feats=8, pretrained=str(tmp_path / 'model_latest.pt'),
                           log=lines.append)
    assert '\n' not in str(e.value)


def test_command_line_and_python_build_the_same_network():
    """Every network: a flag not given takes the constructor's default, so
    `--model NAME --scale 4` and create_model(NAME, scale=(4,)) are the same
    network (counted on the meta device: no memory, no compute)."""
    from model import flags
    from registry import MODELS
    for name in MODELS.names():
        cls = MODELS.get(name)
        d = flags.defaults(cls)
        assert d.get('n_colors', 3) == 3 and d.get('rgb_range', 255) == 255, name
        args = make_args('--model', name, '--scale', '4')
        with torch.device('meta'):
            cli, meta = model.build_network(args)
            py = model.create_model(name, scale=(4,))
        assert [(k, v.shape) for k, v in cli.state_dict().items()] == \
               [(k, v.shape) for k, v in py.state_dict().items()], name
        assert meta['model'] == name and meta['scale'] == [4]
        assert set(meta) == set(flags.ALWAYS) | {f for f, (fl, _) in flags.declared(cls).items() if fl.record}


def test_rcan_without_its_template_is_the_paper_network():
    with torch.device('meta'):
        net, _ = model.build_network(make_args('--model', 'RCAN', '--scale', '2'))
    assert count_parameters(net) == 15_444_643


def test_templates_and_released_files_come_from_the_network_files():
    import template
    from model import released
    from registry import MODELS
    nets = template.networks()
    assert nets['EDSR_paper'][0] == 'EDSR' and nets['RCAN'][0] == 'RCAN' and nets['SwinIR_light'][0] == 'SwinIR'
    assert set(template.names()) >= {'quick', 'GAN', 'ESRGAN', 'EDSR_baseline', 'MDSR', 'VDSR', 'RDN', 'DDBPN'}
    assert {r.file for r in released.rows('edsr')} >= {'edsr_baseline_x2-1bc95232.pt', 'edsr_x4-4f62e9ef.pt'}
    assert released.rows('MDSR') == MODELS.get('MDSR').released and released.rows('RDN') == ()
