"""Learning-rate schedules: the factor that multiplies --lr, as a function of
where the run stands, applied to an optimizer every iteration.

A schedule is one function registered by name (`--decay NAME`). It names the
arguments it uses among:
  p           the run's progress, 0 at the start of the schedule (after any
              warmup) and 1 at the run's end: its last step (--epochs), or
              --time_budget, whichever comes first (clock.Clock.progress)
  epoch       the epochs done, a float (iterations / iterations per epoch)
  gamma       --gamma
  milestones  the epochs of --decay 200-400 (empty for a named schedule)

    @SCHEDULES.register('exp')
    def exponential(p, gamma):
        return gamma ** (10 * p)

`--decay 200-400` is 'step' at those epochs (as EDSR-PyTorch's MultiStepLR);
`--warmup STEPS` puts a linear warmup before any schedule: the factor is
(i + 1) / STEPS for the i-th iteration (from 0), then the schedule runs with
its progress p measured from the warmup's end (0) to the run's end (1).

Schedule applies one to an optimizer: follow(position) after every iteration
sets the lr of the next one. A run whose end moves on resume (a larger
--epochs or --time_budget) goes on from the progress its schedule had reached:
the part of the curve still ahead is spread over what is left of the run
(resume()). The run's total can be any count of steps: progress is what the
Position says (Clock.progress: steps done / total steps, or the budget's
fraction).
"""
import inspect
import math
from dataclasses import dataclass

from registry import SCHEDULES

ARGUMENTS = ('p', 'epoch', 'gamma', 'milestones')  # what a schedule function may name


@SCHEDULES.register('step')
def step(epoch, milestones, gamma):
    """x gamma at each of the --decay epochs."""
    return gamma ** sum(1 for m in milestones if m <= epoch)


@SCHEDULES.register('cosine')
def cosine(p):
    """A half cosine from 1 to 0."""
    return (1 + math.cos(math.pi * p)) / 2


@SCHEDULES.register('linear')
def linear(p):
    """A straight line from 1 to 0."""
    return 1 - p


COOLDOWN = 0.2  # wsd: the last part of the schedule, where the lr decays


@SCHEDULES.register('wsd')
def warmup_stable_decay(p):
    """Warmup-stable-decay: --lr held over the first 1 - COOLDOWN of the run, then a (1 - sqrt) decay
    to 0 over the rest (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed
    Training Durations": a 20% (1 - sqrt) cooldown matches a cosine there; on the speedrun it tested 0.003
    to 0.028 dB below the cosine: README's ablation, row 20)."""
    left = min(max(1 - p, 0.0) / COOLDOWN, 1.0)  # of the decay
    return 1.0 if p < 1 - COOLDOWN else 1 - math.sqrt(1 - left)


def arguments(name):
    """The arguments the schedule `name` takes; ValueError for one outside ARGUMENTS."""
    fn = SCHEDULES.get(name)
    params = list(inspect.signature(fn).parameters)
    wrong = [a for a in params if a not in ARGUMENTS]
    if wrong:
        raise ValueError(f"schedule '{name}': unknown argument(s) {', '.join(wrong)} "
                         f"(a schedule takes some of {', '.join(ARGUMENTS)})")
    return params


def follows_progress(name):
    """True when schedule `name` reads the run's progress (so the run needs an end)."""
    return 'p' in arguments(name)


@dataclass(frozen=True)
class Position:
    """Where a run stands: `steps` iterations done, `steps_per_epoch` to an
    epoch, and its progress, 0..1 (clock.Clock.position gives it)."""
    steps: int
    steps_per_epoch: int = 1
    progress: float = 0.0

    @property
    def epochs(self):
        return self.steps / self.steps_per_epoch


class Schedule:
    """The lr of `optimizer`'s parameter groups: their lr when built (--lr)
    times the factor of schedule `name` (after `warmup` iterations of linear
    warmup). Part of the run state (state_dict), so a resumed run goes on
    exactly; the lr always comes from the flags of this session."""

    def __init__(self, optimizer, name='step', warmup=0, gamma=0.5, milestones=()):
        self.optimizer = optimizer
        self.name = SCHEDULES.canonical(name)
        self.body = SCHEDULES.get(name)
        self.takes = arguments(name)
        self.warmup, self.gamma, self.milestones = int(warmup), gamma, tuple(milestones)
        self.bases = [g['lr'] for g in optimizer.param_groups]
        self.anchor = None          # (run progress, schedule progress) that the schedule's p is measured from
        self.position = Position(0)
        self.last_epoch = 0         # epochs ended by end_epoch() (a stepper not advanced every iteration)
        self.follow(self.position)

    @classmethod
    def from_args(cls, args, optimizer):
        """--decay (a schedule's name, or epochs for 'step'), --gamma and --warmup."""
        name = args.decay if args.decay in SCHEDULES else 'step'
        return cls(optimizer, name, args.warmup, args.gamma, args.decay_epochs)

    # ---- the factor ---------------------------------------------------------
    def progress(self, run_progress):
        """The schedule's p at the run's progress: the run's own, or measured from the anchor."""
        if self.anchor is None:
            return run_progress
        r0, p0 = self.anchor
        if r0 >= 1:
            return p0
        return min(max(p0 + (1 - p0) * (run_progress - r0) / (1 - r0), 0.0), 1.0)

    def _body(self, p, epoch):
        given = {'p': p, 'epoch': epoch, 'gamma': self.gamma, 'milestones': self.milestones}
        return self.body(**{k: given[k] for k in self.takes})

    def factor(self, position):
        """What multiplies --lr in the iteration after `position`."""
        if position.steps < self.warmup:
            return (position.steps + 1) / self.warmup
        return self._body(self.progress(position.progress), position.epochs)

    def lr(self):
        return self.optimizer.param_groups[0]['lr']

    def _apply(self, factor):
        for group, base in zip(self.optimizer.param_groups, self.bases):
            group['lr'] = base * factor

    # ---- stepping -----------------------------------------------------------
    def follow(self, position):
        """After an iteration (and at the start): the lr of the next one.
        The warmup's end anchors the schedule's progress at 0."""
        if self.warmup and position.steps == self.warmup:
            self.anchor = (position.progress, 0.0)
        self.position = position
        self._apply(self.factor(position))

    def move_end(self, before, position):
        """The run's end moved at this step: it was at `before` and is at `position` (the same steps). The
        schedule goes on from its progress there, the rest of its curve spread over what is left of the
        run (a --steps auto run's second fit, or a resume with a larger --epochs or --time_budget).
        Returns the schedule's progress there (None for step decay, which keeps its epochs)."""
        p = None
        if position.steps >= self.warmup and 'p' in self.takes:
            p = self.progress(before.progress)
            self.anchor = (position.progress, p)
        self.follow(position)
        return p

    def resume(self, position):
        """A restored run continues at `position`. When its progress there is
        not what was saved (its end moved: --epochs or --time_budget changed),
        the schedule goes on from the progress it had reached, the rest of
        its curve spread over what is left. Returns a note for the log ('' when unchanged)."""
        saved = self.position
        if not (position.steps == saved.steps and position.progress != saved.progress):
            self.follow(position)
            return ''
        p = self.move_end(saved, position)
        if p is None:
            return ''
        return (f'; the run now ends elsewhere: the {self.name} schedule goes on from its progress {p:.3f} over '
                f'what is left of the run' if p < 1 else f'; the {self.name} schedule had reached its end (lr x '
                f'{self._body(1.0, position.epochs):g}) and stays there for the longer run')

    def end_epoch(self):
        """An epoch's end, for a stepper that is not advanced every iteration
        (the GAN discriminator's, stepped by its loss term): the schedule at
        the epochs ended, at progress 0 and without warmup (as EDSR-PyTorch
        steps it)."""
        self.last_epoch += 1
        self._apply(self._body(0.0, self.last_epoch))

    # ---- run state ----------------------------------------------------------
    def state_dict(self):
        pos = self.position
        return {'last_epoch': self.last_epoch, 'anchor': self.anchor,
                'position': (pos.steps, pos.steps_per_epoch, pos.progress)}

    def load_state_dict(self, st):
        """A saved schedule (or a torch scheduler's state of older runs: its
        epoch count); the lr is set anew from this session's flags."""
        self.last_epoch = st.get('last_epoch', 0)
        self.anchor = tuple(st['anchor']) if st.get('anchor') is not None else None
        if 'position' in st:
            self.position = Position(*st['position'])
        if self.last_epoch:
            self._apply(self._body(0.0, self.last_epoch))
        else:
            self._apply(self.factor(self.position))
