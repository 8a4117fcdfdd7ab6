"""VDSR (Kim et al., CVPR 2016): 20 3x3 conv layers learning the residual
over the bicubic-upsampled image. The network takes the LR image and does
the MATLAB bicubic upsampling itself, so one set of weights serves every
scale in --scale (no per-scale modules)."""
import torch.nn as nn

from data.imresize import imresize_tensor
from model import common
from registry import MODELS


@MODELS.register('VDSR')
class VDSR(common.MultiScale):
    def __init__(self, args, conv=common.default_conv):
        n_feats, depth = args.n_feats, args.n_resblocks  # depth: conv layers (20 in the paper)
        if depth < 2:
            raise ValueError(f'--n_resblocks: VDSR needs at least 2 conv layers, got {depth}')
        super().__init__(args.scale)
        self.shift_mean = common.add_mean_shift(self, args)
        # EDSR-PyTorch layout: body.<i>.0 is the conv of layer i
        body = [nn.Sequential(conv(args.n_colors, n_feats, 3), nn.ReLU(True))]
        body += [nn.Sequential(conv(n_feats, n_feats, 3), nn.ReLU(True)) for _ in range(depth - 2)]
        body.append(nn.Sequential(conv(n_feats, args.n_colors, 3)))
        self.body = nn.Sequential(*body)

    def forward(self, x):
        x = imresize_tensor(x, self.scale)
        res = self.body(self.sub_mean(x) if self.shift_mean else x)
        return x + res
