"""VDSR (Kim et al., CVPR 2016): 20 3x3 conv layers learning the residual
over the bicubic-upsampled image. The network takes the LR image and does
the MATLAB bicubic upsampling itself, so one set of weights serves every
scale in --scale (no per-scale modules)."""
import torch.nn as nn

from data.imresize import imresize_tensor
from model import common
from model.flags import Flag
from registry import MODELS


@MODELS.register('VDSR')
class VDSR(common.MultiScale):
    flags = (Flag('n_resblocks', 'conv layers', arg='depth'), common.N_FEATS, common.SHIFT_MEAN)
    # the paper works on Y (--n_colors 1); patch_size: HR = the paper's 41 px, rounded to 48
    templates = {'VDSR': dict(n_resblocks=20, n_feats=64, n_colors=1, scale='2+3+4', patch_size=48, batch_size=64,
                              loss='1*MSE')}

    def __init__(self, scale=(2, 3, 4), n_colors=3, rgb_range=255, depth=20, n_feats=64, shift_mean=True,
                 conv=common.default_conv):
        if depth < 2:
            raise ValueError(f'--n_resblocks: VDSR needs at least 2 conv layers, got {depth}')
        super().__init__(scale)
        self.shift_mean = common.add_mean_shift(self, n_colors, rgb_range, shift_mean)
        # EDSR-PyTorch layout: body.<i>.0 is the conv of layer i
        body = [nn.Sequential(conv(n_colors, n_feats, 3), nn.ReLU(True))]
        body += [nn.Sequential(conv(n_feats, n_feats, 3), nn.ReLU(True)) for _ in range(depth - 2)]
        body.append(nn.Sequential(conv(n_feats, n_colors, 3)))
        self.body = nn.Sequential(*body)

    def forward(self, x):
        x = imresize_tensor(x, self.scale)
        res = self.body(self.sub_mean(x) if self.shift_mean else x)
        return x + res
