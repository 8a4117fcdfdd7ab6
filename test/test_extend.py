"""Adding a network in one file; BasicSR vs EDSR-PyTorch checkpoints; --pre_train download."""
import hashlib
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / 'src'
sys.path.insert(0, str(SRC))

import option  # noqa: E402


class Ckp:
    def __init__(self, d):
        self.dir = str(d)
        self.lines = []

    def get_path(self, *p):
        return str(Path(self.dir, *p))

    def write_log(self, msg, **k):
        self.lines.append(msg)


def readme_example():
    """The code block under 'Adding a network' in README.md."""
    text = (REPO / 'README.md').read_text()
    section = text.split('## Adding a network', 1)[1]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


def test_readme_network_example_is_found_by_name_and_trains(tmp_path):
    code = readme_example()
    assert len(code.splitlines()) <= 30
    name = f'PytestNet{uuid.uuid4().hex[:6]}'
    registered = re.search(r"@MODELS\.register\('(\w+)'\)", code).group(1)
    path = SRC / 'model' / f'{name.lower()}.py'
    path.write_text(code.replace(f"register('{registered}')", f"register('{name}')"))
    save = f'pytest_{name.lower()}'
    try:
        p = subprocess.run(
            [sys.executable, 'main.py', '--model', name.upper(), '--scale', '2+3', '--data_train', 'Sample',
             '--data_test', 'Sample', '--patch_size', '48', '--batch_size', '4', '--test_every', '3',
             '--epochs', '1', '--n_threads', '0', '--cpu', '--dir_cache', str(tmp_path), '--save', save],
            cwd=SRC, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        assert 'Trainable parameters' in p.stdout
        assert (REPO / 'experiment' / save / 'model' / 'model_latest.pt').exists()
    finally:
        path.unlink()
        shutil.rmtree(REPO / 'experiment' / save, ignore_errors=True)


def to_basicsr(state, n_resblocks):
    """EDSR-PyTorch names -> BasicSR's EDSR names (independent of EDSR.from_basicsr)."""
    out = {}
    for k, v in state.items():
        if k.startswith(('sub_mean', 'add_mean')):
            continue
        m = re.match(r'body\.(\d+)\.body\.([02])\.(.*)', k)
        if m:
            out[f'body.{m.group(1)}.conv{1 if m.group(2) == "0" else 2}.{m.group(3)}'] = v
        elif k.startswith(f'body.{n_resblocks}.'):
            out['conv_after_body.' + k.split('.', 2)[2]] = v
        elif k.startswith('head.0.'):
            out['conv_first.' + k[len('head.0.'):]] = v
        elif k.startswith('tail.0.'):
            out['upsample.' + k[len('tail.0.'):]] = v
        elif k.startswith('tail.1.'):
            out['conv_last.' + k[len('tail.1.'):]] = v
        else:
            raise KeyError(k)
    return out


@pytest.mark.parametrize('scale', [2, 4])
def test_basicsr_and_edsr_pytorch_checkpoints_give_the_same_output(tmp_path, scale):
    import model
    argv = ['--model', 'EDSR', '--n_resblocks', '4', '--n_feats', '16', '--scale', str(scale), '--cpu',
            '--test_only', '--pre_train', 'none', '--data_test', 'Sample']
    args = option.parse_args(argv)
    torch.manual_seed(0)
    ref = model.Model(args, Ckp(tmp_path)).get_model().state_dict()
    ref = {k: v + 0.01 * torch.randn_like(v) if not k.endswith('_mean.weight') and 'mean' not in k else v
           for k, v in ref.items()}
    torch.save(ref, tmp_path / 'edsr.pt')
    torch.save({'params': to_basicsr(ref, 4)}, tmp_path / 'basicsr.pth')
    x = torch.rand(1, 3, 12, 10) * 255
    outs = []
    for f in ('edsr.pt', 'basicsr.pth'):
        torch.manual_seed(123)  # a different init: the weights must come from the file
        m = model.Model(option.parse_args(argv + ['--pre_train', str(tmp_path / f)]), Ckp(tmp_path))
        m.eval()
        with torch.no_grad():
            outs.append(m(x, 0))
    assert torch.equal(outs[0], outs[1])
    with torch.no_grad():
        m0 = model.Model(args, Ckp(tmp_path))
        m0.eval()
        assert not torch.allclose(m0(x, 0), outs[0])


def test_pre_train_download_missing_file_says_where_to_get_it(tmp_path):
    p = subprocess.run([sys.executable, 'main.py', '--model', 'EDSR', '--scale', '2', '--pre_train', 'download',
                        '--dir_models', str(tmp_path), '--test_only', '--data_test', 'Sample', '--cpu',
                        '--dir_cache', str(tmp_path / 'c'), '--save', 'pytest_download'],
                       cwd=SRC, capture_output=True, text=True, timeout=120)
    shutil.rmtree(REPO / 'experiment' / 'pytest_download', ignore_errors=True)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1
    assert 'https://cv.snu.ac.kr/research/EDSR/models/edsr_baseline_x2-1bc95232.pt' in lines[0]
    assert str(tmp_path / 'edsr_baseline_x2-1bc95232.pt') in lines[0]


def test_pre_train_download_checks_the_hash_prefix(tmp_path, monkeypatch):
    import errors
    from model import released
    args = option.parse_args(['--model', 'EDSR', '--scale', '2', '--dir_models', str(tmp_path), '--test_only',
                              '--pre_train', 'download', '--data_test', 'Sample'])
    f = tmp_path / 'edsr_baseline_x2-1bc95232.pt'
    f.write_bytes(b'not the released file')
    with pytest.raises(errors.SRLabError, match='SHA-256'):
        released.find_released(args)
    # a file whose hash matches the table is accepted
    prefix = hashlib.sha256(f.read_bytes()).hexdigest()[:8]
    from dataclasses import replace
    from registry import MODELS
    edsr = MODELS.get('EDSR')
    monkeypatch.setattr(edsr, 'released', tuple(replace(r, sha=prefix) if r.file == f.name else r
                                                 for r in edsr.released))
    assert released.find_released(args) == str(f)
