"""--summary: parameters, Multi-Adds (1280x720 output) and inference time of a network."""
import re

import torch
import torch.nn as nn

import summary
from conftest import error_lines, run_main

# EDSR-baseline x2, LR 640x360 (230,400 px) -> HR 1280x720 (921,600 px), conv multiply-adds:
# sub_mean 1x1 3->3, head 3x3 3->64, 33 body 3x3 64->64, upsampler 3x3 64->256 at LR;
# tail 3x3 64->3 and add_mean 1x1 3->3 at HR
EDSR_X2_ADDS = 230_400 * (9 + 1_728 + 33 * 36_864 + 147_456) + 921_600 * (1_728 + 9)


def rows(out, model):
    return [ln.split() for ln in out.splitlines() if ln.startswith(model + ' ')]


def test_hand_count():
    assert EDSR_X2_ADDS == 316_259_251_200


def test_edsr_baseline_x2(capsys):
    # Multi-Adds always for 1280x720 (counted on meta); timed at a small size
    code, out, err = run_main(['--model', 'EDSR', '--scale', '2', '--summary', '--cpu',
                               '--summary_size', '32x24'], capsys)
    assert code == 0, err
    (row,) = rows(out, 'EDSR')
    assert row[:3] == ['EDSR', 'x2', '1,369,859']
    assert '316.3G' in row and f'({EDSR_X2_ADDS})' in row
    assert 'Multi-Adds (1280x720)' in out and 'Multi-Adds (32x24)' in out
    assert '16x12' in row  # the LR input of the timing
    assert re.search(r'[\d.]+ ± [\d.]+ ms', out) and 'cpu' in out
    assert 'counted on the CPU' not in out  # the count ran on meta


def test_single_conv_multi_adds():
    h, w, cin, cout, k = 12, 20, 3, 8, 3
    conv = nn.Conv2d(cin, cout, k, padding=1)
    expected = h * w * cin * cout * k * k  # FlopCounterMode: 2 FLOPs per multiply-add
    assert summary.multi_adds(summary.on_meta(conv), (h, w), cin) == expected
    assert summary.multi_adds(conv, (h, w), cin, 'cpu') == expected


def test_lr_size_rounds_up():
    assert summary.lr_size((1280, 720), 2) == (360, 640)
    assert summary.lr_size((1280, 720), 3) == (240, 427)


def test_multi_scale_one_row_per_scale(capsys):
    code, out, err = run_main(['--model', 'MDSR', '--scale', '2+3+4', '--n_resblocks', '1', '--n_feats', '8',
                               '--summary', '--cpu', '--summary_size', '24x24'], capsys)
    assert code == 0, err
    got = rows(out, 'MDSR')
    assert [r[1] for r in got] == ['x2', 'x3', 'x4']
    adds = [int(re.search(r'\((\d+)\)', ' '.join(r)).group(1)) for r in got]
    assert adds[0] > adds[1] > adds[2] > 0  # the scale's own tail and input size are counted


def test_bad_summary_size(capsys):
    for bad in ('big', '1280x', '0x720'):
        code, out, err = run_main(['--model', 'EDSR', '--scale', '2', '--summary', '--cpu',
                                   '--summary_size', bad], capsys)
        assert code == 2
        (line,) = error_lines(err)
        assert line.startswith('main.py: error: --summary_size: ')
        assert out == ''


def test_meta_copy_leaves_network():
    net = nn.Conv2d(3, 3, 1)
    summary.on_meta(net)
    assert net.weight.device == torch.device('cpu')
