"""Evaluator: tests a model on every test set (its loaders) and scale.

It owns the numbers of a run: PSNR/SSIM per image (metrics.py, the MATLAB
protocol), the Bicubic baseline beside a learned network's (measured once per
set and scale; a network without weights, such as Bicubic, is its own), the
sums of a test (Sums) reduced over torchrun ranks when the test is sharded,
the best PSNR per set and scale, the per-epoch PSNR log (psnr_log.pt and its
plots), results.json and which result images are saved. run() first scores
every set and scale (score), then reports what was tested (report: the log
lines, the PSNR log, results.json, the table of tables.py). Trainer.test(),
--test_only and the --video_hr scoring all use it.
"""
import json
import time
from dataclasses import astuple, dataclass
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

import atomic
import metrics
import provenance
import tables
from data.imresize import imresize_tensor
from distributed import World
from plot import save_plot


def score(sr, hr, scale, rgb_range, shave_extra=0, gray='stacked'):
    """(PSNR, SSIM) of one quantized SR image against its HR image."""
    return metrics.calc_psnr_ssim(sr, hr, rgb_range, shave=scale + shave_extra, gray=gray)


@dataclass
class Sums:
    """A test of one set at one scale, summed over this rank's images (and,
    sharded, over the ranks: reduced)."""
    psnr: float = 0.0
    ssim: float = 0.0
    bicubic_psnr: float = 0.0
    bicubic_ssim: float = 0.0
    images: int = 0       # images tested
    scored: int = 0       # of them, with an HR image to score against (Demo: none)
    seconds: float = 0.0  # in the model's forward

    def reduced(self, world, device):
        """The sums over all ranks."""
        return Sums(*world.all_sum(list(astuple(self)), device))

    def entry(self):
        """results.json's entry: seconds per image and, when scored, the mean PSNR and SSIM."""
        out = {'seconds_per_image': self.seconds / max(int(self.images), 1)}
        if self.scored:
            out.update(psnr=self.psnr / int(self.scored), ssim=self.ssim / int(self.scored))
        return out

    def bicubic(self):
        """(PSNR, SSIM) means of the Bicubic baseline."""
        return self.bicubic_psnr / int(self.scored), self.bicubic_ssim / int(self.scored)


class Tested(NamedTuple):
    """One set at one scale, as run() scored it; `written`: the result images its test wrote."""
    set: str
    scale: int
    entry: dict
    written: int


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
        self.figures = None        # --save_figures: figures.FigureWriter, fed every scored test image
        if args.save_figures and args.save_results and world.main:
            import figures
            self.figures = figures.FigureWriter(args, ckp)

    # ---- testing --------------------------------------------------------------
    def run(self, model, epoch, shard=False, check_signal=None, clock=None, only=None):
        """Test every set and scale, then report them (the log lines, the
        table, results.json). clock: the training clock's summary (Clock.summary:
        its minutes so far, the x of psnr_minutes.png, and steps; None: --test_only); only: the names of
        the sets to test (None: every set; --curve_sets between a run's final tests)."""
        self.ckp.write_log('\nEvaluation:')
        self.epoch, t0 = epoch, time.perf_counter()
        tested = self.score(model, shard, check_signal, only)
        minutes = None if clock is None else clock['train_minutes']
        for t in tested:
            t.entry.update({**clock, 'train_minutes': round(minutes, 3)} if clock else {})
        self.report(tested, epoch, minutes)
        self.ckp.write_log(f'Testing took {time.perf_counter() - t0:.1f} s'
                           + (f' (after {minutes:.1f} min of training)' if minutes is not None else ''))

    def score(self, model, shard=False, check_signal=None, only=None):
        """[Tested] for every test set (of `only`, when given) and scale, in order."""
        model.eval()
        tested = []
        for loader in (d for d in self.loaders if only is None or d.dataset.name in only):
            if shard:
                loader.set_shard(self.world.rank, self.world.world_size)
            for idx_scale, scale in enumerate(self.scales):
                entry = self._test(model, loader, idx_scale, shard, check_signal)
                tested.append(Tested(loader.dataset.name, scale, entry, self.ckp.results_written()))
        return tested

    def _test(self, model, loader, idx_scale, shard, check_signal):
        """The entry of one set at one scale (the baseline beside it where measured)."""
        name, scale = loader.dataset.name, self.scales[idx_scale]
        want_bicubic = getattr(model.get_model(), 'learned', True) and (name, scale) not in self.bicubic
        loader.set_scale(idx_scale)
        sums = self._sums(model, loader, idx_scale, want_bicubic, check_signal)
        if shard:
            sums = sums.reduced(self.world, self.device)
        entry = sums.entry()
        if sums.scored and want_bicubic:
            self.bicubic[(name, scale)] = sums.bicubic()
        if sums.scored and (name, scale) in self.bicubic:
            entry.update(bicubic_psnr=self.bicubic[(name, scale)][0], bicubic_ssim=self.bicubic[(name, scale)][1])
        return entry

    def _sums(self, model, loader, idx_scale, want_bicubic, check_signal):
        """Sums over this rank's images of the loader at scale idx_scale."""
        args, scale = self.args, self.scales[idx_scale]
        shave_extra = loader.dataset.shave_extra
        sums = Sums()
        bar = tqdm(loader, desc=f'{loader.dataset.name} x{scale}', unit='img', leave=False,
                   disable=None if self.world.main else True)
        for lr, hr, filename, _ in bar:
            if check_signal is not None:
                check_signal()
            sr, seconds = self.forward(model, lr, idx_scale)
            sums.images += 1
            sums.seconds += seconds
            if hr.numel():
                sums.scored += 1
                gray = args.gray_hr if loader.dataset.is_gray(filename[0]) else 'stacked'
                p, s = score(sr.cpu(), hr, scale, args.rgb_range, shave_extra, gray)
                sums.psnr += p
                sums.ssim += s
                if want_bicubic:
                    bic = imresize_tensor(lr.float().cpu(), scale, quantize_range=args.rgb_range,
                                          border=args.imresize_border)
                    p, s = score(bic, hr, scale, args.rgb_range, shave_extra, gray)
                    sums.bicubic_psnr += p
                    sums.bicubic_ssim += s
            self._keep(loader.dataset, filename[0], scale, lr, sr, hr, sums.images)
        return sums

    def _keep(self, dataset, filename, scale, lr, sr, hr, nth):
        """What the nth test image leaves: its result images, TensorBoard crops, a figure."""
        save_list = [sr]
        if self.args.save_gt:
            save_list += [lr.float(), hr] if hr.numel() else [lr.float()]
        if self.args.save_results or not hr.numel():  # Demo: the outputs are what it is for
            self.ckp.save_results(dataset, filename, save_list, scale)
        if nth <= 2 and hr.numel():  # TensorBoard: SR and HR crops of the first images
            self._crops(dataset.name, scale, filename, sr, hr)
        if self.figures is not None and hr.numel():
            self.figures.add(dataset.name, scale, filename, lr.float().cpu(), sr.cpu(), hr)

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

    # ---- reporting --------------------------------------------------------------
    def report(self, tested, epoch, minutes=None):
        """What run() scored: a log line per set and scale, a row of the PSNR
        log, results.json and the table of what was tested."""
        names = self.names()
        row = torch.zeros(1, len(names), len(self.scales))
        row[0, [i for i, n in enumerate(names) if n not in {t.set for t in tested}]] = float('nan')  # not tested
        for t in tested:
            self.record(t.set, t.scale, t.entry, epoch, t.written)
            if 'psnr' in t.entry:
                row[0, names.index(t.set), self.scales.index(t.scale)] = t.entry['psnr']
        self.log = torch.cat([self.log, row])
        self.minutes.append(float('nan') if minutes is None else minutes)
        self.write_results()
        self.ckp.write_log(tables.run_table([(t.set, t.scale, t.entry) for t in tested]))

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

    # ---- files ----------------------------------------------------------------
    def document(self):
        """results.json's top-level dict, assembled here only: {set: {scale:
        {'psnr', 'ssim', 'seconds_per_image', ...}}, 'provenance': {...}}."""
        return {**self.results, 'provenance': provenance.of_run(self.args, self.device)}  # provenance.py

    def write_results(self):
        """results.json (document(), rank 0); a --test_only run also writes
        its paper table (tables.tables): table.md and table.tex."""
        if not self.world.main:
            return
        atomic.atomic_write_text(json.dumps(self.document(), indent=2, sort_keys=True) + '\n',
                                 self.ckp.get_path('results.json'))
        if self.args.test_only:
            name = self.args.model + ('+' if self.args.self_ensemble else '')  # the papers' name for x8 ensembles
            scored = tables.from_run_results(self.results, name)
            if scored:
                md, tex = tables.tables(scored)  # Bicubic first, where it was measured
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
        """The test sets (of the loaders), as the PSNR log's columns."""
        return [loader.dataset.name for loader in self.loaders]

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
