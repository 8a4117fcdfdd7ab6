"""The classic small training sets, read from <dir_data>/<name>/ as they are
(any image format data/common.py reads: BMP, PNG, ...):

    T91         the 91 images of Yang et al. (2010): SRCNN, FSRCNN, ESPCN
    BSD200      the 200 training images of BSDS300; T91+BSD200 is the "291"
                set of VDSR, DRRN, LapSRN and MemNet
    General100  the 100 images of FSRCNN's fine-tuning set
    BSD200val   every tenth image of BSD200 (20, sorted by name, from the 1st): the validation split
                on which srlab's recipes are chosen (never on a test set)
    BSD200train the other 180: T91+BSD200train trains a recipe that is checked on BSD200val

LR images are made with MATLAB bicubic and cached under --dir_cache, as for
any folder (data/srdata.py)."""
import os

from data import srdata
from registry import DATASETS

SETS = ('T91', 'BSD200', 'General100')
SPLITS = {'BSD200val': ('BSD200', lambda i: i % 10 == 0), 'BSD200train': ('BSD200', lambda i: i % 10 != 0)}


def make_dataset(args, name, train=True, budget=None):
    return Classic(args, name, train=train, budget=budget)


for _name in SETS + tuple(SPLITS):
    DATASETS.register(_name)(make_dataset)


class Classic(srdata.SRData):
    def __init__(self, args, name, train=True, budget=None):
        name = DATASETS.canonical(name)
        folder, self.keep = SPLITS.get(name, (name, None))
        self.dir_hr = os.path.join(args.dir_data, folder)
        self.layout = f'the {folder} images directly in {self.dir_hr}'
        super().__init__(args, name, train=train, budget=budget)

    def _scan(self):
        entries = srdata.scan_folder(self.dir_hr, None, self.scale)
        return entries if self.keep is None else [e for i, e in enumerate(entries) if self.keep(i)]
