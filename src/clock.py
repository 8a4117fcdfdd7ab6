"""The run's training clock: the seconds spent training (steps and the wait
for their data; not tests, saves or the caching before the first step),
summed over the sessions of a run, the --time_budget they may use, the run's
total steps (--steps) and its progress (what a learning-rate schedule
follows, see schedule.py). A part of the run state ('train_seconds',
'total_steps'), so a resumed run goes on with what is left of its budget and
keeps its step count.

--steps auto fits the step count to the budget: it times the warmup's steps
from step FIT_FROM to the warmup's end W on this clock (data wait included),
then fixes N = W + rate x (budget left) x FIT_SAFETY, the same on every
torchrun rank. From then on the run is N steps: the schedule spans exactly
them (the warmup's factor does not depend on N), the budget no longer stops
the run, and `--steps N` replays it on any machine.
"""
import math
import time

from schedule import Position

FIT_FROM = 10        # --steps auto: the first step timed (the first steps warm the caches and allocators up)
FIT_SAFETY = 0.85    # of the budget left: a whole run's steps are slower than the warmup's. Measured on a 2-core
                     # AVX-512-BF16 AMD VM (speedrun, whole run / warmup): EDSR tails 6.28/6.64 and 6.25/6.52,
                     # lightweight tails 0.85, 0.89 and 0.94 natively, 0.85 under the AVX2 emulation (30.1 min of
                     # training); 0.93 overran the 30 min by 3, 0.98 by 1.1 before. Not a constant of the machine


class Clock:
    def __init__(self, budget_minutes=0, total_steps=None, world=None, device=None, steps_per_epoch=1, fit=None,
                 exact=False, log=print):
        """total_steps: the run's steps (None: unbounded, or fitted); exact: they are --steps N, the run's
        end whatever the budget; fit: the warmup's length W for --steps auto (None: no fitting); world
        (and the device of its collectives): under torchrun, all ranks agree on when the budget is spent
        and on the fitted count."""
        self.budget = budget_minutes * 60
        self.total_steps = total_steps
        self.fit = fit
        self.exact = exact or fit is not None
        self.steps_per_epoch = steps_per_epoch
        self.world, self.device, self.log = world, device, log
        self.seconds = 0.0
        self.steps = 0         # the steps done (the last tick's)
        self.fit_start = None  # (step, seconds) where --steps auto began timing
        self._t = None

    @classmethod
    def from_args(cls, args, steps_per_epoch, world, device, log=print):
        """The clock of --time_budget, --epochs and --steps (N, or auto: fitted to the budget over --warmup)."""
        n = steps_per_epoch
        if args.steps == 'auto':
            return cls(args.time_budget, None, world, device, n, fit=args.warmup, log=log)
        if args.steps:
            return cls(args.time_budget, int(args.steps), world, device, n, exact=True, log=log)
        return cls(args.time_budget, args.epochs * n if args.epochs < 1e8 else None, world, device, n, log=log)

    def summary(self):
        """What results.json keeps of the clock at a test: the training minutes, the steps done and the
        run's step count (None: not fixed)."""
        return {'train_minutes': self.seconds / 60, 'train_steps': self.steps,
                'total_steps': self.total_steps}

    def finished(self):
        """The run's training is over: its --steps are done or its budget is spent."""
        return self.stop(self.steps) != ''

    def start(self):
        """The training loop (re)starts: count from now."""
        self._t = time.perf_counter()

    def tick(self, steps_done=None):
        """After a step: add the time since the last tick (or start); with --steps auto, time the warmup
        and fix the run's step count at its end."""
        now = time.perf_counter()
        self.seconds += now - self._t
        self._t = now
        self.steps = self.steps if steps_done is None else steps_done
        if self.fit and self.total_steps is None and steps_done is not None:
            self._fit(steps_done)

    def _fit(self, steps_done):
        if steps_done == FIT_FROM:
            self.fit_start = (steps_done, self.seconds)
        if steps_done < self.fit or self.fit_start is None:
            return
        step0, seconds0 = self.fit_start
        rate = (steps_done - step0) / max(self.seconds - seconds0, 1e-9)
        if self.world is not None:
            rate = self.world.all_mean(rate, self.device)
        left = max(self.budget - self.seconds, 0.0)
        self.total_steps = steps_done + int(math.floor(rate * left * FIT_SAFETY))
        self.log(f'--steps auto: {rate:.3f} steps/s over steps {step0 + 1}-{steps_done} of the warmup; '
                 f'{self.total_steps} steps fit the {self.budget / 60:g} min budget (replay this run on any '
                 f'machine with --steps {self.total_steps})')

    def progress(self, steps_done):
        """How far the run is, 0..1: its steps, or its budget, whichever is further (a run of a fixed or
        fitted step count: its steps alone; 0 while --steps auto is still timing)."""
        if self.exact:
            return min(steps_done / self.total_steps, 1.0) if self.total_steps else 0.0
        p = [steps_done / self.total_steps] if self.total_steps else []
        p += [self.seconds / self.budget] if self.budget else []
        return min(max(p, default=0.0), 1.0)

    def position(self, steps_done):
        """Where the run stands after `steps_done` iterations (what a schedule follows)."""
        return Position(steps_done, self.steps_per_epoch, self.progress(steps_done))

    def stop(self, steps_done):
        """Why the run's training ends after `steps_done` steps ('' while it goes on): its step count, or
        its budget spent (on any rank: then on every rank, at the same step; not for --steps)."""
        if self.exact:
            done = self.total_steps and steps_done >= self.total_steps
            return f'--steps {self.total_steps} done ({self.describe()})' if done else ''
        if not self.budget:
            return ''
        over = float(self.seconds >= self.budget)
        spent = (self.world.all_sum([over], self.device)[0] if self.world is not None else over) > 0
        return f'--time_budget spent ({self.describe()})' if spent else ''

    def describe(self):
        minutes = f'{self.seconds / 60:.1f} min of training'
        return minutes + (f' of the {self.budget / 60:g} min budget' if self.budget else '')

    def state_dict(self):
        return {'train_seconds': self.seconds, 'train_steps': self.steps,
                'total_steps': self.total_steps if self.fit else None, 'fit_start': self.fit_start}

    def load_state_dict(self, st):
        self.seconds = st.get('train_seconds', 0.0)  # states saved before the clock: 0
        self.steps = st.get('train_steps', 0)
        if self.fit:
            self.total_steps, self.fit_start = st.get('total_steps'), st.get('fit_start')
