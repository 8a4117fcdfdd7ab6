"""Reliability of testing and loading: an out-of-memory test image is retried in
tiles; --pre_train_strict false refuses files that give no body; srlab's
checkpoints carry their flags (warned about when they differ); --template VDSR
is a Y (1-channel) network."""
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

import model  # noqa: E402
from model import weights  # noqa: E402
from conftest import StubCkp  # noqa: E402
import option  # noqa: E402
import errors  # noqa: E402

# a tiny x2 EDSR: receptive radius 6 LR px (head, 2 convs of the block, body end,
# upsampler conv, and the last conv at x2), so --chop_overlap 6 tiles exactly
TINY = ('--model', 'EDSR', '--scale', '2', '--n_resblocks', '1', '--n_feats', '8')
CHOP = ('--chop_overlap', '6', '--chop_batch', '2')


pytestmark = pytest.mark.usefixtures('one_thread')


Ckp = StubCkp


def make_args(*argv, testing=True):
    """Flags to test with (testing=False: to train on, e.g. from a file that lacks some scales)."""
    return option.parse_args(['--test_only'] * testing + ['--pre_train', 'none', '--cpu', '--n_threads', '0',
                                                          '--data_test', 'Demo'] + list(argv))


def build(*argv, ckp=None, seed=0, testing=True):
    torch.manual_seed(seed)
    return model.Model(make_args(*argv, testing=testing), ckp or Ckp()).eval()


def fail_above(m, limit, error=torch.OutOfMemoryError):
    """Make m's network raise `error` on inputs of more than `limit` pixels;
    returns the list of (h, w) it ran on."""
    net, sizes = m.get_model(), []
    forward = net.forward

    def limited(x):
        if x.shape[-2] * x.shape[-1] > limit:
            raise error(f'out of memory: {x.shape[-2]}x{x.shape[-1]} (test)')
        sizes.append(tuple(x.shape[-2:]))
        return forward(x)
    net.forward = limited
    return sizes


def oom_lines(ckp):
    return [log for log in ckp.logs if 'out of memory' in log]


# ---- out of memory at test time ---------------------------------------------
@pytest.fixture
def no_onednn():
    """oneDNN's convolutions round differently for other input sizes (1 ulp);
    the plain ones give the same bits for a tile and for the whole image."""
    kept = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = kept


@pytest.mark.parametrize('ensemble', [False, True])
def test_out_of_memory_retries_in_tiles_exactly(ensemble, no_onednn):
    flags = TINY + (('--self_ensemble',) if ensemble else ())
    plain = build(*flags)
    ckp = Ckp()
    m = build(*flags, *CHOP, ckp=ckp)
    x = torch.rand(1, 3, 40, 60, generator=torch.Generator().manual_seed(1)) * 255
    sizes = fail_above(m, 500)  # whole image and 30-pixel tiles fail, 15-pixel tiles fit
    with torch.no_grad():
        want, got = plain(x), m(x)
    assert got.shape == want.shape == (1, 3, 80, 120)
    assert torch.equal(got, want)
    assert oom_lines(ckp) == ['out of memory on a 1x3x40x60 input; retrying it in --chop tiles of 30, '
                              'halved on each further out-of-memory error']
    assert sizes and all(h <= 15 and w <= 15 for h, w in sizes)


def test_cpu_allocator_error_is_out_of_memory_too():
    ckp = Ckp()
    m = build(*TINY, *CHOP, ckp=ckp)

    def error(msg):  # what the CPU allocator raises
        return RuntimeError(f"[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: {msg}")
    fail_above(m, 1000, error)
    with torch.no_grad():
        assert m(torch.rand(1, 3, 40, 60)).shape == (1, 3, 80, 120)
    assert len(oom_lines(ckp)) == 1


def test_out_of_memory_gives_up_in_one_line():
    ckp = Ckp()
    m = build(*TINY, *CHOP, ckp=ckp)
    fail_above(m, 100)  # 30 and 15 fail; 7 would not exceed twice the overlap
    with pytest.raises(errors.SRLabError) as e, torch.no_grad():
        m(torch.rand(1, 3, 40, 60))
    assert str(e.value) == ('out of memory on a 1x3x40x60 input on cpu, even in --chop tiles of 15 '
                            '(the smallest tile with --chop_overlap 6 is 13)')
    assert len(oom_lines(ckp)) == 1


def test_other_errors_and_training_are_not_retried():
    m = build(*TINY, *CHOP)
    fail_above(m, 100, ValueError)
    with pytest.raises(ValueError), torch.no_grad():
        m(torch.rand(1, 3, 40, 60))
    m = build(*TINY, *CHOP)
    fail_above(m, 100)
    m.train()
    with pytest.raises(torch.OutOfMemoryError):
        m(torch.rand(1, 3, 40, 60))


# ---- --pre_train_strict false -------------------------------------------------
def save(state, path):
    torch.save(state, path)
    return str(path)


def test_strict_false_matching_nothing_stops(tmp_path):
    path = save({'foo.weight': torch.zeros(3, 3)}, tmp_path / 'other.pt')
    with pytest.raises(errors.SRLabError) as e:
        build(*TINY, '--pre_train', path, '--pre_train_strict', 'false')
    msg = str(e.value)
    assert '\n' not in msg and '--pre_train_strict false' in msg and path in msg and 'matches 0/' in msg


def test_strict_false_without_body_stops(tmp_path):
    src = build(*TINY).state_dict()
    only = {k: v for k, v in src.items() if k.startswith(('tail.', 'sub_mean.', 'add_mean.'))}
    path = save(only, tmp_path / 'tails.pt')
    with pytest.raises(errors.SRLabError) as e:
        build(*TINY, '--pre_train', path, '--pre_train_strict', 'false')
    msg = str(e.value)
    assert '\n' not in msg and '--pre_train_strict false' in msg and 'none of its body' in msg
    assert f'matches {len(only)}/{len(src)} tensors' in msg


def test_strict_false_partial_load_works(tmp_path):
    x2 = build(*TINY, seed=1)
    path = save(x2.state_dict(), tmp_path / 'x2.pt')
    ckp = Ckp()
    flags = ('--model', 'EDSR', '--scale', '4', '--n_resblocks', '1', '--n_feats', '8')
    m = build(*flags, '--pre_train', path, '--pre_train_strict', 'false', ckp=ckp, testing=False)
    own = m.state_dict()
    for k, v in x2.state_dict().items():
        if not k.startswith('tail.'):
            assert torch.equal(own[k], v), k
    report = [log for log in ckp.logs if log.startswith('Loaded')]
    assert len(report) == 1 and '; not loaded: ' in report[0]


# ---- flags saved with the weights --------------------------------------------
def test_export_carries_flags(tmp_path):
    m = build(*TINY, '--rgb_range', '1')
    ema = {k: v.clone() for k, v in m.state_dict().items()}
    m.export(str(tmp_path), epoch=1, is_best=True, ema_state=ema)
    for name in ('model_latest.pt', 'model_best.pt', 'model_latest_ema.pt'):
        sd = torch.load(tmp_path / name, weights_only=True)
        meta = sd._metadata['srlab']
        assert meta['model'] == 'EDSR' and meta['scale'] == [2] and meta['rgb_range'] == 1
        assert meta['n_colors'] == 3 and meta['n_resblocks'] == 1 and meta['n_feats'] == 8
        assert 'head' in sd._metadata  # torch's module versions are kept
        net = build(*TINY, seed=5).get_model()
        net.load_state_dict(torch.load(tmp_path / name))  # a plain loader
        for k, v in m.state_dict().items():
            assert torch.equal(net.state_dict()[k], v), k


def test_loading_under_other_flags_warns_once(tmp_path):
    m = build(*TINY, '--rgb_range', '1')
    m.export(str(tmp_path), epoch=1)
    path = str(tmp_path / 'model_latest.pt')
    ckp = Ckp()
    build(*TINY, '--pre_train', path, '--rgb_range', '255', ckp=ckp)  # given: the file's own flag is not taken
    warn = [log for log in ckp.logs if 'was saved with' in log]
    assert warn == [f'--pre_train: {path} was saved with --rgb_range 1, this run has --rgb_range 255 '
                    '(its outputs will be scaled wrongly)']
    ckp = Ckp()
    build(*TINY, '--rgb_range', '1', '--pre_train', path, ckp=ckp)
    assert not [log for log in ckp.logs if 'was saved with' in log]
    plain = save(dict(m.state_dict()), tmp_path / 'plain.pt')  # no srlab metadata: silent
    ckp = Ckp()
    build(*TINY, '--pre_train', plain, ckp=ckp)
    assert not [log for log in ckp.logs if 'was saved with' in log]


def test_data_parallel_names_keep_flags():
    sd = OrderedDict(('module.' + k, v) for k, v in build(*TINY).state_dict().items())
    sd._metadata = OrderedDict(srlab={'rgb_range': 1})
    state, layout = weights.unwrap_state(sd)
    assert layout == 'plain' and 'head.0.weight' in state and weights.saved_flags(state) == {'rgb_range': 1}


# ---- --template VDSR ---------------------------------------------------------
def test_vdsr_template_takes_y():
    small = ('--template', 'VDSR', '--n_resblocks', '4', '--n_feats', '8')
    assert make_args(*small).n_colors == 1
    m = build(*small)
    assert m.get_model().body[0][0].in_channels == 1
    with torch.no_grad():
        assert m(torch.rand(1, 1, 6, 5) * 255).shape == (1, 1, 12, 10)
    assert make_args(*small, '--n_colors', '3').n_colors == 3  # the command line wins
