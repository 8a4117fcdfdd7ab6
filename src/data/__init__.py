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


class Data:
    def __init__(self, args):
        self.loader_train = None
        if not args.test_only:
            sets = [make_dataset(args, name, train=True) for name in args.data_train]
            trainset = sets[0] if len(sets) == 1 else Joined(sets)
            self.loader_train = MSDataLoader(args, trainset, train=True)
        self.loader_test = []
        for name in args.data_test:
            if name.lower() == 'video':
                continue
            self.loader_test.append(MSDataLoader(args, make_dataset(args, name, train=False), train=False))
