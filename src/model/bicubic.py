"""Bicubic: no parameters, MATLAB-exact bicubic upsampling of the uint8 LR
image (rounded after each pass, as imresize does for uint8): the baseline row
of every SR table and a check of the whole evaluation pipeline."""
import torch.nn as nn

from data.imresize import imresize_tensor


def make_model(args):
    return Bicubic(args)


class Bicubic(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.scales = list(args.scale)
        self.scale_idx = 0
        self.rgb_range = args.rgb_range

    def set_scale(self, idx_scale):
        self.scale_idx = idx_scale

    def forward(self, x):
        return imresize_tensor(x, self.scales[self.scale_idx], quantize_range=self.rgb_range)
