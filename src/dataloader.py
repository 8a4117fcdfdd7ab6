"""MSDataLoader: a DataLoader whose every training batch uses one scale drawn
at random from --scale, built only on public torch.utils.data APIs.

The batch sampler attaches `(idx_scale, seed)` to every index; the dataset
reads the scale (and a per-sample seed for crop/augmentation) from the index.
Batches are `(lr, hr, filenames, idx_scale)`. Everything random comes from
(--seed, epoch), so the same seed gives the same batches whatever
--n_threads is, and a run resumed at an epoch boundary sees what it would
have seen.
"""
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from distributed import World


class ScaleBatchSampler(Sampler):
    """Shuffled batches of `(i, idx_scale, seed)`, one idx_scale per batch.
    With world_size > 1 each rank takes its own slice of every global batch,
    so ranks see disjoint samples and the same scale at every step. `weights`:
    how often each scale is drawn (None: equally). `item_weights` (one per
    index, see --sample_by): indices drawn with replacement in proportion to
    them; None: every index once per pass, shuffled."""

    def __init__(self, n, batch_size, n_scales, seed, rank=0, world_size=1, max_batches=None, weights=None,
                 item_weights=None):
        super().__init__()
        self.weights = torch.tensor(weights, dtype=torch.float64) if weights else None
        self.cum = None if item_weights is None else torch.cumsum(torch.as_tensor(item_weights, dtype=torch.float64), 0)
        self.max_batches = max_batches
        self.start_batch = 0
        if batch_size % world_size:
            raise ValueError(f'--batch_size {batch_size} is not divisible by {world_size} processes')
        self.n, self.batch_size, self.n_scales = n, batch_size, n_scales
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 1

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        n = self.n // self.batch_size
        return min(n, self.max_batches) if self.max_batches else n

    def __iter__(self):
        """Batches of this epoch from `start_batch` on (a resumed epoch skips
        the batches it already trained on)."""
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = self._indices(g)
        scales = self._scales(g)
        seeds = torch.randint(2 ** 62, (len(self), self.batch_size), generator=g).tolist()
        per_rank = self.batch_size // self.world_size
        for b in range(self.start_batch, len(self)):
            idx = perm[b * self.batch_size:(b + 1) * self.batch_size]
            lo = self.rank * per_rank
            yield [(i, scales[b], sd) for i, sd in zip(idx[lo:lo + per_rank], seeds[b][lo:lo + per_rank])]

    def _indices(self, g):
        """This epoch's dataset indices, batch after batch."""
        if self.cum is None:
            return torch.randperm(self.n, generator=g).tolist()
        u = torch.rand(len(self) * self.batch_size, generator=g, dtype=torch.float64) * self.cum[-1]
        return torch.searchsorted(self.cum, u, right=True).clamp_(max=self.n - 1).tolist()

    def _scales(self, g):
        """The scale index of each batch of the epoch."""
        if self.weights is None:
            return torch.randint(self.n_scales, (len(self),), generator=g).tolist()
        return torch.multinomial(self.weights, len(self), replacement=True, generator=g).tolist()


class TestSampler(Sampler):
    """Every image once, at the scale set with set_scale(); with
    set_shard(rank, world_size) only every world_size-th image from rank."""

    def __init__(self, n):
        super().__init__()
        self.n = n
        self.idx_scale = 0
        self.rank, self.world_size = 0, 1

    def __len__(self):
        return len(range(self.rank, self.n, self.world_size))

    def __iter__(self):
        for i in range(self.rank, self.n, self.world_size):
            yield [(i, self.idx_scale, 0)]


def collate(batch):
    lr = torch.stack([b[0] for b in batch])
    hr = torch.stack([b[1] for b in batch])
    return lr, hr, [b[2] for b in batch], batch[0][3]


class Joined(Dataset):
    """Several training sets (--data_train A+B) as one; indices
    (i, idx_scale, seed) pass through to the set that holds i."""

    def __init__(self, datasets):
        self.datasets = datasets
        self.name = '+'.join(d.name for d in datasets)
        self.sizes = [len(d) for d in datasets]

    def __len__(self):
        return sum(self.sizes)

    def draw_weights(self, by):
        return np.concatenate([d.draw_weights(by) for d in self.datasets])

    def __getitem__(self, index):
        i, rest = (index[0], tuple(index[1:])) if isinstance(index, (tuple, list)) else (index, ())
        for d, n in zip(self.datasets, self.sizes):
            if i < n:
                return d[(i,) + rest] if rest else d[i]
            i -= n
        raise IndexError(index)


class WorkerDied(RuntimeError):
    """A loader worker process was killed (e.g. by the out-of-memory killer)."""


WORKER_DIED = ('a data loader worker process died; the out-of-memory killer is the usual cause: '
               'lower --n_threads or --cache_mem')
# how a dead worker surfaces from the loader's queue: the pipe of a worker killed while sending a batch
# (ConnectionResetError, BrokenPipeError, EOFError), besides torch's own RuntimeErrors
QUEUE_ERRORS = (ConnectionError, EOFError)


def worker_death(e, from_queue=False):
    """WorkerDied for any way torch reports a dead loader worker, else None:
    its RuntimeError ('DataLoader worker ... is killed by signal' from its
    SIGCHLD handler, anywhere in the main process, or '... exited
    unexpectedly' from its queue), or, with `from_queue` (`e` came out of a
    loader with workers), a connection error of the queue's pipe. Every way
    gives the same message."""
    if isinstance(e, WorkerDied):
        return e
    torch_report = isinstance(e, RuntimeError) and 'DataLoader worker' in str(e)
    if torch_report or (from_queue and isinstance(e, QUEUE_ERRORS)):
        return WorkerDied(WORKER_DIED)
    return None


def despite_deaths(fn, tries=4):
    """fn()'s result, though torch's SIGCHLD handler may raise a dead worker's report in the middle of it
    after the death has already surfaced from the queue (the dead loader is still referenced then): each
    such late report runs fn again (a save: its files are written atomically, so a second try is whole)."""
    for _ in range(tries - 1):
        try:
            return fn()
        except RuntimeError as e:
            if worker_death(e) is None:
                raise
    return fn()


class MSDataLoader(DataLoader):
    """`world`: the distributed.World whose rank takes its slice of every
    training batch (one process when None)."""

    def __init__(self, args, dataset, train=True, world=None):
        world = World() if world is None else world
        if train:  # --sample_by set: each training set its own --test_every share (EDSR's shuffle)
            by = args.sample_by
            sampler = ScaleBatchSampler(len(dataset), args.batch_size, len(args.scale), args.seed, world.rank,
                                        world.world_size, max_batches=args.test_every, weights=args.scale_weights,
                                        item_weights=None if by == 'set' else dataset.draw_weights(by))
        else:
            sampler = TestSampler(len(dataset))
        cuda = not args.cpu and torch.cuda.is_available()
        super().__init__(dataset, batch_sampler=sampler, num_workers=min(args.n_threads, os.cpu_count() or 1),
                         collate_fn=collate, pin_memory=cuda, persistent_workers=False)
        self.train = train

    def __iter__(self):
        """The batches; a dead worker, however torch reports it, raises WorkerDied."""
        batches = super().__iter__()
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as e:
                died = worker_death(e, from_queue=self.num_workers > 0)
                if died is None:
                    raise
                raise died from e
            yield batch

    def set_scale(self, idx_scale):
        self.batch_sampler.idx_scale = idx_scale
        if hasattr(self.dataset, 'set_scale'):
            self.dataset.set_scale(idx_scale)

    def set_shard(self, rank, world_size):
        self.batch_sampler.rank, self.batch_sampler.world_size = rank, world_size

    def set_epoch(self, epoch, start_batch=0):
        self.batch_sampler.set_epoch(epoch)
        self.batch_sampler.start_batch = start_batch
