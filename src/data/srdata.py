"""SRData: the base of every image dataset.

A subclass sets `self.dir_hr` (and `self.layout`, a hint printed when the
folder holds nothing) and implements `_scan()` returning a list of
`(hr_path, {scale: lr_path or None})`. Missing LR images are made from the
mod-cropped HR image with MATLAB-exact bicubic and cached under --dir_cache;
`--ext sep` also caches decoded arrays there (.npy). Nothing is ever written
inside --dir_data.

Speed: the caches are built by a pool of max(1, --n_threads) threads (PNG
decoding, zlib and numpy release the GIL). With `--ext sep` the decoded arrays
are then held in RAM while their total stays within --cache_mem GiB (a
MemBudget that the datasets of one Data build share, split across the
torchrun ranks of a node), the rest memory-mapped (opened once);
DataLoader workers are forked and share these arrays copy-on-write, so every
image is decoded once and held once per process tree. `--ext img` decodes the
file at every access.

Items are `(lr, hr, filename, idx_scale)`. An index is either an int (test:
the current scale) or `(i, idx_scale, seed)` from the batch sampler (train:
the seed drives the crop and augmentation, so batches do not depend on the
number of worker processes).
"""
import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset
from tqdm import tqdm

from data import common
from data.common import DataError
from data.degrade import Degradation
from data.imresize import imresize


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _write_png(path, arr):
    import imageio.v3 as iio
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp.png'
    iio.imwrite(tmp, arr if arr.shape[2] > 1 else arr[..., 0])
    os.replace(tmp, path)


def _write_npy(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp.npy'
    np.save(tmp, arr)
    os.replace(tmp, path)


def npy_intact(path):
    """True when the .npy file at `path` can be read and its size matches its header."""
    try:
        with open(path, 'rb') as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
            return os.fstat(f.fileno()).st_size == f.tell() + int(np.prod(shape)) * dtype.itemsize
    except Exception:  # OSError; ValueError, SyntaxError, ... from a damaged header
        return False


def parallel(fn, jobs, desc, n_threads):
    """fn(job) for every job on max(1, n_threads) threads, with a progress
    bar on a terminal; [(job, DataError or None)] in the order of `jobs`.
    Any other exception is raised."""
    if not jobs:
        return []
    errors = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, unit='img', leave=False, disable=None)
    n = min(max(1, n_threads), len(jobs))
    try:
        if n == 1:
            for k, job in enumerate(jobs):
                try:
                    fn(job)
                except DataError as e:
                    errors[k] = e
                bar.update()
        else:
            with ThreadPoolExecutor(n, thread_name_prefix='srdata') as pool:
                futures = {pool.submit(fn, job): k for k, job in enumerate(jobs)}
                try:
                    for f in as_completed(futures):
                        e = f.exception()
                        if e is not None and not isinstance(e, DataError):
                            raise e
                        errors[futures[f]] = e
                        bar.update()
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    finally:
        bar.close()
    return list(zip(jobs, errors))


def scaled_copies(entries, factors, folder, n_colors, stale, parallel, bad):
    """--augment_scales: every HR image of `entries` also downscaled by each
    factor below 1 (MATLAB bicubic, rounded to 8 bits) and cached in
    `folder` once; those are HR images of their own (their LR images are made
    from them). The originals are kept when 1 is one of the factors. A source
    that cannot be read goes to bad(err, hr)."""
    def path(hr, f):
        return os.path.join(f'{folder}_c{n_colors}', f'{_stem(hr)}_s{f:g}.png')

    def make(job):
        hr, f = job
        _write_png(path(hr, f), imresize(common.read_image(hr, n_colors), f))
    jobs = [(hr, f) for f in factors if f != 1 for hr, _ in entries]
    failed = set()
    for (hr, _), err in parallel(make, [j for j in jobs if stale(path(*j), j[0])], 'scaling HR images'):
        if err is not None:
            bad(err, hr)
            failed.add(hr)
    return [e for e in entries if 1 in factors and e[0] not in failed] + \
        [(path(hr, f), {}) for hr, f in jobs if hr not in failed]


class MemBudget:
    """The bytes of decoded images that may be held in RAM: --cache_mem GiB,
    split across the torchrun ranks of a node (LOCAL_WORLD_SIZE)."""

    def __init__(self, cache_mem):
        local = max(1, int(os.environ.get('LOCAL_WORLD_SIZE', '1') or 1))
        self.total = cache_mem * 2 ** 30 / local
        self.used = 0


class SRData(Dataset):
    layout = ''
    shave_extra = 0  # pixels shaved beyond the scale when scoring (DIV2K: 6, as EDSR)

    def __init__(self, args, name='', train=True, budget=None):
        """`budget`: the MemBudget shared with the run's other datasets (a fresh one of its own when None)."""
        self.args = args
        self.name = name
        self.train = train
        self.scale = list(args.scale)
        self.idx_scale = 0
        self.degradation = Degradation.from_args(args)
        ext = args.ext.split('-')
        self.ext, self.reset = ext[0], 'reset' in ext
        self._mem, self._maps = {}, {}   # --ext sep: arrays held in RAM, memory maps
        self.mem_bytes = 0
        entries = self._scan()
        if not entries:
            what = 'no images found in' if os.path.isdir(self.dir_hr) else 'folder not found:'
            raise DataError(f'{name}: {what} {self.dir_hr}' + (f' (expected {self.layout})' if self.layout else ''))
        key = hashlib.sha1(str(Path(self.dir_hr).resolve()).encode()).hexdigest()[:8]
        self.cache_dir = os.path.join(args.dir_cache, f'{name}_{key}')
        if train:
            entries = self._augment(entries)
        self._prepare(entries, MemBudget(args.cache_mem) if budget is None else budget)
        n = len(self.images_hr)
        self.repeat = max(-(-args.batch_size * args.test_every // n), 1) if train else 1  # ceil

    # ---- building -------------------------------------------------------
    def _scan(self):
        raise NotImplementedError

    def _lr_cache_path(self, hr, s):
        # made from the HR image as read with --n_colors (RGB, or Y for 1), keyed by the degradation
        sub = f'LR_{self.degradation.cache_name}' + ('' if self.args.n_colors == 3 else f'_c{self.args.n_colors}')
        return os.path.join(self.cache_dir, sub, f'X{s}', f'{_stem(hr)}x{s}.png')

    def _kind(self, s):
        """The .npy cache folder of the LR images at scale s (keyed by the degradation too)."""
        name = self.degradation.cache_name
        return f'X{s}' if name == 'bicubic' else f'X{s}_{name}'

    def _stale(self, dst, src):
        """True when the cached `dst` must be (re)built from `src`."""
        return self.reset or not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src)

    def _npy_path(self, path, kind):
        return os.path.join(self.cache_dir, f'bin_c{self.args.n_colors}', kind, os.path.basename(path) + '.npy')

    def _prepare(self, entries, budget):
        todo = [(hr, s) for hr, lrs in entries for s in self.scale if not lrs.get(s)]
        todo = [(hr, s) for hr, s in todo if self._stale(self._lr_cache_path(hr, s), hr)]
        bad = set()

        for (hr, s), err in self._parallel(lambda job: self._make_lr(*job), todo, f'{self.name}: making {self.degradation.name} LR'):
            if err is not None:
                self._bad(err, bad, hr)
        self.images_hr, self.images_lr = [], [[] for _ in self.scale]
        self.lr_given = set()  # LR files the data set ships (used as they are: no DN noise added)
        for hr, lrs in entries:
            if hr in bad:
                continue
            self.images_hr.append(hr)
            self.lr_given.update(lrs.values())
            for si, s in enumerate(self.scale):
                self.images_lr[si].append(lrs.get(s) or self._lr_cache_path(hr, s))
        if self.ext == 'sep':
            self._build_bins(bad)
        if self.train:
            self._drop_small(bad)
        if bad:
            keep = [i for i, hr in enumerate(self.images_hr) if hr not in bad]
            self.images_hr = [self.images_hr[i] for i in keep]
            self.images_lr = [[lst[i] for i in keep] for lst in self.images_lr]
        if not self.images_hr:
            raise DataError(f'{self.name}: no usable images left in {self.dir_hr}')
        if self.ext == 'sep':
            self._hold_arrays(budget)

    def _augment(self, entries):
        """--augment_scales (see scaled_copies)."""
        if self.args.augment_scales == (1,):
            return entries
        return scaled_copies(entries, self.args.augment_scales, os.path.join(self.cache_dir, 'HR_scaled'),
                             self.args.n_colors, self._stale, self._parallel, lambda err, hr: self._bad(err, set(), hr))

    def _make_lr(self, hr, s):
        """The cached LR image of `hr` at scale s, made from it."""
        img = common.modcrop(common.read_image(hr, self.args.n_colors), s)
        _write_png(self._lr_cache_path(hr, s), self.degradation.make(img, s))

    def _parallel(self, fn, jobs, desc):
        return parallel(fn, jobs, desc, self.args.n_threads)

    def _bad(self, err, bad, hr):
        """A bad file: skipped with a warning when training, an error in a test set."""
        if not self.train:
            raise err
        warnings.warn(f'skipping {err}', stacklevel=2)
        bad.add(hr)

    def _build_bins(self, bad):
        """The .npy cache of every image; a stale or damaged entry (unreadable, or not its header's size) is rebuilt."""
        jobs = []
        for i, hr in enumerate(self.images_hr):
            if hr in bad:
                continue
            pairs = [(hr, 'HR', None)] + [(self.images_lr[si][i], self._kind(s), s) for si, s in enumerate(self.scale)]
            for src, kind, s in pairs:
                dst = self._npy_path(src, kind)
                if self._stale(dst, src):
                    jobs.append((hr, src, dst, s))
                elif not npy_intact(dst):
                    warnings.warn(f'{dst}: damaged cache entry (unreadable, or its size does not match its '
                                  f'header); rebuilding it from {src}', stacklevel=2)
                    jobs.append((hr, src, dst, s))

        def cache(job):
            hr, src, dst, s = job
            _write_npy(dst, self._read_source(hr, src, s))
        for (hr, _, _, _), err in self._parallel(cache, jobs, f'{self.name}: caching decoded images'):
            if err is not None:
                self._bad(err, bad, hr)

    def _read_source(self, hr, src, s):
        """The image `src`; an LR image that srlab cached and cannot read is made again from `hr`."""
        try:
            return common.read_image(src, self.args.n_colors)
        except DataError:
            if s is None or src != self._lr_cache_path(hr, s):
                raise
        warnings.warn(f'{src}: damaged cache entry (unreadable); rebuilding it from {hr}', stacklevel=2)
        self._make_lr(hr, s)
        return common.read_image(src, self.args.n_colors)

    def _hold_arrays(self, budget):
        """Load the cached arrays into RAM, image by image (HR with its LR
        images), while `budget` (a MemBudget) lasts. The rest stays
        memory-mapped (opened here once, see _load)."""
        chosen = []
        for i, hr in enumerate(self.images_hr):
            paths = [self._npy_path(hr, 'HR')] + [self._npy_path(self.images_lr[si][i], self._kind(s))
                                                 for si, s in enumerate(self.scale)]
            for p in paths:
                self._maps[p] = np.load(p, mmap_mode='r')
            size = sum(self._maps[p].nbytes for p in paths)
            if budget.used + size <= budget.total:  # else a smaller image further on may still fit
                budget.used += size
                chosen += paths

        def load(path):
            self._mem[path] = np.load(path)
        self._parallel(load, chosen, f'{self.name}: loading decoded images into memory')
        for p in chosen:
            del self._maps[p]
        self.mem_bytes = sum(a.nbytes for a in self._mem.values())

    def __getstate__(self):
        # memory maps are reopened where the dataset is unpickled (a 'spawn'
        # worker); forked workers share everything without pickling
        state = self.__dict__.copy()
        if '_maps' in state:
            state['_maps'] = {}
        return state

    def _drop_small(self, bad):
        """Training: an image smaller than the patch at every scale is skipped;
        one that fits only some scales is used at those (self.fits: per scale,
        whether each image fits; see __getitem__). See fit_patch."""
        sides = {hr: [min(self._shape(self.images_lr[si][i], self._kind(s))) for si, s in enumerate(self.scale)]
                 for i, hr in enumerate(self.images_hr) if hr not in bad}
        fit = fit_patch(self.name, self.dir_hr, sides, self.scale, [self.patch(s) for s in self.scale])
        bad.update(hr for hr, ok in fit.items() if not any(ok))
        self.fits = [np.array([fit[hr][si] for hr in self.images_hr if hr not in bad], bool)
                     for si in range(len(self.scale))]
        self.fitting = [np.flatnonzero(f) for f in self.fits]
        partial = [f'x{s}: {f.sum()} of {len(f)}' for s, f in zip(self.scale, self.fits) if not f.all()]
        if partial:
            warnings.warn(f'{self.name}: images smaller than the patch at some scales are used at the scales '
                          f'where they fit ({", ".join(partial)})', stacklevel=2)

    def patch(self, s):
        """The HR patch side at scale s: --lr_patch x s (one LR patch at every scale), else --patch_size."""
        return self.args.lr_patch * s if self.args.lr_patch else self.args.patch_size

    def _shape(self, path, kind):
        if self.ext == 'sep':
            return np.load(self._npy_path(path, kind), mmap_mode='r').shape[:2]
        import imageio.v3 as iio
        try:
            return iio.improps(path).shape[:2]
        except Exception as e:
            raise DataError(f'{path}: cannot read image header ({type(e).__name__})')

    # ---- access ---------------------------------------------------------
    def _load(self, path, kind):
        if self.ext == 'sep':
            key = self._npy_path(path, kind)
            arr = self._mem.get(key)
            if arr is None:
                arr = self._maps.get(key)
                if arr is None:
                    arr = self._maps[key] = np.load(key, mmap_mode='r')
            return arr
        return common.read_image(path, self.args.n_colors)

    def set_scale(self, idx_scale):
        self.idx_scale = idx_scale

    def is_gray(self, stem):
        """True when the HR file of image `stem` holds one channel: a grayscale image (--gray_hr)."""
        if not hasattr(self, '_gray'):
            self._gray = {_stem(p): common.channels(p) == 1 for p in self.images_hr}
        return self._gray.get(stem, False)

    def __len__(self):
        return len(self.images_hr) * self.repeat

    def draw_weights(self, by):
        """--sample_by image / area: each index's weight, its image's (1, or its HR pixels) over the repeats."""
        per_image = [1.0 if by == 'image' else float(np.prod(self._shape(p, 'HR'))) for p in self.images_hr]
        return np.tile(np.array(per_image) / self.repeat, self.repeat)

    def __getitem__(self, index):
        if isinstance(index, (tuple, list)):
            i, idx_scale, seed = index
        else:
            i, idx_scale, seed = index, self.idx_scale, 0
        i %= len(self.images_hr)
        if self.train and not self.fits[idx_scale][i]:  # too small for this scale's patch: another image
            i = int(np.random.default_rng((seed, 1)).choice(self.fitting[idx_scale]))
        s = self.scale[idx_scale]
        hr_path, lr_path = self.images_hr[i], self.images_lr[idx_scale][i]
        hr = common.modcrop(self._load(hr_path, 'HR'), s)
        lr = self._load(lr_path, self._kind(s))
        if (lr.shape[0] * s, lr.shape[1] * s) != hr.shape[:2]:
            raise DataError(f'{lr_path}: LR size {lr.shape[1]}x{lr.shape[0]} times {s} does not match '
                            f'HR {hr_path} ({hr.shape[1]}x{hr.shape[0]} after cropping to a multiple of {s})')
        noisy = self.degradation.noisy and lr_path not in self.lr_given
        if self.train:
            rng = np.random.default_rng(seed)
            lr, hr = common.get_patch(lr, hr, self.patch(s), s, rng)
            if not self.args.no_augment:
                lr, hr = common.augment([lr, hr], rng)
            if noisy:  # DN: a new draw for every patch
                lr = self.degradation.finish(lr, rng=rng)
        elif noisy:  # DN: the same noise for this image every run
            lr = self.degradation.finish(lr, name=f'{_stem(hr_path)}x{s}')
        rgb = self.args.rgb_range
        return common.np2tensor(lr, rgb), common.np2tensor(hr, rgb), _stem(hr_path), idx_scale


def fit_patch(name, folder, sides, scales, patch):
    """{image: [fits the HR patch at each scale]} for `sides` ({image: its LR
    image's shorter side at each scale}); `patch`: --patch_size, or the HR
    patch of each scale (--lr_patch). Images that fit no scale are named in
    one warning line; when no image is large enough at all, or at one scale,
    a DataError names the --patch_size that would fit."""
    patches = list(patch) if isinstance(patch, (list, tuple)) else [patch] * len(scales)
    uniform = len(set(patches)) == 1

    def lr_side(si):  # the LR patch at scale index si, as the flags give it
        s, p = scales[si], patches[si]
        return f'{p // s} = --patch_size {p} / {s}' if uniform else f'--lr_patch {p // s}'
    fit = {hr: [side >= p // s for side, s, p in zip(lr, scales, patches)] for hr, lr in sides.items()}
    small = [hr for hr, ok in fit.items() if not any(ok)]
    if not sides:
        return fit  # no image at all: 'no usable images left' (SRData._prepare)
    best = min(max(lr[si] for lr in sides.values()) * s for si, s in enumerate(scales))
    hint = f'--patch_size {best} or smaller would fit' if best else 'no --patch_size would fit'
    if len(small) == len(sides):
        what = f'--patch_size {patches[0]}' if uniform else lr_side(0)
        raise DataError(f'{name}: no usable images in {folder}: all {len(small)} are smaller than the {what} '
                        f'patch at every scale; {hint}')
    for si, s in enumerate(scales):
        if not any(ok[si] for ok in fit.values()):
            raise DataError(f'{name}: no image in {folder} is large enough for the x{s} patch '
                            f'({lr_side(si)}); {hint}')
    if small:
        warnings.warn(f'{name}: skipping {len(small)} image(s) smaller than the patch at every scale '
                      f'(x{scales[-1]}: {lr_side(-1)}): {", ".join(small[:3])}'
                      + (f' and {len(small) - 3} more' if len(small) > 3 else ''), stacklevel=3)
    return fit


def scan_folder(dir_hr, dir_lr, scales, names=None):
    """[(hr, {s: lr or None})] for the HR images of a folder; LR looked up as
    <dir_lr>/X<s>/<stem>x<s>.<ext>."""
    if not os.path.isdir(dir_hr):
        return []
    hrs = common.list_images(dir_hr)
    if names is not None:
        hrs = [h for h in hrs if _stem(h) in names]
    out = []
    for hr in hrs:
        lrs = {}
        for s in scales:
            for ext in (os.path.splitext(hr)[1],) + common.IMG_EXTS:
                p = os.path.join(dir_lr, f'X{s}', f'{_stem(hr)}x{s}{ext}') if dir_lr else ''
                if p and os.path.isfile(p):
                    lrs[s] = p
                    break
        out.append((hr, lrs))
    return out
