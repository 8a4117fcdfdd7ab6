"""Run state: the only code that reads or writes experiment/<save>/state.pt.

state.pt is one flat dict that holds everything a run needs to go on
exactly where it stopped. Each part of the run exposes state_dict() and
load_state_dict() over its own keys:
  model      'model' (the network's weights)
  stepper    'optimizer', 'scheduler', 'scaler', 'ema', 'skips_total',
             'scale_backoffs', 'loss_mean'
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
"""
import os
import random

import numpy as np
import torch

import utility

FILE = 'state.pt'


def holds_run(d):
    """True when experiment folder `d` holds what training saved (state, PSNR
    log or weights); a --test_only run leaves an empty model/ folder, which
    does not count."""
    if any(os.path.exists(os.path.join(d, f)) for f in (FILE, 'psnr_log.pt')):
        return True
    model_dir = os.path.join(d, 'model')
    return os.path.isdir(model_dir) and any(f.endswith('.pt') for f in os.listdir(model_dir))


class Keyed:
    """A part whose whole state_dict is stored under one key (the model)."""

    def __init__(self, key, part):
        self.key, self.part = key, part

    def state_dict(self):
        return {self.key: self.part.state_dict()}

    def load_state_dict(self, st):
        self.part.load_state_dict(st[self.key])


class RNG:
    """The random number generators of this process."""

    def state_dict(self):
        return {'rng': {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(), 'python': random.getstate(),
                        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}

    def load_state_dict(self, st):
        rng = st['rng']
        torch.set_rng_state(rng['torch'])
        np.random.set_state(rng['numpy'])
        random.setstate(rng['python'])
        if rng['cuda'] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng['cuda'])


class RunState:
    """The parts of a run, saved to and loaded from `<directory>/state.pt`.
    Parts are loaded in the order given (the model before the stepper, whose
    EMA may start from the loaded weights; RNG last)."""

    def __init__(self, directory, parts):
        self.path = os.path.join(directory, FILE)
        self.parts = list(parts)

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
        utility.check_finite(st['model'], os.path.dirname(self.path))
        export()
        utility.atomic_save(st, self.path)

    def exists(self):
        return os.path.exists(self.path)

    def load(self):
        """Restore every part from state.pt; the dict read, for the caller's log."""
        try:
            st = torch.load(self.path, map_location='cpu', weights_only=False)
        except Exception as e:
            raise utility.SRLabError(f'--resume -1: {self.path} is not readable ({utility.error_text(e)})')
        for part in self.parts:
            part.load_state_dict(st)
        return st
