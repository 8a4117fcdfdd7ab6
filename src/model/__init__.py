"""Model wrapper: builds the network registered as --model (registry.MODELS),
loads weights (--pre_train, --resume N, --extend) and exports them, and runs
the test-time forward (tiled `--chop`, `--self_ensemble`, `--precision`)."""
import contextlib
import functools
import os
from collections import OrderedDict

import torch
import torch.nn as nn

import utility
from distributed import World
from model import released
from model.common import count_parameters
from registry import MODELS

DTYPES = {'single': torch.float32, 'half': torch.float16, 'bf16': torch.bfloat16}
META_ALWAYS = ('model', 'scale', 'rgb_range', 'n_colors')  # recorded for every network
META_SKIP = {'drop_path'}       # read by a network, but training-only
META_NOT_COMPARED = {'scale'}   # other scales are loaded on purpose (x2 weights for x4)
OOM_TEXTS = ("can't allocate memory", 'MPS backend out of memory')  # CPU and MPS raise RuntimeError


def is_oom(e):
    """Out of memory: CUDA's torch.OutOfMemoryError, or the CPU/MPS allocators' RuntimeError."""
    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and any(t in str(e) for t in OOM_TEXTS))


def load_file(path, flag='--pre_train'):
    if not os.path.isfile(path):
        raise utility.SRLabError(f'{flag}: file not found: {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # corrupt, truncated or not a checkpoint
        raise utility.SRLabError(f'{flag}: {path} is not a readable PyTorch checkpoint ({_load_error(path, e)})')


def _load_error(path, e):
    """Why torch.load failed, in one line, without its advice to retry with weights_only=False."""
    try:
        with open(path, 'rb') as f:
            head = f.read(2)
    except OSError as err:  # unreadable: permissions, I/O error
        return err.strerror or type(err).__name__
    if head != b'PK' and head[:1] != b'\x80':  # torch.save writes a zip, old torch a pickle
        return 'neither a torch.save zip archive nor a pickle'
    if head == b'PK':
        import zipfile
        try:
            with zipfile.ZipFile(path) as z:
                damaged = z.testzip() is not None
        except Exception:
            damaged = True
        if damaged:
            return 'a truncated or damaged zip archive'
    msg = str(e).split('WeightsUnpickler error:', 1)[-1].strip()
    return f'{type(e).__name__}: {msg.splitlines()[0] if msg else ""}'


def unwrap_state(obj):
    """(state_dict, layout) from a released file: a plain state_dict
    (EDSR-PyTorch family), BasicSR's {'params'|'params_ema': ...}, or
    {'state_dict'|'model': ...}."""
    if isinstance(obj, dict):
        for key, layout in (('params_ema', 'basicsr'), ('params', 'basicsr'), ('state_dict', 'plain'), ('model', 'plain')):
            if key in obj and isinstance(obj[key], dict):
                return obj[key], layout
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError('no state_dict found in it')
    state = obj
    if all(k.startswith('module.') for k in state):  # saved from DataParallel/DDP
        state = with_metadata(OrderedDict((k[len('module.'):], v) for k, v in state.items()), obj)
    return state, 'plain'


def with_metadata(state, source):
    """`state` carrying the `_metadata` of `source` (module versions and srlab's flags)."""
    meta = getattr(source, '_metadata', None)
    if meta is not None:
        state._metadata = meta
    return state


def saved_flags(state):
    """The flags an srlab checkpoint was saved with ({} for other files)."""
    meta = getattr(state, '_metadata', None)
    flags = meta.get('srlab') if isinstance(meta, dict) else None
    return flags if isinstance(flags, dict) else {}


def _plain(v):
    """A flag value as plain types (what a weights_only load reads back)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def _flag_text(k, v):
    if isinstance(v, bool):
        v = str(v).lower()
    elif isinstance(v, list):
        v = '+'.join(map(str, v))
    return f'--{k} {v}'


class FlagReader:
    """The flags as a network's constructor sees them, noting the ones it reads:
    with META_ALWAYS, they are the metadata of its checkpoints."""

    def __init__(self, args):
        self._args = args
        self._read = set()

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        value = getattr(self._args, name)
        if not callable(value):
            self._read.add(name)
        return value

    def flags(self):
        names = (set(META_ALWAYS) | self._read) - META_SKIP
        return {k: _plain(getattr(self._args, k)) for k in sorted(names) if hasattr(self._args, k)}


def _short(items, n=4):
    items = list(items)
    s = ', '.join(items[:n])
    return s + (f' and {len(items) - n} more' if len(items) > n else '')


def build_network(args):
    """The network registered as args.model; a flag value it cannot take is a one-line SRLabError."""
    try:
        return MODELS.get(args.model)(args)
    except KeyError as e:  # option.py checks --model; this is for callers that did not
        raise utility.SRLabError(f'--model: {e.args[0]}') from e
    except ValueError as e:
        raise utility.SRLabError(str(e).splitlines()[0]) from e


class Model(nn.Module):
    def __init__(self, args, ckp, world=None):
        super().__init__()
        ckp.write_log('Making model...')
        self.args = args
        self.scale = args.scale
        self.idx_scale = 0
        self.self_ensemble = args.self_ensemble
        self.chop = args.chop
        self.precision = args.precision
        self.device = (world or World()).device(args)
        self.n_GPUs = args.n_GPUs
        self.save_models = args.save_models
        self.ckp = ckp

        reader = FlagReader(args)
        self.model = build_network(reader).to(self.device)
        self.meta = reader.flags()  # saved with the weights (export), checked on loading
        if args.test_only and args.precision != 'single':
            self.model.to(DTYPES[args.precision])
        if args.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.runner = self.model      # what training calls: the network, compiled or DDP-wrapped
        self.test_runner = self.model  # what tests call: the network, compiled
        self.compiled = False
        n = count_parameters(self.model)
        ckp.write_log(f'Trainable parameters: {n:,}')

        self.load(ckp.get_path('model'), pre_train=args.pre_train, resume=args.resume)
        if args.extend != '.':
            self.load_weights(load_file(args.extend, '--extend'), args.extend, strict=False, flag='--extend')

    # ---- forward -------------------------------------------------------
    def setup_speed(self, ddp=False):
        """--compile and DistributedDataParallel (called once by the Trainer).
        Training calls self.runner (compiled and/or DDP-wrapped); tests call
        self.test_runner, never DDP (under torchrun the ranks test on their own)."""
        if ddp:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.device.index] if self.device.type == 'cuda' else None
            # find_unused_parameters: only the tail of the batch's scale is used
            self.runner = DistributedDataParallel(self.model, device_ids=ids,
                                                  find_unused_parameters=len(self.scale) > 1)
        if self.args.compile:
            try:
                self.runner = torch.compile(self.runner)
                self.test_runner = torch.compile(self.model) if ddp else self.runner
                self.compiled = True
            except Exception as e:
                self.ckp.write_log(f'--compile: not supported here ({utility.error_text(e)}); running eager')

    def _run(self, x, test=False):
        if self.args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        net = self.test_runner if test else self.runner
        if not self.compiled:
            return net(x)
        try:
            return net(x)
        except Exception as e:  # compile errors surface at the first call
            if is_oom(e):
                raise
            self.ckp.write_log(f'--compile: failed ({utility.error_text(e)}); running eager')
            self.runner = getattr(self.runner, '_orig_mod', self.runner)
            self.test_runner = self.model
            self.compiled = False
            return (self.test_runner if test else self.runner)(x)

    def forward(self, x, idx_scale=0):
        self.idx_scale = idx_scale
        if hasattr(self.model, 'set_scale'):
            self.model.set_scale(idx_scale)
        if self.training:
            if self.n_GPUs > 1 and self.device.type == 'cuda' and self.runner is self.model:
                return nn.parallel.data_parallel(self.model, x, range(self.n_GPUs))
            return self._run(x)
        fn = self.forward_chop if self.chop else self._test_net
        with self._precision():
            try:
                return self._test(x, fn)
            except Exception as e:
                if not is_oom(e):
                    raise
            # outside the except block, whose traceback holds the failed forward's memory
            return self._retry_tiled(x)

    def _test(self, x, fn):
        return self.forward_x8(x, fn) if self.self_ensemble else fn(x)

    def _free(self):
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()

    def _retry_tiled(self, x):
        """After running out of memory on x: the same test-time forward in --chop
        tiles, halving the tile on each further out-of-memory error. As with --chop,
        the result equals the untiled one when --chop_overlap covers the receptive field."""
        a = self.args
        side = max(x.shape[-2:])
        size = min(a.chop_size, side) // 2 if self.chop else min(a.chop_size, side // 2)
        smallest = max(2 * a.chop_overlap + 1, 8)
        dims = 'x'.join(map(str, x.shape))
        if size >= smallest:
            self.ckp.write_log(f'out of memory on a {dims} input; retrying it in --chop tiles of {size}, '
                               'halved on each further out-of-memory error')
        last = None
        while size >= smallest:
            self._free()
            try:
                return self._test(x, functools.partial(self.forward_chop, size=size))
            except Exception as e:
                if not is_oom(e):
                    raise
            last, size = size, size // 2
        self._free()
        if last is None:
            raise utility.SRLabError(f'out of memory on a {dims} input on {self.device}, which is too small '
                                     f'to tile with --chop_overlap {a.chop_overlap}')
        raise utility.SRLabError(f'out of memory on a {dims} input on {self.device}, even in --chop tiles of '
                                 f'{last} (the smallest tile with --chop_overlap {a.chop_overlap} is {smallest})')

    def _test_net(self, x):
        """Test-time forward: the plain (or compiled) network."""
        return self._run(x, test=True)

    def _precision(self):
        dtype = DTYPES[self.precision]
        if dtype == torch.float32 or next(iter(self.model.parameters()), torch.empty(0)).dtype == dtype:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def forward_chop(self, x, size=None):
        """Tiled forward: LR tiles of `size` (default --chop_size) with --chop_overlap
        pixels of context on each inner side, --chop_batch tiles per call. Each tile
        only writes the centre part it owns, so with an overlap as large as the
        receptive field the result equals the untiled forward."""
        a = self.args
        size, ov = size or a.chop_size, a.chop_overlap
        s = self.scale[self.idx_scale]
        b, _, h, w = x.shape
        if h <= size and w <= size:
            return self._test_net(x)

        def starts(n):
            if n <= size:
                return [0]
            step = max(size - 2 * ov, 1)
            return list(range(0, n - size, step)) + [n - size]

        def owned(st, n, length):
            lo = st + (ov if st > 0 else 0)
            hi = st + length - (ov if st + length < n else 0)
            return lo, hi

        th, tw = min(size, h), min(size, w)
        coords = [(y, z) for y in starts(h) for z in starts(w)]
        out = None
        for i in range(0, len(coords), a.chop_batch):
            group = coords[i:i + a.chop_batch]
            res = self._test_net(torch.cat([x[..., y:y + th, z:z + tw] for y, z in group]))
            if out is None:
                out = res.new_empty(b, res.shape[1], h * s, w * s)
            for j, (y, z) in enumerate(group):
                y0, y1 = owned(y, h, th)
                z0, z1 = owned(z, w, tw)
                out[..., y0 * s:y1 * s, z0 * s:z1 * s] = \
                    res[j * b:(j + 1) * b, :, (y0 - y) * s:(y1 - y) * s, (z0 - z) * s:(z1 - z) * s]
        return out

    @staticmethod
    def transform(x, t):
        """t in 0..7: bit 0 flips W, bit 1 flips H, bit 2 transposes H and W."""
        if t & 1:
            x = x.flip(-1)
        if t & 2:
            x = x.flip(-2)
        if t & 4:
            x = x.transpose(-1, -2)
        return x

    @staticmethod
    def inverse_transform(x, t):
        if t & 4:
            x = x.transpose(-1, -2)
        if t & 2:
            x = x.flip(-2)
        if t & 1:
            x = x.flip(-1)
        return x

    def forward_x8(self, x, fn):
        acc = None
        for t in range(8):
            y = self.inverse_transform(fn(self.transform(x, t)), t).float()
            acc = y if acc is None else acc + y
        return acc / 8

    # ---- weights -------------------------------------------------------
    def get_model(self):
        return self.model

    def state_dict(self, *a, **k):
        return self.model.state_dict(*a, **k)

    def load_state_dict(self, state, strict=True):
        """Into the network (plain state_dict, as state_dict() gives)."""
        return self.model.load_state_dict(state, strict=strict)

    def export(self, apath, epoch, is_best=False, ema_state=None):
        """model_latest.pt (and _best, _<epoch>): plain state_dicts. With --ema
        the averaged weights go to model_latest_ema.pt, and model_best.pt holds
        the weights that were tested (the EMA ones). Each carries this run's
        flags in its `_metadata` (see tagged)."""
        state = self.tagged(self.model.state_dict())
        utility.atomic_save(state, os.path.join(apath, 'model_latest.pt'))
        if ema_state is not None:
            ema_state = self.tagged(ema_state)
            utility.atomic_save(ema_state, os.path.join(apath, 'model_latest_ema.pt'))
        if is_best:
            utility.atomic_save(ema_state if ema_state is not None else state, os.path.join(apath, 'model_best.pt'))
        if self.save_models:
            utility.atomic_save(state, os.path.join(apath, f'model_{epoch}.pt'))

    def tagged(self, state):
        """`state` as an OrderedDict whose `_metadata` (where torch keeps module
        versions) also holds the flags that give the weights their meaning, under
        'srlab'. torch.load (weights_only too) keeps it; load_state_dict ignores
        a key that names no module."""
        versions = getattr(state, '_metadata', None)
        if versions is None:
            versions = self.model.state_dict()._metadata
        out = OrderedDict(state)
        out._metadata = OrderedDict(versions)
        out._metadata['srlab'] = dict(self.meta)
        return out

    def load(self, apath, pre_train='', resume=0):
        """--resume N (model_N.pt) or --pre_train; --resume -1 is restored by
        the run state, not here."""
        if resume > 0:
            path = os.path.join(apath, f'model_{resume}.pt')
            if not os.path.isfile(path):
                raise utility.SRLabError(f'--resume {resume}: no saved model at {path} (were they kept with --save_models?)')
            self.load_weights(load_file(path, '--resume'), path, strict=True, flag='--resume')
        elif pre_train:
            if pre_train == 'download':
                pre_train = released.find_released(self.args)
            self.load_weights(load_file(pre_train), pre_train, strict=self.args.pre_train_strict)

    def load_weights(self, obj, source, strict=True, flag='--pre_train'):
        """Load a checkpoint by name, mapping BasicSR names and per-scale
        modules; report what did not match. Under `strict`, any mismatch
        outside the per-scale modules (tails) is an error; without it, the
        file must still give the body (see _check_body)."""
        net = self.model
        try:
            state, layout = unwrap_state(obj)
        except ValueError as e:
            raise utility.SRLabError(f'{flag}: {source}: {e}')
        self._check_flags(saved_flags(state), source, flag)
        if layout == 'basicsr':
            if not hasattr(net, 'from_basicsr'):
                raise utility.SRLabError(f'{flag}: {source} has BasicSR layout, which --model {self.args.model} cannot read')
            state = net.from_basicsr(state)
        if hasattr(net, 'adapt_state_dict'):
            state = net.adapt_state_dict(state)
        own = net.state_dict()
        parts, confined = self._mismatch(state, own)
        if parts and strict and not confined:
            raise utility.SRLabError(
                f'{flag}: {source} does not fit --model {self.args.model} with these flags: ' + '; '.join(parts)
                + (' (use --pre_train_strict false to load what matches)' if flag == '--pre_train' else ''))
        loaded = [k for k in own if k in state and state[k].shape == own[k].shape]
        if not strict:
            self._check_body(loaded, len(own), source, flag)
        for k in loaded:
            own[k] = state[k]
        net.load_state_dict(own)
        self.ckp.write_log(f'Loaded {len(loaded)}/{len(own)} tensors from {source}'
                           + ('; not loaded: ' + '; '.join(parts) if parts else ''))

    def _per_scale(self):
        return tuple(p + '.' for p in getattr(self.model, 'scale_modules', ()))

    def _mismatch(self, state, own):
        """What of `state` does not fit `own` (a list of report parts), and
        whether all of it lies in the per-scale modules."""
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        mismatch = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
                    for k in own if k in state and state[k].shape != own[k].shape]
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing ({_short(missing)})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected ({_short(unexpected)})')
        if mismatch:
            parts.append(f'{len(mismatch)} of other shape, checkpoint vs model ({_short(mismatch)})')
        per_scale = self._per_scale()
        names = missing + unexpected + [m.split(' ')[0] for m in mismatch]
        return parts, bool(per_scale) and all(n.startswith(per_scale) for n in names)

    def _check_body(self, loaded, total, source, flag):
        """A non-strict load that gives no tensor, or (--pre_train) no trainable
        tensor outside the per-scale modules (frozen MeanShift does not count),
        is an error: the run would use random weights. (--extend may add parts
        to weights that --pre_train gave.)"""
        per_scale = self._per_scale()
        body = {n for n, p in self.model.named_parameters() if p.requires_grad and not n.startswith(per_scale)}
        if not total or (loaded and (flag != '--pre_train' or not body or body & set(loaded))):
            return
        what = f'matches {len(loaded)}/{total} tensors of --model {self.args.model} with these flags'
        if loaded:
            what += f', none of its body (only {_short(loaded, 3)})'
        even = ', even with --pre_train_strict false' if flag == '--pre_train' else ''
        raise utility.SRLabError(f'{flag}: {source} {what}; refusing to run on random weights{even} '
                                 '(check --model and its size flags)')

    def _check_flags(self, saved, source, flag):
        """One warning line when an srlab checkpoint was saved with other values
        of the flags its network reads than this run has."""
        diff = [k for k in sorted(saved) if k in self.meta and k not in META_NOT_COMPARED
                and _plain(saved[k]) != self.meta[k]]
        if not diff:
            return
        note = ' (its outputs will be scaled wrongly)' if 'rgb_range' in diff else ''
        self.ckp.write_log(f'{flag}: {source} was saved with ' + ' '.join(_flag_text(k, saved[k]) for k in diff)
                           + ', this run has ' + ' '.join(_flag_text(k, self.meta[k]) for k in diff) + note)
