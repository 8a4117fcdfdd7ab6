"""--amp auto: the run's precision chosen by measurement on this machine.

At start, before the network is built, choose() times a few steps of the
run's own network at its batch and patch (forward, loss and backward; a
forward alone for a --test_only run) in each candidate:
  CPU:  fp32, bf16 autocast, bf16 autocast + channels_last
  CUDA: fp32, and bf16 autocast where the GPU supports it (else fp16)
and keeps the fastest; a candidate must be more than MARGIN faster than fp32
to win. One log line gives the rates and the choice. The choice replaces
--amp (and --channels_last) in the run's flags, so it is saved with the run's state:
`--load <run> --resume -1` keeps it, even with --amp auto given again. The
timing runs on a throwaway copy of the network under torch.random.fork_rng:
the run's random numbers (its initial weights) are those of a run that was
told the chosen precision.
"""
import time

import torch
import torch.nn.functional as F

MARGIN = 1.10   # a candidate must be this much faster than fp32 to win
STEPS = 3       # timed steps per candidate (after one warm-up step)
TOO_SLOW = 3.0  # a candidate whose warm-up step is this much slower than fp32's is not timed further


def describe(amp, channels_last):
    """'fp32', 'bf16', 'bf16 + channels_last', ...: a precision as the logs and results.json name it."""
    name = {'off': 'fp32'}.get(amp, amp)
    return name + (' + channels_last' if channels_last else '')


def test_amp(args):
    """The --amp a run's tests run under: fp32 ('off') with --test_fp32, else the run's own."""
    return 'off' if args.test_fp32 else args.amp


def candidates(device):
    """(amp, channels_last) pairs to time on `device`, fp32 first."""
    if device.type == 'cuda':
        return [('off', False), ('bf16' if torch.cuda.is_bf16_supported() else 'fp16', False)]
    return [('off', False), ('bf16', False), ('bf16', True)]


def resolve(args, world, log, saved=None):
    """`args` with --amp auto replaced by the choice (args unchanged otherwise).
    `saved`: the flags of the run being resumed, whose precision is kept."""
    if args.amp != 'auto':
        return args
    if saved and saved.get('amp') not in (None, 'auto'):
        log(f"--amp auto: keeping this run's {describe(saved['amp'], saved.get('channels_last', False))} "
            '(chosen when it started)')
        return args.replace(amp=saved['amp'], channels_last=bool(saved.get('channels_last', False)))
    amp, channels_last, line = choose(args, world)
    log(line)
    return args.replace(amp=amp, channels_last=channels_last)


def choose(args, world):
    """(amp, channels_last, log line): the fastest candidate, measured on a
    throwaway network (the same rates on every torchrun rank: their mean)."""
    from model import build_network
    device = world.device(args)
    with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        net = build_network(args)[0].to(device)
        shape = input_shape(args, world)
        rates = {}
        for c in candidates(device):  # fp32 first: the others' warm-up is judged against its step
            limit = TOO_SLOW / rates[('off', False)] if rates else None
            rates[c] = world.all_mean(rate(net, c, shape, device, args, limit), device)
    base = rates[('off', False)]
    best = max(rates, key=rates.get)
    if rates[best] <= MARGIN * base:
        best = ('off', False)
    what = 'inference' if args.test_only else 'training'
    measured = ', '.join(f'{describe(*c)} {r:.2f} it/s' for c, r in rates.items())
    line = (f'--amp auto ({what}, batch {shape[0]}, LR {shape[2]}x{shape[3]}): {measured} -> {describe(*best)}'
            + (f' ({rates[best] / base:.2f}x fp32)' if best != ('off', False) else
               f' (no candidate more than {MARGIN - 1:.0%} faster)'))
    return best[0], best[1], line


def input_shape(args, world):
    """(batch, colours, h, w) of one LR training batch of this process at the first --scale; a single
    --patch_size-sized LR image for --test_only."""
    if args.test_only:
        return (1, args.n_colors, args.patch_size, args.patch_size)
    side = args.lr_patch or args.patch_size // args.scale[0]
    return (max(args.batch_size // world.world_size, 1), args.n_colors, side, side)


def rate(net, candidate, shape, device, args, limit=None):
    """Steps per second of `net` in `candidate` (amp, channels_last) on random inputs of `shape`; measured
    on the warm-up step alone when that takes more than `limit` seconds (a kind of CPU without its kernels)."""
    amp, channels_last = candidate
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    x = torch.rand(shape, device=device).mul_(args.rgb_range).contiguous(memory_format=fmt)
    if hasattr(net, 'set_scale'):
        net.set_scale(0)
    first = timed(net, x, amp, device, args.test_only)
    if limit is not None and first > limit:
        return 1 / first
    return 1 / min(timed(net, x, amp, device, args.test_only) for _ in range(STEPS))


def timed(net, x, amp, device, test_only):
    """Seconds of one step: forward (autocast to `amp`), L1 against a target and backward; forward alone
    when `test_only`."""
    from stepper import autocast
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    with autocast(amp, device), torch.set_grad_enabled(not test_only):
        y = net(x).float()
    if not test_only:
        F.l1_loss(y, torch.zeros_like(y)).backward()
        net.zero_grad(set_to_none=True)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter() - t
