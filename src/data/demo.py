"""Demo: every image in --dir_demo is an LR input; SR outputs are saved, no metrics."""
import os

import torch
from torch.utils.data import Dataset

from data import common
from registry import DATASETS


@DATASETS.register('Demo')
def make_dataset(args, name='Demo', train=False, budget=None):
    """`budget` is unused: Demo reads its images at every access."""
    if train:
        raise common.DataError('Demo is a test-only set (it has no HR images)')
    return Demo(args, name)


class Demo(Dataset):
    shave_extra = 0

    def __init__(self, args, name='Demo'):
        self.args = args
        self.name = name
        self.scale = args.scale
        self.idx_scale = 0
        if not os.path.isdir(args.dir_demo):
            raise common.DataError(f'Demo: --dir_demo folder not found: {args.dir_demo}')
        self.images = common.list_images(args.dir_demo)
        if not self.images:
            raise common.DataError(f'Demo: no images found in {args.dir_demo} (put LR .png/.jpg files there)')

    def set_scale(self, idx_scale):
        self.idx_scale = idx_scale

    def is_gray(self, stem):
        """No HR image to score (--gray_hr does not apply)."""
        return False

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        i, idx_scale = (index[0], index[1]) if isinstance(index, (tuple, list)) else (index, self.idx_scale)
        path = self.images[i]
        lr = common.np2tensor(common.read_image(path, self.args.n_colors, bits=16), self.args.rgb_range)
        return lr, torch.empty(0), os.path.splitext(os.path.basename(path))[0], idx_scale
