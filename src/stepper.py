"""The optimisation step.

make_optimizer/make_scheduler build what --optimizer, --lr, --decay, --gamma
and --warmup ask for (the schedule: schedule.py). A Stepper owns one update
of a network: autocast (--amp), the fp16 gradient scaler and its overflow
back-off, gradient clipping
(--gclip), the skip policy (--skip_threshold, --max_skips) and the EMA of the
weights (--ema). The generator and the GAN discriminators each have one.
"""
import contextlib
import math

import torch
import torch.nn.utils as nn_utils

from errors import SRLabError
from distributed import World
from schedule import Schedule

AMP = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def make_optimizer(args, params, optimizer=None, betas=None):
    """`optimizer`/`betas` override the flags (WGAN-GP's discriminator uses Adam(0, 0.9))."""
    name = optimizer or args.optimizer
    kwargs = {'lr': args.lr, 'weight_decay': args.weight_decay}
    if name == 'SGD':
        return torch.optim.SGD(params, momentum=args.momentum, **kwargs)
    if name == 'ADAM':
        return torch.optim.Adam(params, betas=betas or args.betas, eps=args.epsilon, **kwargs)
    return torch.optim.RMSprop(params, eps=args.epsilon, **kwargs)


def make_scheduler(args, optimizer):
    """The run's learning-rate schedule for `optimizer` (schedule.Schedule)."""
    return Schedule.from_args(args, optimizer)


def autocast(amp, device):
    """--amp: autocast to bf16/fp16 on `device`, or nothing."""
    if amp == 'off':
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP[amp])


EMA_WARM = 10 ** 9  # the count of an EMA restored from a state saved without one: past its first updates


class EMA:
    """Exponential moving average of a model's weights: after each step
    shadow = d * shadow + (1 - d) * weights (buffers are copied), with
    d = min(decay, (1 + n) / (10 + n)) after n updates: the first updates
    average the weights there are, so the random initial weights do not linger
    (with a plain 0.999 they are 11% of the average after 2,235 steps; measured
    on BSD200val x2: 29.56 dB against 31.96 for the weights themselves)."""

    def __init__(self, model, decay):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model):
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)
        self.updates += 1


class TooManySkips(SRLabError):
    """--max_skips batches in a row were skipped."""


class Kept:
    """What an update changes in place: a model's parameters and buffers and
    its optimizer's state. snapshot() copies them into buffers allocated once
    (no deep copy, no allocation per step); undo() puts them back bit for bit,
    removing optimizer state the update created."""

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self.buffers = {}   # key -> tensor, reused by every snapshot
        self.kept = None    # (keys copied, optimizer state keys per parameter, its other values)

    def live(self):
        """{key: tensor} of what an update changes in place."""
        out = {('param', i): p for i, p in enumerate(self.model.parameters())}
        out.update({('buffer', name): b for name, b in self.model.named_buffers()})
        index = {id(p): i for i, p in enumerate(self.model.parameters())}
        for p, st in self.optimizer.state.items():
            out.update({('state', index[id(p)], k): v for k, v in st.items() if torch.is_tensor(v)})
        return out

    @torch.no_grad()
    def snapshot(self):
        live = self.live()
        for k, t in live.items():
            b = self.buffers.get(k)
            if b is None or (b.shape, b.dtype, b.device) != (t.shape, t.dtype, t.device):
                self.buffers[k] = torch.empty_like(t)
        torch._foreach_copy_([self.buffers[k] for k in live], list(live.values()))
        keys = {p: set(st) for p, st in self.optimizer.state.items()}
        other = {(p, k): v for p, st in self.optimizer.state.items() for k, v in st.items() if not torch.is_tensor(v)}
        self.kept = (list(live), keys, other)

    @torch.no_grad()
    def undo(self):
        copied, keys, other = self.kept
        for p in list(self.optimizer.state):
            st = self.optimizer.state[p]
            for k in [k for k in st if k not in keys.get(p, ())]:
                del st[k]
            if not st:
                del self.optimizer.state[p]
        live = self.live()
        torch._foreach_copy_([live[k] for k in copied], [self.buffers[k] for k in copied])
        for (p, k), v in other.items():
            self.optimizer.state[p][k] = v
        self.kept = None


class Stepper:
    """One update of `model`'s parameters: step(loss) -> (taken, skip reason)."""

    def __init__(self, optimizer, model, scheduler=None, amp='off', device=torch.device('cpu'), world=World(),
                 gclip=0, skip_threshold=None, max_skips=0, ema_decay=0, average=False):
        """skip_threshold None: no skip policy, every step is taken (a GAN discriminator), but for
        fp16 overflows (its scaler's back-off). average: the gradients are averaged over the
        torchrun ranks after backward (a model that DDP does not wrap, as a GAN discriminator)."""
        self.optimizer, self.scheduler, self.model = optimizer, scheduler, model
        self.amp, self.device, self.world = amp, device, world
        self.gclip, self.skip_threshold, self.max_skips = gclip, skip_threshold, max_skips
        self.scaler = torch.amp.GradScaler(device.type) if amp == 'fp16' else None
        self.average = average and world.distributed
        self.kept, self.kept_scale = Kept(model, optimizer), None
        self.ema_decay = ema_decay
        self.ema = EMA(model, ema_decay) if ema_decay > 0 else None
        self.skips_total = 0
        self.skips_in_row = 0
        self.scale_backoffs = 0  # fp16 steps not taken while the gradient scaler lowered its scale
        self.loss_sum, self.loss_n = 0.0, 0  # running mean of accepted losses

    @classmethod
    def from_args(cls, args, model, device, world):
        """The generator's stepper, as the flags ask for it."""
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(args, params)
        return cls(optimizer, model, make_scheduler(args, optimizer), args.amp, device, world, args.gclip,
                   args.skip_threshold, args.max_skips, args.ema)

    def autocast(self):
        return autocast(self.amp, self.device)

    def ema_state(self):
        return self.ema.shadow if self.ema is not None else None

    @contextlib.contextmanager
    def averaged(self):
        """Inside, the model holds the EMA weights (what --ema tests and saves as best)."""
        if self.ema is None:
            yield
            return
        kept = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.ema.shadow)
        try:
            yield
        finally:
            self.model.load_state_dict(kept)

    def snapshot(self):
        """Keep what the next updates change (Kept, and the fp16 scaler's state); undo() puts it back.
        (Not the EMA: the steppers that undo, a GAN discriminator's, have none.)"""
        self.kept.snapshot()
        self.kept_scale = self.scaler.state_dict() if self.scaler is not None else None

    def undo(self):
        self.kept.undo()
        if self.kept_scale is not None:
            self.scaler.load_state_dict(self.kept_scale)

    def zero_grad(self):
        self.optimizer.zero_grad(set_to_none=True)

    def lr(self):
        return self.optimizer.param_groups[0]['lr']

    def step(self, loss):
        """Backward and update unless the batch is skipped. Returns (taken,
        reason): reason is None when taken and for an fp16 back-off step."""
        if self.skip_threshold is None:
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            if self.average:
                self.world.mean_([p.grad for p in self.model.parameters() if p.grad is not None])
            self._update()  # fp16: the scaler holds back a step whose gradients overflowed
            return True, None
        value = self.world.all_mean(loss.item(), self.device)  # every rank takes the same decision
        reason = self._judge(value)
        if reason is None:
            reason = self._backward(loss)
        if reason == 'backoff':
            return False, None
        if reason:
            self.zero_grad()
            self.skips_total += 1
            self.skips_in_row += 1
            return False, reason
        self._update()
        self.skips_in_row = 0
        self.loss_sum += value
        self.loss_n += 1
        return True, None

    def _judge(self, value):
        if not math.isfinite(value):
            return f'loss is {value}'
        mean = self.loss_sum / self.loss_n if self.loss_n else None
        if mean is not None and value > self.skip_threshold * mean:
            return f'loss {value:.4g} > {self.skip_threshold:g} x running mean {mean:.4g}'
        return None

    def _backward(self, loss):
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        norm = nn_utils.clip_grad_norm_(self.model.parameters(), self.gclip if self.gclip > 0 else float('inf'))
        if torch.isfinite(norm):
            return None
        if self.scaler is not None:
            backoff = self.scaler.get_scale() > 1  # the scaler's overflow back-off (from 2^16), not a bad batch
            self.scaler.update()
            if backoff:
                self.zero_grad()
                self.scale_backoffs += 1
                return 'backoff'
        return f'gradient norm is {norm.item()}'

    def _update(self):
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)

    def check_skips(self):
        if self.max_skips and self.skips_in_row >= self.max_skips:
            raise TooManySkips(f'{self.skips_in_row} batches in a row skipped (--max_skips {self.max_skips})')

    def advance(self, position, before=None):
        """After an iteration, at `position` (schedule.Position): the lr of the next one. `before`: the
        position this step had before the run's step count changed here (clock.Clock.tick): the schedule
        then spans the new count."""
        if before is None:
            self.scheduler.follow(position)
        else:
            self.scheduler.move_end(before, position)

    def resume(self, position):
        """The restored run goes on at `position`; a note for the log when its schedule had to adapt."""
        return self.scheduler.resume(position)

    def end_epoch(self):
        """An epoch's end, for a stepper not advanced every iteration (a GAN discriminator's)."""
        self.scheduler.end_epoch()

    def describe(self):
        """The epoch log's note on skips and fp16 back-offs ('' when none)."""
        return ((f'; skipped batches so far: {self.skips_total}' if self.skips_total else '')
                + (f'; fp16 loss scale {self.scaler.get_scale():g} ({self.scale_backoffs} overflow '
                   'steps not taken so far)' if self.scale_backoffs else ''))

    # ---- run state ------------------------------------------------------------
    def state_dict(self):
        return {'optimizer': self.optimizer.state_dict(), 'scheduler': self.scheduler.state_dict(),
                'ema': self.ema.shadow if self.ema is not None else None,
                'ema_updates': self.ema.updates if self.ema is not None else 0,
                'scaler': self.scaler.state_dict() if self.scaler else None,
                'skips_total': self.skips_total, 'scale_backoffs': self.scale_backoffs,
                'loss_mean': (self.loss_sum, self.loss_n)}

    def load_state_dict(self, st):
        """After the model's weights: an EMA the saved run did not keep starts from them."""
        self.optimizer.load_state_dict(st['optimizer'])
        self.scheduler.load_state_dict(st['scheduler'])
        self.skips_total, self.scale_backoffs = st['skips_total'], st['scale_backoffs']
        self.loss_sum, self.loss_n = st['loss_mean']
        if self.ema is not None:
            if st['ema'] is not None:
                self.ema.shadow = st['ema']
                self.ema.updates = st.get('ema_updates', EMA_WARM)  # a state from before the count: warm
            else:
                self.ema = EMA(self.model, self.ema_decay)
        if self.scaler is not None and st['scaler']:
            self.scaler.load_state_dict(st['scaler'])
