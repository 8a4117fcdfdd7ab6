"""Loss: a weighted sum of terms, from --loss ('1*L1+0.5*MSE') or from Python:

    from loss import create_loss
    loss = create_loss('1*L1+0.1*RGAN', patch_size=96, gan_arch='patch')
    value = loss(sr, hr)

A term is one class in src/loss/, derived from loss.Term (loss/term.py: its
hooks, each with a default, which the sum calls for every term) and
registered with @LOSSES.register(NAME) (src/registry.py). It takes plain
keyword arguments and declares its flags (loss/flags.py), as a network does;
a term that trains a network of its own (a GAN's discriminator) also takes
`training` (loss.term.Training). Per-term values are logged per epoch
(loss_log.pt) and plotted (loss_<term>.pdf/.png). A batch's values enter the
log when it is computed; the trainer then commits the batch or rejects it (a
skipped batch), which takes them out.

A term may hold for part of the run only: '1*L1[:0.8]+0.1*MSE[0.8:]' trains
with L1 until 80% of the run (its progress, as the lr schedule measures it:
steps done / total steps, or the --time_budget's fraction) and with MSE from
there to the end. A window is [start:end) of the progress, 0..1 (the last
reaches 1); some term must hold at every point of the run. Outside its window a
term is neither computed nor steps its discriminator, and adds 0 to its log.
"""
import os
import re

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import atomic
from errors import SRLabError, did_you_mean
from loss.flags import parameters, term_kwargs
from loss.term import Term, Training
from metrics import Y_WEIGHTS
from plot import save_plot
from registry import LOSSES

__all__ = ['Loss', 'LossSum', 'LossState', 'Term', 'Training', 'create_loss', 'parse_loss']


@LOSSES.register('L1')
class L1(Term):
    """Mean absolute error."""

    def forward(self, sr, hr):
        return F.l1_loss(sr, hr)


@LOSSES.register('MSE')
class MSE(Term):
    """Mean squared error."""

    def forward(self, sr, hr):
        return F.mse_loss(sr, hr)


@LOSSES.register('PSNR')
class PSNR(Term):
    """The batch's PSNR deficit from 100 dB: 100 + 10 log10((MSE + eps) / rgb_range^2), eps =
    rgb_range^2 x 1e-10, so the value is never negative. Its gradient is MSE's over the batch's MSE
    (x 10 / ln 10): every batch counts the same in dB whatever the size of its errors, where under MSE a batch
    with large errors (an x4 batch) outweighs one with small (x2). Taken over the whole batch, not per
    image as NAFNet's PSNRLoss, so that a flat patch's tiny error does not dominate its batch."""

    def __init__(self, rgb_range=255):
        super().__init__()
        self.peak2 = float(rgb_range) ** 2

    def forward(self, sr, hr):
        mse = F.mse_loss(sr.float(), hr.float())
        return 100 + 10 * torch.log10((mse + self.peak2 * 1e-10) / self.peak2)


@LOSSES.register('YMSE')
class YMSE(Term):
    """Mean squared error of the luma that the benchmarks score (metrics.rgb_to_y's BT.601 Y, in the
    images' own range; the offset 16 cancels). A one-channel image is its own luma. An
    error that keeps Y (a shift of colour alone) costs nothing, so pair it with a small RGB term."""

    def forward(self, sr, hr):
        diff = sr.float() - hr.float()
        if diff.shape[1] == 3:
            diff = torch.tensordot(diff.new_tensor(Y_WEIGHTS) / 255, diff, dims=([0], [1]))
        return diff.pow(2).mean()


TERM = re.compile(r'\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*\*\s*([A-Za-z][A-Za-z0-9_]*)\s*'
                  r'(?:\[\s*([0-9]*\.?[0-9]*)\s*:\s*([0-9]*\.?[0-9]*)\s*\])?\s*')
WHOLE = (0.0, 1.0)  # a term's window when it gives none: the whole run


def parse_loss(text):
    """'1*L1[:0.8]+0.5*mse[0.8:]' -> [(1.0, 'L1', (0.0, 0.8)), (0.5, 'MSE', (0.8, 1.0))] (names as
    registered; a term without [start:end] holds for the whole run); ValueError naming --loss."""
    out = []
    for part in str(text).split('+'):
        m = TERM.fullmatch(part)
        if not m:
            raise ValueError(f"--loss: '{part}' in '{text}' is not of the form <weight>*<term> or "
                             f"<weight>*<term>[<start>:<end>], e.g. 1*L1 or 1*L1[:0.8]")
        w, name = float(m.group(1)), LOSSES.canonical(m.group(2)) or m.group(2)
        if name not in LOSSES:
            raise ValueError(f"--loss: unknown term '{name}' (known: {', '.join(LOSSES.names())})"
                             + did_you_mean(name, LOSSES.names()))
        if w <= 0:
            raise ValueError(f"--loss: weight of '{name}' must be positive, got {w}")
        out.append((w, name, window(m.group(3), m.group(4), part.strip())))
    check_cover([win for _, _, win in out], text)
    return out


def window(start, end, part):
    """The progress window [start, end) of term text `part` ('' or None: the run's start / end)."""
    try:
        win = (float(start) if start else 0.0, float(end) if end else 1.0)
    except ValueError:
        raise ValueError(f"--loss: '{part}': the window's ends must be numbers between 0 and 1") from None
    if not 0 <= win[0] < win[1] <= 1:
        raise ValueError(f"--loss: '{part}': the window [start:end] needs 0 <= start < end <= 1, got {win}")
    return win


def check_cover(windows, text):
    """ValueError when some part of the run (progress 0..1) has no term of --loss `text`."""
    reached = 0.0
    for a, b in sorted(windows):
        if a > reached:
            break
        reached = max(reached, b)
    if reached < 1:
        gap_end = min([a for a, _ in windows if a > reached], default=1.0)
        raise ValueError(f"--loss: no term of '{text}' holds between progress {reached:g} and {gap_end:g}")


def active(win, progress):
    """Whether a term of window `win` holds at `progress` (the last window includes the run's end)."""
    return win[0] <= progress < win[1] or progress >= win[1] == 1


def make_term(name, kwargs, training):
    """Term `name` built with `kwargs`, and `training` when its constructor takes it."""
    cls = LOSSES.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Term)):
        raise TypeError(f'loss term {name}: {cls!r} does not derive from loss.Term (loss/term.py)')
    if 'training' in parameters(cls):
        kwargs = {**kwargs, 'training': training}
    return cls(**kwargs)


def create_loss(spec, training=None, log=None, **kwargs):
    """The weighted sum `spec` ('1*L1+0.1*RGAN') built from Python. Each
    keyword argument goes to the terms whose constructors take it (their
    flags: gan_arch, gan_k, eps ...; n_colors, rgb_range, patch_size);
    one that no term takes is a TypeError. `training`: how a discriminator is
    trained (loss.term.Training; default Adam at lr 1e-4, fp32, on the CPU,
    one process). `log`: a function like checkpoint.write_log(text, quiet)."""
    terms = parse_loss(spec)
    takes = {name: parameters(LOSSES.get(name)) for _, name, _ in terms}
    unused = sorted(k for k in kwargs if not any(k in t for t in takes.values()))
    if unused:
        raise TypeError(f"create_loss: no term of '{spec}' takes {', '.join(unused)}")
    training = training or Training()
    built = [(w, name, make_term(name, {k: v for k, v in kwargs.items() if k in takes[name]}, training))
             for w, name, _ in terms]
    return LossSum(built, log, training.device, [win for _, _, win in terms])


class LossSum(nn.Module):
    """The weighted sum of `terms`, [(weight, name, Term)], on `device`, with
    its per-epoch log; `log` (a function like checkpoint.write_log) gets the
    terms and their summaries. `windows`: each term's (start, end) of the
    run's progress (default: the whole run); advance(position) moves it on."""

    def __init__(self, terms, log=None, device=None, windows=None):
        super().__init__()
        windows = windows or [WHOLE] * len(terms)
        self.loss = [{'type': name, 'weight': w, 'function': term, 'window': win}
                     for (w, name, term), win in zip(terms, windows)]
        self.loss_module = nn.ModuleList([term for _, _, term in terms])
        self.write_log = log
        for item in self.loss:
            win = item['window']
            self._write(f"{item['weight']:.3f} * {item['type']}"
                        + (f' (progress {win[0]:g} to {win[1]:g})' if win != WHOLE else ''), quiet=True)
        if len(self.loss) > 1:
            self.loss.append({'type': 'Total', 'weight': 0, 'function': None})
        if device is not None:
            self.loss_module.to(device)
        self.log = torch.Tensor()
        self.before = None  # the epoch row before the last batch (reject() restores it)
        self.progress = 0.0  # where the run stands (0..1): which terms hold

    def advance(self, position):
        """The run has reached `position` (schedule.Position): the terms of its progress hold from now on."""
        self.progress = position.progress

    def first_change(self):
        """The progress where the terms that hold first change: a window's start or end (1 when none)."""
        ends = [e for item in self.loss if 'window' in item for e in item['window'] if 0 < e < 1]
        return min(ends, default=1.0)

    def holding(self):
        """(index, item) of each term that holds at the current progress."""
        return [(i, item) for i, item in enumerate(self.loss)
                if item['function'] is not None and active(item['window'], self.progress)]

    def _write(self, text, quiet=False):
        if self.write_log is not None and text:
            self.write_log(text, quiet=quiet)

    def forward(self, sr, hr):
        """The weighted sum; in training (after start_log) its values enter this epoch's log."""
        logged = len(self.log) > 0
        self.before = self.log[-1].clone() if logged else None
        losses = []
        for i, item in self.holding():
            v = item['weight'] * item['function'](sr, hr)
            losses.append(v)
            if logged:
                self.log[-1, i] += v.item()
        total = sum(losses)
        if logged and len(self.loss) > 1:
            self.log[-1, -1] += total.item()
        return total

    def step_discriminators(self, sr, hr):
        """The terms' discriminator steps on the SR batch (detached here),
        tentative until commit() or reject()."""
        for _, item in self.holding():
            item['function'].step_discriminator(sr.detach(), hr)

    def commit(self):
        """The last batch was used: its values stay in the log, the discriminators' steps stand."""
        self.before = None
        for term in self.loss_module:
            term.commit()

    def reject(self):
        """The last batch was skipped: its values leave the log, the discriminators' steps are undone."""
        if self.before is not None:
            self.log[-1] = self.before
            self.before = None
        for term in self.loss_module:
            term.reject()

    def start_log(self):
        self.log = torch.cat((self.log, torch.zeros(1, len(self.loss))))
        for term in self.loss_module:
            term.start_log()

    def end_log(self, n_batches, world=None, device=None):
        """The epoch's mean per term (over torchrun ranks too, given their World)."""
        if n_batches > 0:
            self.log[-1].div_(n_batches)
        if world is not None:
            self.reduce(world, device)
        for term in self.loss_module:
            term.end_log()
            self._write(term.summary())

    def reduce(self, world, device):
        """Under torchrun the epoch's logged values become their mean over ranks."""
        if world.distributed:
            self.log[-1] = torch.tensor(world.all_sum(self.log[-1].tolist(), device)) / world.world_size

    def epoch_values(self):
        """{'loss/<term>': mean of the current epoch} (TensorBoard)."""
        return {f"loss/{item['type']}": v.item() for item, v in zip(self.loss, self.log[-1])}

    def last_values(self):
        return self.log[-1].clone()

    def display_loss(self, batch):
        n = batch + 1
        return ''.join([f"[{item['type']}: {c / n:.4f}]" for item, c in zip(self.loss, self.log[-1])]
                       + [term.display() for term in self.loss_module])

    def plot_loss(self, apath, epoch):
        """loss_<term>.pdf/.png: each term's mean per epoch (and the terms' own plots)."""
        if len(self.log) == 0:
            return
        axis = np.arange(1, len(self.log) + 1)
        for i, item in enumerate(self.loss):
            lines = {item['type']: (axis, self.log[:, i].numpy())}
            save_plot(os.path.join(apath, f"loss_{item['type']}"), [('Loss', lines, {})], f"{item['type']} Loss")
        for term in self.loss_module:
            term.plot(apath)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except (RuntimeError, ValueError, KeyError) as e:
            detail = ' '.join(str(e).split())[:300]
            raise SRLabError(f'the saved loss state does not fit this --loss/--gan_arch (to train a saved '
                             f'model with another loss, start a new run with --pre_train): {detail}') from e

    def export(self, apath, epoch):
        """loss.pt, loss_log.pt and the plots (part of a save, see state.py)."""
        self.save(apath)
        self.plot_loss(apath, epoch)

    def save(self, apath):
        """loss.pt and loss_log.pt."""
        atomic.atomic_save(self.state_dict(), os.path.join(apath, 'loss.pt'))
        atomic.atomic_save(self.log, os.path.join(apath, 'loss_log.pt'))


class Loss(LossSum):
    """The --loss of a run: its terms built from the run's flags
    (loss/flags.py), a discriminator trained as the generator is
    (Training.from_args: the optimizer flags, --amp, the device and, given
    the run's World, the torchrun ranks)."""

    def __init__(self, args, ckp, world=None):
        training = Training.from_args(args, world)
        spec = parse_loss(args.loss)
        terms = [(w, name, make_term(name, term_kwargs(name, args), training)) for w, name, _ in spec]
        super().__init__(terms, ckp.write_log if ckp is not None else None, training.device,
                         [win for _, _, win in spec])


class LossState:
    """The run-state part of a Loss: its terms ('loss') and its log ('loss_log')."""

    def __init__(self, loss):
        self.loss = loss

    def state_dict(self):
        return {'loss': self.loss.state_dict(), 'loss_log': self.loss.log}

    def load_state_dict(self, st):
        self.loss.load_state_dict(st['loss'])
        self.loss.log = st['loss_log']
