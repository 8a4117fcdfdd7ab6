"""--chop against the untiled forward on one large image (the GPU proof, issue 22).

    python scripts/chop_check.py --size 960x540 --scale 4 [--cpu] [--json FILE]

Builds EDSR-baseline through main.py's own flags and wrapper (random weights: the
comparison needs none), runs the whole image untiled (skipped with a note when it
does not fit) and with --chop, and prints the largest difference in levels of 255
and the peak memory of each (CUDA: max_memory_allocated; CPU: not measured)."""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))
import model  # noqa: E402
import option  # noqa: E402


class Ckp:
    def write_log(self, *a, **k):
        pass

    def get_path(self, *a):
        return '/nonexistent'


def forward(m, x, device):
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        y = m(x).float().cpu()
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == 'cuda' else None
    return y, peak


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--size', default='960x540', help='LR input WxH (x4 of 960x540 is 3840x2160)')
    p.add_argument('--scale', type=int, default=4)
    p.add_argument('--cpu', action='store_true')
    p.add_argument('--json', default='')
    a = p.parse_args()
    w, h = map(int, a.size.split('x'))
    flags = ['--test_only', '--pre_train', 'none', '--data_test', 'Demo', '--model', 'EDSR', '--scale', str(a.scale)]
    flags += ['--cpu'] if a.cpu else []
    torch.manual_seed(0)
    untiled = model.Model(option.parse_args(flags), Ckp()).eval()
    chopped = model.Model(option.parse_args(flags + ['--chop']), Ckp()).eval()
    chopped.load_state_dict(untiled.state_dict())
    device = next(untiled.parameters()).device
    x = (torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)) * 255).round().to(device)
    out = {'lr': [w, h], 'sr': [w * a.scale, h * a.scale], 'device': str(device)}
    y_chop, out['chop_peak_mib'] = forward(chopped, x, device)
    try:
        y_full, out['untiled_peak_mib'] = forward(untiled, x, device)
        out['max_diff_levels'] = (y_full - y_chop).abs().max().item()
    except torch.OutOfMemoryError:
        out['untiled'] = 'out of memory'
    print(json.dumps(out))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + '\n')


if __name__ == '__main__':
    main()
