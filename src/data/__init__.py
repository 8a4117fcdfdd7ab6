"""Data: the training loader and one test loader per --data_test set.

A dataset NAME is the module src/data/<name>.py (its make_dataset(args, name,
train)), or else a benchmark folder <dir_data>/benchmark/NAME.
"""
from importlib import import_module

from torch.utils.data import Dataset

from dataloader import MSDataLoader


def make_dataset(args, name, train):
    from option import dataset_kind
    kind = dataset_kind(name, args.dir_data)
    module = import_module('data.' + (name.lower() if kind == 'module' else 'benchmark'))
    return module.make_dataset(args, name, train=train)


class Joined(Dataset):
    """Several training sets as one; indices (i, idx_scale, seed) pass through."""

    def __init__(self, datasets):
        self.datasets = datasets
        self.name = '+'.join(d.name for d in datasets)
        self.sizes = [len(d) for d in datasets]

    def __len__(self):
        return sum(self.sizes)

    def __getitem__(self, index):
        i, rest = (index[0], tuple(index[1:])) if isinstance(index, (tuple, list)) else (index, ())
        for d, n in zip(self.datasets, self.sizes):
            if i < n:
                return d[(i,) + rest] if rest else d[i]
            i -= n
        raise IndexError(index)


def rank0_first(args, fn):
    """Under torchrun, rank 0 builds caches first; the others then read them."""
    import torch.distributed as dist
    on = dist.is_initialized()
    if on and getattr(args, 'rank', 0) != 0:
        dist.barrier()
    out = fn()
    if on and getattr(args, 'rank', 0) == 0:
        dist.barrier()
    return out


class Data:
    def __init__(self, args):
        rank0_first(args, lambda: self._build(args))

    def _build(self, args):
        self.loader_train = None
        if not args.test_only:
            sets = [make_dataset(args, name, train=True) for name in args.data_train]
            trainset = sets[0] if len(sets) == 1 else Joined(sets)
            self.loader_train = MSDataLoader(args, trainset, train=True, rank=getattr(args, 'rank', 0),
                                             world_size=getattr(args, 'world_size', 1))
        self.loader_test = []
        for name in args.data_test:
            if name.lower() == 'video':
                continue
            self.loader_test.append(MSDataLoader(args, make_dataset(args, name, train=False), train=False))
