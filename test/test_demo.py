"""demo.sh: every recipe is a command line that main.py accepts (flags,
templates, datasets), and `bash demo.sh list` lists them from any folder."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'src'))

import option  # noqa: E402

SHARED = REPO.parent / 'shared' / 'data'


def recipes():
    text = (REPO / 'demo.sh').read_text()
    return dict(re.findall(r'^([a-z0-9_]+)\) (python main\.py .*?) ;;$', text, re.M))


def test_list_names_every_recipe(tmp_path):
    out = subprocess.run(['bash', str(REPO / 'demo.sh'), 'list'], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.split()) - {'list'}
    assert listed == set(recipes()) and {'quick', 'edsr_gan', 'esrgan', 'rcan_x2', 'swinir_x2'} <= listed


def test_unknown_recipe_is_one_line(tmp_path):
    out = subprocess.run(['bash', str(REPO / 'demo.sh'), 'nosuch'], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().count('\n') == 0 and 'nosuch' in out.stderr


@pytest.mark.parametrize('name', sorted(recipes()))
def test_recipe_flags_parse(name, tmp_path, monkeypatch):
    """The recipe's flags pass main.py's validation (with a benchmark folder
    made for $BENCH and a stand-in for each --pre_train file of an earlier
    recipe, so nothing outside the test is needed)."""
    data = tmp_path / 'data'
    bench = 'Set5+Set14'
    for s in bench.split('+') + ['B100']:
        (data / 'benchmark' / s / 'HR').mkdir(parents=True)
    cmd = recipes()[name].replace('$DATA', str(data)).replace('$BENCH', bench).replace('$CLASSIC', str(data))
    argv = shlex.split(cmd)[2:]
    monkeypatch.chdir((tmp_path / 'src').mkdir() or tmp_path / 'src')  # recipes run in src/
    if '--data_test' in argv and argv[argv.index('--data_test') + 1] == 'video':  # a stand-in clip
        clip = Path(argv[argv.index('--dir_demo') + 1])
        clip.parent.mkdir(parents=True, exist_ok=True)
        clip.write_bytes(b'')
    if '--pre_train' in argv and argv[argv.index('--pre_train') + 1] != 'download':
        weights = Path(argv[argv.index('--pre_train') + 1])
        weights.parent.mkdir(parents=True)
        weights.write_bytes(b'')
    args = option.parse_args(argv)
    assert args.model and args.scale
    if '--template' in argv:
        t = argv[argv.index('--template') + 1]
        assert t.lower() in {k.lower() for k in option.template.names()}
