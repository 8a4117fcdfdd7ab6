"""Loss: a weighted sum of terms parsed from --loss ('1*L1+0.5*MSE').

A term is one class registered with @LOSSES.register(NAME) (src/registry.py):
built as cls(args, name), called as term(sr, hr) -> scalar tensor. Per-term
values are logged per epoch (loss_log.pt) and plotted (loss_<term>.pdf/.png).
A batch's values enter the log when it is computed; the trainer then
commits the batch or rejects it (a skipped batch), which takes them out.

Optional hooks a term may define (the adversarial terms do):
step_discriminator(sr, hr) before the loss of each training batch (the SR
batch detached), commit() / reject() once the batch is taken / skipped,
start_log() and end_log() at the start/end of an epoch, display() -> str for
the progress line, summary() -> str for log.txt at the end of an epoch,
plot(apath) for extra plots. What a term must keep across --resume belongs in its own
state_dict (e.g. get_extra_state/set_extra_state).
"""
import os
import re

import numpy as np
import torch
import torch.nn as nn

import atomic
from errors import SRLabError
from plot import save_plot
from registry import LOSSES


@LOSSES.register('L1')
class L1(nn.L1Loss):
    def __init__(self, args, name):
        super().__init__()


@LOSSES.register('MSE')
class MSE(nn.MSELoss):
    def __init__(self, args, name):
        super().__init__()


def parse_loss(text):
    """'1*L1+0.5*MSE' -> [(1.0, 'L1'), (0.5, 'MSE')]; ValueError naming --loss."""
    out = []
    for part in str(text).split('+'):
        m = re.fullmatch(r'\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*\*\s*([A-Za-z][A-Za-z0-9_]*)\s*', part)
        if not m:
            raise ValueError(f"--loss: '{part}' in '{text}' is not of the form <weight>*<term>, e.g. 1*L1")
        w, name = float(m.group(1)), m.group(2)
        if LOSSES.canonical(name) != name:
            raise ValueError(f"--loss: unknown term '{name}' (known: {', '.join(LOSSES.names())})")
        if w <= 0:
            raise ValueError(f"--loss: weight of '{name}' must be positive, got {w}")
        out.append((w, name))
    return out


class Loss(nn.Module):
    def __init__(self, args, ckp):
        super().__init__()
        self.loss = []
        self.loss_module = nn.ModuleList()
        for weight, name in parse_loss(args.loss):
            fn = LOSSES.get(name)(args, name)
            self.loss.append({'type': name, 'weight': weight, 'function': fn})
            self.loss_module.append(fn)
        if len(self.loss) > 1:
            self.loss.append({'type': 'Total', 'weight': 0, 'function': None})
        for item in self.loss:
            if item['function'] is not None:
                ckp.write_log(f"{item['weight']:.3f} * {item['type']}", quiet=True)
        device = torch.device('cpu' if args.cpu or not torch.cuda.is_available() else 'cuda')
        self.loss_module.to(device)
        self.log = torch.Tensor()
        self.before = None  # the epoch row before the last batch (reject() restores it)
        self.ckp = ckp

    def forward(self, sr, hr):
        self.before = self.log[-1].clone() if len(self.log) else None
        losses = []
        for i, item in enumerate(self.loss):
            if item['function'] is not None:
                v = item['weight'] * item['function'](sr, hr)
                losses.append(v)
                self.log[-1, i] += v.item()
        total = sum(losses)
        if len(self.loss) > 1:
            self.log[-1, -1] += total.item()
        return total

    def hooks(self, name):
        return [getattr(fn, name) for fn in self.loss_module if hasattr(fn, name)]

    def step_discriminators(self, sr, hr):
        """The discriminator steps of the adversarial terms on the SR batch
        (detached here), tentative until commit() or reject()."""
        for hook in self.hooks('step_discriminator'):
            hook(sr.detach(), hr)

    def commit(self):
        """The last batch was used: its values stay in the log, the discriminators' steps stand."""
        self.before = None
        for hook in self.hooks('commit'):
            hook()

    def reject(self):
        """The last batch was skipped: its values leave the log, the discriminators' steps are undone."""
        if self.before is not None:
            self.log[-1] = self.before
            self.before = None
        for hook in self.hooks('reject'):
            hook()

    def start_log(self):
        self.log = torch.cat((self.log, torch.zeros(1, len(self.loss))))
        for hook in self.hooks('start_log'):
            hook()

    def end_log(self, n_batches, world=None, device=None):
        """The epoch's mean per term (over torchrun ranks too, given their World)."""
        if n_batches > 0:
            self.log[-1].div_(n_batches)
        if world is not None:
            self.reduce(world, device)
        for hook in self.hooks('end_log'):
            hook()
        for hook in self.hooks('summary'):
            if self.ckp is not None:
                self.ckp.write_log(hook())

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
                       + [hook() for hook in self.hooks('display')])

    def plot_loss(self, apath, epoch):
        """loss_<term>.pdf/.png: each term's mean per epoch (and the terms' own plots)."""
        if len(self.log) == 0:
            return
        axis = np.arange(1, len(self.log) + 1)
        for i, item in enumerate(self.loss):
            lines = {item['type']: (axis, self.log[:, i].numpy())}
            save_plot(os.path.join(apath, f"loss_{item['type']}"), [('Loss', lines, {})], f"{item['type']} Loss")
        for hook in self.hooks('plot'):
            hook(apath)

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


class LossState:
    """The run-state part of a Loss: its terms ('loss') and its log ('loss_log')."""

    def __init__(self, loss):
        self.loss = loss

    def state_dict(self):
        return {'loss': self.loss.state_dict(), 'loss_log': self.loss.log}

    def load_state_dict(self, st):
        self.loss.load_state_dict(st['loss'])
        self.loss.log = st['loss_log']
