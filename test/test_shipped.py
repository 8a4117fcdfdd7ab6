"""The weights srlab ships (models/*.safetensors): each loads with no flag but
--pre_train and reproduces the Set5 numbers of its model card
(models/README.md) to 0.01 dB, with the scoring the card names."""
import json
import re
import shutil
import uuid

import pytest

from conftest import REPO, SHARED, run_main

MODELS = REPO / 'models'
SHIPPED = sorted(MODELS.glob('*.safetensors'))


def card(name):
    """{scale: PSNR} and the flags of the Set5 line in the model card section of `name`:
    'Set5 (shipped file, `--flags`): x2 37.50, x3 33.60, x4 31.20'."""
    text = (MODELS / 'README.md').read_text()
    section = text.split(f'## {name}')[1].split('\n## ')[0]
    m = re.search(r'Set5 \(shipped file(?:, `([^`]*)`)?\): (.*)', section)
    assert m, f'models/README.md: no Set5 line for {name}'
    return {int(s): float(p) for s, p in re.findall(r'x(\d) (\d+\.\d+)', m[2])}, (m[1] or '').split()


def test_every_shipped_file_has_a_card():
    assert SHIPPED, 'no shipped weights in models/'
    for f in SHIPPED:
        assert card(f.name)[0], f.name


@pytest.mark.skipif(not (SHARED / 'benchmark' / 'Set5').is_dir(), reason=f'needs {SHARED}/benchmark/Set5')
@pytest.mark.parametrize('path', SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_weights_reproduce_their_card(path, capsys):
    want, extra = card(path.name)
    save = f'_test_shipped_{uuid.uuid4().hex[:8]}'
    try:
        code, out, err = run_main(['--pre_train', path, '--test_only', '--data_test', 'Set5', '--dir_data', SHARED,
                                   '--save', save, '--n_threads', '0', *extra], capsys)
        assert code == 0, err
        got = json.loads((REPO / 'experiment' / save / 'results.json').read_text())['Set5']
        for scale, psnr in want.items():
            assert abs(got[str(scale)]['psnr'] - psnr) <= 0.01, (scale, got[str(scale)]['psnr'], psnr)
    finally:
        shutil.rmtree(REPO / 'experiment' / save, ignore_errors=True)
