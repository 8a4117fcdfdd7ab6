"""Sample: the embedded default set, made from the photographs that
scikit-image ships inside its package (no download). Each photo is cut into
144x144 HR tiles (a multiple of 2, 3 and 4); every 5th tile is validation,
the rest training. Tiles are written once under --dir_cache/Sample_tiles."""
import os

import numpy as np

from data import common, srdata
from registry import DATASETS

PHOTOS = ('astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'ihc.png', 'motorcycle_left.png')
TILE = 144


@DATASETS.register('Sample')
def make_dataset(args, name='Sample', train=True, budget=None):
    return Sample(args, name, train=train, budget=budget)


def build_tiles(dir_cache):
    """Write the tiles (once); returns (train_dir, val_dir)."""
    import imageio.v3 as iio
    import skimage
    src = os.path.join(os.path.dirname(skimage.__file__), 'data')
    root = os.path.join(dir_cache, 'Sample_tiles')
    dirs = {k: os.path.join(root, k) for k in ('train', 'val')}
    done = os.path.join(root, 'done')
    if os.path.exists(done):
        return dirs['train'], dirs['val']
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    k = 0
    for photo in PHOTOS:
        path = os.path.join(src, photo)
        if not os.path.exists(path):
            raise srdata.DataError(f'Sample: {path} is missing from the scikit-image package')
        img = common.set_channel(common.to_uint8(iio.imread(path)), 3)
        h, w = img.shape[:2]
        for y in range(0, h - TILE + 1, TILE):
            for x in range(0, w - TILE + 1, TILE):
                tile = img[y:y + TILE, x:x + TILE]
                if np.std(tile) < 8:  # flat background
                    continue
                split = 'val' if k % 5 == 4 else 'train'
                srdata._write_png(os.path.join(dirs[split], f'{os.path.splitext(photo)[0]}_{y}_{x}.png'), tile)
                k += 1
    open(done, 'w').close()
    return dirs['train'], dirs['val']


class Sample(srdata.SRData):
    def __init__(self, args, name='Sample', train=True, budget=None):
        train_dir, val_dir = build_tiles(args.dir_cache)
        self.dir_hr = train_dir if train else val_dir
        self.layout = 'tiles of the scikit-image sample photos'
        super().__init__(args, name, train=train, budget=budget)

    def _scan(self):
        return srdata.scan_folder(self.dir_hr, None, self.scale)
