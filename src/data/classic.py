"""The classic small training sets, read from <dir_data>/<name>/ as they are
(any image format data/common.py reads: BMP, PNG, ...):

    T91         the 91 images of Yang et al. (2010): SRCNN, FSRCNN, ESPCN
    BSD200      the 200 training images of BSDS300; T91+BSD200 is the "291"
                set of VDSR, DRRN, LapSRN and MemNet
    General100  the 100 images of FSRCNN's fine-tuning set

LR images are made with MATLAB bicubic and cached under --dir_cache, as for
any folder (data/srdata.py)."""
import os

from data import srdata
from registry import DATASETS

SETS = ('T91', 'BSD200', 'General100')


def make_dataset(args, name, train=True, budget=None):
    return Classic(args, name, train=train, budget=budget)


for _name in SETS:
    DATASETS.register(_name)(make_dataset)


class Classic(srdata.SRData):
    def __init__(self, args, name, train=True, budget=None):
        self.dir_hr = os.path.join(args.dir_data, DATASETS.canonical(name))
        self.layout = f'the {name} images directly in {self.dir_hr}'
        super().__init__(args, name, train=train, budget=budget)

    def _scan(self):
        return srdata.scan_folder(self.dir_hr, None, self.scale)
