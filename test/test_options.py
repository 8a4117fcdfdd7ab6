"""option.py: EDSR-compatible names and defaults, '+' lists, ranges, one-line
errors naming the flag, --dir_cache, templates (defaults only)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

import option  # noqa: E402
from conftest import REPO, SHARED, error_lines, run_cli  # noqa: E402

needs_shared = pytest.mark.skipif(not (SHARED / 'benchmark' / 'Set5' / 'HR').is_dir(),
                                  reason=f'benchmark data not found in {SHARED}')


def test_edsr_defaults():
    a = option.parse_args([])
    assert option.build_parser().get_default('model') == 'EDSR'
    assert a.model.lower() == 'edsr'
    expected = dict(n_resblocks=16, n_feats=64, res_scale=1, scale=[4], patch_size=192,
                    rgb_range=255, n_colors=3, lr=1e-4, gamma=0.5, optimizer='ADAM', betas=(0.9, 0.999),
                    epsilon=1e-8, momentum=0.9, weight_decay=0, batch_size=16, test_every=1000, epochs=300,
                    loss='1*L1', save='test', load='', resume=0, data_train=['DIV2K'], data_test=['DIV2K'],
                    data_range='1-800/801-810', ext='sep', n_threads=6, n_GPUs=1, seed=1, cpu=False,
                    chop=False, self_ensemble=False, test_only=False, save_results=False, save_gt=False,
                    save_models=False, reset=False, pre_train='', extend='.', print_every=100,
                    skip_threshold=1e8, act='relu', precision='single', template='.')
    got = {k: getattr(a, k) for k in expected}
    assert got == expected
    assert a.decay_epochs == [200]
    assert a.data_range_parsed == [(1, 800), (801, 810)]
    assert Path(a.dir_cache) == REPO / 'dataset' / 'cache'


@needs_shared
def test_plus_lists_and_range():
    a = option.parse_args(['--scale', '2+3+4', '--data_test', 'Set5+Set14', '--dir_data', str(SHARED),
                           '--data_range', '1-20/21-25', '--decay', '100-200-300', '--betas', '0.8-0.99'])
    assert a.scale == [2, 3, 4]
    assert a.data_test == ['Set5', 'Set14']
    assert a.data_range_parsed == [(1, 20), (21, 25)]
    assert a.decay_epochs == [100, 200, 300]
    assert a.betas == (0.8, 0.99)


@pytest.mark.parametrize('argv, flag', [
    (['--scale', '2+x'], '--scale'),
    (['--scale', '0'], '--scale'),
    (['--scale', '2+2'], '--scale'),
    (['--data_range', '5-1'], '--data_range'),
    (['--data_range', '1-800-801'], '--data_range'),
    (['--model', 'NoSuchNet'], '--model'),
    (['--data_test', 'NoSuchSet'], '--data_test'),
    (['--data_train', 'NoSuchSet'], '--data_train'),
    (['--lr', '-1e-4'], '--lr'),
    (['--lr', 'abc'], '--lr'),
    (['--loss', '1*NoSuchLoss'], '--loss'),
    (['--loss', 'L1'], '--loss'),
    (['--decay', 'x'], '--decay'),
    (['--decay', '200-100'], '--decay'),
    (['--ext', 'foo'], '--ext'),
    (['--ext', 'img-reset-x'], '--ext'),
    (['--template', 'NoSuchTemplate'], '--template'),
    (['--n_colors', '2'], '--n_colors'),
    (['--batch_size', '0'], '--batch_size'),
    (['--dist_timeout', '0'], '--dist_timeout'),
    (['--amp', 'fp8'], '--amp'),
    (['--sample_by', 'pixels'], '--sample_by'),
    (['--ema', '1.5'], '--ema'),
])
def test_invalid_value_one_line(argv, flag, capsys):
    with pytest.raises(SystemExit) as e:
        option.parse_args(argv)
    assert e.value.code not in (0, None)
    out, err = capsys.readouterr()
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert flag in lines[0]
    assert 'Traceback' not in err and 'usage' not in err.lower()


def test_cli_error_is_one_line():
    r = run_cli(['--scale', '2+x'], timeout=60)
    assert r.returncode != 0
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and '--scale' in lines[0], r.stderr


def test_dir_cache_never_inside_data(tmp_path, capsys):
    data = tmp_path / 'data'
    (data / 'benchmark' / 'Mine' / 'HR').mkdir(parents=True)
    base = ['--test_only', '--pre_train', 'none', '--data_test', 'Mine', '--dir_data', str(data)]
    for cache in (data, data / 'benchmark' / 'cache', data / 'benchmark' / 'Mine' / 'cache'):
        with pytest.raises(SystemExit) as e:
            option.parse_args(base + ['--dir_cache', str(cache)])
        assert e.value.code != 0
        lines = error_lines(capsys.readouterr().err)
        assert len(lines) == 1 and '--dir_cache' in lines[0]
    a = option.parse_args(base + ['--dir_cache', str(tmp_path / 'cache')])
    assert a.dir_cache == str(tmp_path / 'cache')
    assert a.data_test == ['Mine']  # any benchmark folder name is a dataset


def test_template_sets_defaults_only():
    a = option.parse_args(['--template', 'EDSR_paper'])
    assert (a.model.lower(), a.n_resblocks, a.n_feats, a.res_scale) == ('edsr', 32, 256, 0.1)
    # explicit flags win, even when they repeat the plain default
    a = option.parse_args(['--template', 'EDSR_paper', '--n_feats', '64', '--res_scale', '1'])
    assert (a.n_resblocks, a.n_feats, a.res_scale) == (32, 64, 1)
    a = option.parse_args(['--n_resblocks', '8', '--template', 'edsr_paper'])  # order and case do not matter
    assert (a.n_resblocks, a.n_feats) == (8, 256)
    a = option.parse_args(['--template', 'MDSR'])
    assert a.model.lower() == 'mdsr' and a.scale == [2, 3, 4]
    a = option.parse_args(['--template', 'MDSR', '--scale', '3'])
    assert a.model.lower() == 'mdsr' and a.scale == [3]
    a = option.parse_args(['--template', 'EDSR_baseline'])
    assert (a.n_resblocks, a.n_feats, a.res_scale) == (16, 64, 1)


def test_network_flags_take_the_networks_defaults_and_unused_ones_are_ignored_with_a_warning(capsys):
    """A network flag not given takes --model's own default (RCAN: 20 blocks per group, the
    paper's; EDSR: 16); one that --model does not declare is ignored with one warning line."""
    base = ['--test_only', '--pre_train', 'none', '--data_test', 'Demo', '--cpu']
    assert option.parse_args(['--model', 'RCAN'] + base).n_resblocks == 20
    assert option.parse_args(['--model', 'EDSR'] + base).n_resblocks == 16
    capsys.readouterr()
    args = option.parse_args(['--model', 'RDN', '--n_feats', '32', '--G0', '16'] + base)
    assert args.G0 == 16 and args.n_feats is None and args.act is None
    err = capsys.readouterr().err
    assert err.splitlines() == ['main.py: warning: --n_feats not used by --model RDN (ignored)']
