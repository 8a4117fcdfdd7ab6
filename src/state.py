"""Run state: the only code that reads or writes experiment/<save>/state.pt.

state.pt is one flat dict that holds everything a run needs to go on
exactly where it stopped. Each part of the run exposes state_dict() and
load_state_dict() over its own keys:
  model      'model' (the network's weights)
  stepper    'optimizer', 'scheduler', 'scaler', 'ema', 'ema_updates',
             'skips_total', 'scale_backoffs', 'loss_mean'
  loss       'loss' (terms, a GAN discriminator and its optimizer), 'loss_log'
  evaluator  'psnr_log', 'best', 'bicubic', 'results'
  trainer    'epoch', 'start_batch' (the sampler's position), 'tested'
  RNG        'rng' (torch, numpy, python, cuda)

Write order of a save (rank 0 only): first the exported files, for people
and EDSR-PyTorch tools (model/model_latest.pt, model_latest_ema.pt,
model_best.pt, model_<epoch>.pt, loss.pt, loss_log.pt, plots, results.json,
psnr_log.pt), then state.pt, last. Every file is written atomically (temp
file, fsync, rename). A position of the run (an epoch, or the step an
interrupted run reached) is committed when its state.pt is in place.

Resume (`--load <save> --resume -1`) reads state.pt and nothing else: the
exported files are never read back, so a save killed half-way leaves the
last committed state in force, and a run without state.pt starts afresh.

The previous committed state is kept as state.pt.prev: each save writes the
new state.pt to a temp file, fsyncs it, renames the old state.pt to
state.pt.prev, then renames the new one into place. Each holds a 'checksum'
of its content. A state.pt that is missing (killed between the two
renames), unreadable or fails its checksum is replaced on resume by
state.pt.prev, with a warning; when both are damaged the resume stops.

state.pt also records the flags ('flags'); a resume whose data-defining
flags (IDENTITY) or network flags (those its weights record) differ is
refused, other changes are logged.
"""
import hashlib
import os
import random

import numpy as np
import torch

import atomic
from errors import SRLabError, error_text
from model.flags import flag_text, same

FILE = 'state.pt'
PREV = FILE + '.prev'

# flags that define the data, the loss and the optimizer: a resume must keep them, and the
# network's own (what its weights record, model.flags.recorded)
IDENTITY = ('data_train', 'data_range', 'patch_size', 'lr_patch', 'batch_size', 'no_augment', 'augment_scales', 'degradation',
            'imresize_border', 'blur_sigma', 'noise_level', 'loss', 'gan_arch', 'optimizer', 'seed')
# flags that never count as a change (how this session was started)
SESSION = ('argv', 'load', 'save', 'resume', 'reset', 'template', 'test_only', 'pre_train', 'extend')


def non_finite(weights):
    """Keys of a state_dict whose floating-point tensors hold NaN or inf."""
    return [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]


def check_finite(weights, apath, context=''):
    """Stop before weights holding NaN or inf are saved over the last good state in `apath`."""
    bad = non_finite(weights)
    if bad:
        raise SRLabError(f'weights became non-finite ({bad[0]}){context}; not saving them over the last good '
                         f'state in {apath}')


class Keyed:
    """A part whose whole state_dict is stored under one key (the model)."""

    def __init__(self, key, part):
        self.key, self.part = key, part

    def state_dict(self):
        return {self.key: self.part.state_dict()}

    def load_state_dict(self, st):
        self.part.load_state_dict(st[self.key])


class RNG:
    """The random number generators of this process, stored as tensors and
    plain types (state.pt loads with weights_only=True)."""

    def state_dict(self):
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        return {'rng': {'torch': torch.get_rng_state(),
                        'numpy': {'name': name, 'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos),
                                  'has_gauss': int(has_gauss), 'gauss': float(gauss)},
                        'python': random.getstate(),
                        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}

    def load_state_dict(self, st):
        rng = st['rng']
        torch.set_rng_state(rng['torch'])
        n = rng['numpy']
        if isinstance(n, dict):
            n = (n['name'], n['keys'].numpy().astype(np.uint32), n['pos'], n['has_gauss'], n['gauss'])
        np.random.set_state(n)  # (a tuple holding an array in states saved before)
        random.setstate(rng['python'])
        if rng['cuda'] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng['cuda'])


class Flags:
    """The run's flags ('flags'). On resume, a difference in IDENTITY or in
    `network` (the flags the network's weights record) stops with one line
    listing each (saved -> given); other changes are logged. Flags this run
    does not set (None: another network's) are not compared."""

    def __init__(self, args, log, network=()):
        self.args, self.log = args, log
        self.identity = set(IDENTITY) | set(network)

    def state_dict(self):
        return {'flags': self.args.flags()}

    def load_state_dict(self, st):
        saved = st.get('flags')  # states written before flags were recorded have none
        if saved is None:
            return
        wrong, changed = compare_flags(saved, self.args.flags(), self.identity)
        if wrong:
            raise SRLabError(another_run(self.args.load, wrong))
        if changed:
            self.log(f'Changed since the saved session: {"; ".join(changed)}')


def compare_flags(saved, given, identity):
    """(refused, changed): '--flag saved -> given' for each flag of `identity`
    that differs, and for each other flag that differs. Flags this run does not
    set (None: another network's) and flags newer than the saved run are not
    compared."""
    keys = [k for k in sorted(saved, key=str.lower)
            if k not in SESSION and given.get(k) is not None and not same(saved[k], given[k])]
    text = {k: f'--{k} {flag_text(saved[k])} -> {flag_text(given[k])}' for k in keys}
    return [t for k, t in text.items() if k in identity], [t for k, t in text.items() if k not in identity]


def another_run(load, wrong):
    """The refusal of a resume whose identity flags differ."""
    return (f'--resume -1: experiment/{load} is another run ({"; ".join(wrong)}); resume with its flags, or start a '
            f'new run from its weights with --pre_train experiment/{load}/model/model_latest.pt')


def checksum(obj, h=None):
    """SHA-256 of a state's content (tensors by their bytes), independent of how it was pickled."""
    h = h or hashlib.sha256()
    if torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        h.update(f'T{t.dtype}{tuple(t.shape)}'.encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(f'A{obj.dtype}{obj.shape}'.encode() + np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, dict):
        h.update(f'D{len(obj)}'.encode())
        for k, v in obj.items():
            h.update(repr(k).encode())
            checksum(v, h)
    elif isinstance(obj, (list, tuple)):
        h.update(f'{type(obj).__name__}{len(obj)}'.encode())
        for v in obj:
            checksum(v, h)
    else:
        h.update(f'{type(obj).__name__}:{obj!r}'.encode())
    return h.hexdigest()


# what states saved before RNG states were plain types hold besides them: the
# numpy array of np.random.get_state() (rebuilding an array runs no code of the file's)
LEGACY = [np.ndarray, np.dtype, type(np.dtype(np.uint32)),
          getattr(np, '_core', getattr(np, 'core', None)).multiarray._reconstruct]


class Damaged(Exception):
    """A state file that is missing, unreadable or fails its checksum."""


def read(path):
    """The state dict in `path`, its checksum verified; Damaged otherwise."""
    name = os.path.basename(path)
    if not os.path.exists(path):
        raise Damaged(f'{name} is missing')
    try:
        with torch.serialization.safe_globals(LEGACY):
            st = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise Damaged(f'{name} is not readable ({error_text(e)})')
    if not isinstance(st, dict):
        raise Damaged(f'{name} holds no run state')
    want = st.pop('checksum', None)
    if want is not None and checksum(st) != want:
        raise Damaged(f'{name} fails its checksum')
    return st


def run_flags(directory):
    """The flags saved with the run in `directory` (state.pt, else
    state.pt.prev), read without loading its tensors (memory-mapped, no
    checksum: the resume itself checks it); {} when neither is readable."""
    for name in (FILE, PREV):
        try:
            with torch.serialization.safe_globals(LEGACY):
                st = torch.load(os.path.join(directory, name), map_location='cpu', weights_only=True, mmap=True)
        except Exception:
            continue
        if isinstance(st, dict) and isinstance(st.get('flags'), dict):
            return st['flags']
    return {}


class RunState:
    """The parts of a run, saved to and loaded from `<directory>/state.pt`.
    Parts are loaded in the order given (the model before the stepper, whose
    EMA may start from the loaded weights; RNG last)."""

    def __init__(self, directory, parts, log=print):
        self.path = os.path.join(directory, FILE)
        self.prev = os.path.join(directory, PREV)
        self.parts = list(parts)
        self.log = log

    def state_dict(self):
        out = {}
        for part in self.parts:
            st = part.state_dict()
            clash = set(st) & set(out)
            if clash:
                raise KeyError(f'state.pt keys used by two parts: {sorted(clash)}')
            out.update(st)
        return out

    def save(self, export):
        """Commit: `export()` writes the exported files, then state.pt. Weights
        holding NaN or inf are never saved over the last good state."""
        st = self.state_dict()
        check_finite(st['model'], os.path.dirname(self.path))
        export()
        st['checksum'] = checksum(st)
        atomic.atomic_save(st, self.path, before_replace=self._keep_previous)

    def _keep_previous(self):
        if os.path.exists(self.path):
            os.replace(self.path, self.prev)

    def exists(self):
        return os.path.exists(self.path) or os.path.exists(self.prev)

    def load(self):
        """Restore every part from state.pt (or state.pt.prev, see above); the path read."""
        try:
            st, path = read(self.path), self.path
        except Damaged as e:
            st, path = self._fallback(e), self.prev
        for part in self.parts:
            part.load_state_dict(st)
        return path

    def _fallback(self, damage):
        try:
            st = read(self.prev)
        except Damaged as e:
            raise SRLabError(f'--resume -1: {damage} and {e} in {os.path.dirname(self.path)}; '
                                     'no complete state is left to resume from') from None
        where = f'epoch {st["epoch"] + 1}' + (f', batch {st["start_batch"]}' if st['start_batch'] else '')
        if os.path.exists(self.path):
            self.log(f'warning: --resume -1: {damage}; resuming from the previous state {PREV} at {where}: '
                     'the training done after it (up to one epoch) is lost')
        else:  # killed between the two renames of a save: that save was never committed
            self.log(f'--resume -1: {damage}; the last committed state is {PREV} ({where})')
        return st
