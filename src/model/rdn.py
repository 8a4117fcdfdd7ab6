"""RDN (Zhang et al., CVPR 2018): residual dense blocks with local and global
feature fusion. Keys are those of the EDSR-PyTorch RDN (SFENet1, SFENet2,
RDBs.<i>.convs.<c>.conv.0, RDBs.<i>.LFF, GFF.{0,1}, UPNet.*). The upsampling
net is per scale: with several scales `UPNet.<k>.*`, one per scale.
There is no BasicSR RDN architecture, so no from_basicsr here."""
import math

import torch
import torch.nn as nn

from model import common
from model.flags import Flag
from registry import MODELS

CONFIGS = {'A': (20, 6, 32), 'B': (16, 8, 64)}  # D blocks, C convs per block, G growth


def parse_config(text):
    """--RDNconfig: A, B, or D-C-G (e.g. 4-3-16 for a small net)."""
    if str(text).upper() in CONFIGS:
        return CONFIGS[str(text).upper()]
    try:
        d, c, g = (int(v) for v in str(text).split('-'))
        if min(d, c, g) > 0:
            return d, c, g
    except ValueError:
        pass
    raise ValueError(f"--RDNconfig: '{text}' must be A, B or D-C-G (three positive integers, e.g. 16-8-64)")


class RDB_Conv(nn.Module):
    def __init__(self, in_channels, grow, k):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, grow, k, padding=(k - 1) // 2), nn.ReLU())

    def forward(self, x):
        return torch.cat((x, self.conv(x)), 1)


class RDB(nn.Module):
    def __init__(self, g0, grow, n_convs, k):
        super().__init__()
        self.convs = nn.Sequential(*[RDB_Conv(g0 + c * grow, grow, k) for c in range(n_convs)])
        self.LFF = nn.Conv2d(g0 + n_convs * grow, g0, 1)

    def forward(self, x):
        return self.LFF(self.convs(x)) + x


def upnet(scale, g0, grow, n_colors, k):
    """Released layout: x2/x3 conv(G0, G*r*r), shuffle, conv(G, n_colors);
    x4 conv(G0, 4G), shuffle, conv(G, 4G), shuffle, conv(G, n_colors).
    Other scales: one conv + shuffle per prime factor, smallest first."""
    pad = (k - 1) // 2
    m, c = [], g0
    for r in common.shuffle_steps(scale):
        m += [nn.Conv2d(c, grow * r * r, k, padding=pad), nn.PixelShuffle(r)]
        c = grow
    m.append(nn.Conv2d(grow, n_colors, k, padding=pad))
    return nn.Sequential(*m)


def upnet_scale(tail):
    """Scale of an UPNet from its conv shapes ({'<i>.weight': ...}): the product
    of the shuffle factors r, each conv's out channels being r*r x the next one's in."""
    convs = sorted((int(k.split('.')[0]), v) for k, v in tail.items()
                   if k.endswith('weight') and getattr(v, 'ndim', 0) == 4)
    s = 1
    for (_, a), (_, b) in zip(convs, convs[1:]):
        s *= math.isqrt(a.shape[0] // b.shape[1])
    return s


@MODELS.register('RDN')
class RDN(common.MultiScale):
    scale_modules = ('UPNet',)
    scale_of = staticmethod(upnet_scale)
    flags = (Flag('G0', 'feature maps'), Flag('RDNkSize', 'kernel size', arg='kernel_size'),
             Flag('RDNconfig', 'configuration A, B or D-C-G (blocks, convs per block, growth)', arg='config'))
    templates = {'RDN': dict(G0=64, RDNconfig='B', RDNkSize=3, batch_size=16, epochs=200, lr_patch=32)}

    def __init__(self, scale=(4,), n_colors=3, G0=64, kernel_size=3, config='B'):
        super().__init__(scale)
        g0, k = G0, kernel_size
        self.D, c, g = parse_config(config)
        self.SFENet1 = nn.Conv2d(n_colors, g0, k, padding=(k - 1) // 2)
        self.SFENet2 = nn.Conv2d(g0, g0, k, padding=(k - 1) // 2)
        self.RDBs = nn.ModuleList([RDB(g0, g, c, k) for _ in range(self.D)])
        self.GFF = nn.Sequential(nn.Conv2d(self.D * g0, g0, 1), nn.Conv2d(g0, g0, k, padding=(k - 1) // 2))
        self.UPNet = self.per_scale(lambda s: upnet(s, g0, g, n_colors, k))

    def forward(self, x):
        f1 = self.SFENet1(x)
        x = self.SFENet2(f1)
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        x = self.GFF(torch.cat(outs, 1)) + f1
        return self.at_scale(self.UPNet)(x)
