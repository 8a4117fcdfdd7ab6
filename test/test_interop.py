"""Models in and out: community ESRGAN-family files read by their keys,
.safetensors in and out, ONNX checked by ONNX Runtime.

The community files are built here, with random weights, from the layouts'
published key names and shapes (written out below from the architecture
definitions: BasicSR's rrdbnet_arch.py as Real-ESRGAN ships it, the original
ESRGAN's old-BasicSR RRDBNet, the ESRGAN repository's RRDBNet_arch.py,
Real-ESRGAN's srvgg_arch.py), with small, non-default sizes. Nothing is
downloaded; the Set5 checks skip only when ../shared/data is absent."""
import json
import math
import shutil
import sys
from collections import OrderedDict

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import REPO, SHARED, error_lines, run_main

import export  # noqa: E402  (src/ on the path from conftest)
from model import count_parameters, create_model, flags, tensorfile, weights  # noqa: E402

EXP = REPO / 'experiment'
pytestmark = pytest.mark.usefixtures('one_thread')  # tiny networks: one thread is faster, on a shared machine most
NEEDS_SET5 = pytest.mark.skipif(not (SHARED / 'benchmark' / 'Set5' / 'HR').is_dir(),
                                reason=f'no Set5 in {SHARED}/benchmark')
RRDB = dict(nb=2, nf=8, gc=4)   # blocks, features, growth: none of them the default
VGG = dict(n_conv=3, nf=8)


# ---- the layouts' published key names and shapes ----------------------------------
def conv(out, inp):
    return {'weight': (out, inp, 3, 3), 'bias': (out,)}


def basicsr_rrdbnet(nb, nf, gc, in_ch=3, out_ch=3, ups=2):
    """BasicSR's RRDBNet (Real-ESRGAN's files): conv_first, body.<b>.rdb<r>.conv<c>,
    conv_body, conv_up<k>, conv_hr, conv_last -> {name: shape}."""
    mods = {'conv_first': conv(nf, in_ch)}
    for b in range(nb):
        for r in (1, 2, 3):
            for c in range(1, 6):
                mods[f'body.{b}.rdb{r}.conv{c}'] = conv(gc if c < 5 else nf, nf + (c - 1) * gc)
    mods['conv_body'] = conv(nf, nf)
    mods.update({f'conv_up{k}': conv(nf, nf) for k in range(1, ups + 1)})
    mods.update({'conv_hr': conv(nf, nf), 'conv_last': conv(out_ch, nf)})
    return {f'{m}.{p}': s for m, ps in mods.items() for p, s in ps.items()}


def to_original_esrgan(name, nb, ups):
    """The original ESRGAN name (model.N) of a BasicSR RRDBNet name: model.0 first conv,
    model.1.sub.<b>.RDB<r>.conv<c>.0 blocks, model.1.sub.<nb> trunk conv, upsampling convs at
    model.3, 6, ..., then the HR conv and the last conv."""
    mod, _, param = name.rpartition('.')
    top = {'conv_first': 0, 'conv_hr': 3 * ups + 2, 'conv_last': 3 * ups + 4}
    top.update({f'conv_up{k}': 3 * k for k in range(1, ups + 1)})
    if mod in top:
        return f'model.{top[mod]}.{param}'
    if mod == 'conv_body':
        return f'model.1.sub.{nb}.{param}'
    _, b, rdb, c = mod.split('.')
    return f'model.1.sub.{b}.RDB{rdb[-1]}.{c}.0.{param}'


def to_esrgan_repo(name):
    """The ESRGAN repository's name (RRDB_trunk, trunk_conv, upconv<k>, HRconv) of a BasicSR one."""
    mod, _, param = name.rpartition('.')
    if mod.startswith('body.'):
        _, b, rdb, c = mod.split('.')
        mod = f'RRDB_trunk.{b}.RDB{rdb[-1]}.{c}'
    mod = {'conv_body': 'trunk_conv', 'conv_hr': 'HRconv'}.get(mod, mod.replace('conv_up', 'upconv'))
    return f'{mod}.{param}'


def srvgg(n_conv, nf, scale=4, ch=3):
    """Real-ESRGAN's SRVGGNetCompact: body.0 conv, body.1 PReLU, n_conv x (conv, PReLU), the last conv."""
    keys = {'body.0.weight': (nf, ch, 3, 3), 'body.0.bias': (nf,), 'body.1.weight': (nf,)}
    for i in range(n_conv):
        keys.update({f'body.{2 + 2 * i}.weight': (nf, nf, 3, 3), f'body.{2 + 2 * i}.bias': (nf,),
                     f'body.{3 + 2 * i}.weight': (nf,)})
    last = 2 * n_conv + 2
    keys.update({f'body.{last}.weight': (ch * scale * scale, nf, 3, 3), f'body.{last}.bias': (ch * scale * scale,)})
    return keys


def random_weights(shapes, seed, mid=None):
    """Random tensors of `shapes` (the scale of each layer's fan-in); `mid`: a last conv whose bias puts the
    output at mid-grey (0.5 of the 0..1 range these networks work on), so that scores depend on the weights."""
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict((k, torch.randn(s, generator=g) * (0.2 / math.sqrt(math.prod(s[1:]) or 1)))
                      for k, s in shapes.items())
    if mid:
        out[f'{mid}.bias'] += 0.5
    return out


# ---- published configurations: parameter counts --------------------------------------
# (name, network, constructor arguments, the published definition's key table); the counts are those
# of the architecture definitions with the configurations Real-ESRGAN's inference script builds
PUBLISHED = [
    ('RealESRGAN_x4plus / ESRGAN x4', 'RRDBNet', dict(scale=(4,)), basicsr_rrdbnet(23, 64, 32), 16_697_987),
    ('RealESRGAN_x2plus', 'RRDBNet', dict(scale=(2,), unshuffle=2), basicsr_rrdbnet(23, 64, 32, in_ch=12),
     16_703_171),
    ('RealESRGAN_x4plus_anime_6B', 'RRDBNet', dict(scale=(4,), n_blocks=6), basicsr_rrdbnet(6, 64, 32), 4_467_779),
    ('realesr-general-x4v3', 'SRVGGNetCompact', dict(scale=(4,), n_conv=32), srvgg(32, 64), 1_213_296),
    ('realesr-animevideov3', 'SRVGGNetCompact', dict(scale=(4,), n_conv=16), srvgg(16, 64), 621_424),
]


@pytest.mark.parametrize('name,net,kwargs,keys,count', PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_parameter_counts_equal_the_published_definitions(name, net, kwargs, keys, count):
    with torch.device('meta'):
        built = create_model(net, **kwargs)
    assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == keys
    assert count_parameters(built) == sum(math.prod(s) for s in keys.values()) == count


# ---- the layouts are recognised -------------------------------------------------------
def rrdb_files(d, seed=0):
    """One set of random RRDBNet weights in three community layouts -> ({layout: path}, BasicSR tensors)."""
    basic = random_weights(basicsr_rrdbnet(**RRDB), seed, mid='conv_last')
    files = {'Real-ESRGAN / BasicSR': d / 'rrdb_params_ema.pth', 'original ESRGAN': d / 'rrdb_old.pth',
             'ESRGAN repository': d / 'rrdb_repo.pth'}
    torch.save({'params_ema': basic, 'params': random_weights(basicsr_rrdbnet(**RRDB), seed + 1)},
               files['Real-ESRGAN / BasicSR'])
    torch.save(OrderedDict((to_original_esrgan(k, RRDB['nb'], 2), v) for k, v in basic.items()),
               files['original ESRGAN'])
    torch.save(OrderedDict((to_esrgan_repo(k), v) for k, v in basic.items()), files['ESRGAN repository'])
    return files, basic


def test_file_flags_read_sizes_and_scale_from_every_layout(tmp_path):
    files, _ = rrdb_files(tmp_path)
    want = {'model': 'RRDBNet', 'n_resblocks': 2, 'n_feats': 8, 'growth': 4, 'unshuffle': 1, 'scale': [4],
            'n_colors': 3}
    for path in files.values():
        assert weights.file_flags(str(path)) == want, path
    # Real-ESRGAN x2 (pixel-unshuffle 2, 'params'), an x8 original ESRGAN (3 upsampling convs), a grayscale x2 SRVGG
    torch.save({'params': random_weights(basicsr_rrdbnet(3, 8, 4, in_ch=12), 0)}, tmp_path / 'x2.pth')
    assert weights.file_flags(str(tmp_path / 'x2.pth')) == {**want, 'n_resblocks': 3, 'unshuffle': 2, 'scale': [2]}
    old8 = {to_original_esrgan(k, 2, 3): v for k, v in random_weights(basicsr_rrdbnet(2, 8, 4, ups=3), 0).items()}
    torch.save(old8, tmp_path / 'x8.pth')
    assert weights.file_flags(str(tmp_path / 'x8.pth')) == {**want, 'scale': [8]}
    torch.save({'params': random_weights(srvgg(5, 12, scale=2, ch=1), 0)}, tmp_path / 'vgg.pth')
    assert weights.file_flags(str(tmp_path / 'vgg.pth')) == {'model': 'SRVGGNetCompact', 'n_resblocks': 5,
                                                             'n_feats': 12, 'scale': [2], 'n_colors': 1}
    # a key too many, or a shape that fits no network of the read sizes: not recognised
    torch.save({**old8, 'model.1.sub.0.RDB1.conv6.0.weight': torch.zeros(1)}, tmp_path / 'extra.pth')
    bad = dict(random_weights(srvgg(2, 8), 0), **{'body.3.weight': torch.zeros(9)})
    torch.save(bad, tmp_path / 'bad.pth')
    assert weights.file_flags(str(tmp_path / 'extra.pth')) == {} == weights.file_flags(str(tmp_path / 'bad.pth'))


def test_community_safetensors_file_is_read(tmp_path):
    from safetensors.torch import save_file
    save_file(random_weights(srvgg(**VGG), 3), str(tmp_path / 'v.safetensors'))
    assert weights.file_flags(str(tmp_path / 'v.safetensors'))['model'] == 'SRVGGNetCompact'
    lines = []
    net = create_model('SRVGGNetCompact', scale=(4,), n_conv=3, n_feats=8, pretrained=str(tmp_path / 'v.safetensors'),
                       log=lines.append)
    assert torch.equal(net.body[0].weight, random_weights(srvgg(**VGG), 3)['body.0.weight'])
    assert 'SRVGGNetCompact in the Real-ESRGAN layout' in lines[0]


def test_loading_never_runs_code(tmp_path, demo, cache):
    """A pickle that would run a command when unpickled is refused, and the command never runs."""
    class Evil:
        def __reduce__(self):
            import os
            return os.system, (f'touch {tmp_path / "ran"}',)
    torch.save({'params_ema': {'conv_first.weight': Evil()}}, tmp_path / 'evil.pth')
    code, out, err = run_main(['--pre_train', tmp_path / 'evil.pth', '--test_only', '--data_test', 'Demo',
                               '--dir_demo', demo, '--cpu', '--n_threads', '0', '--dir_cache', cache])
    assert code == 1 and 'not a readable PyTorch checkpoint' in err and not (tmp_path / 'ran').exists()
    assert weights.file_flags(str(tmp_path / 'evil.pth')) == {} and not (tmp_path / 'ran').exists()


# ---- through main.py: detection, the log line, the Set5 score ------------------------------
@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp('interop_cache')


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """A folder holding one small LR image of a user's own."""
    d = tmp_path_factory.mktemp('interop_demo')
    iio.imwrite(d / 'a.png', np.random.default_rng(0).integers(0, 256, (13, 11, 3), dtype=np.uint8))
    return d


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """The community files, and the same networks built by hand (srlab files with explicit flags)."""
    d = tmp_path_factory.mktemp('interop_files')
    out, basic = rrdb_files(d)
    torch.manual_seed(5)
    hand = create_model('RRDBNet', scale=(4,), n_blocks=2, n_feats=8, growth=4)
    hand.load_state_dict(basic)  # plain torch loading: no detection
    meta = flags.recorded('RRDBNet', dict(scale=(4,), n_blocks=2, n_feats=8, growth=4))
    torch.save(weights.tagged(hand.state_dict(), meta), d / 'rrdb_hand.pt')
    vgg = random_weights(srvgg(**VGG), 7)
    torch.save({'params': vgg}, d / 'vgg_params.pth')
    hand_vgg = create_model('SRVGGNetCompact', scale=(4,), n_conv=3, n_feats=8)
    hand_vgg.load_state_dict(vgg)
    meta = flags.recorded('SRVGGNetCompact', dict(scale=(4,), n_conv=3, n_feats=8))
    torch.save(weights.tagged(hand_vgg.state_dict(), meta), d / 'vgg_hand.pt')
    return dict(out, rrdb_hand=d / 'rrdb_hand.pt', vgg=d / 'vgg_params.pth', vgg_hand=d / 'vgg_hand.pt', dir=d)


def score_set5(path, exp_name, cache, *extra):
    """main.py --pre_train PATH --test_only on Set5 -> (exit code, stdout, stderr, PSNR or None)."""
    name = exp_name('interop')
    code, out, err = run_main(['--pre_train', path, '--test_only', '--data_test', 'Set5', '--dir_data', SHARED,
                               '--save', name, '--cpu', '--n_threads', '0', '--dir_cache', cache, *extra])
    res = EXP / name / 'results.json'
    psnr = json.loads(res.read_text())['Set5']['4']['psnr'] if code == 0 and res.is_file() else None
    return code, out, err, psnr


@pytest.fixture(scope='module')
def reference(files, cache):
    """Set5 x4 PSNR of the networks built by hand (srlab files, no detection)."""
    names, out = [], {}

    def name(tag):
        names.append(f'pytest_interop_ref_{tag}_{len(names)}')
        return names[-1]
    for key in ('rrdb_hand', 'vgg_hand'):
        code, _, err, out[key] = score_set5(files[key], name, cache)
        assert code == 0, err
    yield out
    for n in names:
        shutil.rmtree(EXP / n, ignore_errors=True)


@NEEDS_SET5
@pytest.mark.parametrize('layout', ['Real-ESRGAN / BasicSR', 'original ESRGAN', 'ESRGAN repository'])
def test_community_rrdbnet_scores_as_the_network_built_by_hand(layout, files, reference, exp_name, cache):
    code, out, err, psnr = score_set5(files[layout], exp_name, cache)
    assert code == 0, err
    where = " in 'params_ema'" if layout.startswith('Real') else ''
    assert (f'--pre_train: {files[layout]}: RRDBNet in the {layout} layout{where}: 2 blocks, 8 features, '
            f'growth 4, x4, {sum(math.prod(s) for s in basicsr_rrdbnet(**RRDB).values()):,} parameters') in out
    assert psnr is not None and psnr == reference['rrdb_hand']


@NEEDS_SET5
def test_community_srvgg_scores_as_the_network_built_by_hand(files, reference, exp_name, cache):
    code, out, err, psnr = score_set5(files['vgg'], exp_name, cache)
    assert code == 0, err
    assert (f"SRVGGNetCompact in the Real-ESRGAN layout in 'params': 3 convolutions after the first, 8 features, "
            f'x4, {sum(math.prod(s) for s in srvgg(**VGG).values()):,} parameters') in out
    assert psnr == reference['vgg_hand']
    # --chop with an overlap beyond the receptive field gives the same score; --self_ensemble runs
    code, _, err, chopped = score_set5(files['vgg'], exp_name, cache, '--chop', '--chop_size', '40',
                                      '--chop_overlap', '8')
    assert code == 0 and abs(chopped - psnr) < 1e-3, err
    code, _, err, ensemble = score_set5(files['vgg'], exp_name, cache, '--self_ensemble')
    assert code == 0 and math.isfinite(ensemble), err


def test_demo_upscales_with_a_community_file(files, exp_name, demo, cache):
    name = exp_name('interop_demo')
    code, out, err = run_main(['--pre_train', files['original ESRGAN'], '--test_only', '--data_test', 'Demo',
                               '--dir_demo', demo, '--save', name, '--cpu', '--n_threads', '0', '--dir_cache', cache])
    assert code == 0, err
    written = list((EXP / name).rglob('a*.png'))
    assert len(written) == 1 and iio.imread(written[0]).shape == (52, 44, 3)


def test_video_upscales_with_a_community_file(files, exp_name, tmp_path):
    frames = tmp_path / 'frames'
    frames.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        iio.imwrite(frames / f'{i:04d}.png', rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    name = exp_name('interop_video')
    code, out, err = run_main(['--pre_train', files['vgg'], '--test_only', '--data_test', 'video', '--dir_demo',
                               frames, '--save', name, '--cpu', '--n_threads', '0'])
    assert code == 0, err
    assert 'SRVGGNetCompact in the Real-ESRGAN layout' in out and list((EXP / name).glob('*_x4.mp4'))


# ---- refusals: one line, exit 2 -------------------------------------------------------
def refused(argv, demo, cache):
    code, out, err = run_main([*argv, '--test_only', '--data_test', 'Demo', '--dir_demo', demo, '--cpu',
                               '--n_threads', '0', '--dir_cache', cache])
    lines = [ln for ln in error_lines(err) if 'warning' not in ln.lower()]
    assert code == 2 and len(lines) == 1, (code, err)
    return lines[0]


def test_refusals_are_one_line_with_exit_2(files, tmp_path, demo, cache):
    torch.save({'foo.weight': torch.zeros(3, 3)}, tmp_path / 'other.pth')
    line = refused(['--pre_train', tmp_path / 'other.pth'], demo, cache)
    assert 'matches no known layout' in line and 'original ESRGAN layout (model.0' in line
    assert 'SRVGGNetCompact in the Real-ESRGAN layout' in line and '--model EDSR (head.0.weight' in line
    line = refused(['--pre_train', files['original ESRGAN'], '--scale', '2'], demo, cache)
    assert line.endswith('holds RRDBNet weights for x4 (original ESRGAN layout); --scale 2 does not include 4 '
                         '(leave --scale out: the file brings its own)')
    line = refused(['--pre_train', files['vgg'], '--model', 'EDSR'], demo, cache)
    assert '--model EDSR cannot read it' in line


# ---- safetensors, in and out -----------------------------------------------------------
@NEEDS_SET5
def test_a_run_saved_as_safetensors_tests_with_pre_train_alone(demo, exp_name, cache, tmp_path, capsys):
    """A short RRDBNet run -> export.py --load <run> --safetensors -> --pre_train x.safetensors alone
    (no network flag) tests on Set5 with the run's tensors."""
    run = exp_name('interop_run')
    code, _, err = run_main(['--model', 'RRDBNet', '--n_resblocks', '1', '--n_feats', '8', '--growth', '4', '--scale',
                             '4', '--data_train', 'Folder', '--dir_train', SHARED / 'benchmark' / 'Set5' / 'HR',
                             '--data_test', 'Demo', '--dir_demo', demo, '--patch_size', '32', '--batch_size', '2',
                             '--test_every', '1', '--epochs', '1', '--n_threads', '0', '--cpu', '--save', run,
                             '--dir_cache', cache])
    assert code == 0, err
    out = tmp_path / 'x.safetensors'
    capsys.readouterr()
    assert export.main(['--load', run, '--safetensors', out]) == 0
    assert 'flags in its header: --growth 4 --model RRDBNet --n_colors 3 --n_feats 8 --n_resblocks 1' \
        in capsys.readouterr().out
    state = torch.load(EXP / run / 'model' / 'model_latest.pt', weights_only=True)
    back = tensorfile.read(str(out))
    assert back.keys() == state.keys() and all(torch.equal(back[k], v) for k, v in state.items())
    assert weights.saved_flags(back) == weights.saved_flags(state)
    code, stdout, err, psnr = score_set5(out, exp_name, cache)
    assert code == 0 and psnr is not None, err
    assert f'Loaded {len(state)}/{len(state)} tensors from {out}' in stdout


def test_damaged_safetensors_is_one_line(tmp_path, cache):
    good = tmp_path / 'g.safetensors'
    tensorfile.write(random_weights(srvgg(**VGG), 0), {'model': 'SRVGGNetCompact'}, str(good))
    (tmp_path / 'cut.safetensors').write_bytes(good.read_bytes()[:-100])
    code, out, err = run_main(['--pre_train', tmp_path / 'cut.safetensors', '--model', 'SRVGGNetCompact',
                               '--n_resblocks', '3', '--n_feats', '8', '--test_only', '--data_test', 'Sample', '--cpu',
                               '--dir_cache', cache])
    assert code == 1 and 'is not a readable .safetensors file' in err and len(error_lines(err)) == 1


# ---- ONNX, checked by ONNX Runtime ------------------------------------------------------
def onnx_export(tmp_path, capsys, *argv):
    path = tmp_path / 'net.onnx'
    code = export.main(['--onnx', path, '--size', '24', '--repeat', '2', *argv])
    return code, path, capsys.readouterr()


@pytest.mark.parametrize('case', ['rrdb', 'rrdb_x2_unshuffle', 'vgg', 'edsr_x3_of_2+3'])
def test_onnx_runs_within_1e4_of_torch_at_any_size(case, files, tmp_path, capsys):
    import onnxruntime
    if case == 'rrdb_x2_unshuffle':
        torch.save({'params': random_weights(basicsr_rrdbnet(2, 8, 4, in_ch=12), 1)}, tmp_path / 'x2.pth')
        argv, scale = ['--pre_train', tmp_path / 'x2.pth'], 2
    elif case == 'edsr_x3_of_2+3':
        edsr = create_model('EDSR', scale=(2, 3), n_resblocks=1, n_feats=8)
        meta = flags.recorded('EDSR', dict(scale=(2, 3), n_resblocks=1, n_feats=8))
        torch.save(weights.tagged(edsr.state_dict(), meta), tmp_path / 'edsr.pt')
        argv, scale = ['--pre_train', tmp_path / 'edsr.pt', '--export_scale', '3'], 3
    else:
        argv, scale = ['--pre_train', files['rrdb_hand' if case == 'rrdb' else 'vgg']], 4
    code, path, cap = onnx_export(tmp_path, capsys, *argv)
    assert code == 0, cap.err
    report = cap.out
    assert 'H and W dynamic' in report and f'x{scale}, opset' in report
    speed = [ln for ln in report.splitlines() if ln.startswith('CPU inference')][0]
    assert 'torch ' in speed and ' MP/s, ONNX Runtime ' in speed and export.cpu_kind() in speed
    diffs = [float(w) for w in report.split('largest difference ')[1].replace(',', ' ').split()[:4:3]]
    assert len(diffs) == 2 and max(diffs) <= 1e-4
    # independently: an odd size the export never saw, against the same network in torch
    _, args = export.parse(['--onnx', 'x', *map(str, argv)])
    net, _ = export.network(args, log=lambda _: None)
    export.at_scale(net, args.scale, scale)
    x = torch.rand(1, 3, 19, 13) * 255
    sess = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    got = torch.from_numpy(sess.run(None, {'lr': x.numpy()})[0])
    with torch.no_grad():
        want = net(x)
    assert got.shape == (1, 3, 19 * scale, 13 * scale) and (got - want).abs().max() / 255 <= 1e-4


def test_onnx_without_the_extra_says_what_to_install(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import onnxruntime raises ImportError
    code, path, cap = onnx_export(tmp_path, capsys, '--pre_train', files['vgg'])
    assert code == 1 and not path.exists()
    assert error_lines(cap.err) == ['export.py: error: --onnx: needs the onnxruntime package: '
                                    'pip install -r requirements-extra.txt (onnx, onnxruntime)']


def test_onnx_of_a_size_fixed_graph_is_refused(tmp_path, capsys):
    """VDSR does MATLAB bicubic inside the network, with matrices for the traced size: refused, nothing written."""
    code, path, cap = onnx_export(tmp_path, capsys, '--model', 'VDSR', '--n_resblocks', '3', '--n_feats', '8',
                                  '--scale', '2', '--pre_train', 'none')
    assert code == 1 and not path.exists() and not list(tmp_path.glob('.export.*'))
    assert len(error_lines(cap.err)) == 1 and 'cannot run the graph on a' in cap.err
