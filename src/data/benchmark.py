"""Benchmark sets: <dir_data>/benchmark/<Name>/HR/*, LR from
<Name>/LR_bicubic/X<s>/<stem>x<s>.png when present (LR_BD/ or LR_DN/ with
--degradation BD or DN; else made and cached, see data/degrade.py).
Any folder name works (Set5, Set14, B100, Urban100, Manga109, your own):
a name that no dataset registers is looked up here, so this module registers
nothing."""
import os

from data import srdata
from data.degrade import Degradation


def make_dataset(args, name, train=False, budget=None):
    return Benchmark(args, name, train=train, budget=budget)


class Benchmark(srdata.SRData):
    def __init__(self, args, name, train=False, budget=None):
        root = os.path.join(args.dir_data, 'benchmark', name)
        self.dir_hr = os.path.join(root, 'HR')
        lr = f'LR_{Degradation.from_args(args).folder}'
        self.dir_lr = os.path.join(root, lr)
        self.layout = f'{root}/HR/<image>.png (optional {lr}/X<s>/<image>x<s>.png)'
        super().__init__(args, name, train=train, budget=budget)

    def _scan(self):
        return srdata.scan_folder(self.dir_hr, self.dir_lr, self.scale)
