"""The run's training clock: the seconds spent training (steps and the wait
for their data; not tests, saves or the caching before the first step),
summed over the sessions of a run, the --time_budget they may use, and the
run's progress (what a learning-rate schedule follows, see schedule.py). A
part of the run state ('train_seconds'), so a resumed run goes on with what is
left of its budget."""
import time

from schedule import Position


class Clock:
    def __init__(self, budget_minutes=0, total_steps=None, world=None, device=None, steps_per_epoch=1):
        """total_steps: the run's steps (None: unbounded); world (and the
        device of its collectives): under torchrun, all ranks agree on when
        the budget is spent."""
        self.budget = budget_minutes * 60
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.world, self.device = world, device
        self.seconds = 0.0
        self._t = None

    def start(self):
        """The training loop (re)starts: count from now."""
        self._t = time.perf_counter()

    def tick(self):
        """After a step: add the time since the last tick (or start)."""
        now = time.perf_counter()
        self.seconds += now - self._t
        self._t = now

    def progress(self, steps_done):
        """How far the run is, 0..1: its steps, or its budget, whichever is further."""
        p = [steps_done / self.total_steps] if self.total_steps else []
        p += [self.seconds / self.budget] if self.budget else []
        return min(max(p, default=0.0), 1.0)

    def position(self, steps_done):
        """Where the run stands after `steps_done` iterations (what a schedule follows)."""
        return Position(steps_done, self.steps_per_epoch, self.progress(steps_done))

    def spent(self):
        """True once the budget is spent (on any rank: then on every rank, at the same step)."""
        if not self.budget:
            return False
        over = float(self.seconds >= self.budget)
        return (self.world.all_sum([over], self.device)[0] if self.world is not None else over) > 0

    def describe(self):
        minutes = f'{self.seconds / 60:.1f} min of training'
        return minutes + (f' of the {self.budget / 60:g} min budget' if self.budget else '')

    def state_dict(self):
        return {'train_seconds': self.seconds}

    def load_state_dict(self, st):
        self.seconds = st.get('train_seconds', 0.0)  # states saved before the clock: 0
