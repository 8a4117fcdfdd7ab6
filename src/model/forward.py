"""The test-time forward: tiled (`--chop`), geometric self-ensemble
(`--self_ensemble`), reduced precision (`--precision`), and a retry in
smaller tiles when the device runs out of memory; and what running the
network needs of its surroundings (out of memory, torch.compile's cache)."""
import contextlib
import functools
import os

import torch

from errors import SRLabError

DTYPES = {'single': torch.float32, 'half': torch.float16, 'bf16': torch.bfloat16}
OOM_TEXTS = ("can't allocate memory", 'MPS backend out of memory')  # CPU and MPS raise RuntimeError


def is_oom(e):
    """Out of memory: CUDA's torch.OutOfMemoryError, or the CPU/MPS allocators' RuntimeError."""
    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and any(t in str(e) for t in OOM_TEXTS))


def transform(x, t):
    """t in 0..7: bit 0 flips W, bit 1 flips H, bit 2 transposes H and W."""
    if t & 1:
        x = x.flip(-1)
    if t & 2:
        x = x.flip(-2)
    if t & 4:
        x = x.transpose(-1, -2)
    return x


def inverse_transform(x, t):
    if t & 4:
        x = x.transpose(-1, -2)
    if t & 2:
        x = x.flip(-2)
    if t & 1:
        x = x.flip(-1)
    return x


def forward_x8(x, fn):
    """The mean of fn over the 8 flips/transposes of x, each transformed back."""
    acc = None
    for t in range(8):
        y = inverse_transform(fn(transform(x, t)), t).float()
        acc = y if acc is None else acc + y
    return acc / 8


def forward_chop(x, fn, scale, size, overlap, batch):
    """Tiled forward: LR tiles of `size` with `overlap` pixels of context on
    each inner side, `batch` tiles per call of fn. Each tile only writes the
    centre part it owns, so with an overlap as large as the receptive field
    the result equals the untiled forward."""
    b, _, h, w = x.shape
    if h <= size and w <= size:
        return fn(x)

    def starts(n):
        if n <= size:
            return [0]
        step = max(size - 2 * overlap, 1)
        return list(range(0, n - size, step)) + [n - size]

    def owned(st, n, length):
        lo = st + (overlap if st > 0 else 0)
        hi = st + length - (overlap if st + length < n else 0)
        return lo, hi

    th, tw = min(size, h), min(size, w)
    coords = [(y, z) for y in starts(h) for z in starts(w)]
    out = None
    s = scale
    for i in range(0, len(coords), batch):
        group = coords[i:i + batch]
        res = fn(torch.cat([x[..., y:y + th, z:z + tw] for y, z in group]))
        if out is None:
            out = res.new_empty(b, res.shape[1], h * s, w * s)
        for j, (y, z) in enumerate(group):
            y0, y1 = owned(y, h, th)
            z0, z1 = owned(z, w, tw)
            out[..., y0 * s:y1 * s, z0 * s:z1 * s] = \
                res[j * b:(j + 1) * b, :, (y0 - y) * s:(y1 - y) * s, (z0 - z) * s:(z1 - z) * s]
    return out


class TestForward:
    """`net(x)` at test time as the flags ask: `run` is the plain (or
    compiled) forward of the network; `log` receives the out-of-memory note."""

    def __init__(self, run, device, log, chop=False, chop_size=96, chop_overlap=24, chop_batch=4,
                 self_ensemble=False, precision='single'):
        self.run, self.device, self.log = run, device, log
        self.chop, self.size, self.overlap, self.batch = chop, chop_size, chop_overlap, chop_batch
        self.self_ensemble, self.dtype = self_ensemble, DTYPES[precision]

    @classmethod
    def from_args(cls, args, run, device, log):
        return cls(run, device, log, args.chop, args.chop_size, args.chop_overlap, args.chop_batch,
                   args.self_ensemble, args.precision)

    def __call__(self, x, scale, params_dtype):
        fn = functools.partial(self.tiled, scale=scale, size=self.size) if self.chop else self.run
        with self.precision(params_dtype):
            try:
                return self.ensemble(x, fn)
            except Exception as e:
                if not is_oom(e):
                    raise
            # outside the except block, whose traceback holds the failed forward's memory
            return self.retry_tiled(x, scale)

    def tiled(self, x, scale, size):
        return forward_chop(x, self.run, scale, size, self.overlap, self.batch)

    def ensemble(self, x, fn):
        return forward_x8(x, fn) if self.self_ensemble else fn(x)

    def precision(self, params_dtype):
        """Autocast to --precision unless the weights already are in it."""
        if self.dtype == torch.float32 or params_dtype == self.dtype:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def free(self):
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()

    def retry_tiled(self, x, scale):
        """After running out of memory on x: the same forward in --chop tiles,
        halving the tile on each further out-of-memory error. As with --chop,
        the result equals the untiled one when --chop_overlap covers the
        receptive field."""
        side = max(x.shape[-2:])
        size = min(self.size, side) // 2 if self.chop else min(self.size, side // 2)
        smallest = max(2 * self.overlap + 1, 8)
        dims = 'x'.join(map(str, x.shape))
        if size >= smallest:
            self.log(f'out of memory on a {dims} input; retrying it in --chop tiles of {size}, '
                     'halved on each further out-of-memory error')
        last = None
        while size >= smallest:
            self.free()
            try:
                return self.ensemble(x, functools.partial(self.tiled, scale=scale, size=size))
            except Exception as e:
                if not is_oom(e):
                    raise
            last, size = size, size // 2
        self.free()
        if last is None:
            raise SRLabError(f'out of memory on a {dims} input on {self.device}, which is too small '
                             f'to tile with --chop_overlap {self.overlap}')
        raise SRLabError(f'out of memory on a {dims} input on {self.device}, even in --chop tiles of '
                         f'{last} (the smallest tile with --chop_overlap {self.overlap} is {smallest})')


def cache_per_capability():
    """Gives torch.compile a cache of its own under ATEN_CPU_CAPABILITY (as the
    AVX2 emulation sets it), unless TORCHINDUCTOR_CACHE_DIR names one. Inductor
    writes kernels for the vector width it finds and its cache is not keyed by
    that variable: a kernel cached with AVX-512 (16 floats) and run under
    ATEN_CPU_CAPABILITY=avx2 (8) computes NaN (measured, torch 2.13)."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    capability = os.environ.get('ATEN_CPU_CAPABILITY')
    if capability and os.environ.get('TORCHINDUCTOR_CACHE_DIR') in (None, os.path.abspath(default_cache_dir())):
        os.environ['TORCHINDUCTOR_CACHE_DIR'] = f'{default_cache_dir()}_{capability}'
