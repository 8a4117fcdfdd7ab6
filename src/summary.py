"""`python main.py --model ... --summary`: the cost of a network with its flags.

One row per scale of --scale: trainable parameters, Multi-Adds and the
measured inference time of one image on the current device (--cpu respected).

Multi-Adds follow the lightweight-SR papers (CARN, IMDN, ...): the cost of
making a 1280x720 output, i.e. of an LR input of ceil(720/s) x ceil(1280/s)
(rounded up so the output covers the whole frame). They are counted with
torch.utils.flop_counter.FlopCounterMode, which counts a multiply-add as 2
FLOPs (convolutions, linear layers, matmuls, attention), so Multi-Adds =
FLOPs / 2; biases, activations, additions and PixelShuffle are not counted.
The count runs on the 'meta' device (shapes only: no memory, no compute);
a network that cannot run there is counted on the CPU.

`--summary_size WxH` sets the output size of the timing (and adds a
Multi-Adds column for that size): CPU forwards at 1280x720 take seconds.
"""
import copy
import math
import platform
import re
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from distributed import World
from model import DTYPES, build_network
from model.common import count_parameters
from model.flags import flag_text

PAPER_SIZE = (1280, 720)  # output W, H of the Multi-Adds convention


def parse_size(text):
    """'1280x720' -> (1280, 720); ValueError with the reason otherwise."""
    m = re.fullmatch(r'\s*(\d+)\s*[xX]\s*(\d+)\s*', str(text))
    if not m:
        raise ValueError(f"expected WxH, e.g. 1280x720, got '{text}'")
    w, h = int(m.group(1)), int(m.group(2))
    if w < 1 or h < 1:
        raise ValueError(f"width and height must be positive, got '{text}'")
    return w, h


def lr_size(size, scale):
    """The LR input (h, w) for an output of size (w, h): rounded up."""
    w, h = size
    return math.ceil(h / scale), math.ceil(w / scale)


def select(net, idx):
    """Scale number `idx` of a multi-scale network (VDSR, Bicubic: any scale)."""
    if hasattr(net, 'set_scale'):
        net.set_scale(idx)


def on_meta(net):
    """A shape-only copy of `net` (its constructor makes CPU tensors, so it is built there)."""
    return copy.deepcopy(net).to('meta')


def multi_adds(net, hw, n_colors, device='meta'):
    """Multi-Adds of one forward of a (1, n_colors, h, w) input: FLOPs / 2."""
    x = torch.zeros(1, n_colors, *hw, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(x)
    return counter.get_total_flops() // 2


def count(net, scale, sizes, n_colors):
    """([Multi-Adds per output size], where counted): on meta, else on the CPU."""
    hws = [lr_size(s, scale) for s in sizes]
    try:
        return [multi_adds(on_meta(net), hw, n_colors) for hw in hws], 'meta'
    except Exception:  # an op without a meta kernel, a CPU tensor made in forward
        return [multi_adds(net, hw, n_colors, 'cpu') for hw in hws], 'cpu'


def time_forward(net, x, device, warmup, runs):
    """Seconds of each of `runs` timed forwards, after `warmup` untimed ones."""
    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
    times = []
    with torch.no_grad():
        for i in range(warmup + runs):
            sync()
            t0 = time.perf_counter()
            net(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return times


def timing(net, args, hw, device):
    """(mean ms, spread ms (sample std), images/s) of one image of LR size `hw`."""
    x = torch.rand(1, args.n_colors, *hw, device=device, dtype=DTYPES[args.precision]) * args.rgb_range
    warmup, runs = (1, 3) if device.type == 'cpu' else (3, 10)
    times = time_forward(net, x, device, warmup, runs)
    mean = statistics.mean(times)
    spread = statistics.stdev(times) if len(times) > 1 else 0.0
    return mean * 1e3, spread * 1e3, 1 / mean


def device_name(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    name = platform.processor() or 'CPU'
    try:
        with open('/proc/cpuinfo') as f:
            name = next(ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return f'cpu: {name}, {torch.get_num_threads()} threads'


def giga(n):
    return f'{n / 1e9:,.1f}G ({n})'


def table(rows):
    """Rows of strings, left-aligned columns, the first row a header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def run(args):
    """Print the summary table; the exit code (2 for a bad --summary_size)."""
    try:
        size = parse_size(args.summary_size)
    except ValueError as e:
        print(f'main.py: error: --summary_size: {e}', file=sys.stderr)
        return 2
    sizes = [PAPER_SIZE] + ([size] if size != PAPER_SIZE else [])
    device = World().device(args)
    net, meta = build_network(args)  # on the CPU: the constructors make CPU tensors
    net.eval()
    params = count_parameters(net)
    head = ['model', 'scale', 'parameters', *('Multi-Adds ({}x{})'.format(*s) for s in sizes),
            'timed input', 'time/image', 'images/s']
    counts = []
    for idx, scale in enumerate(args.scale):  # all scales first: counting needs the CPU network
        select(net, idx)
        counts.append(count(net, scale, sizes, args.n_colors))
    net.to(device, DTYPES[args.precision])
    rows, notes = [head], []
    for idx, (scale, (adds, where)) in enumerate(zip(args.scale, counts)):
        select(net, idx)
        if where != 'meta':
            notes.append(f'x{scale}: Multi-Adds counted on the CPU (the network does not run on meta)')
        hw = lr_size(size, scale)
        mean, spread, fps = timing(net, args, hw, device)
        rows.append([args.model, f'x{scale}', f'{params:,}', *map(giga, adds), f'{hw[1]}x{hw[0]}',
                     f'{mean:.1f} ± {spread:.1f} ms', f'{fps:.2f}'])
    print('counted: ' + ' '.join(f'--{k} {flag_text(v)}' for k, v in meta.items()))
    print(table(rows))
    print('Multi-Adds: multiply-adds of one forward for that output size (LR input rounded up), '
          'FlopCounterMode FLOPs / 2.')
    print(f'Time: {args.precision} precision, output {size[0]}x{size[1]}, on {device_name(device)}.')
    if len(args.scale) > 1:
        notes.append('parameters: all trainable ones of the network (every scale\'s modules)')
    for n in notes:
        print(n)
    sys.stdout.flush()
    return 0
