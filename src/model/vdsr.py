"""VDSR (Kim et al., CVPR 2016): 20 3x3 conv layers learning the residual
over the bicubic-upsampled image. The network takes the LR image and does
the MATLAB bicubic upsampling itself, so one set of weights serves every
scale in --scale (no per-scale modules)."""
import torch.nn as nn

from data.imresize import imresize_tensor
from model import common


def make_model(args):
    return VDSR(args)


def released(args):
    from model.released import find_released
    return find_released(args)


class VDSR(nn.Module):
    def __init__(self, args, conv=common.default_conv):
        super().__init__()
        n_feats, depth = args.n_feats, args.n_resblocks  # depth: conv layers (20 in the paper)
        if depth < 2:
            raise ValueError(f'--n_resblocks: VDSR needs at least 2 conv layers, got {depth}')
        self.scales = list(args.scale)
        self.scale_idx = 0
        self.shift_mean = args.shift_mean and args.n_colors == 3
        if args.n_colors == 3:
            self.sub_mean = common.MeanShift(args.rgb_range)
            self.add_mean = common.MeanShift(args.rgb_range, sign=1)
        # EDSR-PyTorch layout: body.<i>.0 is the conv of layer i
        body = [nn.Sequential(conv(args.n_colors, n_feats, 3), nn.ReLU(True))]
        body += [nn.Sequential(conv(n_feats, n_feats, 3), nn.ReLU(True)) for _ in range(depth - 2)]
        body.append(nn.Sequential(conv(n_feats, args.n_colors, 3)))
        self.body = nn.Sequential(*body)

    def set_scale(self, idx_scale):
        self.scale_idx = idx_scale

    def forward(self, x):
        x = imresize_tensor(x, self.scales[self.scale_idx])
        res = self.body(self.sub_mean(x) if self.shift_mean else x)
        return x + res
