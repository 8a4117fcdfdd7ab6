"""Speed benchmark: loader throughput, training and inference per speed option.

    python speed.py                 # EDSR-baseline x2, batch 16, HR patch 96, 1280x720 inference
    python speed.py --quick         # < 3 minutes on 2 CPU cores (smaller everything, stated in the header)
    python speed.py --smoke         # every measurement once (a test of this script)
    python speed.py --json out.json --n_threads 8 --options eager,bf16,bf16+cl+compile

It writes synthetic "2K" training images (structured random content, PNG,
2040x1356 like DIV2K) to a temporary folder and measures, in one run, through
the real code paths: per option an experiment folder (utility.checkpoint),
data.Data (`--data_train Folder`, SRData, MSDataLoader), Model, Loss and
Trainer, timing Trainer.step and the evaluation path's Evaluator.forward:

1. loader patches/s for --ext img (decode every access), --ext sep (decoded
   arrays in RAM) and --ext sep with --cache_mem 0 (memory-mapped), after a
   warm-up, with the configured --n_threads workers;
2. training iterations/s split into data wait and compute, for eager fp32 and
   each speed option (--amp bf16/fp16, --channels_last, --compile and
   combinations), with the ratio to eager fp32;
3. inference output megapixels/s and frames/s per option;
4. peak memory: RSS (VmHWM, reset per option where Linux allows it, else the
   process-wide ru_maxrss) and torch.cuda.max_memory_allocated on CUDA;
5. the distance to the hardware: this machine's peak GFLOP/s, measured before
   and again after the options (Peak: a large matmul and a 3x3 64->64
   channels_last convolution, fp32 and bf16, and fp16 on CUDA, on all torch
   threads or the GPU), and per option the FLOPs of a training step (3 x the
   forward FLOPs of the batch) and of an inference frame from summary.count's
   Multi-Adds, the achieved TFLOP/s and their fractions of the peak of the
   row's precision and of the conv reference;
and the ratio of loader patches/s to the patches/s training consumes.
An option that fails prints 'unsupported: <reason>' in its row.
"""
import argparse
import contextlib
import gc
import io
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import provenance  # noqa: E402

OPTIONS = {  # name -> main.py flags
    'eager fp32': [],
    '--amp bf16': ['--amp', 'bf16'],
    '--amp fp16': ['--amp', 'fp16'],
    '--channels_last': ['--channels_last'],
    '--compile': ['--compile'],
    'bf16+channels_last': ['--amp', 'bf16', '--channels_last'],
    'bf16+channels_last+compile': ['--amp', 'bf16', '--channels_last', '--compile'],
}
ALIASES = {'eager': 'eager fp32', 'fp32': 'eager fp32', 'bf16': '--amp bf16', 'fp16': '--amp fp16',
           'cl': '--channels_last', 'channels_last': '--channels_last', 'compile': '--compile',
           'bf16+cl': 'bf16+channels_last', 'bf16+cl+compile': 'bf16+channels_last+compile'}

PRESETS = {
    # images: synthetic training PNGs; loader/train/infer: (warm-up, timed) counts
    'default': dict(n_resblocks=16, n_feats=64, scale=2, batch=16, patch=96, images=8, size=(2040, 1356),
                    loader=(4, 40), train=(3, 10), infer=(1, 3), infer_size=(1280, 720), compile='full'),
    'quick': dict(n_resblocks=16, n_feats=64, scale=2, batch=4, patch=48, images=6, size=(2040, 1356),
                  loader=(2, 24), train=(2, 4), infer=(1, 2), infer_size=(320, 180), compile='tiny', fp16_cpu='tiny'),
    'smoke': dict(n_resblocks=2, n_feats=16, scale=2, batch=2, patch=48, images=2, size=(320, 240),
                  loader=(1, 1), train=(1, 1), infer=(1, 1), infer_size=(64, 48), compile='skip'),
}
TINY = dict(n_resblocks=1, n_feats=8)
# the peak reference: an n x n @ n x n matmul and a 3x3 64->64 convolution of (batch, 64, size, size),
# smaller where one call would take over rep_s seconds (bf16 on a CPU without native bf16 kernels runs
# an order of magnitude slower than fp32); timed calls repeated until min_s seconds are spent (the fastest
# counts: on a shared machine a short measurement can fall into a moment another process holds the cores)
PEAK = {'default': dict(n=4096, conv=(16, 96), rep_s=2.0, min_s=1.0),
        'quick': dict(n=4096, conv=(16, 96), rep_s=1.0, min_s=0.5),
        'smoke': dict(n=512, conv=(2, 32), rep_s=0.15, min_s=0.2)}
BACKOFF = 40  # extra fp16 warm-up steps allowed while the gradient scaler lowers its scale from 2^16


# ---- synthetic data -----------------------------------------------------------
def synthetic_image(seed, w, h):
    """Random but structured uint8 RGB: smooth gradients, oriented waves, flat
    blocks with sharp edges, and fine noise (PNG-compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        acc = 96 + 48 * (x / w) * rng.uniform(-1, 1) + 48 * (y / h) * rng.uniform(-1, 1)
        for _ in range(3):  # separable products of waves
            fx, fy = rng.uniform(0.003, 0.08, 2)
            acc = acc + rng.uniform(8, 24) * np.sin(fx * x + rng.uniform(0, 6.3)) * np.cos(fy * y + rng.uniform(0, 6.3))
        img[..., c] = acc
    cell = 48
    blocks = rng.integers(-40, 41, (h // cell + 1, w // cell + 1, 3)).astype(np.float32)
    img += np.repeat(np.repeat(blocks, cell, 0), cell, 1)[:h, :w]
    img += rng.integers(-6, 7, (h, w, 1), dtype=np.int8).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_images(folder, n, w, h, threads):
    import imageio.v3 as iio
    os.makedirs(folder, exist_ok=True)

    def one(i):
        iio.imwrite(os.path.join(folder, f'{i:04d}.png'), synthetic_image(i, w, h))
    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(one, range(n)))


# ---- helpers ------------------------------------------------------------------
def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def reset_peak():
    """Reset the RSS high-water mark (Linux /proc/self/clear_refs 5); True on success."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_mib(resettable):
    if resettable:
        try:
            with open('/proc/self/status') as f:
                for line in f:
                    if line.startswith('VmHWM:'):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
    return ru_maxrss_mib(resource.RUSAGE_SELF)


def ru_maxrss_mib(who):
    kb = resource.getrusage(who).ru_maxrss
    return kb / 1024 / (1024 if sys.platform == 'darwin' else 1)  # macOS reports bytes


def gflops_text(v):
    return f'{v:,.0f}' if v >= 100 else f'{v:.3g}'


def one_line(e):
    from errors import error_text
    return error_text(e)[:200]  # a table cell


def log_lines(ckp, prefix):
    """The lines of the run's log.txt that start with `prefix`."""
    with open(ckp.get_path('log.txt')) as f:
        return [ln.rstrip('\n') for ln in f if ln.startswith(prefix)]


class Run:
    """One speed option's real objects: checkpoint (its own experiment folder
    under the temp folder), Data, Model, Loss and Trainer. close() closes the
    trainer (signal handlers) and the checkpoint (log.txt)."""

    def __init__(self, args, root):
        import data
        import loss
        import model
        import utility
        from trainer import Trainer
        self.args = args
        self.trainer = None
        self.ckp = utility.checkpoint(args, root=root)
        try:
            self.loader = data.Data(args)
            self.model = model.Model(args, self.ckp)
            self.loss = loss.Loss(args, self.ckp)
            self.trainer = Trainer(args, self.loader, self.model, self.loss, self.ckp)
        except BaseException:
            self.close()
            raise

    def check_compiled(self):
        if self.args.compile and not self.model.compiled:
            why = log_lines(self.ckp, '--compile')
            raise RuntimeError(why[-1] if why else '--compile fell back to eager')

    def close(self):
        if self.trainer is not None:
            self.trainer.close()
        if self.ckp is not None:
            self.ckp.done()


# ---- which options -------------------------------------------------------------
def option_names(spec):
    """The OPTIONS named by --options (aliases allowed), eager fp32 first; all of them for ''."""
    if not spec:
        return list(OPTIONS)
    out = []
    for nm in spec.split(','):
        nm = ALIASES.get(nm.strip(), nm.strip())
        if nm not in OPTIONS:
            raise SystemExit(f'speed.py: error: --options: unknown option {nm!r} '
                             f'(one of: {", ".join(list(ALIASES) + list(OPTIONS))})')
        out.append(nm)
    if 'eager fp32' not in out:
        out.insert(0, 'eager fp32')
    return out


def plan(names, cfg, device):
    """(options on the main model, options on the tiny model, skipped --compile options, notes)."""
    compile_names = [nm for nm in names if '--compile' in OPTIONS[nm] and cfg['compile'] != 'full']
    # --quick on a CPU: fp16 has no fast CPU kernels (~15x slower than fp32), so it gets the tiny model too
    fp16_tiny = [nm for nm in names if 'fp16' in OPTIONS[nm] and nm not in compile_names
                 and device.type == 'cpu' and cfg.get('fp16_cpu') == 'tiny']
    main_names = [nm for nm in names if nm not in compile_names + fp16_tiny]
    tiny = f'a tiny EDSR (n_resblocks {TINY["n_resblocks"]}, n_feats {TINY["n_feats"]})'
    notes = []
    if fp16_tiny:
        notes.append(f'{", ".join(fp16_tiny)}: measured on {tiny} against its own eager fp32 row: fp16 '
                     'convolutions on a CPU are an order of magnitude slower than fp32 (run without '
                     '--quick for the full network)')
    if compile_names and cfg['compile'] == 'skip':
        notes.append(f'skipped ({", ".join(compile_names)}): torch.compile takes tens of seconds '
                     'per shape on a CPU; run without --smoke to measure it')
        return main_names, fp16_tiny, compile_names, notes
    if compile_names:
        notes.append(f'--compile rows use {tiny} and compare with its own eager fp32 row: compiling the '
                     'full network takes ~40 s per shape on a CPU (run without --quick for it)')
    return main_names, fp16_tiny + compile_names, [], notes


def eager_ratios(r, rows):
    """Set r's x_eager_train / x_eager_infer against the eager fp32 row of its model (None without one)."""
    base = next((b for b in rows if b.get('model') == r.get('model') and b['option'].startswith('eager fp32')
                 and 'it_per_s' in b), None)
    r['x_eager_train'] = r['it_per_s'] / base['it_per_s'] if base else None
    r['x_eager_infer'] = r['infer_mp_per_s'] / base['infer_mp_per_s'] if base else None


def loader_ratios(res):
    """Loader patches/s (--ext sep) over the patches/s training consumes (eager fp32 and the fastest
    main-model option), and --ext img over the fastest; {} without a loader rate or a measured row."""
    sep = res['loader'].get('--ext sep', {})
    rows = [r for r in res['options'] if r.get('model') == 'main' and 'it_per_s' in r]
    if 'patches_per_s' not in sep or not rows:
        return {}
    eager = next((r for r in rows if r['option'] == 'eager fp32'), None)
    fast = max(rows, key=lambda r: r['patches_per_s'])
    out = {'loader_patches_per_s': sep['patches_per_s']}
    for tag, r in (('eager fp32', eager), ('fastest: ' + fast['option'], fast)):
        if r is not None:
            out[tag] = dict(train_patches_per_s=r['patches_per_s'],
                            loader_over_train=sep['patches_per_s'] / r['patches_per_s'])
    img = res['loader'].get('--ext img', {})
    if 'patches_per_s' in img:
        out['ext_img_over_fastest_train'] = img['patches_per_s'] / fast['patches_per_s']
    return out


# ---- distance to the hardware -----------------------------------------------------
class Peak:
    """This machine's peak, measured in the run on all torch threads (or the GPU): per precision
    the GFLOP/s (a multiply-add = 2 FLOPs) of a large matmul and of a 3x3 64->64 convolution in
    channels_last (the "conv reference": SR networks are convolution-bound); the fastest of the
    timed calls after warm-up ones. fp32 and bf16, and fp16 on CUDA."""

    def __init__(self, sizes, device):
        self.n, (self.batch, self.size) = sizes['n'], sizes['conv']
        self.rep_s, self.min_s = sizes['rep_s'], sizes['min_s']
        self.device = device
        self.warm, self.reps = (3, 20) if device.type == 'cuda' else (1, 3)

    def precisions(self):
        return ('fp32', 'bf16', 'fp16') if self.device.type == 'cuda' else ('fp32', 'bf16')

    def measure(self):
        out = dict(device=str(self.device), threads=torch.get_num_threads(), warmup=self.warm, timed=self.reps,
                   min_s=self.min_s)
        if self.device.type == 'cuda':
            out['tf32'] = dict(matmul=torch.backends.cuda.matmul.allow_tf32, cudnn=torch.backends.cudnn.allow_tf32)
        bench = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True  # as Trainer sets it on CUDA
        try:
            for p in self.precisions():
                try:
                    d = dict(self.matmul(DTYPE[p]), **self.conv(DTYPE[p]))
                except Exception as e:  # a precision this device cannot run: its rows get no fraction
                    out.setdefault('unsupported', {})[p] = one_line(e)
                    continue
                d['peak_gflops'] = max(d['matmul_gflops'], d['conv_gflops'])
                out[p] = d
        finally:
            torch.backends.cudnn.benchmark = bench
        gc.collect()
        return out

    def seconds(self, fn, warm=None, reps=None):
        """The fastest of `reps` timed calls of fn after `warm` untimed ones; without `reps`, at least
        self.reps calls and min_s seconds (at most 200 calls)."""
        for _ in range(self.warm if warm is None else warm):
            fn()
        times = []
        n, min_s = (reps, 0) if reps else (self.reps, self.min_s)
        while len(times) < n or sum(times) < min_s and len(times) < 200:
            sync(self.device)
            t0 = time.perf_counter()
            fn()
            sync(self.device)
            times.append(time.perf_counter() - t0)
        return min(times)

    def tensor(self, *shape, dtype):
        g = torch.Generator().manual_seed(0)  # not the global generator
        return torch.randn(*shape, generator=g).to(self.device, dtype)

    def grow(self, make, start, stop, cost):
        """(size, fn): from `start`, doubled up to `stop` while one call at the next size, estimated from
        one at the current size (cost: the relative work of a size), takes at most rep_s; the call at
        the chosen size is its first warm-up."""
        size, fn = start, make(start)
        t = self.seconds(fn, 1, 1)
        while size < stop and t * cost(min(2 * size, stop)) / cost(size) <= self.rep_s:
            size = min(2 * size, stop)
            fn = None  # the previous size's tensors go first
            fn = make(size)
            t = self.seconds(fn, 0, 1)
        return size, fn

    def matmul(self, dtype):
        """n x n @ n x n, n from 256 up to self.n (grow)."""
        def make(n):
            a, b = self.tensor(n, n, dtype=dtype), self.tensor(n, n, dtype=dtype)
            return lambda: torch.mm(a, b)
        n, fn = self.grow(make, min(self.n, 256), self.n, lambda k: k ** 3)
        t = self.seconds(fn, self.warm - 1)
        return dict(matmul_gflops=2 * n ** 3 / t / 1e9, matmul_n=n)

    def conv(self, dtype):
        """(batch, 64, size, size) -> 64 channels, 3x3, padding 1, channels_last, no bias; the batch
        from 1 up to self.batch (grow)."""
        cl = torch.channels_last
        w = self.tensor(64, 64, 3, 3, dtype=dtype).contiguous(memory_format=cl)

        def make(b):
            x = self.tensor(b, 64, self.size, self.size, dtype=dtype).contiguous(memory_format=cl)
            return lambda: torch.nn.functional.conv2d(x, w, padding=1)
        with torch.no_grad():
            b, fn = self.grow(make, 1, self.batch, lambda k: k)
            t = self.seconds(fn, self.warm - 1)
        return dict(conv_gflops=2 * 9 * 64 * 64 * b * self.size ** 2 / t / 1e9,
                    conv_shape=f'{b}x64x{self.size}x{self.size}')


DTYPE = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
FLOPS_NOTE = ('distance to the hardware: FLOPs from the network\'s Multi-Adds (summary.count, FlopCounterMode, '
              'a multiply-add = 2 FLOPs); train GF = 3 x the forward FLOPs of the batch (forward + backward to '
              'the inputs and the weights; the loss and the optimizer not counted), over the compute time of a '
              'step (data wait excluded); infer GF = one forward of the timed input, over the frame time; '
              'x peak: fraction of the peak of the row\'s precision (bf16 for --amp bf16, fp16 for --amp fp16 '
              'on CUDA, else fp32; the faster of the matmul and the conv reference), x conv: of the conv reference')


def network_flops(args, cfg):
    """FLOPs of one training step and of one inference frame, from summary.count's Multi-Adds
    (FlopCounterMode, on the meta device): a step is 3 x the forward FLOPs of the batch (forward,
    backward to the inputs and to the weights) of LR patches of patch_size // scale; a frame is
    one forward of the timed inference input."""
    import summary
    from model import build_network
    net = build_network(args)[0].eval()
    s, ip = cfg['scale'], cfg['patch'] // cfg['scale']
    w, h = cfg['infer_size']
    (patch, frame), where = summary.count(net, s, [(ip * s, ip * s), (w * s, h * s)], args.n_colors)
    return dict(multi_adds_lr_patch=patch, lr_patch=f'{ip}x{ip}', multi_adds_frame=frame, counted_on=where,
                train_flops_per_step=3 * 2 * patch * cfg['batch'], infer_flops_per_frame=2 * frame)


def best_of(a, b):
    """Two Peak.measure passes merged: per precision the faster matmul and the faster conv reference
    (with their sizes), peak_gflops the faster of those two; both passes under 'passes'."""
    out = {k: v for k, v in a.items() if k not in DTYPE and k != 'unsupported'}
    out['passes'] = [{p: x[p] for p in DTYPE if p in x} for x in (a, b)]
    for p in DTYPE:
        both = [x[p] for x in (a, b) if p in x]
        if both:
            mm = max(both, key=lambda d: d['matmul_gflops'])
            cv = max(both, key=lambda d: d['conv_gflops'])
            out[p] = dict(matmul_gflops=mm['matmul_gflops'], matmul_n=mm['matmul_n'],
                          conv_gflops=cv['conv_gflops'], conv_shape=cv['conv_shape'],
                          peak_gflops=max(mm['matmul_gflops'], cv['conv_gflops']))
    why = {**a.get('unsupported', {}), **b.get('unsupported', {})}
    if any(p not in out for p in why):
        out['unsupported'] = {p: w for p, w in why.items() if p not in out}
    return out


def row_precision(flags, device):
    """The peak a row is compared with: bf16 for --amp bf16, fp16 for --amp fp16 on CUDA, else fp32."""
    if '--amp' in flags and 'bf16' in flags:
        return 'bf16'
    return 'fp16' if '--amp' in flags and 'fp16' in flags and device.type == 'cuda' else 'fp32'


def hardware_fractions(r, flops, peak, device):
    """Set r's achieved TFLOP/s (training: over the compute time of a step, data wait excluded;
    inference: over the frame time) and their fractions of the row precision's peak (the faster
    of matmul and conv reference) and of its conv reference."""
    p = row_precision(r['flags'].split(), device)
    r.update(peak_precision=p, train_flops_per_step=flops['train_flops_per_step'],
             infer_flops_per_frame=flops['infer_flops_per_frame'],
             train_tflops=flops['train_flops_per_step'] / (r['compute_ms'] / 1e3) / 1e12,
             infer_tflops=flops['infer_flops_per_frame'] * r['infer_fps'] / 1e12)
    ref = peak.get(p)  # None: the peak of that precision could not be measured
    for k in ('train', 'infer'):
        r[f'{k}_x_peak'] = r[f'{k}_tflops'] * 1e3 / ref['peak_gflops'] if ref else None
        r[f'{k}_x_conv'] = r[f'{k}_tflops'] * 1e3 / ref['conv_gflops'] if ref else None


# ---- the workload ---------------------------------------------------------------
class Workload:
    """What is measured on: the synthetic training images and the LR/.npy caches in a
    temporary folder, and main.py's argv/args for each loader and speed option."""

    def __init__(self, cfg, opts):
        self.cfg, self.opts = cfg, opts
        self.tmp = tempfile.mkdtemp(prefix='srlab_bench_')
        self.hr_dir = os.path.join(self.tmp, 'hr')
        self.cache = os.path.join(self.tmp, 'cache')
        self.device = torch.device('cuda' if torch.cuda.is_available() and not opts.cpu else 'cpu')
        self.runs = 0  # experiment folders made: bench_<i> under self.tmp

    def argv(self, ext='sep', model=None, extra=(), batches=10, save='bench'):
        """main.py flags. `--data_test video` builds no test set: inference is timed on a
        synthetic frame through the Evaluator's forward, and no second copy of the
        training images is decoded into memory (it would count in the RSS column); its
        --dir_demo (which main.py checks) is never read."""
        c = self.cfg
        m = model or c
        a = ['--model', 'EDSR', '--scale', str(c['scale']), '--n_resblocks', str(m['n_resblocks']),
             '--n_feats', str(m['n_feats']), '--res_scale', str(m.get('res_scale', 1)), '--pre_train', 'none',
             '--batch_size', str(c['batch']), '--patch_size', str(c['patch']),
             '--data_train', 'Folder', '--dir_train', self.hr_dir, '--data_test', 'video', '--dir_demo', self.hr_dir,
             '--dir_cache', self.cache, '--ext', ext, '--n_threads', str(self.opts.n_threads),
             '--test_every', str(batches), '--save', save, '--seed', '1']
        if self.device.type == 'cpu':
            a.append('--cpu')
        return a + list(extra)

    def args(self, *a, **k):
        import option
        return option.parse_args(self.argv(*a, **k))

    def run_args(self, flags, model, batches):
        """args of one speed option, in a new experiment folder bench_<i>."""
        self.runs += 1
        return self.args('sep', model=model, extra=flags, batches=batches, save=f'bench_{self.runs}')

    @staticmethod
    def dataset(args):
        from data import make_dataset
        return make_dataset(args, 'Folder', train=True)

    def build(self):
        """Write the images, then build the bicubic LR (x scale) and the .npy cache through the
        first datasets (the thread pool); the seconds each took and the decoded MiB."""
        c = self.cfg
        t0 = time.perf_counter()
        write_images(self.hr_dir, c['images'], *c['size'], os.cpu_count() or 1)
        t_images = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.dataset(self.args('img', batches=1))
        t_lr = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = self.dataset(self.args('sep', batches=1))
        t_npy = time.perf_counter() - t0
        return dict(images_s=t_images, lr_build_s=t_lr, npy_build_s=t_npy, decoded_mib=ds.mem_bytes / 2 ** 20)

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- measuring ------------------------------------------------------------------
class Meter:
    """The measurements on a Workload, through the real code paths: loader rate, one
    speed option's training and inference (Trainer.step, Evaluator.forward), memory peaks."""

    def __init__(self, work):
        self.work = work
        self.cfg, self.device = work.cfg, work.device

    # (1) loader ----------------------------------------------------------------
    def loader_rate(self, ext, extra=()):
        import data
        warm, n = self.cfg['loader']
        loader = data.Data(self.work.args(ext, extra=extra, batches=warm + n)).loader_train
        loader.set_epoch(1)
        it = iter(loader)
        for _ in range(warm):
            next(it)
        t0 = time.perf_counter()
        for _ in range(n):
            next(it)
        dt = time.perf_counter() - t0
        workers, ds = loader.num_workers, loader.dataset
        del it, loader
        return dict(patches_per_s=n * self.cfg['batch'] / dt, workers=workers,
                    in_ram_mib=ds.mem_bytes / 2 ** 20)

    # (2)+(3) one speed option ------------------------------------------------------
    def option(self, name, flags, model=None):
        """Train and infer with the real Trainer; main.py's log lines go to the run's
        log.txt only (the table stays readable)."""
        row = dict(option=name, flags=' '.join(flags), model='tiny' if model else 'main')
        resettable = reset_peak()
        run = None
        try:
            backoff = BACKOFF if '--amp' in flags and 'fp16' in flags else 0
            warm, n = self.cfg['train']
            args = self.work.run_args(flags, model, warm + n + backoff)
            with contextlib.redirect_stdout(io.StringIO()):
                run = Run(args, self.work.tmp)
                row.update(self.measure(run, backoff))
        except Exception as e:
            row['unsupported'] = one_line(e)
        finally:
            if run is not None:
                run.close()
            row.update(self.peaks(resettable))
            del run
            if '--compile' in flags:
                torch._dynamo.reset()
            gc.collect()
        return row

    def measure(self, run, backoff):
        out = self.train_rate(run, backoff)
        run.check_compiled()
        out.update(self.infer(run))
        run.check_compiled()
        return out

    def peaks(self, resettable):
        """Peak memory since reset_peak(): RSS, and CUDA's max_memory_allocated on CUDA."""
        out = dict(peak_rss_mib=peak_rss_mib(resettable), peak_rss_kind='VmHWM' if resettable else 'ru_maxrss')
        if self.device.type == 'cuda':
            out['peak_cuda_mib'] = torch.cuda.max_memory_allocated() / 2 ** 20
        return out

    def train_rate(self, run, backoff):
        """Trainer.step on the real training loader (epoch 1): warm-up steps, then
        `timed` steps split into data wait (next batch + Model.prepare) and compute.
        fp16 gets up to BACKOFF extra steps while the gradient scaler lowers its
        scale from 2^16 (Stepper.scale_backoffs); timing starts once a step is taken."""
        c, trainer = self.cfg, run.trainer
        warm, n = c['train']
        st = trainer.stepper
        loader = trainer.loader_train
        loader.set_epoch(1)
        run.loss.start_log()
        run.model.train()
        wait = comp = 0.0
        t_first = None
        timed = k = 0
        settled = not backoff
        it = iter(loader)
        try:
            while timed < n:
                if k == warm + n + backoff:
                    raise RuntimeError(self.not_taken(run, k))
                t0 = time.perf_counter()
                lr, hr, names, idx_scale = next(it)
                lr, hr = run.model.prepare(lr, hr)
                t1 = time.perf_counter()
                ok = trainer.step(lr, hr, idx_scale, names)
                sync(self.device)
                t2 = time.perf_counter()
                t_first = t2 - t0 if k == 0 else t_first
                if k >= warm and settled:  # fp16: timed once the gradient scaler has found its scale
                    wait += t1 - t0
                    comp += t2 - t1
                    timed += 1
                settled = settled or ok
                k += 1
        finally:
            del it  # stops the loader workers
        return dict(it_per_s=n / (wait + comp), wait_ms=1e3 * wait / n, compute_ms=1e3 * comp / n,
                    patches_per_s=n * c['batch'] / (wait + comp), first_step_s=t_first,
                    skipped_steps=st.skips_total + st.scale_backoffs, fp16_backoffs=st.scale_backoffs)

    @staticmethod
    def not_taken(run, k):
        st = run.trainer.stepper
        why = log_lines(run.ckp, 'Skipped batch')
        return (f'{st.skips_total + st.scale_backoffs} of {k} steps not taken ({st.skips_total} skipped, '
                f'{st.scale_backoffs} fp16 back-offs)' + (': ' + why[-1] if why else ''))

    def infer(self, run):
        """The evaluation path's forward (Evaluator.forward: to the device, the model's
        test-time wrapper with --chop/--self_ensemble/--precision, CUDA sync, quantize)
        under the run's autocast, as Trainer.test calls it; its own model seconds."""
        c = self.cfg
        w, h = c['infer_size']
        s = c['scale']
        warm, n = c['infer']
        # on the CPU, as a test loader yields it (Evaluator.forward moves it before its clock starts)
        x = torch.from_numpy(synthetic_image(123, w, h).transpose(2, 0, 1).copy()).float()[None]
        trainer = run.trainer
        run.model.eval()
        times = []
        with torch.no_grad(), trainer.stepper.autocast():
            for k in range(warm + n):
                sr, seconds = trainer.evaluator.forward(run.model, x, 0)
                if k >= warm:
                    times.append(seconds)
        assert sr.shape[-2:] == (h * s, w * s), sr.shape
        t = sum(times) / len(times)
        return dict(infer_mp_per_s=h * s * w * s / 1e6 / t, infer_fps=1 / t)

    @staticmethod
    def process_memory():
        return dict(ru_maxrss_self_mib=ru_maxrss_mib(resource.RUSAGE_SELF),
                    ru_maxrss_children_mib=ru_maxrss_mib(resource.RUSAGE_CHILDREN))


# ---- reporting ------------------------------------------------------------------
class Report:
    """What is printed and written: the header, the data line, the loader table, one line
    per option, the loader/training ratio, the closing summary and the JSON file."""

    HEAD = (f'{"option":<28}{"it/s":>8}{"x eager":>9}{"wait ms":>9}{"comp ms":>9}{"patch/s":>9}'
            f'{"infer MP/s":>11}{"x eager":>9}{"frames/s":>9}{"RSS MiB":>9}')

    def __init__(self, cfg, opts, device):
        self.cfg, self.opts, self.device = cfg, opts, device

    def config(self):
        c, o = self.cfg, self.opts
        return dict(mode=o.mode, model='EDSR', n_resblocks=c['n_resblocks'], n_feats=c['n_feats'], scale=c['scale'],
                    batch_size=c['batch'], patch_size=c['patch'], images=c['images'],
                    image_size=f'{c["size"][0]}x{c["size"][1]}', n_threads=o.n_threads,
                    loader_batches=dict(warmup=c['loader'][0], timed=c['loader'][1]),
                    train_steps=dict(warmup=c['train'][0], timed=c['train'][1]),
                    infer_frames=dict(warmup=c['infer'][0], timed=c['infer'][1]),
                    infer_input=f'{c["infer_size"][0]}x{c["infer_size"][1]}', compile=c['compile'],
                    device=str(self.device), device_name=self.device_name(), torch=torch.__version__,
                    torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(), python=platform.python_version())

    def device_name(self):
        if self.device.type == 'cuda':
            return torch.cuda.get_device_name(self.device)
        return f'{platform.processor() or platform.machine()} ({os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()})'

    def header(self):
        c, o = self.cfg, self.opts
        w, h = c['infer_size']
        s = c['scale']
        return (f'srlab benchmark ({o.mode}): EDSR x{s} (n_resblocks {c["n_resblocks"]}, n_feats {c["n_feats"]}), '
                f'batch {c["batch"]}, HR patch {c["patch"]}; {c["images"]} synthetic {c["size"][0]}x{c["size"][1]} '
                f'PNGs via --data_train Folder; --n_threads {o.n_threads}; inference {w}x{h} -> {w * s}x{h * s}\n'
                f'device: {self.device} = {self.device_name()}, torch {torch.__version__}, '
                f'{torch.get_num_threads()} torch threads; loader {c["loader"][1]} batches after {c["loader"][0]} '
                f'warm-up, training {c["train"][1]} steps after {c["train"][0]}, inference {c["infer"][1]} '
                f'frame(s) after {c["infer"][0]}')

    def data(self, d):
        c = self.cfg
        print(self.header(), flush=True)
        print(f'data: {c["images"]} images written in {d["images_s"]:.1f} s; bicubic LR x{c["scale"]} built in '
              f'{d["lr_build_s"]:.1f} s and the .npy cache in {d["npy_build_s"]:.1f} s by '
              f'{max(1, self.opts.n_threads)} threads; {d["decoded_mib"]:.0f} MiB decoded', flush=True)

    @staticmethod
    def loader_table(loader):
        lines = ['', f'{"loader":<28}{"patches/s":>11}{"workers":>9}{"in RAM MiB":>12}']
        for name, r in loader.items():
            if 'unsupported' in r:
                lines.append(f'{name:<28}unsupported: {r["unsupported"]}')
            else:
                lines.append(f'{name:<28}{r["patches_per_s"]:>11.1f}{r["workers"]:>9}{r["in_ram_mib"]:>12.0f}')
        return '\n'.join(lines)

    def row(self, r, rows):
        """Print option row r (the last of rows), after the table head where a table starts."""
        if len(rows) == 1 or r['option'] == 'eager fp32 (tiny)':
            print('\n' + self.HEAD + ('  CUDA MiB' if self.device.type == 'cuda' else ''))
        print(self.option_line(r), flush=True)

    @staticmethod
    def option_line(r):
        name = r['option'] + (' (tiny)' if r.get('model') == 'tiny' and '(tiny)' not in r['option'] else '')
        if 'skipped' in r:
            return f'{name:<28}{r["skipped"]}'
        if 'unsupported' in r:
            return f'{name:<28}unsupported: {r["unsupported"]}'
        ratio = f'{r["x_eager_train"]:.2f}x' if r['x_eager_train'] is not None else '-'
        iratio = f'{r["x_eager_infer"]:.2f}x' if r['x_eager_infer'] is not None else '-'
        line = (f'{name:<28}{r["it_per_s"]:>8.2f}{ratio:>9}{r["wait_ms"]:>9.1f}{r["compute_ms"]:>9.1f}'
                f'{r["patches_per_s"]:>9.1f}{r["infer_mp_per_s"]:>11.3f}{iratio:>9}{r["infer_fps"]:>9.2f}'
                f'{r["peak_rss_mib"]:>9.0f}')
        if 'peak_cuda_mib' in r:
            line += f'{r["peak_cuda_mib"]:>10.0f}'
        return line

    @staticmethod
    def peak(pk, when):
        """The peak line of one Peak.measure pass: per precision the matmul and the conv reference."""
        where = f'{pk["threads"]} threads' if pk['device'] == 'cpu' else pk['device']
        if 'tf32' in pk:  # fp32 on CUDA: cuDNN convolutions may use TF32 (on by default), matmuls not by default
            where += ', TF32 ' + ', '.join(f'{k} {"on" if v else "off"}' for k, v in pk['tf32'].items())
        g = gflops_text
        parts = [f'{p} matmul {v["matmul_n"]}^3 {g(v["matmul_gflops"])}, conv 3x3 64->64 {v["conv_shape"]} '
                 f'channels_last {g(v["conv_gflops"])}' for p, v in pk.items() if p in DTYPE]
        parts += [f'{p} unsupported: {why}' for p, why in pk.get('unsupported', {}).items()]
        print(f'\npeak GFLOP/s, {when} ({where}; fastest of >= {pk["timed"]} calls over >= {pk["min_s"]} s after '
              f'{pk["warmup"]} warm-up): ' + '; '.join(parts), flush=True)

    HW_HEAD = (f'{"distance to the hardware":<28}{"prec":>5}{"train GF":>10}{"TFLOP/s":>9}{"x peak":>8}'
               f'{"x conv":>8}{"infer GF":>10}{"TFLOP/s":>9}{"x peak":>8}{"x conv":>8}')

    @classmethod
    def hardware(cls, res):
        """The peak used (best_of) and the achieved TFLOP/s and fractions of peak of each measured row."""
        pk = res['peak']
        kind = {p: 'conv' if v['peak_gflops'] == v['conv_gflops'] else 'matmul' for p, v in pk.items() if p in DTYPE}
        used = [f'{p} {gflops_text(pk[p]["peak_gflops"])} ({k}), conv reference {gflops_text(pk[p]["conv_gflops"])}'
                for p, k in kind.items()]
        print('peak GFLOP/s used (the faster of the two passes): ' + '; '.join(used))
        if 'bf16' in pk and 'fp32' in pk and pk['bf16']['peak_gflops'] < pk['fp32']['peak_gflops']:
            print(f'peak: bf16 runs {pk["fp32"]["peak_gflops"] / pk["bf16"]["peak_gflops"]:.0f}x slower than fp32 '
                  'here (no fast bf16 kernels on this device): --amp bf16 cannot pay off on it')
        print('\n' + cls.HW_HEAD)
        for r in (r for r in res['options'] if 'train_tflops' in r):
            name = r['option'] + (' (tiny)' if r.get('model') == 'tiny' and '(tiny)' not in r['option'] else '')
            x = {k: '-' if r[k] is None else f'{r[k]:.3f}' for k in ('train_x_peak', 'train_x_conv', 'infer_x_peak',
                                                                      'infer_x_conv')}
            print(f'{name:<28}{r["peak_precision"]:>5}{r["train_flops_per_step"] / 1e9:>10.2f}{r["train_tflops"]:>9.4f}'
                  f'{x["train_x_peak"]:>8}{x["train_x_conv"]:>8}{r["infer_flops_per_frame"] / 1e9:>10.2f}'
                  f'{r["infer_tflops"]:>9.4f}{x["infer_x_peak"]:>8}{x["infer_x_conv"]:>8}', flush=True)

    @staticmethod
    def ratio(res):
        """Print the loader over training line of res['ratio'] (nothing when it is empty)."""
        out, sep = res['ratio'], res['loader'].get('--ext sep', {})
        if not out:
            return
        lines = [f'{tag}: {v["train_patches_per_s"]:.1f} patches/s -> {v["loader_over_train"]:.1f}x'
                 for tag, v in out.items() if isinstance(v, dict)]
        img = out.get('ext_img_over_fastest_train')
        print(f'\nloader (--ext sep, {sep["workers"]} workers) {sep["patches_per_s"]:.1f} patches/s / patches/s '
              f'consumed by training: ' + '; '.join(lines) + ' (target >= 3x)'
              + (f'; --ext img: {img:.1f}x the fastest' if img is not None else ''))

    @staticmethod
    def summary(res):
        for n in res['notes']:
            print('note: ' + n)
        m = res['memory']
        vmhwm = any(r.get('peak_rss_kind') == 'VmHWM' for r in res['options'])
        print(f'peak RSS (ru_maxrss): this process {m["ru_maxrss_self_mib"]:.0f} MiB, loader workers '
              f'{m["ru_maxrss_children_mib"]:.0f} MiB (largest); RSS MiB column: per option '
              f'({"VmHWM reset before each" if vmhwm else "cumulative ru_maxrss"})')
        print(f'total {res["wall_s"]:.0f} s')

    @staticmethod
    def write_json(res, path):
        with open(path, 'w') as f:
            json.dump(res, f, indent=1)
        print(f'wrote {path}')


# ---- one run --------------------------------------------------------------------
class Speed:
    """The run in order: workload, loader rates, each option, ratios, memory; the results dict."""

    LOADERS = (('--ext img', 'img', ()), ('--ext sep', 'sep', ()),
               ('--ext sep --cache_mem 0', 'sep', ('--cache_mem', '0')))

    def __init__(self, cfg, opts):
        self.opts = opts
        self.work = Workload(cfg, opts)
        self.meter = Meter(self.work)
        self.report = Report(cfg, opts, self.work.device)

    def run(self):
        res = dict(config=self.report.config(), loader={}, options=[], notes=[])
        res['data'] = self.work.build()
        self.report.data(res['data'])
        first = self.peak('before the options')
        self.run_loaders(res)
        self.run_options(res)
        res['amp_auto'] = self.amp_auto()
        self.hardware(res, first)
        res['ratio'] = loader_ratios(res)
        self.report.ratio(res)
        res['memory'] = self.meter.process_memory()
        if self.work.device.type == 'cuda':
            res['memory']['note'] = 'peak_cuda_mib per option: torch.cuda.max_memory_allocated after a reset'
        return res

    def run_loaders(self, res):
        for name, ext, extra in self.LOADERS:
            try:
                res['loader'][name] = self.meter.loader_rate(ext, extra)
            except Exception as e:
                res['loader'][name] = dict(unsupported=one_line(e))
        print(self.report.loader_table(res['loader']), flush=True)

    def run_options(self, res):
        main_names, tiny_names, skipped, notes = plan(option_names(self.opts.options), self.work.cfg,
                                                      self.work.device)
        res['notes'].extend(notes)
        for nm in main_names:
            self.add_row(res, self.meter.option(nm, OPTIONS[nm]))
        for nm in skipped:
            self.add_row(res, dict(option=nm, flags=' '.join(OPTIONS[nm]), model='main',
                                   skipped='skipped: torch.compile takes tens of seconds per shape on a CPU'))
        if tiny_names:
            for nm in ['eager fp32'] + tiny_names:
                self.add_row(res, self.meter.option(nm + ' (tiny)' if nm == 'eager fp32' else nm,
                                                    OPTIONS[nm], model=TINY))

    def amp_auto(self):
        """What `--amp auto` (precision.py) chooses for the main workload here: the recommendation."""
        import precision
        from distributed import World
        amp, channels_last, line = precision.choose(self.work.args('sep', batches=1), World())
        print(f'recommended: {line}', flush=True)
        return {'amp': amp, 'channels_last': channels_last, 'line': line}

    def add_row(self, res, row):
        res['options'].append(row)
        if 'skipped' not in row and 'unsupported' not in row:
            eager_ratios(row, res['options'])
        self.report.row(row, res['options'])

    def peak(self, when):
        pk = Peak(PEAK[self.opts.mode], self.work.device).measure()
        self.report.peak(pk, when)
        return pk

    def hardware(self, res, first):
        """The peak measured again after the options, res['peak'] the faster of the two passes per figure
        (a moment another process holds the cores does not understate it); then each measured row's
        FLOPs, achieved TFLOP/s and fractions of peak, and their table."""
        rows = [r for r in res['options'] if 'it_per_s' in r]
        if not rows:
            res['peak'] = first
            return
        res['peak'] = best_of(first, self.peak('after the options'))
        for r in rows:
            hardware_fractions(r, self.flops(res, r['model']), res['peak'], self.work.device)
        self.report.hardware(res)
        res['notes'].append(FLOPS_NOTE)

    def flops(self, res, model):
        """network_flops of the 'main' or 'tiny' network, counted once into res['flops']."""
        if model not in res.setdefault('flops', {}):
            res['flops'][model] = network_flops(self.work.args(model=TINY if model == 'tiny' else None), self.work.cfg)
        return res['flops'][model]


def parse(argv=None):
    p = argparse.ArgumentParser(prog='speed.py', description=__doc__.split('\n')[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument('--quick', action='store_true', help='< 3 minutes on 2 CPU cores: batch 4, patch 48, 320x180 '
                   'inference, fewer iterations, --compile on a tiny model')
    g.add_argument('--smoke', action='store_true', help='every measurement once, small model and images (a test)')
    p.add_argument('--json', default='', help='also write the results to this JSON file')
    p.add_argument('--n_threads', type=int, default=6, help='loader workers (as main.py; capped at the CPU count)')
    p.add_argument('--cpu', action='store_true', help='run on the CPU even when CUDA is present')
    p.add_argument('--options', default='', help='comma-separated subset: eager, bf16, fp16, cl, compile, '
                   'bf16+cl, bf16+cl+compile (default: all)')
    p.add_argument('--compile_model', choices=('full', 'tiny', 'skip'), default=None,
                   help='the --compile rows: full network, a tiny EDSR, or skipped (default: full; tiny with --quick)')
    p.add_argument('--paper', action='store_true',
                   help="the EDSR paper model (32 blocks, 256 maps, res_scale 0.1) instead of EDSR-baseline's 16 x 64")
    p.add_argument('--train_steps', type=int, default=0, help='timed training steps (default: by mode)')
    p.add_argument('--batch_size', type=int, default=0, help='override the batch size of the mode')
    p.add_argument('--keep', action='store_true', help='keep the temporary folder (printed)')
    o = p.parse_args(argv)
    o.mode = 'quick' if o.quick else 'smoke' if o.smoke else 'default'
    return o


def preset(o):
    """The mode's PRESETS entry with the command line's overrides."""
    cfg = dict(PRESETS[o.mode])
    if o.compile_model:
        cfg['compile'] = o.compile_model
    if o.train_steps:
        cfg['train'] = (cfg['train'][0], o.train_steps)
    if o.batch_size:
        cfg['batch'] = o.batch_size
    if o.paper:
        cfg.update(n_resblocks=32, n_feats=256, res_scale=0.1)
    return cfg


def main(argv=None):
    o = parse(argv)
    cfg = preset(o)
    torch.manual_seed(0)
    s = Speed(cfg, o)
    t0 = time.perf_counter()
    try:
        res = s.run()
    finally:
        if o.keep:
            print(f'kept {s.work.tmp}')
        else:
            s.work.cleanup()
    res['wall_s'] = time.perf_counter() - t0
    command = provenance.command_of(['speed.py'] + list(sys.argv[1:] if argv is None else argv))
    res['provenance'] = provenance.block('per option (see options)', 0, command, s.work.device)
    Report.summary(res)
    if o.json:
        Report.write_json(res, o.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
