"""Bicubic: no parameters, MATLAB-exact bicubic upsampling of the uint8 LR
image (rounded after each pass, as imresize does for uint8): the baseline row
of every SR table and a check of the whole evaluation pipeline."""
from data.imresize import imresize_tensor
from model import common
from registry import MODELS


@MODELS.register('Bicubic')
class Bicubic(common.MultiScale):
    def __init__(self, args):
        super().__init__(args.scale)
        self.rgb_range = args.rgb_range
        self.border = args.imresize_border  # the border rule of MATLAB's imresize (data/imresize.py)

    def forward(self, x):
        return imresize_tensor(x, self.scale, quantize_range=self.rgb_range, border=self.border)
