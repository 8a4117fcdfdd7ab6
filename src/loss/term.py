"""The contract of a loss term (Term), and what a run gives a term that trains
a network of its own (Training).

A term is one class in src/loss/, registered with @LOSSES.register('NAME')
and derived from Term. It takes plain keyword arguments (so create_loss builds
it from Python as the command line does) and declares its command-line flags
next to its constructor (loss/flags.py). term(sr, hr) gives a scalar tensor.

Loss calls every hook of every term; each has a default here that does
nothing: step_discriminator(fake, real) before the loss of each training batch
(the SR batch detached), commit() / reject() once the batch is taken /
skipped, start_log() and end_log() at the start / end of an epoch, display()
for the progress line, summary() for log.txt at an epoch's end, plot(apath)
for plots of its own. A method whose name is one letter or so away from a
hook's is refused when the class is defined: a misspelt hook would never run.
What a term must keep across --resume belongs in its state_dict.
"""
import difflib
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Callable

import torch
import torch.nn as nn

from distributed import World
from schedule import Schedule
from stepper import make_optimizer, make_scheduler

HOOKS = ('step_discriminator', 'commit', 'reject', 'start_log', 'end_log', 'display', 'summary', 'plot')


def near_misses(cls):
    """'method (hook)' for each method `cls` defines whose name is close to a hook's but is not one."""
    out = []
    for name, value in vars(cls).items():
        if callable(value) and not name.startswith('_') and name not in HOOKS and not hasattr(nn.Module, name):
            close = difflib.get_close_matches(name, HOOKS, n=1, cutoff=0.8)
            out += [f'{name} ({close[0]})'] if close else []
    return out


class Term(nn.Module):
    """A loss term: term(sr, hr) -> scalar tensor, with every hook's default."""
    flags = ()  # loss.flags.Flag per constructor argument the command line sets

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        wrong = near_misses(cls)
        if wrong:
            raise TypeError(f'{cls.__name__}: {", ".join(wrong)} looks like a misspelt hook, which would never '
                            f'run (the hooks: {", ".join(HOOKS)})')

    def __init__(self):  # a term without arguments of its own takes none
        super().__init__()

    @property
    def label(self):
        """The term's name in logs and plot files."""
        return type(self).__name__

    def forward(self, sr, hr):
        raise NotImplementedError(f'{self.label}.forward(sr, hr)')

    def step_discriminator(self, fake, real):
        """Before this batch's loss: train what the term trains, on the detached SR batch (tentative)."""

    def commit(self):
        """The batch was taken: what step_discriminator did stands."""

    def reject(self):
        """The batch was skipped: undo what step_discriminator did."""

    def start_log(self):
        """An epoch starts."""

    def end_log(self):
        """An epoch ends."""

    def display(self):
        """Text for the progress line ('' for none)."""
        return ''

    def summary(self):
        """A line for log.txt at the end of an epoch ('' for none)."""
        return ''

    def plot(self, apath):
        """Plots of the term's own into folder `apath`."""


# the command line's defaults of the optimizer flags (test_loss_contract checks them against option.py)
OPTIMIZER_DEFAULTS = SimpleNamespace(optimizer='ADAM', lr=1e-4, betas=(0.9, 0.999), epsilon=1e-8,
                                     weight_decay=0, momentum=0.9)


@dataclass(frozen=True)
class Training:
    """What a run gives a term that trains a network of its own (a GAN's
    discriminator), so that it is trained as the generator is:
    optimizer(params, optimizer=None, betas=None) and scheduler(optimizer)
    build its optimizer and schedule (from the run's flags: Training.from_args;
    from Python the defaults: Adam, lr 1e-4, a constant lr), `amp` its
    autocast and fp16 gradient scaler, `device`, and `world`, the torchrun
    ranks over which its gradients and whole-batch statistics are reduced."""
    optimizer: Callable = partial(make_optimizer, OPTIMIZER_DEFAULTS)
    scheduler: Callable = Schedule
    amp: str = 'off'
    device: torch.device = torch.device('cpu')
    world: World = World()

    @classmethod
    def from_args(cls, args, world=None):
        world = world or World()
        return cls(partial(make_optimizer, args), partial(make_scheduler, args), args.amp, world.device(args), world)
