"""Trainer: the epoch loop. train() runs one epoch of steps (each update is the
Stepper's), test() hands the model to the Evaluator and saves the run
(state.py), terminate() says when to stop. SIGINT/SIGTERM only set a flag: the
current step (or test image) ends, a complete state is saved, Interrupted is raised."""
import contextlib
import time

import torch
from tqdm import tqdm

from clock import Clock
from dataloader import despite_deaths, worker_death
from distributed import World
from errors import SRLabError
from evaluator import Evaluator
from interrupt import Signals
from loss import LossState
from paths import holds_run
from precision import test_amp
from state import RNG, Flags, Keyed, RunState, check_finite
from stepper import Stepper, TooManySkips, autocast


class Trainer:
    def __init__(self, args, loader, my_model, my_loss, ckp, world=World()):
        self.args, self.ckp, self.world, self.scale = args, ckp, world, args.scale
        self.loader_train = loader.loader_train
        self.model, self.loss, self.device = my_model, my_loss, my_model.device
        self.evaluator = Evaluator(args, loader.loader_test, ckp, world, self.device)
        self.epoch, self.start_batch = 0, 0  # completed epochs; batches done in epoch self.epoch + 1
        self.tested = True      # False between the end of train() and the end of test()
        self.signals = Signals()
        self.stepper = None
        if args.test_only:
            my_model.setup_speed()
            return
        if not any(p.requires_grad for p in my_model.parameters()):
            raise SRLabError(f'--model {args.model} has no trainable parameters; use it with --test_only')
        self.stepper = Stepper.from_args(args, my_model.get_model(), self.device, world)
        my_model.setup_speed(ddp=world.distributed)
        torch.backends.cudnn.benchmark = self.device.type == 'cuda'  # fixed training shapes
        self.clock = Clock.from_args(args, len(self.loader_train), world, self.device, ckp.write_log)
        self.clock.loss_changes_at(my_loss.first_change())
        parts = [Flags(args, ckp.write_log, my_model.meta), Keyed('model', my_model), self.stepper,
                 LossState(my_loss), self.evaluator, self, self.clock, RNG()]
        self.run_state = RunState(ckp.dir, parts, ckp.write_log)
        if args.load and args.resume == -1:
            self.resume()
        self.signals.install()

    # ---- run state (see state.py) ----------------------------------------------
    def state_dict(self):
        return {'epoch': self.epoch, 'start_batch': self.start_batch, 'tested': self.tested}

    def load_state_dict(self, st):
        self.epoch, self.start_batch, self.tested = st['epoch'], st['start_batch'], st['tested']

    def resume(self):
        if not self.run_state.exists():
            what = 'the first epoch was not completely saved in' if holds_run(self.ckp.dir) else 'no training state in'
            self.ckp.write_log(f'--resume -1: {what} {self.ckp.dir}; starting from scratch')
            return
        path = self.run_state.load()
        if self.tested and self.finished():
            self.ckp.write_log(f'{self.ckp.dir} is finished ({self.epoch} of --epochs {self.args.epochs}, '
                               f'{self.clock.describe()}); nothing to do: give a larger --epochs or --time_budget '
                               'to train on')
            return
        where = f'epoch {self.epoch + 1}, batch {self.start_batch}' if self.start_batch else f'epoch {self.epoch + 1}'
        note = self.stepper.resume(position := self.clock.position(self.epoch * len(self.loader_train) + self.start_batch))
        self.loss.advance(position)  # the terms of --loss that hold there
        self.ckp.write_log(f'Resumed from {path}: continuing at {where}, lr {self.stepper.lr():.2e}{note}')

    def save(self, is_best=False):
        """The end of an epoch: the exported files, then the run state (rank 0)."""
        def export():
            self.model.export(self.ckp.get_path('model'), self.epoch, is_best=is_best,
                              ema_state=self.stepper.ema_state())
            self.loss.export(self.ckp.dir, self.epoch)
            self.evaluator.export()
        if self.world.main:
            self.run_state.save(export)

    def save_interrupted(self):
        """The position reached so far (mid-epoch, or before the last epoch's test): signals, stops."""
        def export():
            self.model.export(self.ckp.get_path('model'), self.epoch)
            self.loss.save(self.ckp.dir)
        if self.world.main:
            self.run_state.save(export)

    def close(self):
        self.signals.close()

    # ---- training ----------------------------------------------------------------
    def train(self):
        epoch = self.epoch + 1
        if self.start_batch == 0:
            self.loss.start_log()
        self.ckp.write_log(f'[Epoch {epoch}]\tLearning rate: {self.stepper.lr():.2e}')
        self.model.train()
        try:
            counts, accepted = self._epoch(epoch)
        except Exception as e:
            self.signals.check()  # a loader worker killed by the same Ctrl-C
            stop = e if isinstance(e, TooManySkips) else worker_death(e)
            if stop is None:
                raise
            despite_deaths(self.save_interrupted)  # the state after the last finished step
            raise SRLabError(f'{stop}; stopping with the last good state in {self.ckp.dir}') from None
        self.loss.end_log(accepted, self.world, self.device)
        self.ckp.add_scalars(epoch, {**self.loss.epoch_values(), 'lr': self.stepper.lr()})
        self.ckp.write_log('Scales drawn this epoch: ' + ', '.join(f'x{s}: {c}' for s, c in zip(self.scale, counts))
                           + self.stepper.describe())
        self.ckp.write_log(f'Training clock: {self.clock.describe()} so far')
        self.epoch, self.start_batch, self.tested = epoch, 0, False

    def _epoch(self, epoch):
        """The batches of this epoch from self.start_batch on: (batches per scale, batches taken)."""
        args, start, loader = self.args, self.start_batch, self.loader_train
        loader.set_epoch(epoch, start)
        counts, accepted = [0] * len(self.scale), start
        t_data = t_model = 0.0  # seconds waiting for batches and in steps, since the last log line
        t = time.perf_counter()
        self.clock.start()
        bar = tqdm(loader, total=len(loader) - start, desc=f'Epoch {epoch}', unit='it',
                   dynamic_ncols=True, leave=False, disable=None)
        with bar:
            for batch, (lr, hr, names, idx_scale) in enumerate(bar, start):
                lr, hr = self.model.prepare(lr, hr)
                t_data, t = t_data + time.perf_counter() - t, time.perf_counter()
                counts[idx_scale] += 1
                accepted += self.step(lr, hr, idx_scale, names)
                t_model += time.perf_counter() - t
                before = self.clock.tick(done := (epoch - 1) * len(loader) + batch + 1)  # not None: count changed
                self.stepper.advance(position := self.clock.position(done), before)
                self.loss.advance(position)  # the terms of --loss that hold from the next step on
                self.start_batch = batch + 1
                bar.set_postfix(loss=f'{self.loss.log[-1, -1].item() / max(accepted, 1):.4f}',
                                lr=f'{self.stepper.lr():.1e}')
                if (batch + 1) % args.print_every == 0:
                    self.ckp.write_log(
                        f'[{(batch + 1) * args.batch_size}/{len(loader) * args.batch_size}]\t'
                        f'{self.loss.display_loss(max(accepted - 1, 0))}\t{t_model:.1f}+{t_data:.1f}s',
                        quiet=not bar.disable)  # printed when there is no progress bar (not a terminal)
                    t_data = t_model = 0.0
                self.signals.check()
                if stop := self.clock.stop(done):  # --steps done, or --time_budget spent
                    self.ckp.write_log(f'{stop}: testing and saving')
                    break
                t = time.perf_counter()
        return counts, accepted

    def step(self, lr, hr, idx_scale, names):
        """One training step; False when the batch was not taken. GAN discriminators step first (EDSR-PyTorch's
        order) and the generator's loss uses them; a skipped batch undoes their steps too (Loss.reject)."""
        self.stepper.zero_grad()
        if self.args.channels_last:
            hr = hr.contiguous(memory_format=torch.channels_last)
        with self.stepper.autocast():
            sr = self.model(lr, idx_scale).float()
            self.loss.step_discriminators(sr, hr)
            loss = self.loss(sr, hr)
        taken, reason = self.stepper.step(loss)
        if taken:
            self.loss.commit()
            return True
        self.loss.reject()
        if reason:
            self.ckp.write_log(f'Skipped batch ({reason}): {", ".join(names)}')
            # an earlier update overflowed: nothing good can follow, and nothing is saved
            check_finite(self.model.state_dict(), self.ckp.dir, f' in epoch {self.epoch + 1}, probably '
                         f'from a too large update (--lr {self.args.lr:g})')
            self.stepper.check_skips()
        return False

    @torch.no_grad()
    def test(self):
        """Under torchrun every rank tests its share of each set and the sums
        are reduced; with --save_results rank 0 tests all while the others
        wait (only rank 0 writes)."""
        shard = self.world.distributed and not self.args.save_results
        if self.world.main or shard:
            averaged = self.stepper.averaged() if self.stepper else contextlib.nullcontext()
            with averaged, autocast(test_amp(self.args), self.device):
                clock = None if self.args.test_only else self.clock.summary()  # (no clock when only testing)
                only = None if self.args.test_only or self.finished() else self.args.curve_sets  # (None: all)
                self.evaluator.run(self.model, self.epoch, shard, clock and self.signals.check, clock, only)
        self.tested = True
        if not self.args.test_only:
            self.save(is_best=self.evaluator.is_best(self.epoch))
        self.world.barrier()

    def finished(self):
        return self.epoch >= self.args.epochs or self.clock.finished()

    def terminate(self):
        if self.args.test_only or not self.tested:  # (not tested: resumed after an interruption during test())
            self.test()
        return self.args.test_only or self.finished()
