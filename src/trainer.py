"""Trainer: train() one epoch, test() on every --data_test set and scale,
terminate() at --epochs. The whole training state (weights, optimizer,
scheduler, logs, RNG, position in the epoch) is saved atomically to
experiment/<save>/state.pt, which `--load <save> --resume -1` restores."""
import contextlib
import math
import os
import random
import signal
import time

import numpy as np
import torch
import torch.nn.utils as nn_utils
from tqdm import tqdm

import utility
from data.imresize import imresize_tensor


def make_optimizer(args, params):
    kwargs = {'lr': args.lr, 'weight_decay': args.weight_decay}
    if args.optimizer == 'SGD':
        return torch.optim.SGD(params, momentum=args.momentum, **kwargs)
    if args.optimizer == 'ADAM':
        return torch.optim.Adam(params, betas=args.betas, eps=args.epsilon, **kwargs)
    return torch.optim.RMSprop(params, eps=args.epsilon, **kwargs)


def make_scheduler(args, optimizer):
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=args.decay_epochs, gamma=args.gamma)


class EMA:
    """Exponential moving average of a model's weights: after each step
    shadow = decay * shadow + (1 - decay) * weights (buffers are copied)."""

    def __init__(self, model, decay):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model):
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.shadow[k].copy_(v)


AMP = {'bf16': torch.bfloat16, 'fp16': torch.float16}


class Interrupted(Exception):
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class Trainer:
    def __init__(self, args, loader, my_model, my_loss, ckp):
        self.args = args
        self.scale = args.scale
        self.ckp = ckp
        self.loader_train = loader.loader_train
        self.loader_test = loader.loader_test
        self.model = my_model
        self.loss = my_loss
        self.device = my_model.device
        self.distributed = getattr(args, 'world_size', 1) > 1
        self.main = getattr(args, 'rank', 0) == 0
        self.ema = None
        self.scaler = None
        self.epoch = 0           # completed epochs
        self.start_batch = 0     # batches already done in epoch self.epoch + 1
        self.best = {}
        self.skips_total = 0
        self.skips_in_row = 0
        self.scale_backoffs = 0  # fp16 steps not taken while the gradient scaler lowered its scale
        self.loss_sum, self.loss_n = 0.0, 0   # running mean of accepted losses
        self.results = {}
        self.bicubic = {}        # (dataset, scale) -> (psnr, ssim) of the Bicubic baseline
        self.signal = None
        self.tested = True       # False between the end of train() and the end of test()
        self._old_handlers = {}
        if args.test_only:
            self.optimizer = self.scheduler = None
            my_model.setup_speed()
        else:
            params = [p for p in my_model.parameters() if p.requires_grad]
            if not params:
                raise utility.SRLabError(f'--model {args.model} has no trainable parameters; use it with --test_only')
            self.optimizer = make_optimizer(args, params)
            self.scheduler = make_scheduler(args, self.optimizer)
            if args.ema > 0:
                self.ema = EMA(my_model.get_model(), args.ema)
            if args.amp == 'fp16':
                self.scaler = torch.amp.GradScaler(self.device.type)
            my_model.setup_speed(ddp=self.distributed)
            if self.device.type == 'cuda':
                torch.backends.cudnn.benchmark = True
            if args.load and args.resume == -1:
                self.load_state(ckp.dir)
            self._install_signals()

    # ---- state -----------------------------------------------------------
    def state(self):
        return {
            'epoch': self.epoch, 'start_batch': self.start_batch,
            'model': self.model.state_dict(),
            'optimizer': self.optimizer.state_dict(), 'scheduler': self.scheduler.state_dict(),
            'loss': self.loss.state_dict(), 'loss_log': self.loss.log, 'psnr_log': self.ckp.log,
            'best': self.best, 'skips_total': self.skips_total, 'scale_backoffs': self.scale_backoffs,
            'loss_mean': (self.loss_sum, self.loss_n),
            'tested': self.tested, 'bicubic': self.bicubic, 'results': self.results,
            'ema': self.ema_state(), 'scaler': self.scaler.state_dict() if self.scaler else None,
            'rng': {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(), 'python': random.getstate(),
                    'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }

    def save_state(self, apath):
        utility.atomic_save(self.state(), os.path.join(apath, 'state.pt'))

    def load_state(self, apath):
        path = os.path.join(apath, 'state.pt')
        if not os.path.exists(path):
            if not utility.committed_run(apath):
                # killed before the first epoch was completely saved: forget the
                # loss log of that partial save too (the model starts from scratch)
                self.loss.log = torch.Tensor()
                self.ckp.log = torch.Tensor()
                self.ckp.write_log(f'No training state in {path}: starting from scratch')
                return
            self.ckp.write_log(f'No training state in {path}: optimizer and schedule start fresh')
            return
        try:
            st = torch.load(path, map_location='cpu', weights_only=False)
        except Exception as e:
            raise utility.SRLabError(f'--resume -1: {path} is not readable ({utility.error_text(e)})')
        self.model.get_model().load_state_dict(st['model'])
        self.optimizer.load_state_dict(st['optimizer'])
        self.scheduler.load_state_dict(st['scheduler'])
        self.loss.load_state_dict(st['loss'])
        self.loss.log = st['loss_log']
        self.ckp.log = st['psnr_log']
        self.epoch, self.start_batch = st['epoch'], st['start_batch']
        self.best, self.skips_total = st['best'], st['skips_total']
        self.scale_backoffs = st.get('scale_backoffs', 0)
        self.loss_sum, self.loss_n = st['loss_mean']
        self.tested, self.bicubic, self.results = st['tested'], st['bicubic'], st['results']
        if self.ema is not None:
            if st.get('ema') is not None:
                self.ema.shadow = st['ema']
            else:
                self.ema = EMA(self.model.get_model(), self.args.ema)
        if self.scaler is not None and st.get('scaler'):
            self.scaler.load_state_dict(st['scaler'])
        torch.set_rng_state(st['rng']['torch'])
        np.random.set_state(st['rng']['numpy'])
        random.setstate(st['rng']['python'])
        if st['rng']['cuda'] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(st['rng']['cuda'])
        where = f'epoch {self.epoch + 1}, batch {self.start_batch}' if self.start_batch else f'epoch {self.epoch + 1}'
        self.ckp.write_log(f'Resumed from {path}: continuing at {where}, lr {self.current_lr():.2e}')

    def ema_state(self):
        return self.ema.shadow if self.ema is not None else None

    def autocast(self):
        if self.args.amp == 'off':
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AMP[self.args.amp])

    def _all_sum(self, values):
        """Sums of a list of floats over all ranks."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.device.type == 'cuda' else 'cpu')
        torch.distributed.all_reduce(t)
        return t.tolist()

    def _all_mean(self, value):
        """Mean of a float over all ranks (the value itself without torchrun)."""
        if not self.distributed:
            return value
        return self._all_sum([value])[0] / self.args.world_size

    def current_lr(self):
        return self.optimizer.param_groups[0]['lr']

    # ---- signals ---------------------------------------------------------
    def _on_signal(self, signum, frame):
        self.signal = signum

    def _install_signals(self):
        """SIGINT/SIGTERM only set a flag; the loop stops at the next step
        (or test image), saves a complete state and raises Interrupted."""
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old_handlers[s] = signal.signal(s, self._on_signal)
            except ValueError:  # not the main thread
                pass

    def close(self):
        for s, h in self._old_handlers.items():
            signal.signal(s, h)
        self._old_handlers = {}

    def _check_signal(self):
        if self.signal is not None:
            raise Interrupted(self.signal)

    # ---- training --------------------------------------------------------
    def prepare(self, *tensors):
        dtype = next(iter(self.model.parameters()), torch.empty(0)).dtype
        return [t.to(self.device, dtype=dtype if t.is_floating_point() else t.dtype, non_blocking=True)
                for t in tensors]

    def train(self):
        args = self.args
        epoch = self.epoch + 1
        start = self.start_batch
        if start == 0:
            self.loss.start_log()
        self.ckp.write_log(f'[Epoch {epoch}]\tLearning rate: {self.current_lr():.2e}')
        self.model.train()
        loader = self.loader_train
        loader.set_epoch(epoch, start)
        counts = [0] * len(self.scale)
        accepted = start
        t_data, t_model = utility.Timer(), utility.Timer()
        bar = tqdm(loader, total=len(loader.batch_sampler) - start, desc=f'Epoch {epoch}', unit='it',
                   dynamic_ncols=True, leave=False, disable=None)
        try:
            for batch, (lr, hr, names, idx_scale) in enumerate(bar, start):
                lr, hr = self.prepare(lr, hr)
                t_data.hold()
                t_model.tic()
                counts[idx_scale] += 1
                if self.step(lr, hr, idx_scale, names):
                    accepted += 1
                t_model.hold()
                self.start_batch = batch + 1
                bar.set_postfix(loss=f'{self.loss.log[-1, -1].item() / max(accepted, 1):.4f}', lr=f'{self.current_lr():.1e}')
                if (batch + 1) % args.print_every == 0:
                    self.ckp.write_log(
                        f'[{(batch + 1) * args.batch_size}/{len(loader.batch_sampler) * args.batch_size}]\t'
                        f'{self.loss.display_loss(max(accepted - 1, 0))}\t{t_model.release():.1f}+{t_data.release():.1f}s',
                        quiet=not bar.disable)  # printed when there is no progress bar (not a terminal)
                self._check_signal()
                t_data.tic()
        except Exception:
            self._check_signal()  # a loader worker killed by the same Ctrl-C
            raise
        finally:
            bar.close()
        self.loss.end_log(accepted)
        if self.distributed:  # the logged epoch loss is the mean over ranks
            self.loss.log[-1] = torch.tensor(self._all_sum(self.loss.log[-1].tolist())) / self.args.world_size
        self.ckp.write_log('Scales drawn this epoch: ' + ', '.join(f'x{s}: {c}' for s, c in zip(self.scale, counts))
                           + (f'; skipped batches so far: {self.skips_total}' if self.skips_total else '')
                           + (f'; fp16 loss scale {self.scaler.get_scale():g} ({self.scale_backoffs} overflow '
                              'steps not taken so far)' if self.scale_backoffs else ''))
        self.scheduler.step()
        self.epoch = epoch
        self.start_batch = 0
        self.tested = False

    def step(self, lr, hr, idx_scale, names):
        """One optimisation step; returns False when the batch was skipped."""
        args = self.args
        row = self.loss.last_values()
        self.optimizer.zero_grad(set_to_none=True)
        if self.args.channels_last:
            hr = hr.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            sr = self.model(lr, idx_scale)
            loss = self.loss(sr.float(), hr)
        value = self._all_mean(loss.item())  # every rank takes the same decision
        reason = None
        if not math.isfinite(value):
            reason = f'loss is {value}'
        elif self.loss_n and value > args.skip_threshold * self.loss_sum / self.loss_n:
            reason = f'loss {value:.4g} > {args.skip_threshold:g} x running mean {self.loss_sum / self.loss_n:.4g}'
        else:
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            norm = nn_utils.clip_grad_norm_(self.model.parameters(), args.gclip if args.gclip > 0 else float('inf'))
            if not torch.isfinite(norm):
                if self.scaler is not None and self.scaler.get_scale() > 1:
                    # fp16: the gradient scaler's overflow back-off (it starts at 2^16),
                    # not a bad batch: lower the scale and take no step
                    self.scaler.update()
                    self.loss.log[-1] = row
                    self.optimizer.zero_grad(set_to_none=True)
                    self.scale_backoffs += 1
                    return False
                reason = f'gradient norm is {norm.item()}'
                if self.scaler is not None:
                    self.scaler.update()
        if reason:
            self.loss.log[-1] = row
            self.optimizer.zero_grad(set_to_none=True)
            self.skips_total += 1
            self.skips_in_row += 1
            self.ckp.write_log(f'Skipped batch ({reason}): {", ".join(names)}')
            # an earlier update overflowed: nothing good can follow, and nothing is saved
            utility.check_finite(self.model.state_dict(), self.ckp.dir, f' in epoch {self.epoch + 1}, probably from '
                                 f'a too large update (--lr {args.lr:g})')
            if self.skips_in_row >= args.max_skips:
                self.save_interrupted()
                raise utility.SRLabError(f'{self.skips_in_row} batches in a row skipped (--max_skips {args.max_skips}); '
                                         f'stopping with the last good state in {self.ckp.dir}')
            return False
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model.get_model())
        self.skips_in_row = 0
        self.loss_sum += value
        self.loss_n += 1
        return True

    def save_interrupted(self):
        """Save the state reached so far (mid-epoch or before the test of the
        last epoch) after a signal or too many skips."""
        if not self.main:
            return
        utility.check_finite(self.model.state_dict(), self.ckp.dir)  # as checkpoint.save: the last good files stay
        self.model.save(self.ckp.get_path('model'), self.epoch)
        self.loss.save(self.ckp.dir)
        self.save_state(self.ckp.dir)

    # ---- testing ---------------------------------------------------------
    @torch.no_grad()
    def test(self):
        """Under torchrun every rank tests its share of each set and the sums
        are reduced; with --save_results rank 0 tests all while the others
        wait (only rank 0 writes)."""
        shard = self.distributed and not self.args.save_results
        if not self.main and not shard:
            self.tested = True
            torch.distributed.barrier()
            return
        swapped = None
        if self.ema is not None:
            swapped = {k: v.clone() for k, v in self.model.get_model().state_dict().items()}
            self.model.get_model().load_state_dict(self.ema.shadow)
        try:
            with self.autocast():
                self._test(shard)
        finally:
            if swapped is not None:
                self.model.get_model().load_state_dict(swapped)
        if not self.args.test_only:
            first = f'{self.loader_test[0].dataset.name}/x{self.scale[0]}' if self.loader_test else None
            is_best = first in self.best and self.best[first][1] == self.epoch
            self.ckp.save(self, self.epoch, is_best=is_best)
        if self.distributed:
            torch.distributed.barrier()

    def _test(self, shard=False):
        args = self.args
        epoch = self.epoch
        self.ckp.write_log('\nEvaluation:')
        row = torch.zeros(1, len(self.loader_test), len(self.scale))
        self.model.eval()
        if args.save_results:
            self.ckp.begin_background()
        rows = []
        for idx_data, d in enumerate(self.loader_test):
            name = d.dataset.name
            shave_extra = getattr(d.dataset, 'shave_extra', 0)
            if shard:
                d.set_shard(args.rank, args.world_size)
            for idx_scale, scale in enumerate(self.scale):
                d.set_scale(idx_scale)
                psnr = ssim = bic_psnr = bic_ssim = 0.0
                want_bicubic = not args.test_only and (name, scale) not in self.bicubic
                seconds, n = 0.0, 0
                scored = False
                for lr, hr, filename, _ in tqdm(d, desc=f'{name} x{scale}', unit='img', leave=False,
                                                disable=None if self.main else True):
                    if not args.test_only:
                        self._check_signal()
                    lr, = self.prepare(lr)
                    t0 = time.perf_counter()
                    sr = self.model(lr, idx_scale)
                    if self.device.type == 'cuda':
                        torch.cuda.synchronize()
                    seconds += time.perf_counter() - t0
                    n += 1
                    sr = utility.quantize(sr.float(), args.rgb_range)
                    save_list = [sr]
                    if hr.numel():
                        scored = True
                        p, s = utility.calc_psnr_ssim(sr.cpu(), hr, args.rgb_range, shave=scale + shave_extra)
                        psnr += p
                        ssim += s
                        if want_bicubic:
                            p, s = utility.calc_psnr_ssim(
                                imresize_tensor(lr.float().cpu(), scale, quantize_range=args.rgb_range),
                                hr, args.rgb_range, shave=scale + shave_extra)
                            bic_psnr += p
                            bic_ssim += s
                        if args.save_gt:
                            save_list += [lr.float(), hr]
                    elif args.save_gt:
                        save_list += [lr.float()]
                    self.ckp.save_results(d.dataset, filename[0], save_list, scale)
                if shard:
                    psnr, ssim, bic_psnr, bic_ssim, n, seconds, scored = self._all_sum(
                        [psnr, ssim, bic_psnr, bic_ssim, n, seconds, float(scored)])
                    n, scored = int(n), scored > 0
                n = max(n, 1)
                entry = {'seconds_per_image': seconds / n}
                if scored and want_bicubic:
                    self.bicubic[(name, scale)] = (bic_psnr / n, bic_ssim / n)
                if scored and (name, scale) in self.bicubic:
                    entry.update(bicubic_psnr=self.bicubic[(name, scale)][0], bicubic_ssim=self.bicubic[(name, scale)][1])
                if scored:
                    entry.update(psnr=psnr / n, ssim=ssim / n)
                    row[0, idx_data, idx_scale] = psnr / n
                    key = f'{name}/x{scale}'
                    if key not in self.best or psnr / n > self.best[key][0]:
                        self.best[key] = (psnr / n, epoch)
                self.results.setdefault(name, {})[str(scale)] = entry
                rows.append((name, scale, entry))
                if scored:
                    b, be = self.best[f'{name}/x{scale}']
                    self.ckp.write_log(f'[{name} x{scale}]\tPSNR: {entry["psnr"]:.2f} SSIM: {entry["ssim"]:.4f} '
                                       f'(Best: {b:.2f} @epoch {be})')
                else:
                    self.ckp.write_log(f'[{name} x{scale}]\tsaved {n} image(s)')
        self.ckp.add_log(row)
        self.tested = True
        self.ckp.write_results(self.results)
        self.ckp.end_background()
        self.ckp.write_log(self.table(rows))

    @staticmethod
    def table(rows):
        """PSNR/SSIM per set and scale; a Bicubic column when it was measured."""
        bic = any('bicubic_psnr' in e for _, _, e in rows)
        head = f'{"Dataset":<12}{"Scale":>6}{"PSNR":>9}{"SSIM":>9}'
        head += f'{"Bicubic":>9}{"SSIM":>9}' if bic else ''
        lines = [head + f'{"s/img":>9}']
        for name, scale, e in rows:
            cells = [f'{e[k]:.{d}f}' if k in e else '-' for k, d in (('psnr', 2), ('ssim', 4))]
            if bic:
                cells += [f'{e[k]:.{d}f}' if k in e else '-' for k, d in (('bicubic_psnr', 2), ('bicubic_ssim', 4))]
            lines.append(f'{name:<12}{"x" + str(scale):>6}' + ''.join(f'{c:>9}' for c in cells)
                         + f'{e["seconds_per_image"]:>9.3f}')
        return '\n'.join(lines)

    def terminate(self):
        if self.args.test_only:
            self.test()
            return True
        if not self.tested:  # resumed after an interruption during test()
            self.test()
        return self.epoch >= self.args.epochs
