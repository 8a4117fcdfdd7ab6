"""Results that say where they came from, on any machine: --amp auto (the
precision chosen by measurement and kept on resume), the provenance block of
results.json and log.txt, and the two conventions for grayscale test images."""
import json

import pytest
import torch

from conftest import REPO, SHARED, run_main
import precision

TINY = ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--scale', '2', '--data_train', 'Sample',
        '--data_test', 'Sample', '--patch_size', '48', '--batch_size', '4', '--test_every', '3', '--lr', '1e-3',
        '--n_threads', '0', '--cpu', '--print_every', '1']


def fixed_rates(monkeypatch, rates):
    """precision.rate gives these steps/s per (amp, channels_last) instead of timing."""
    monkeypatch.setattr(precision, 'rate', lambda net, c, *a, **k: rates[c])


@pytest.mark.parametrize('rates, choice', [
    ({('off', False): 10, ('bf16', False): 10.9, ('bf16', True): 10.5}, ('off', False)),  # under 10 %: fp32
    ({('off', False): 10, ('bf16', False): 12.0, ('bf16', True): 18.7}, ('bf16', True)),
    ({('off', False): 10, ('bf16', False): 13.0, ('bf16', True): 0.8}, ('bf16', False)),  # an AVX2 kind's cl
    ({('off', False): 10, ('bf16', False): 0.8, ('bf16', True): 0.9}, ('off', False)),    # an AVX2 kind
])
def test_auto_keeps_the_fastest_only_when_more_than_10_percent_faster(monkeypatch, rates, choice):
    import option
    from distributed import World
    fixed_rates(monkeypatch, rates)
    args = option.parse_args(TINY + ['--amp', 'auto'])
    before = torch.get_rng_state()
    amp, channels_last, line = precision.choose(args, World())
    assert (amp, channels_last) == choice
    assert torch.equal(torch.get_rng_state(), before)  # the run's random numbers are untouched
    for (a, cl), r in rates.items():
        assert f'{precision.describe(a, cl)} {r:.2f} it/s' in line
    assert line.endswith(f'-> {precision.describe(*choice)}' + (
        f' ({rates[choice] / 10:.2f}x fp32)' if choice != ('off', False) else ' (no candidate more than 10% faster)'))


def test_auto_times_the_real_candidates():
    """Without injected rates: every candidate is timed on this machine and the choice is one of them."""
    import option
    from distributed import World
    args = option.parse_args(TINY + ['--amp', 'auto'])
    amp, channels_last, line = precision.choose(args, World())
    assert (amp, channels_last) in precision.candidates(torch.device('cpu'))
    assert line.count(' it/s') == 3 and 'training, batch 4, LR 24x24' in line


def test_auto_choice_is_saved_kept_on_resume_and_in_results(monkeypatch, capsys, exp_name):
    save = exp_name()
    fixed_rates(monkeypatch, {('off', False): 10, ('bf16', False): 12.0, ('bf16', True): 18.7})
    code, out, err = run_main(TINY + ['--amp', 'auto', '--epochs', '1', '--save', save], capsys)
    assert code == 0, err
    assert '-> bf16 + channels_last (1.87x fp32)' in out
    d = REPO / 'experiment' / save
    st = torch.load(d / 'state.pt', weights_only=True)
    assert st['flags']['amp'] == 'bf16' and st['flags']['channels_last'] is True
    res = json.loads((d / 'results.json').read_text())
    assert res['provenance']['precision'] == 'bf16 + channels_last'
    # resumed with --amp auto again, on a machine where fp32 would now win: the run keeps its precision
    fixed_rates(monkeypatch, {('off', False): 10, ('bf16', False): 1.0, ('bf16', True): 1.0})
    code, out, err = run_main(['--load', save, '--resume', '-1', '--epochs', '2', '--amp', 'auto'], capsys)
    assert code == 0, err
    assert "--amp auto: keeping this run's bf16 + channels_last (chosen when it started)" in out
    st = torch.load(d / 'state.pt', weights_only=True)
    assert st['epoch'] == 2 and st['flags']['amp'] == 'bf16' and st['flags']['channels_last'] is True


def test_results_and_log_say_where_they_came_from(capsys, exp_name):
    import provenance
    save = exp_name()
    code, out, err = run_main(TINY + ['--epochs', '1', '--save', save, '--seed', '5'], capsys)
    assert code == 0, err
    d = REPO / 'experiment' / save
    p = json.loads((d / 'results.json').read_text())['provenance']
    assert p['precision'] == 'fp32' and p['seed'] == 5 and p['gray_hr'] == 'stacked'
    assert p['command'].startswith('main.py --model EDSR') and f'--save {save}' in p['command']
    assert p['torch'] == torch.__version__ and p['python'] and 'cuda' in p and 'cudnn' in p
    dev = p['device']
    assert dev['cpu'] and dev['isa'] == torch.backends.cpu.get_cpu_capability() and dev['threads'] >= 1
    assert dev['kind'] in ('AMX', 'AVX-512-BF16', 'AVX-512', 'AVX2') or dev['kind']
    src = p['srlab']
    assert src == provenance.commit() and (src['commit'] is None or len(src['commit']) == 40)
    head = (d / 'log.txt').read_text().splitlines()[:3]
    assert head[0].startswith('srlab ') and f'torch {torch.__version__}' in head[0]
    assert head[1].startswith('device: ') and 'precision: fp32; seed: 5' in head[1]
    assert head[2] == f"command: {p['command']}"


@pytest.mark.skipif(not (SHARED / 'benchmark' / 'Set14').is_dir(), reason=f'needs {SHARED}/benchmark/Set14')
def test_bicubic_set14_x2_with_each_grayscale_convention(capsys, exp_name):
    """Set14's bridge is a grayscale file: stacked and Y-converted (EDSR-PyTorch's convention) it scores
    1.32 dB above its own values (the SRCNN/VDSR-era MATLAB scripts, whose Bicubic row is the published
    30.24); man.png, an RGB file of equal channels, is Y-converted in both."""
    import evaluate
    got, saved = {}, None
    for gray in ('stacked', 'own'):
        save = exp_name()
        code, out, err = run_main(['--model', 'Bicubic', '--scale', '2', '--data_test', 'Set14', '--dir_data', SHARED,
                                   '--test_only', '--gray_hr', gray, '--save', save, '--n_threads', '0']
                                  + (['--save_results'] if saved is None else []), capsys)
        assert code == 0, err
        saved = saved or REPO / 'experiment' / save
        res = json.loads((REPO / 'experiment' / save / 'results.json').read_text())
        assert res['provenance']['gray_hr'] == gray
        got[gray] = res['Set14']['2']['psnr']
    assert round(got['stacked'], 2) == 30.32 and round(got['own'], 2) == 30.23  # published (own values): 30.24
    assert abs((got['stacked'] - got['own']) * 14 - 1.32) < 0.02  # one image of 14 moves by 1.32 dB
    # evaluate.py scores the saved images the same way under each flag, and its JSON says which
    for gray in ('stacked', 'own'):
        out = saved / f'eval_{gray}.json'
        assert evaluate.main(['--hr', str(SHARED / 'benchmark'), '--sets', 'Set14', '--scale', '2', '--sr',
                              f'Bicubic={saved}', '--gray_hr', gray, '--json', str(out)]) == 0
        res = json.loads(out.read_text())
        assert abs(res['sets']['Set14']['2']['Bicubic']['mean']['psnr'] - got[gray]) < 1e-9
        assert res['provenance']['gray_hr'] == gray and res['provenance']['command'].startswith('evaluate.py --hr')
    capsys.readouterr()


def test_test_fp32_scores_the_weights_themselves_whatever_amp(capsys, exp_name):
    """--amp bf16 trains and tests in bf16; with --test_fp32 its table is the fp32 table of the same weights,
    which a --test_only run of the saved file reproduces exactly, and results.json says so."""
    tables = {}
    for flags in ([], ['--test_fp32']):
        save = exp_name()
        code, out, err = run_main(TINY + ['--amp', 'bf16', '--epochs', '1', '--save', save] + flags, capsys)
        assert code == 0, err
        d = REPO / 'experiment' / save
        res = json.loads((d / 'results.json').read_text())
        tables[bool(flags)] = res['Sample']['2']['psnr']
        assert res['provenance']['precision'] == 'bf16' + (' (tested in fp32)' if flags else '')
    # the same seed trains the same weights either way: only the test's precision differs
    assert tables[True] != tables[False]
    check = exp_name()
    code, out, err = run_main(TINY + ['--test_only', '--pre_train', str(d / 'model' / 'model_latest.pt'),
                                      '--save', check], capsys)
    assert code == 0, err
    res = json.loads((REPO / 'experiment' / check / 'results.json').read_text())
    assert res['provenance']['precision'] == 'fp32' and res['Sample']['2']['psnr'] == tables[True]
