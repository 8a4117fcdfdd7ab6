"""A new user's first hour: Demo writes what it says, no silent random
weights, srlab's own files bring their flags, a finished run says so, a
refused start leaves no folder, exit codes, 'did you mean', --summary's
configuration, the Bicubic line of the PSNR plot, --test_only's table."""
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import REPO, error_lines, run_main

import option  # noqa: E402  (src/ on the path from conftest)

EXP = REPO / 'experiment'
# a tiny run with flags that differ from every default (scale, sizes, patch, batch, lr, epochs)
RUN_FLAGS = ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--res_scale', '0.5', '--scale', '2+3',
             '--data_train', 'Sample', '--data_test', 'Sample', '--patch_size', '48', '--batch_size', '4',
             '--test_every', '3', '--epochs', '2', '--lr', '3e-4', '--n_threads', '0', '--cpu', '--print_every', '3']


def lines(err):
    """The error lines of stderr (not the warnings)."""
    return [ln for ln in error_lines(err) if 'warning' not in ln.lower()]


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp('first_hour_cache'))


@pytest.fixture(scope='module')
def run(cache):
    """The reference run of this module, trained once (2 epochs); tests copy it."""
    name = 'pytest_first_hour_run'
    shutil.rmtree(EXP / name, ignore_errors=True)
    code, out, err = run_main(RUN_FLAGS + ['--dir_cache', cache, '--save', name])
    assert code == 0, err
    yield name
    shutil.rmtree(EXP / name, ignore_errors=True)


@pytest.fixture
def copy(run, exp_name):
    def make(tag='copy'):
        name = exp_name(tag)
        shutil.copytree(EXP / run, EXP / name)
        return name
    return make


@pytest.fixture
def demo(tmp_path):
    """Two LR images of a user's own."""
    d = tmp_path / 'demo'
    d.mkdir()
    rng = np.random.default_rng(0)
    for k in ('a', 'b'):
        iio.imwrite(d / f'{k}.png', rng.integers(0, 256, (20, 18, 3), dtype=np.uint8))
    return d


# ---- Demo writes its outputs, and says how many it wrote -------------------------------
def test_demo_writes_its_outputs_without_save_results(demo, exp_name, cache):
    save = exp_name('demo')
    code, out, err = run_main(['--model', 'Bicubic', '--scale', '2', '--data_test', 'Demo', '--dir_demo', demo,
                               '--test_only', '--cpu', '--dir_cache', cache, '--save', save])
    assert code == 0, err
    written = sorted(p.name for p in (EXP / save / 'results-Demo').iterdir())
    assert written == ['a_x2_SR.png', 'b_x2_SR.png']
    assert f'[Demo x2]\twrote 2 image(s) to {EXP / save / "results-Demo"}' in out
    assert not (EXP / save / 'model').exists()  # a test writes no empty model/ folder


# ---- no silent random weights -------------------------------------------------------------
def test_testing_a_network_without_weights_is_refused_but_bicubic_needs_none(demo, exp_name, cache):
    base = ['--scale', '2', '--data_test', 'Demo', '--dir_demo', demo, '--test_only', '--cpu', '--dir_cache', cache]
    save = exp_name('noweights')
    code, out, err = run_main(['--model', 'EDSR', *base, '--save', save])
    assert code == 2 and lines(err) == ['main.py: error: --test_only: --model EDSR has no weights to test; give '
                                        '--pre_train FILE (or download), --load <run>, or --pre_train none to test '
                                        'its random initialisation']
    assert not (EXP / save).exists()
    assert run_main(['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', *base, '--pre_train', 'none',
                     '--save', save])[0] == 0
    assert run_main(['--model', 'Bicubic', *base, '--save', exp_name('bicubic')])[0] == 0


def test_a_scale_without_its_tail_is_refused_when_testing(run, demo, exp_name, cache):
    x23 = EXP / run / 'model' / 'model_latest.pt'
    base = ['--data_test', 'Demo', '--dir_demo', demo, '--test_only', '--cpu', '--dir_cache', cache]
    for extra in ([], ['--pre_train_strict', 'false']):
        save = exp_name('x4')
        code, out, err = run_main(['--pre_train', x23, '--scale', '2+4', *base, *extra, '--save', save])
        assert code == 1 and lines(err) == [
            f'main.py: error: --pre_train: {x23} has no weights for x4 (its tail would be random); test the scales '
            f'the file holds, or train x4 from it first (--pre_train {x23} --scale 4, without --test_only)'], err
    # training x4 from x2/x3 weights (the EDSR paper's x4 from x2) stays allowed
    assert run_main(['--pre_train', x23, '--scale', '4', '--data_train', 'Sample', '--data_test', 'Sample',
                     '--epochs', '1', '--test_every', '1', '--batch_size', '2', '--patch_size', '48', '--cpu',
                     '--n_threads', '0', '--dir_cache', cache, '--save', exp_name('x4train')])[0] == 0


# ---- srlab's own files bring their flags --------------------------------------------------
def test_load_resume_alone_takes_the_saved_flags(copy, cache):
    name = copy('resume')
    state0 = torch.load(EXP / name / 'state.pt', weights_only=True)
    code, out, err = run_main(['--load', name, '--resume', '-1', '--epochs', '3'])
    assert code == 0, err
    assert 'Resumed from' in out and 'continuing at epoch 3' in out
    st = torch.load(EXP / name / 'state.pt', weights_only=True)
    assert st['epoch'] == 3 and st['flags']['n_feats'] == 8 and st['flags']['scale'] == [2, 3]
    assert st['flags']['lr'] == state0['flags']['lr'] == 3e-4 and st['flags']['dir_cache'] == cache
    # a flag given on resume still goes through the identity check: refused, or applied and logged
    code, out, err = run_main(['--load', name, '--resume', '-1', '--epochs', '4', '--n_feats', '16'])
    assert code == 2 and len(lines(err)) == 1 and '--n_feats 8 -> 16' in lines(err)[0], err  # before any data
    code, out, err = run_main(['--load', name, '--resume', '-1', '--epochs', '4', '--print_every', '1'])
    assert code == 0 and 'Changed since the saved session: --epochs 3 -> 4; --print_every 3 -> 1' in out, out


def test_a_finished_run_says_so_and_tests_nothing(copy):
    name = copy('finished')
    before = (EXP / name / 'state.pt').read_bytes()
    code, out, err = run_main(['--load', name, '--resume', '-1'])
    assert code == 0, err
    assert f'{EXP / name} is finished (2 of --epochs 2' in out and 'Evaluation:' not in out
    assert (EXP / name / 'state.pt').read_bytes() == before


def test_pre_train_of_an_srlab_file_brings_its_network(run, demo, exp_name, cache, capsys):
    path = EXP / run / 'model' / 'model_latest.pt'
    save = exp_name('upscale')
    code, out, err = run_main(['--pre_train', path, '--data_test', 'Demo', '--dir_demo', demo, '--test_only',
                               '--cpu', '--dir_cache', cache, '--save', save])
    assert code == 0, err
    assert sorted(p.name for p in (EXP / save / 'results-Demo').iterdir()) == \
        ['a_x2_SR.png', 'a_x3_SR.png', 'b_x2_SR.png', 'b_x3_SR.png']
    cfg = (EXP / save / 'config.txt').read_text()
    assert 'n_feats: 8\n' in cfg and 'res_scale: 0.5\n' in cfg and 'scale: [2, 3]\n' in cfg
    # given flags win, one warning line for each conflict; a size that cannot fit names the flags that would
    code, out, err = run_main(['--pre_train', path, '--scale', '2', '--res_scale', '1', '--data_test', 'Demo',
                               '--dir_demo', demo, '--test_only', '--cpu', '--dir_cache', cache,
                               '--save', exp_name('given')])
    assert code == 0 and f'--pre_train: {path} was saved with --res_scale 0.5, this run has --res_scale 1.0' in out
    code, out, err = run_main(['--pre_train', path, '--n_feats', '16', '--data_test', 'Demo', '--dir_demo', demo,
                               '--test_only', '--cpu', '--dir_cache', cache, '--save', exp_name('wrong')])
    assert code == 1 and len(lines(err)) == 1, err
    assert lines(err)[0].endswith('(it was saved with --n_feats 8: leave out the flags that differ, it brings its own)')
    assert 'pre_train_strict' not in err


def test_a_released_file_of_other_sizes_names_its_flags(tmp_path, demo, exp_name, cache):
    """A file without srlab's metadata: a size mismatch suggests the flags of the
    released file of that name (EDSR paper weights under baseline flags)."""
    from model import create_model
    path = tmp_path / 'edsr_x2-0edfb8a3.pt'
    with torch.device('meta'):
        shapes = create_model('EDSR', scale=(2,), n_resblocks=32, n_feats=256).state_dict()
    torch.save({k: torch.zeros(v.shape) for k, v in shapes.items()}, path)
    code, out, err = run_main(['--model', 'EDSR', '--scale', '2', '--pre_train', path, '--data_test', 'Demo',
                               '--dir_demo', demo, '--test_only', '--cpu', '--dir_cache', cache,
                               '--save', exp_name('released')])
    assert code == 1 and lines(err)[0].endswith(
        '(it is the released edsr_x2-0edfb8a3.pt: --n_resblocks 32 --n_feats 256)'), err


# ---- refused starts, exit codes, names ----------------------------------------------------
def test_a_start_refused_before_the_run_began_leaves_no_folder(tmp_path, exp_name, cache):
    save = exp_name('refused')
    code, out, err = run_main(RUN_FLAGS + ['--data_train', 'Folder', '--dir_train', tmp_path / 'nowhere',
                                           '--dir_cache', cache, '--save', save])
    assert code == 1 and 'folder not found' in lines(err)[0]
    assert not (EXP / save).exists()


def test_mistakes_in_the_command_exit_2_and_failures_at_run_time_exit_1(run, tmp_path, exp_name, cache):
    """2: the command line cannot run as given (also --save of an existing run, a
    --pre_train file that does not exist); 1: something failed while running."""
    cases = [(['--save', run], 2, 'already holds a run'),
             (['--pre_train', tmp_path / 'none.pt', '--save', exp_name('x')], 2, 'file not found'),
             (['--load', 'pytest_no_such_run', '--resume', '-1'], 2, "no run named 'pytest_no_such_run'"),
             (['--model', 'EDRS', '--save', exp_name('x')], 2, 'did you mean EDSR?'),
             (['--data_test', 'Sett5', '--dir_data', REPO.parent / 'shared' / 'data', '--save', exp_name('x')], 2,
              'did you mean Set5?'),
             (['--data_train', 'Folder', '--dir_train', tmp_path / 'nowhere', '--save', exp_name('x')], 1,
              'folder not found')]
    for extra, code_wanted, text in cases:
        code, out, err = run_main(RUN_FLAGS + ['--dir_cache', cache] + [str(a) for a in extra])
        assert code == code_wanted and len(lines(err)) == 1 and text in lines(err)[0], (extra, err)


# ---- --summary, the PSNR plot, --test_only's table ---------------------------------------------
def test_summary_prints_the_configuration_it_counted(capsys):
    code, out, err = run_main(['--model', 'RCAN', '--scale', '2', '--summary', '--cpu', '--summary_size', '16x16'],
                              capsys)
    assert code == 0, err
    assert out.splitlines()[0] == ('counted: --model RCAN --n_colors 3 --n_feats 64 --n_resblocks 20 --n_resgroups 10 '
                                   '--reduction 16 --res_scale 1.0 --rgb_range 255 --scale 2 --shift_mean true')
    assert '15,444,643' in out  # the paper's RCAN (15.44M) without --template RCAN


def test_psnr_plot_has_the_bicubic_line(run, monkeypatch):
    import evaluator
    drawn = []
    monkeypatch.setattr(evaluator, 'save_plot', lambda stem, panels, title, **k: drawn.append((stem, panels)))
    st = torch.load(EXP / run / 'state.pt', weights_only=True)
    args = option.parse_args(['--scale', '2+3', '--data_test', 'Sample', '--cpu'])
    sample = type('L', (), {'dataset': type('D', (), {'name': 'Sample'})})  # the test loader of Sample
    ev = evaluator.Evaluator(args, [sample], type('C', (), {'get_path': lambda self, p: str(EXP / run / p)})())
    ev.load_state_dict(st)
    ev.plot()
    (stem, [(ylabel, lines_, refs)]), (stem_m, [(ylabel_m, lines_m, refs_m)]) = drawn
    assert stem.endswith('test_Sample') and set(lines_) == {'Scale 2', 'Scale 3'}
    assert refs == {'Bicubic x2': st['bicubic'][('Sample', 2)][0], 'Bicubic x3': st['bicubic'][('Sample', 3)][0]}
    # psnr_minutes: the same PSNR against the training minutes the run's clock measured at each test
    assert stem_m.endswith('psnr_minutes') and refs_m == refs and len(st['train_minutes']) == len(st['psnr_log'])
    x, y = lines_m['Scale 2']
    assert list(x) == st['train_minutes'] and sorted(x) == list(x) and x[0] > 0
    assert list(y) == st['psnr_log'][:, 0, 0].tolist()


def test_test_only_writes_the_paper_table_of_what_it_tested(run, exp_name, cache):
    save = exp_name('table')
    code, out, err = run_main(['--pre_train', EXP / run / 'model' / 'model_latest.pt', '--data_test', 'Sample',
                               '--test_only', '--cpu', '--dir_cache', cache, '--save', save])
    assert code == 0, err
    md = (EXP / save / 'table.md').read_text()
    assert 'Sample' in md and 'Bicubic' in md and 'EDSR' in md
    tex = (EXP / save / 'table.tex').read_text()
    assert '\\toprule' in tex and 'EDSR' in tex


# ---- the README's First hour, as pasted from the repository root --------------------------------------
def first_hour_commands():
    """The commands of README.md's 'First hour' block, joined across line continuations."""
    text = (REPO / 'README.md').read_text().split('## First hour', 1)[1].split('```bash', 1)[1].split('```', 1)[0]
    cmds, cur = [], ''
    for line in text.splitlines():
        if line.startswith('#') or not line.strip():
            continue
        cur += line.rstrip('\\').strip() + ' '
        if not line.endswith('\\'):
            cmds.append(cur.split())
            cur = ''
    return cmds


def test_the_first_hour_commands_work_as_pasted(monkeypatch, tmp_path):
    """Every command of the block runs from the repository root and exits 0 (the
    training commands with --test_every 5 added, so that the test stays short)."""
    import compare
    import evaluate
    cmds = first_hour_commands()
    assert [c[1] for c in cmds] == ['src/main.py'] * 6 + ['src/evaluate.py', 'src/compare.py']
    saves = ['first_bicubic', 'first_photos', 'first_run', 'first_upscale']
    for s in saves:
        shutil.rmtree(EXP / s, ignore_errors=True)
    monkeypatch.chdir(REPO)
    tools = {'src/main.py': lambda a: run_main(a)[0], 'src/evaluate.py': evaluate.main, 'src/compare.py': compare.main}
    try:
        for cmd in cmds:
            argv = cmd[2:] + (['--test_every', '5'] if '--template' in cmd or '--resume' in cmd else [])
            if cmd[1] == 'src/compare.py':
                argv[argv.index('--out') + 1] = str(tmp_path / 'chelsea_x4')
            assert tools[cmd[1]](argv) == 0, cmd
        assert (tmp_path / 'chelsea_x4.png').exists() and (EXP / 'first_upscale' / 'results-Demo').is_dir()
        assert len(list((EXP / 'first_photos' / 'results-Demo').glob('*_x4_SR.png'))) > 0  # the shipped model's
    finally:
        for s in saves:
            shutil.rmtree(EXP / s, ignore_errors=True)
