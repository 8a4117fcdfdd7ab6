"""Benchmark sets: <dir_data>/benchmark/<Name>/HR/*, LR from
<Name>/LR_bicubic/X<s>/<stem>x<s>.png when present (else made and cached).
Any folder name works (Set5, Set14, B100, Urban100, Manga109, your own):
a name that no dataset registers is looked up here, so this module registers
nothing."""
import os

from data import srdata


def make_dataset(args, name, train=False, budget=None):
    return Benchmark(args, name, train=train, budget=budget)


class Benchmark(srdata.SRData):
    def __init__(self, args, name, train=False, budget=None):
        root = os.path.join(args.dir_data, 'benchmark', name)
        self.dir_hr = os.path.join(root, 'HR')
        self.dir_lr = os.path.join(root, 'LR_bicubic')
        self.layout = f'{root}/HR/<image>.png (optional LR_bicubic/X<s>/<image>x<s>.png)'
        super().__init__(args, name, train=train, benchmark=True, budget=budget)

    def _scan(self):
        return srdata.scan_folder(self.dir_hr, self.dir_lr, self.scale)
