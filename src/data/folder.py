"""Folder: any folder of HR images (--dir_train PATH); LR made with MATLAB-exact
bicubic and cached under --dir_cache."""
import os

from data import srdata
from registry import DATASETS


@DATASETS.register('Folder')
def make_dataset(args, name='Folder', train=True, budget=None):
    if not args.dir_train:
        raise srdata.DataError('--data_train Folder needs --dir_train PATH (a folder of HR images)')
    return Folder(args, name, args.dir_train, train=train, budget=budget)


class Folder(srdata.SRData):
    def __init__(self, args, name, path, train=True, budget=None):
        self.dir_hr = path
        self.layout = f'HR images (.png, .jpg, ...) directly in {path}'
        if not os.path.isdir(path):
            raise srdata.DataError(f'{name}: folder not found: {path}')
        super().__init__(args, name, train=train, budget=budget)

    def _scan(self):
        return srdata.scan_folder(self.dir_hr, None, self.scale)
