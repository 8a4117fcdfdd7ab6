"""Data: the training loader and one test loader per --data_test set.

A dataset NAME is registered in its own file under src/data/ by its factory:

    @DATASETS.register('DIV2K')
    def make_dataset(args, name, train=True, budget=None): ...

(`budget`: the srdata.MemBudget that the datasets of one run share). Any
other NAME is a benchmark folder <dir_data>/benchmark/NAME (data/benchmark.py);
'video' is the video tester's. Importing this package loads no torch, so
evaluate.py can use data.common alone.
"""
from pathlib import Path

from registry import DATASETS


VIDEO = 'video'  # the video tester's set name, in any case on the command line


def canonical(name, dir_data):
    """The one spelling of a dataset name, or None when it names no set:
    'video' in any case; a registered set's registered name; a benchmark
    folder <dir_data>/benchmark/<name> as the folder is spelt (an exact
    match first, else the only one that differs in case). option.py
    normalises --data_train/--data_test with it; everything after compares
    the spelling it gives."""
    if str(name).lower() == VIDEO:
        return VIDEO
    if name in DATASETS:
        return DATASETS.canonical(name)
    bench = Path(dir_data) / 'benchmark'
    if (bench / name).is_dir():
        return name
    folders = [p.name for p in bench.iterdir() if p.is_dir()] if bench.is_dir() else []
    same = [f for f in folders if f.lower() == str(name).lower()]
    return same[0] if len(same) == 1 else None


def dataset_kind(name, dir_data):
    """'video', 'module' (a registered dataset), 'benchmark' (a folder
    <dir_data>/benchmark/<name>) or None (unknown), for a canonical name."""
    if name == VIDEO:
        return 'video'
    if name in DATASETS:
        return 'module'
    if (Path(dir_data) / 'benchmark' / name).is_dir():
        return 'benchmark'
    return None


def make_dataset(args, name, train, budget=None):
    """The dataset NAME as typed (its spelling names its cache folder)."""
    if dataset_kind(name, args.dir_data) == 'module':
        factory = DATASETS.get(name)
    else:
        from data.benchmark import make_dataset as factory
    return factory(args, name, train=train, budget=budget)


def rank0_first(world, fn):
    """Under torchrun, rank 0 builds caches first; the others then read them."""
    import torch.distributed as dist
    on = dist.is_initialized()
    if on and not world.main:
        dist.barrier()
    out = fn()
    if on and world.main:
        dist.barrier()
    return out


class Data:
    """`world`: the distributed.World of this process (one process when None)."""

    def __init__(self, args, world=None):
        from distributed import World
        world = World() if world is None else world
        rank0_first(world, lambda: self._build(args, world))

    def _build(self, args, world):
        from data.srdata import MemBudget
        from dataloader import Joined, MSDataLoader
        budget = MemBudget(args.cache_mem)  # shared by every dataset of this run
        self.loader_train = None
        if not args.test_only:
            sets = [make_dataset(args, name, True, budget) for name in args.data_train]
            trainset = sets[0] if len(sets) == 1 else Joined(sets)
            self.loader_train = MSDataLoader(args, trainset, train=True, world=world)
        self.loader_test = [MSDataLoader(args, make_dataset(args, name, False, budget), train=False)
                            for name in args.data_test if name != VIDEO]
