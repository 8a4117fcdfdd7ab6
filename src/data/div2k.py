"""DIV2K: <dir_data>/DIV2K/DIV2K_{train,valid}_HR/0001.png and
DIV2K_{train,valid}_LR_bicubic/X<s>/0001x<s>.png (LR_BD, LR_DN with
--degradation BD, DN; else made and cached), images picked by --data_range
(first range for training, second for testing)."""
import os

from data import common, srdata
from data.degrade import Degradation
from registry import DATASETS


@DATASETS.register('DIV2K')
def make_dataset(args, name='DIV2K', train=True, budget=None):
    return DIV2K(args, name, train=train, budget=budget)


class DIV2K(srdata.SRData):
    shave_extra = 6  # EDSR shaves scale + 6 pixels on DIV2K validation

    def __init__(self, args, name='DIV2K', train=True, budget=None):
        ranges = args.data_range_parsed
        lo, hi = ranges[0] if train or len(ranges) == 1 else ranges[1]
        self.numbers = range(lo, hi + 1)
        self.root = os.path.join(args.dir_data, 'DIV2K')
        self.dir_hr = os.path.join(self.root, 'DIV2K_train_HR')
        self.lr = f'LR_{Degradation.from_args(args).folder}'
        self.layout = (f'{self.root}/DIV2K_train_HR/{lo:04d}.png ... {hi:04d}.png '
                       f'(or DIV2K_valid_HR), LR in DIV2K_train_{self.lr}/X<s>/<nnnn>x<s>.png')
        super().__init__(args, name, train=train, budget=budget)

    def _scan(self):
        out = []
        for split in ('train', 'valid'):
            hr_dir = os.path.join(self.root, f'DIV2K_{split}_HR')
            lr_dir = os.path.join(self.root, f'DIV2K_{split}_{self.lr}')
            names = {f'{n:04d}' for n in self.numbers}
            out += srdata.scan_folder(hr_dir, lr_dir, self.scale, names=names)
        out.sort(key=lambda e: os.path.basename(e[0]))
        if out and len(out) < len(self.numbers):
            found = {os.path.splitext(os.path.basename(h))[0] for h, _ in out}
            missing = [f'{n:04d}' for n in self.numbers if f'{n:04d}' not in found]
            raise common.DataError(f'{self.name}: {len(missing)} HR image(s) of --data_range missing in {self.root}, '
                                   f'first {missing[0]} (expected {self.layout})')
        return out
