"""SRResNet (Ledig et al., CVPR 2017): 9x9 head conv + PReLU, residual blocks
conv-BN-PReLU-conv-BN, conv-BN with a skip from the head, sub-pixel x2
steps with PReLU, 9x9 last conv. EDSR-style keys (head, body, tail); with
several scales each scale has its own tail (`tail.<k>.*`)."""
import torch.nn as nn

from model import common
from registry import MODELS


@MODELS.register('SRResNet')
class SRResNet(common.ResidualSR):
    def __init__(self, args, conv=common.default_conv):
        super().__init__(args)
        n_feats = args.n_feats
        self.head = nn.Sequential(conv(args.n_colors, n_feats, 9), nn.PReLU())
        body = [common.ResBlock(conv, n_feats, 3, bn=True, act=nn.PReLU()) for _ in range(args.n_resblocks)]
        body += [conv(n_feats, n_feats, 3), nn.BatchNorm2d(n_feats)]
        self.body = nn.Sequential(*body)
        self.tail = self.per_scale(lambda s: common.upsampling_tail(conv, s, n_feats, args.n_colors, 9, act='prelu'))
