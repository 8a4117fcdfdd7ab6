"""D-DBPN (Haris et al., CVPR 2018): dense iterative up- and down-projection
units. Layout of EDSR-PyTorch's ddbpn.py (sub_mean, initial, upmodules,
downmodules, reconstruction, add_mean) with the paper's sizes as flags:
--dbpn_stages T up-projections (T-1 down), --dbpn_n0, --dbpn_nr.

Projection kernels are (s+4)x(s+4), stride s, padding 2 (x2: 6/2/2, x4:
8/4/2, x8: 12/8/2 as in the paper; x3: 7/3/2 is an extension), which maps
any LR size h to exactly s*h and back, so inputs need no padding.
Every layer depends on the scale, so one model serves one scale: --scale
with several values is rejected."""
import torch
import torch.nn as nn

from model import common
from model.flags import Flag
from registry import MODELS


def projection_conv(in_channels, out_channels, scale, up=True):
    conv = nn.ConvTranspose2d if up else nn.Conv2d
    return conv(in_channels, out_channels, scale + 4, stride=scale, padding=2)


class DenseProjection(nn.Module):
    """Up (or down) projection unit with an optional 1x1 bottleneck."""

    def __init__(self, in_channels, nr, scale, up=True, bottleneck=True):
        super().__init__()
        if bottleneck:
            self.bottleneck = nn.Sequential(nn.Conv2d(in_channels, nr, 1), nn.PReLU(nr))
            inter = nr
        else:
            self.bottleneck = None
            inter = in_channels
        self.conv_1 = nn.Sequential(projection_conv(inter, nr, scale, up), nn.PReLU(nr))
        self.conv_2 = nn.Sequential(projection_conv(nr, inter, scale, not up), nn.PReLU(inter))
        self.conv_3 = nn.Sequential(projection_conv(inter, nr, scale, up), nn.PReLU(nr))

    def forward(self, x):
        if self.bottleneck is not None:
            x = self.bottleneck(x)
        a0 = self.conv_1(x)
        e = self.conv_2(a0) - x
        return a0 + self.conv_3(e)


@MODELS.register('DDBPN')
class DDBPN(nn.Module):
    flags = (Flag('dbpn_stages', 'up-projection units T (T-1 down-projections)', arg='stages'),
             Flag('dbpn_n0', 'initial feature maps', arg='n0'), Flag('dbpn_nr', 'projection feature maps', arg='nr'),
             common.SHIFT_MEAN)
    templates = {'DDBPN': dict(dbpn_stages=7, dbpn_n0=256, dbpn_nr=64, scale='4', batch_size=20, epochs=1000,
                               decay='500', gamma=0.1, weight_decay=1e-4, loss='1*MSE', lr_patch=32)}

    def __init__(self, scale=(4,), n_colors=3, rgb_range=255, stages=7, n0=256, nr=64, shift_mean=True):
        super().__init__()
        scale = (scale,) if isinstance(scale, int) else tuple(scale)
        if len(scale) != 1:
            raise ValueError(f"--scale: DDBPN is single-scale (all its projection layers depend on the scale); "
                             f"give one scale, not {'+'.join(map(str, scale))}")
        scale = scale[0]
        if scale < 2:
            raise ValueError(f'--scale: DDBPN needs a scale of at least 2, got {scale}')
        self.depth = stages
        if min(n0, nr) < 1 or self.depth < 2:
            raise ValueError('--dbpn_stages: needs at least 2 stages and positive --dbpn_n0/--dbpn_nr')
        self.shift_mean = common.add_mean_shift(self, n_colors, rgb_range, shift_mean)
        self.initial = nn.Sequential(nn.Conv2d(n_colors, n0, 3, padding=1), nn.PReLU(n0),
                                     nn.Conv2d(n0, nr, 1), nn.PReLU(nr))
        self.upmodules = nn.ModuleList()
        self.downmodules = nn.ModuleList()
        channels = nr
        for i in range(self.depth):
            self.upmodules.append(DenseProjection(channels, nr, scale, True, i > 1))
            if i != 0:
                channels += nr
        channels = nr
        for i in range(self.depth - 1):
            self.downmodules.append(DenseProjection(channels, nr, scale, False, i != 0))
            channels += nr
        self.reconstruction = nn.Sequential(nn.Conv2d(self.depth * nr, n_colors, 3, padding=1))

    def forward(self, x):
        if self.shift_mean:
            x = self.sub_mean(x)
        x = self.initial(x)
        h_list, l_list = [], []
        for i in range(self.depth - 1):
            lr = x if i == 0 else torch.cat(l_list, 1)
            h_list.append(self.upmodules[i](lr))
            l_list.append(self.downmodules[i](torch.cat(h_list, 1)))
        h_list.append(self.upmodules[-1](torch.cat(l_list, 1)))
        out = self.reconstruction(torch.cat(h_list, 1))
        if self.shift_mean:
            out = self.add_mean(out)
        return out
