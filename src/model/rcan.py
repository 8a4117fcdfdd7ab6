"""RCAN (Zhang et al., ECCV 2018): residual groups of residual channel
attention blocks. Keys are those of the released RCAN / EDSR-PyTorch models
(head.0, body.<g>.body.<b>.body.{0,2,3.conv_du.{0,2}}, body.<g>.body.<B>,
body.<G>, tail.0, tail.1); with several scales each has its own tail."""
import torch.nn as nn

from model import common
from model.flags import Flag
from registry import MODELS


class CALayer(nn.Module):
    """Channel attention: global average pool, squeeze, excite, sigmoid gate."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(True),
            nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    def __init__(self, conv, n_feats, kernel_size, reduction, res_scale=1):
        super().__init__()
        self.body = nn.Sequential(conv(n_feats, n_feats, kernel_size), nn.ReLU(True),
                                  conv(n_feats, n_feats, kernel_size), CALayer(n_feats, reduction))
        self.res_scale = res_scale

    def forward(self, x):
        return self.body(x).mul(self.res_scale) + x


class ResidualGroup(nn.Module):
    def __init__(self, conv, n_feats, kernel_size, reduction, n_resblocks, res_scale=1):
        super().__init__()
        body = [RCAB(conv, n_feats, kernel_size, reduction, res_scale) for _ in range(n_resblocks)]
        body.append(conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*body)

    def forward(self, x):
        return self.body(x) + x


@MODELS.register('RCAN')
class RCAN(common.ResidualSR):
    flags = (Flag('n_resgroups', 'residual groups'), Flag('n_resblocks', 'residual channel attention blocks per group'),
             common.N_FEATS, Flag('reduction', 'channel-attention reduction'), common.RES_SCALE, common.SHIFT_MEAN)
    templates = {'RCAN': dict(n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16, res_scale=1, chop=True,
                              lr_patch=48)}

    def __init__(self, scale=(4,), n_colors=3, rgb_range=255, n_resgroups=10, n_resblocks=20, n_feats=64,
                 reduction=16, res_scale=1.0, shift_mean=True, conv=common.default_conv):
        if reduction < 1 or n_feats % reduction:
            raise ValueError(f'--reduction: {reduction} must divide --n_feats {n_feats}')
        super().__init__(scale, n_colors, rgb_range, shift_mean)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        body = [ResidualGroup(conv, n_feats, 3, reduction, n_resblocks, res_scale) for _ in range(n_resgroups)]
        body.append(conv(n_feats, n_feats, 3))
        self.body = nn.Sequential(*body)
        self.tail = self.per_scale(lambda s: common.upsampling_tail(conv, s, n_feats, n_colors, 3))

    def from_basicsr(self, state):
        """BasicSR RCAN names -> released RCAN names (MeanShift taken from this
        network). BasicSR's RCAN scales 0..1 input by img_range 255, so its
        weights match this network with --rgb_range 255."""
        n_groups = len(self.body) - 1
        n_blocks = len(self.body[0].body) - 1 if n_groups else 0
        out = {}
        for k, v in state.items():
            k2 = (k.replace('conv_first.', 'head.0.')
                   .replace('conv_after_body.', f'body.{n_groups}.')
                   .replace('.residual_group.', '.body.')
                   .replace('.rcab.3.attention.1.', '.body.3.conv_du.0.')
                   .replace('.rcab.3.attention.3.', '.body.3.conv_du.2.')
                   .replace('.rcab.', '.body.')
                   .replace('upsample.', 'tail.0.').replace('conv_last.', 'tail.1.'))
            if k2.startswith('body.') and '.conv.' in k2:  # body.<g>.conv -> body.<g>.body.<B>
                k2 = k2.replace('.conv.', f'.body.{n_blocks}.')
            out[k2] = v
        return common.with_mean_shift(out, self)
