"""SRResNet (Ledig et al., CVPR 2017): 9x9 head conv + PReLU, residual blocks
conv-BN-PReLU-conv-BN, conv-BN with a skip from the head, sub-pixel x2
steps with PReLU, 9x9 last conv. EDSR-style keys (head, body, tail); with
several scales each scale has its own tail (`tail.<k>.*`)."""
import torch.nn as nn

from model import common
from registry import MODELS


@MODELS.register('SRResNet')
class SRResNet(common.ResidualSR):
    flags = (common.N_RESBLOCKS, common.N_FEATS, common.SHIFT_MEAN)
    templates = {'SRResNet': dict(n_resblocks=16, n_feats=64, scale='4', patch_size=96, batch_size=16,
                                  loss='1*MSE', lr=1e-4, epochs=1000, decay='0')}

    def __init__(self, scale=(4,), n_colors=3, rgb_range=255, n_resblocks=16, n_feats=64, shift_mean=True,
                 conv=common.default_conv):
        super().__init__(scale, n_colors, rgb_range, shift_mean)
        self.head = nn.Sequential(conv(n_colors, n_feats, 9), nn.PReLU())
        body = [common.ResBlock(conv, n_feats, 3, bn=True, act=nn.PReLU()) for _ in range(n_resblocks)]
        body += [conv(n_feats, n_feats, 3), nn.BatchNorm2d(n_feats)]
        self.body = nn.Sequential(*body)
        self.tail = self.per_scale(lambda s: common.upsampling_tail(conv, s, n_feats, n_colors, 9, act='prelu'))
