"""The shape of the code: read-only args through a whole run (training,
resume, torchrun), one owner of state.pt, one registry, short functions."""
import ast
import copy
import subprocess
import sys

import pytest

from conftest import SRC, run_cli

import option  # noqa: E402


def tiny(cache, *extra):
    return ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--scale', '2+3',
            '--data_train', 'Sample', '--data_test', 'Sample', '--patch_size', '48', '--batch_size', '4',
            '--test_every', '2', '--cpu', '--n_threads', '0', '--dir_cache', str(cache), *extra]


def run_and_compare(argv):
    """main.run(args) in this process; args must come back exactly as parsed."""
    import main
    args = option.parse_args(argv)
    before = copy.deepcopy(args.flags())
    assert main.run(args) == 0
    after = args.flags()
    changed = sorted(k for k in set(before) | set(after) if k not in before or k not in after
                     or before[k] != after[k])
    assert not changed, f'args changed after parsing: {changed}'


def test_args_are_read_only_through_training_resume_and_torchrun(tmp_path, exp_name):
    args = option.parse_args(tiny(tmp_path))
    with pytest.raises(AttributeError, match='read-only'):
        args.scale = [2]
    with pytest.raises(AttributeError, match='read-only'):
        args.rank = 0  # a new attribute is refused too
    assert args.replace(epochs=3).epochs == 3 and args.epochs != 3
    name = exp_name('args')
    run_and_compare(tiny(tmp_path, '--epochs', '1', '--save', name))
    run_and_compare(tiny(tmp_path, '--epochs', '2', '--load', name, '--resume', '-1'))
    # torchrun: any attempt to set an attribute of args raises, so the run would fail
    p = run_cli(tiny(tmp_path, '--epochs', '1', '--save', exp_name('args_ddp')), timeout=300,
                env={'OMP_NUM_THREADS': '1'},
                launcher=('-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2'))
    assert p.returncode == 0, p.stderr[-3000:]


def test_only_state_module_names_state_pt():
    hits = subprocess.run(['grep', '-rln', 'state.pt', str(SRC), '--include=*.py'],
                          capture_output=True, text=True).stdout.split()
    assert [p.replace(str(SRC) + '/', '') for p in hits] == ['state.py']


def functions(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1


def test_functions_fit_on_a_screen_and_trainer_is_small():
    long = [f'{p.relative_to(SRC)}:{name} ({n} lines)' for p in sorted(SRC.rglob('*.py'))
            for name, n in functions(p) if n > 60 and name != 'build_parser']  # the table of flags
    assert not long, long
    assert len((SRC / 'trainer.py').read_text().splitlines()) <= 200


def test_registry_lists_components_and_ignores_helper_modules(tmp_path):
    from registry import DATASETS, LOSSES, MODELS
    assert {'EDSR', 'MDSR', 'RCAN', 'RDN', 'VDSR', 'Bicubic'} <= set(MODELS.names())
    assert {'common', 'released'}.isdisjoint(n.lower() for n in MODELS.names())
    assert {'DIV2K', 'Sample', 'Folder', 'Demo'} <= set(DATASETS.names())
    assert {'L1', 'MSE', 'GAN', 'VGG54'} <= set(LOSSES.names())
    # a helper module dropped into src/model/ is not a --model
    helper = SRC / 'model' / 'pytest_helper_module.py'
    helper.write_text('"""helpers, no network"""\nSIZE = 3\n')
    try:
        p = subprocess.run([sys.executable, 'main.py', '--model', 'pytest_helper_module', '--test_only',
                            '--data_test', 'Sample', '--cpu'], cwd=SRC, capture_output=True, text=True, timeout=120)
    finally:
        helper.unlink()
    assert p.returncode == 2 and "unknown model 'pytest_helper_module'" in p.stderr, p.stderr


def test_evaluate_reads_images_with_the_data_pipeline_reader():
    import evaluate
    from data import common
    source = (SRC / 'evaluate.py').read_text()
    assert 'imread' not in source and 'IMAGE_EXTS' not in source  # no reader or extension list of its own
    assert evaluate.common is common
