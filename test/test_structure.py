"""The shape of the code: read-only args through a whole run (training,
resume, torchrun), one owner of state.pt, one registry, short functions."""
import ast
import copy
import re
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


def classes(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            yield node.name, node.end_lineno - node.lineno + 1


def test_functions_fit_on_a_screen_classes_are_short_and_trainer_is_small():
    long = [f'{p.relative_to(SRC)}:{name} ({n} lines)' for p in sorted(SRC.rglob('*.py'))
            for name, n in functions(p) if n > 60 and name != 'build_parser']  # the table of flags
    assert not long, long
    big = [f'{p.relative_to(SRC)}:{name} ({n} lines)' for p in sorted(SRC.rglob('*.py'))
           for name, n in classes(p) if n > 250]
    assert not big, big
    assert len((SRC / "trainer.py").read_text().splitlines()) <= 200
    assert len((SRC / 'model' / '__init__.py').read_text().splitlines()) <= 170  # the wrapper


# ---- imports ---------------------------------------------------------------------
def src_modules():
    """{dotted name: path} of every module of src/ (a package by its __init__.py)."""
    out = {}
    for p in SRC.rglob('*.py'):
        parts = list(p.relative_to(SRC).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        out['.'.join(parts)] = p
    return out


def imported(path, name, mods):
    """The src/ modules that `path` imports anywhere (module level and inside
    functions). `from pkg import x` counts as importing pkg.x when that is a
    module, else pkg; `import a.b.c` as the longest prefix that is a module."""
    pkg = name if path.name == '__init__.py' else name.rpartition('.')[0]

    def longest(dotted):
        while dotted and dotted not in mods:
            dotted = dotted.rpartition('.')[0]
        return dotted
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from filter(None, (longest(a.name) for a in node.names))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:  # relative: from . import x, from ..a import b
                up = pkg.split('.')[:len(pkg.split('.')) - node.level + 1]
                base = '.'.join(up + ([base] if base else []))
            for a in node.names:
                full = f'{base}.{a.name}' if base else a.name
                found = full if full in mods else longest(base)
                if found:
                    yield found


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_in_src():
    mods = src_modules()
    graph = {m: sorted(set(imported(p, m, mods)) - {m}) for m, p in mods.items()}
    assert 'utility' in graph['main'] and 'model.flags' in graph['option']  # the walk sees imports
    assert 'data' in graph['main']  # ... also inside functions
    found = cycles(graph)
    assert not found, [' -> '.join(c) for c in found]
    # the walk finds a cycle when there is one
    assert cycles({'a': ['b'], 'b': ['c'], 'c': ['a'], 'd': ['a']}) == [['a', 'b', 'c']]


def test_network_files_take_plain_arguments():
    """No network file reads `args`; state.py keeps no list of network flags."""
    nets = [p for p in (SRC / 'model').glob('*.py') if '@MODELS.register' in p.read_text()]
    assert len(nets) >= 9
    readers = [p.name for p in nets if re.search(r'\bargs\b', p.read_text())]
    assert not readers, readers
    import state
    from model import flags
    declared = {f for n in flags.MODELS.names() for f in flags.declared(flags.MODELS.get(n))}
    assert declared and not set(state.IDENTITY) & (declared - {'imresize_border'})


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
    import scoring
    from data import common
    for name in ('evaluate.py', 'scoring.py'):
        source = (SRC / name).read_text()
        assert 'imread' not in source and 'IMAGE_EXTS' not in source  # no reader or extension list of its own
    assert scoring.common is common


def test_command_line_tools_keep_only_their_command_line():
    """evaluate.py and compare.py hold their parsers and main(); the scoring, tables and
    figures they print are library modules, which nothing imports the tools for."""
    for tool, allowed in (('evaluate', {'_warning_line', 'parse_methods', 'write_text', 'Parser', 'build_parser',
                                        'plus_list', 'check_args', 'run_single', 'run_grid', 'main'}),
                          ('compare', {'Parser', 'build_parser', 'parse_methods', 'parse_box', 'read', 'fit',
                                       'load', 'main'})):
        tree = ast.parse((SRC / f'{tool}.py').read_text())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert defined <= allowed, (tool, sorted(defined - allowed))
    mods = src_modules()
    users = [m for m, p in mods.items() if m not in ('evaluate', 'compare')
             and {'evaluate', 'compare'} & set(imported(p, m, mods))]
    assert not users, users
    utility = set(imported(SRC / 'utility.py', 'utility', mods))
    assert 'state' not in utility and 'paths' in utility  # the experiment folder needs no run state
