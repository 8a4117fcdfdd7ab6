"""Evaluator: tests a model on every --data_test set and scale.

It owns the numbers of a run: PSNR/SSIM per image (metrics.py, the MATLAB
protocol), the Bicubic baseline beside them (measured once per set and
scale), the sums reduced over torchrun ranks when the test is sharded, the
best PSNR per set and scale, the per-epoch PSNR log (psnr_log.pt and its
plots), results.json, the printed table and which result images are saved.
Trainer.test(), --test_only and the --video_hr scoring all use it.
"""
import json
import time

import numpy as np
import torch
from tqdm import tqdm

import atomic
import metrics
from data.imresize import imresize_tensor
from distributed import World
from plot import save_plot


def score(sr, hr, scale, rgb_range, shave_extra=0):
    """(PSNR, SSIM) of one quantized SR image against its HR image."""
    return metrics.calc_psnr_ssim(sr, hr, rgb_range, shave=scale + shave_extra)


class Evaluator:
    def __init__(self, args, loaders, ckp, world=World(), device=torch.device('cpu')):
        self.args, self.loaders, self.ckp = args, loaders, ckp
        self.world, self.device = world, device
        self.scales = list(args.scale)
        self.log = torch.Tensor()  # PSNR: epochs x sets x scales
        self.minutes = []          # the training minutes (the run's clock) at each row of the log
        self.best = {}             # 'set/xS' -> (psnr, epoch)
        self.bicubic = {}          # (set, scale) -> (psnr, ssim) of the Bicubic baseline
        self.results = {}          # set -> scale -> entry (results.json)
        self.epoch = 0             # the epoch being tested
        self.figures = None        # --save_figures: compare.FigureWriter, fed every scored test image
        if args.save_figures and args.save_results and world.main:
            import compare
            self.figures = compare.FigureWriter(args, ckp)

    # ---- testing --------------------------------------------------------------
    def run(self, model, epoch, shard=False, check_signal=None, minutes=None):
        """Test every set and scale; log the lines and the table, write results.json.
        minutes: the training minutes so far (the x of psnr_minutes.png; None: --test_only)."""
        self.ckp.write_log('\nEvaluation:')
        self.epoch, t0 = epoch, time.perf_counter()
        row = torch.zeros(1, len(self.loaders), len(self.scales))
        model.eval()
        rows = []
        for idx_data, loader in enumerate(self.loaders):
            if shard:
                loader.set_shard(self.world.rank, self.world.world_size)
            for idx_scale, scale in enumerate(self.scales):
                entry, _ = self._test(model, loader, idx_scale, shard, check_signal)
                if minutes is not None:
                    entry['train_minutes'] = round(minutes, 3)
                name = loader.dataset.name
                if 'psnr' in entry:
                    row[0, idx_data, idx_scale] = entry['psnr']
                self.record(name, scale, entry, epoch, written=self.ckp.results_written())
                rows.append((name, scale, entry))
        self.log = torch.cat([self.log, row])
        self.minutes.append(float('nan') if minutes is None else minutes)
        self.write_results()
        self.ckp.write_log(self.table(rows))
        self.ckp.write_log(f'Testing took {time.perf_counter() - t0:.1f} s'
                           + (f' (after {minutes:.1f} min of training)' if minutes is not None else ''))

    def _test(self, model, loader, idx_scale, shard, check_signal):
        name, scale = loader.dataset.name, self.scales[idx_scale]
        want_bicubic = self.args.model != 'Bicubic' and (name, scale) not in self.bicubic
        loader.set_scale(idx_scale)
        sums = self._sums(model, loader, idx_scale, want_bicubic, check_signal)
        if shard:
            sums = self.world.all_sum(sums, self.device)
        psnr, ssim, bic_psnr, bic_ssim, n, seconds, scored = sums
        n = max(int(n), 1)
        entry = {'seconds_per_image': seconds / n}
        if scored and want_bicubic:
            self.bicubic[(name, scale)] = (bic_psnr / n, bic_ssim / n)
        if scored and (name, scale) in self.bicubic:
            entry.update(bicubic_psnr=self.bicubic[(name, scale)][0], bicubic_ssim=self.bicubic[(name, scale)][1])
        if scored:
            entry.update(psnr=psnr / n, ssim=ssim / n)
        return entry, n

    def _sums(self, model, loader, idx_scale, want_bicubic, check_signal):
        """[psnr, ssim, bicubic psnr, bicubic ssim, images, seconds, scored] summed over this rank's images."""
        args, scale = self.args, self.scales[idx_scale]
        shave_extra = loader.dataset.shave_extra
        sums = [0.0] * 7
        bar = tqdm(loader, desc=f'{loader.dataset.name} x{scale}', unit='img', leave=False,
                   disable=None if self.world.main else True)
        for lr, hr, filename, _ in bar:
            if check_signal is not None:
                check_signal()
            sr, seconds = self.forward(model, lr, idx_scale)
            sums[4] += 1
            sums[5] += seconds
            save_list = [sr]
            if hr.numel():
                sums[6] = 1.0
                p, s = score(sr.cpu(), hr, scale, args.rgb_range, shave_extra)
                sums[0] += p
                sums[1] += s
                if want_bicubic:
                    bic = imresize_tensor(lr.float().cpu(), scale, quantize_range=args.rgb_range,
                                          border=args.imresize_border)
                    p, s = score(bic, hr, scale, args.rgb_range, shave_extra)
                    sums[2] += p
                    sums[3] += s
            if args.save_gt:
                save_list += [lr.float(), hr] if hr.numel() else [lr.float()]
            if args.save_results or not hr.numel():  # Demo: the outputs are what it is for
                self.ckp.save_results(loader.dataset, filename[0], save_list, scale)
            if sums[4] <= 2 and hr.numel():  # TensorBoard: SR and HR crops of the first images
                self._crops(loader.dataset.name, scale, filename[0], sr, hr)
            if self.figures is not None and hr.numel():
                self.figures.add(loader.dataset.name, scale, filename[0], lr.float().cpu(), sr.cpu(), hr)
        return sums

    def _crops(self, name, scale, filename, sr, hr, size=128):
        h, w = sr.shape[-2:]
        y, x = max(h - size, 0) // 2, max(w - size, 0) // 2
        pair = [t[0, :, y:y + size, x:x + size].float().cpu() / self.args.rgb_range for t in (sr, hr)]
        self.ckp.add_image(f'{name}_x{scale}/{filename} (SR | HR)', torch.cat(pair, -1), self.epoch)

    def forward(self, model, lr, idx_scale):
        """The quantized SR image and the seconds the model took."""
        lr, = model.prepare(lr)
        t0 = time.perf_counter()
        sr = model(lr, idx_scale)
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        return metrics.quantize_tensor(sr.float(), self.args.rgb_range), seconds

    # ---- the numbers ----------------------------------------------------------
    def add(self, name, scale, entry):
        """Keep an entry for results.json."""
        self.results.setdefault(name, {})[str(scale)] = entry

    def record(self, name, scale, entry, epoch=0, written=0):
        """add(), track the best PSNR and log the line of a set and scale
        (`written`: the result images its test wrote)."""
        self.add(name, scale, entry)
        saved = f'; wrote {written} image(s) to {self.ckp.get_path(f"results-{name}")}' if written else ''
        if 'psnr' not in entry:
            self.ckp.write_log(f'[{name} x{scale}]\t{saved[2:] or "wrote no image"}')
            return
        key = f'{name}/x{scale}'
        if key not in self.best or entry['psnr'] > self.best[key][0]:
            self.best[key] = (entry['psnr'], epoch)
        b, be = self.best[key]
        best = '' if self.args.test_only else f' (Best: {b:.2f} @epoch {be})'
        self.ckp.write_log(f'[{name} x{scale}]\tPSNR: {entry["psnr"]:.2f} SSIM: {entry["ssim"]:.4f}{best}{saved}')
        self.ckp.add_scalars(epoch, {f'psnr/{name}_x{scale}': entry['psnr'], f'ssim/{name}_x{scale}': entry['ssim']})

    def is_best(self, epoch):
        """True when the first set's first scale reached its best PSNR at `epoch`."""
        if not self.loaders:
            return False
        first = f'{self.loaders[0].dataset.name}/x{self.scales[0]}'
        return first in self.best and self.best[first][1] == epoch

    @staticmethod
    def table(rows):
        """PSNR/SSIM per set and scale; a Bicubic column when it was measured."""
        bic = any('bicubic_psnr' in e for _, _, e in rows)
        keys = (('psnr', 2), ('ssim', 4)) + ((('bicubic_psnr', 2), ('bicubic_ssim', 4)) if bic else ())
        head = f'{"Dataset":<12}{"Scale":>6}{"PSNR":>9}{"SSIM":>9}' + (f'{"Bicubic":>9}{"SSIM":>9}' if bic else '')
        lines = [head + f'{"s/img":>9}']
        for name, scale, e in rows:
            cells = [f'{e[k]:.{d}f}' if k in e else '-' for k, d in keys]
            lines.append(f'{name:<12}{"x" + str(scale):>6}' + ''.join(f'{c:>9}' for c in cells)
                         + f'{e["seconds_per_image"]:>9.3f}')
        return '\n'.join(lines)

    # ---- files ----------------------------------------------------------------
    def write_results(self):
        """results.json: {set: {scale: {'psnr', 'ssim', 'seconds_per_image', ...}}} (rank 0);
        a --test_only run also writes its paper table (evaluate.py's): table.md and table.tex."""
        if not self.world.main:
            return
        atomic.atomic_write_text(json.dumps(self.results, indent=2, sort_keys=True) + '\n',
                                 self.ckp.get_path('results.json'))
        if self.args.test_only:
            import evaluate
            name = self.args.model + ('+' if self.args.self_ensemble else '')  # the papers' name for x8 ensembles
            scored = evaluate.from_run_results(self.results, name)
            if scored:
                md, tex = evaluate.tables(scored)  # Bicubic first, where it was measured
                atomic.atomic_write_text(md, self.ckp.get_path('table.md'))
                atomic.atomic_write_text(tex, self.ckp.get_path('table.tex'))

    def export(self):
        """psnr_log.pt and the per-set PSNR plots (part of a save, see state.py)."""
        self.plot()
        atomic.atomic_save(self.log, self.ckp.get_path('psnr_log.pt'))

    def plot(self):
        """test_<set>.pdf/.png: PSNR per epoch, one line per scale, and the
        Bicubic baseline of each scale as a dashed line of its colour;
        psnr_minutes.pdf/.png: the same against the training minutes, one panel per set."""
        if len(self.log) == 0:
            return
        epochs = np.arange(1, len(self.log) + 1)
        minutes = np.array(self.minutes, dtype=float)
        timed = ~np.isnan(minutes)
        panels = []
        for idx_data, d in enumerate(self.names()):
            psnr = {f'Scale {s}': self.log[:, idx_data, i].numpy() for i, s in enumerate(self.scales)}
            bicubic = {f'Bicubic x{s}': self.bicubic[(d, s)][0] for s in self.scales if (d, s) in self.bicubic}
            save_plot(self.ckp.get_path(f'test_{d}'), [('PSNR (dB)', {k: (epochs, y) for k, y in psnr.items()},
                                                        bicubic)], f'SR on {d}')
            panels.append((f'{d} PSNR (dB)', {k: (minutes[timed], y[timed]) for k, y in psnr.items()}, bicubic))
        if timed.any():
            save_plot(self.ckp.get_path('psnr_minutes'), panels, 'PSNR against training time',
                      xlabel='Training minutes')

    # ---- run state (see state.py) ----------------------------------------------
    def names(self):
        """The test sets, as the PSNR log's columns."""
        return [d for d in self.args.data_test if d.lower() != 'video']

    def state_dict(self):
        return {'psnr_log': self.log, 'psnr_sets': self.names(), 'best': self.best, 'bicubic': self.bicubic,
                'results': self.results, 'train_minutes': self.minutes}

    def load_state_dict(self, st):
        self.best, self.bicubic, self.results = st['best'], st['bicubic'], st['results']
        self.minutes = st.get('train_minutes', [float('nan')] * len(st['psnr_log']))  # older states: unknown
        self.log = self.aligned(st['psnr_log'], st.get('psnr_sets'))

    def aligned(self, log, sets):
        """A saved PSNR log with one column per test set of this session (--data_test may change
        on resume): NaN for the epochs before a set was tested. (States saved before the sets were
        recorded keep their columns when their number matches.)"""
        names = self.names()
        if len(log) == 0 or (sets or names) == names and log.shape[1] == len(names):
            return log
        out = torch.full((len(log), len(names), len(self.scales)), float('nan'))
        for i, name in enumerate(names):
            if sets and name in sets:
                out[:, i] = log[:, sets.index(name)]
        return out
