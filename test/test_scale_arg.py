"""The scale as an argument (net(x, scale=3)), set_scale's index, per-scale
modules that know their scale from how they were built, and
create_model(pretrained=) bringing the file's arguments."""
import shutil
import uuid

import pytest
import torch

from conftest import REPO, SRC, run_cli

from model import common, create_model, flags, weights  # noqa: E402
from registry import MODELS  # noqa: E402

pytestmark = pytest.mark.usefixtures('one_thread')

TINY = {'EDSR': dict(n_resblocks=1, n_feats=8), 'MDSR': dict(n_resblocks=1, n_feats=8),
        'RCAN': dict(n_resgroups=1, n_resblocks=1, n_feats=16, reduction=4), 'RDN': dict(config='2-2-8', G0=8),
        'SRResNet': dict(n_resblocks=1, n_feats=8), 'FSRCNN': dict(d=8, s=4, m=1), 'ESPCN': dict(n1=8, n2=4),
        'VDSR': dict(depth=3, n_feats=8), 'SRCNN': dict(n1=8, n2=4),
        'SwinIR': dict(embed_dim=12, depths=(2,), num_heads=(2,), window_size=4)}
MULTI = [n for n in MODELS.names() if issubclass(MODELS.get(n), common.MultiScale)]


def x_in():
    return torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 255


@pytest.mark.parametrize('name', MULTI)
def test_every_multi_scale_network_takes_the_scale_as_an_argument(name):
    torch.manual_seed(0)
    net = create_model(name, scale=(2, 3), **TINY.get(name, {})).eval()
    x = x_in()
    with torch.no_grad():
        y3 = net(x, scale=3)
        assert net.scale_idx == 0  # the call's scale only
        y2 = net(x, scale=2)
        net.set_scale(1)           # EDSR-PyTorch's way: the index of x3
        assert torch.equal(net(x), y3)
    assert y3.shape == (1, 3, 24, 24) and y2.shape == (1, 3, 16, 16)
    with pytest.raises(ValueError) as e:
        net(x, scale=4)
    assert len(str(e.value).splitlines()) == 1 and 'x4' in str(e.value) and 'x2, x3' in str(e.value)
    assert net.scale_idx == 1


def test_set_scale_takes_an_index_and_refuses_a_bad_one():
    net = create_model('EDSR', scale=(2, 3, 4), **TINY['EDSR'])
    net.set_scale(2)
    assert net.scale == 4  # set_scale(2) is the third scale, x4
    for bad in (3, 4, -1, 'x2', 1.5):
        with pytest.raises(IndexError, match=r'takes the index of a scale in \[2, 3, 4\] \(0 to 2\)'):
            net.set_scale(bad)
    assert net.scale == 4


def test_per_scale_modules_are_found_without_declaring_them():
    net = create_model('ESPCN', scale=(2, 3), **TINY['ESPCN'])
    assert net.scale_modules == ('tail',)
    assert common.MultiScale(2).scale_modules == ()


# ---- the trial's network: its own pixel-shuffle tails, no scale_modules, no scale_of ---------------
TRIAL = '''"""A plain stack of convolutions with its own pixel-shuffle tail per scale."""
import torch.nn as nn

from model import common
from registry import MODELS


@MODELS.register('NAME')
class Trial(common.MultiScale):
    def __init__(self, scale=(2,), n_colors=3, rgb_range=255, n_feats=16):
        super().__init__(scale)
        self.rgb_range = rgb_range
        self.body = nn.Sequential(nn.Conv2d(n_colors, n_feats, 3, padding=1), nn.ReLU(True),
                                  nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(True))
        self.tail = self.per_scale(lambda s: nn.Sequential(nn.Conv2d(n_feats, s * s * n_colors, 3, padding=1),
                                                           nn.PixelShuffle(s)))

    def forward(self, x):
        return self.at_scale(self.tail)(self.body(x / self.rgb_range)) * self.rgb_range
'''


def test_a_network_with_its_own_tails_trains_resumes_and_tests(tmp_path):
    """The trial: trained for x2 and x3, resumed, then --load X --test_only finds its tails by the scales
    the file records (its first child is no Upsampler, so no shape guess could)."""
    name = f'PytestTrial{uuid.uuid4().hex[:6]}'
    path = SRC / 'model' / f'{name.lower()}.py'
    path.write_text(TRIAL.replace("'NAME'", repr(name)))
    save = f'pytest_{name.lower()}'
    common_flags = ['--model', name, '--scale', '2+3', '--data_train', 'Sample', '--data_test', 'Sample',
                    '--patch_size', '48', '--batch_size', '4', '--test_every', '3', '--n_threads', '0', '--cpu',
                    '--dir_cache', tmp_path]
    try:
        p = run_cli(common_flags + ['--epochs', '1', '--save', save], timeout=300)
        assert p.returncode == 0, p.stderr
        p = run_cli(['--load', save, '--resume', '-1', '--epochs', '2', '--cpu', '--dir_cache', tmp_path], timeout=300)
        assert p.returncode == 0, p.stderr
        assert 'Resumed from' in p.stdout and '[Epoch 2]' in p.stdout
        p = run_cli(['--load', save, '--test_only', '--cpu', '--dir_cache', tmp_path], timeout=300)
        assert p.returncode == 0, p.stderr
        assert 'Loaded 8/8 tensors' in p.stdout and 'not loaded' not in p.stdout, p.stdout
        assert '[Sample x2]\tPSNR' in p.stdout and '[Sample x3]\tPSNR' in p.stdout
    finally:
        path.unlink()
        shutil.rmtree(REPO / 'experiment' / save, ignore_errors=True)


def test_a_file_records_its_scales_and_they_place_its_tails(tmp_path):
    """An x3+x2 file into a 2+3 network, and its x3 tail into an x3 one: by the recorded scales."""
    torch.manual_seed(0)
    src = create_model('ESPCN', scale=(3, 2), **TINY['ESPCN'])
    weights.export(src, flags.recorded('ESPCN', dict(scale=(3, 2), **TINY['ESPCN'])), tmp_path, 1)
    x = x_in()
    lines = []
    for scales in ((2, 3), (3,)):
        torch.manual_seed(1)
        net = create_model('ESPCN', pretrained=tmp_path / 'model_latest.pt', log=lines.append, scale=scales)
        with torch.no_grad():
            assert torch.equal(net(x, scale=3), src(x, scale=3))
    assert lines[0].startswith('Loaded 8/8 tensors') and 'not loaded' not in lines[0]
    assert 'not loaded: 2 unexpected (tail.unused0.' in lines[1]  # the x2 tail: reported, not used


# ---- create_model(pretrained=) ----------------------------------------------------------------------
def test_create_model_pretrained_brings_the_files_arguments(tmp_path):
    torch.manual_seed(0)
    src = create_model('EDSR', scale=(2, 3), n_resblocks=2, n_feats=8)
    weights.export(src, flags.recorded('EDSR', dict(scale=(2, 3), n_resblocks=2, n_feats=8)), tmp_path, 1)
    f = tmp_path / 'model_latest.pt'
    lines = []
    net = create_model('EDSR', pretrained=f, log=lines.append)  # no argument given: all from the file
    assert net.scales == [2, 3] and len(net.body) == 3 and lines == [f'Loaded 24/24 tensors from {f}']
    x = x_in()
    with torch.no_grad():
        assert torch.equal(net(x, scale=3), src(x, scale=3))
    # a given argument wins, with one warning each; a size that does not fit says which arguments to leave out
    from errors import SRLabError
    lines.clear()
    with pytest.raises(SRLabError, match=r'it was saved with n_feats=8: leave out the arguments that differ'):
        create_model('EDSR', pretrained=f, log=lines.append, n_feats=16)
    assert lines == [f'warning: pretrained: {f} was saved with n_feats=8; building with the given n_feats=16']
    lines.clear()
    net = create_model('EDSR', pretrained=f, log=lines.append, res_scale=0.5)
    assert net.body[0].res_scale == 0.5 and len(lines) == 2 and 'res_scale=1.0' in lines[0]
