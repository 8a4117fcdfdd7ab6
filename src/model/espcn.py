"""ESPCN (Shi et al., CVPR 2016) on the LR image: 5x5 convolution to n1 = 64
maps, 3x3 to n2 = 32, tanh after each (the paper's 5-3-3), and a 3x3
convolution to r^2 x channels that a sub-pixel shuffle rearranges to the
r-times larger output: the per-scale tail (`tail.<k>` with several scales)."""
import math

import torch.nn as nn

from model import common
from model.flags import Flag
from registry import MODELS


@MODELS.register('ESPCN')
class ESPCN(common.MultiScale):
    scale_modules = ('tail',)
    flags = (Flag('n_feats', 'maps of the first layer (n1)', arg='n1'),
             Flag('espcn_n2', 'maps of the second layer (n2)', arg='n2'), common.ACT)
    # the paper's 17x17 LR sub-images (patch 51 at x3), tanh, Y channel; L1, Adam (lr 3e-3, batch 16, as
    # FSRCNN's recipe) and a cosine schedule over 80,000 steps (about 20 minutes on 2 CPU cores) instead
    # of MSE and SGD, and FSRCNN's scale augmentation of T91
    templates = {'ESPCN': dict(n_feats=64, espcn_n2=32, act='tanh', n_colors=1, scale='3', loss='1*L1',
                               patch_size=51, batch_size=16, lr=3e-3, epochs=8, test_every=10000, decay='cosine',
                               augment_scales='1+0.9+0.8+0.7+0.6', channels_last=True)}

    def __init__(self, scale=(3,), n_colors=3, rgb_range=255, n1=64, n2=32, act='tanh'):
        super().__init__(scale)
        self.rgb_range, self.n_colors = rgb_range, n_colors
        self.head = nn.Sequential(nn.Conv2d(n_colors, n1, 5, padding=2), common.make_act(act),
                                  nn.Conv2d(n1, n2, 3, padding=1), common.make_act(act))
        self.tail = self.per_scale(lambda r: common.direct_tail(common.default_conv, r, n2, n_colors, 3))

    def forward(self, x):
        return self.at_scale(self.tail)(self.head(x / self.rgb_range)) * self.rgb_range

    def scale_of(self, part):
        """The scale of a tail of a checkpoint: its conv has r^2 x channels outputs."""
        w = part.get('0.weight')
        return math.isqrt(w.shape[0] // self.n_colors) if w is not None else None
