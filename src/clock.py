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

A warmup's rate is a short sample (a whole run's steps were 0.85-0.94 times
as fast on one machine), so the count is fitted once more later in the run,
at step S = REFIT_AT x F x N (F: where the loss first changes its terms, 1
when it never does), from the rate of the steps since S / 2, to N2 = S +
rate x (the budget left) x REFIT_SAFETY (at least S / F + 1, so that S
stays before F). The schedule goes on from where it is at S, the rest of
its curve spread over the steps to N2 (Schedule.move_end; a cosine bends
there and stays continuous). The log, the run state and results.json
('steps') give the run as `--steps N:N2`, which replays it exactly: N steps
until S, then N2.
"""
import math
import time

from schedule import Position

FIT_FROM = 10        # --steps auto: the first step timed (the first steps warm the caches and allocators up)
FIT_SAFETY = 0.85    # of the budget left, for the first count: a whole run's steps can be slower than the warmup's,
                     # and the second fit can take at most 10% off it (S / F + 1 = 0.9 N). Measured on a 2-core
                     # AVX-512-BF16 AMD VM (speedrun, whole run / warmup): EDSR tails 6.28/6.64 and 6.25/6.52,
                     # lightweight tails 0.85, 0.89, 0.94, 1.07, 1.08, 1.10 natively, 0.85, 1.07 and 1.15 under
                     # the AVX2 emulation
REFIT_AT = 0.9       # of the part of the run before the loss changes its terms: where the count is fitted again
REFIT_SAFETY = 0.93  # of the budget left then. The rate of a run's steps after the second fit against the rate it
                     # measured (2-core AMD VM, per-100-step times of 30-minute speedruns): 1.025, 0.986, 1.019,
                     # 0.967, 0.996, 0.954, 0.993, 0.948 natively, 1.042, 1.035, 0.996 under the AVX2 emulation;
                     # at 0.96 the 0.954 run ended 6.4 s past its 30 min budget, at 0.93 the 0.993 run 50 s and
                     # the 0.948 run 15 s inside it


class Clock:
    def __init__(self, budget_minutes=0, total_steps=None, world=None, device=None, steps_per_epoch=1, fit=None,
                 exact=False, refit_to=None, log=print):
        """total_steps: the run's steps (None: unbounded, or fitted); exact: they are --steps N, the run's
        end whatever the budget; fit: the warmup's length W for --steps auto (None: no fitting); refit_to:
        the second count of --steps N:N2 (a replay); world (and the device of its collectives): under
        torchrun, all ranks agree on when the budget is spent and on the fitted counts."""
        self.budget = budget_minutes * 60
        self.total_steps = total_steps
        self.fit, self.refit_to = fit, refit_to
        self.exact = exact or fit is not None
        self.steps_per_epoch = steps_per_epoch
        self.world, self.device, self.log = world, device, log
        self.seconds = 0.0
        self.steps = 0           # the steps done (the last tick's)
        self.fit_start = None    # (step, seconds) where --steps auto began timing
        self.free = 1.0          # the progress up to which the loss keeps its terms (loss_changes_at)
        self.first_steps = total_steps if refit_to else None  # N while a second fit is to come or was made
        self.refitted = False
        self.refit_start = None  # (step, seconds) where the second fit's timing began
        self._t = None

    @classmethod
    def from_args(cls, args, steps_per_epoch, world, device, log=print):
        """The clock of --time_budget, --epochs and --steps (N, N:N2, or auto: fitted to the budget)."""
        n = steps_per_epoch
        if args.steps == 'auto':
            return cls(args.time_budget, None, world, device, n, fit=args.warmup, log=log)
        if args.steps:
            first, _, last = str(args.steps).rpartition(':')
            return cls(args.time_budget, int(first or last), world, device, n, exact=True, log=log,
                       refit_to=int(last) if first else None)
        return cls(args.time_budget, args.epochs * n if args.epochs < 1e8 else None, world, device, n, log=log)

    def loss_changes_at(self, progress):
        """The loss keeps its terms until `progress` (1: always): a second fit comes before it, so that the
        step it is made at holds the same terms under either count."""
        self.free = progress

    def summary(self):
        """What results.json keeps of the clock at a test: the training minutes, the steps done and the
        run's step count (None: not fixed)."""
        return {'train_minutes': self.seconds / 60, 'train_steps': self.steps,
                'total_steps': self.total_steps, 'steps': self.replay()}

    def finished(self):
        """The run's training is over: its --steps are done or its budget is spent."""
        return self.stop(self.steps) != ''

    def start(self):
        """The training loop (re)starts: count from now."""
        self._t = time.perf_counter()

    def tick(self, steps_done=None):
        """After a step: add the time since the last tick (or start); with --steps auto, time the warmup
        and fix the run's step count at its end, then fit it again at refit_step(). Returns the position
        this step had before a second fit changed the count (None when it did not: Schedule.move_end)."""
        now = time.perf_counter()
        self.seconds += now - self._t
        self._t = now
        self.steps = self.steps if steps_done is None else steps_done
        if steps_done is None:
            return None
        if self.fit and self.total_steps is None:
            self._fit(steps_done)
            return None
        at = self.refit_step()
        if at is None or self.refitted:
            return None
        if self.fit and steps_done == at // 2:
            self.refit_start = (steps_done, self.seconds)
        return self._refit(steps_done) if steps_done >= at else None

    def refit_step(self):
        """The step of the second fit (None: none)."""
        return int(REFIT_AT * self.free * self.first_steps) if self.first_steps else None

    def _rate(self, start, steps_done):
        """Steps per second since `start` (step, seconds), the mean of the torchrun ranks'."""
        step0, seconds0 = start
        rate = (steps_done - step0) / max(self.seconds - seconds0, 1e-9)
        return self.world.all_mean(rate, self.device) if self.world is not None else rate

    def _fit(self, steps_done):
        if steps_done == FIT_FROM:
            self.fit_start = (steps_done, self.seconds)
        if steps_done < self.fit or self.fit_start is None:
            return
        rate = self._rate(self.fit_start, steps_done)
        left = max(self.budget - self.seconds, 0.0)
        self.total_steps = steps_done + int(math.floor(rate * left * FIT_SAFETY))
        self.first_steps = self.total_steps
        if self.refit_step() // 2 <= steps_done:  # no room for the second fit's timing after the warmup
            self.first_steps = None
        self.log(f'--steps auto: {rate:.3f} steps/s over steps {self.fit_start[0] + 1}-{steps_done} of the '
                 f'warmup; {self.total_steps} steps fit the {self.budget / 60:g} min budget'
                 + (f', fitted again at step {self.refit_step()}' if self.first_steps else self._replay()))

    def _refit(self, steps_done):
        """The second count, at step `steps_done`: timed (--steps auto) or given (--steps N:N2)."""
        before = self.position(steps_done)
        least = int(math.floor(steps_done / self.free)) + 1  # this step still before the loss's change
        if self.fit:
            rate = self._rate(self.refit_start, steps_done)
            fitted = steps_done + int(math.floor(rate * max(self.budget - self.seconds, 0.0) * REFIT_SAFETY))
            how = f'{rate:.3f} steps/s over steps {self.refit_start[0] + 1}-{steps_done}; '
        else:
            fitted, how = self.refit_to, ''
        self.total_steps, self.refitted = max(fitted, least), True
        self.log(f'--steps {"auto" if self.fit else self.replay()}: fitted again at step {steps_done}: {how}'
                 f'{self.total_steps} steps' + (f' (at least {least}: step {steps_done} must stay before the '
                                               f'loss changes at {self.free:g}; the run may end after its budget)'
                                               if fitted < least else '') + self._replay())
        return before

    def replay(self):
        """What --steps replays this run with: N, or N:N2 after a second fit (None: no count yet)."""
        if self.total_steps is None:
            return None
        return f'{self.first_steps}:{self.total_steps}' if self.refitted else str(self.total_steps)

    def _replay(self):
        return f' (replay this run on any machine with --steps {self.replay()})' if self.fit else ''

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
        fitted = self.fit or self.refit_to
        return {'train_seconds': self.seconds, 'train_steps': self.steps,
                'total_steps': self.total_steps if fitted else None, 'fit_start': self.fit_start,
                'first_steps': self.first_steps, 'refitted': self.refitted, 'refit_start': self.refit_start}

    def load_state_dict(self, st):
        self.seconds = st.get('train_seconds', 0.0)  # states saved before the clock: 0
        self.steps = st.get('train_steps', 0)
        if self.fit or self.refit_to:  # the counts fixed so far (states saved before the second fit: none)
            self.total_steps, self.fit_start = st.get('total_steps'), st.get('fit_start')
            self.first_steps = st.get('first_steps', self.first_steps if self.refit_to else None)
            self.refitted, self.refit_start = st.get('refitted', False), st.get('refit_start')
