"""Bicubic: no parameters, MATLAB-exact bicubic upsampling of the uint8 LR
image (rounded after each pass, as imresize does for uint8): the baseline row
of every SR table and a check of the whole evaluation pipeline."""
from data.imresize import imresize_tensor
from model import common
from model.flags import Flag
from registry import MODELS


@MODELS.register('Bicubic')
class Bicubic(common.MultiScale):
    learned = False  # no weights: --test_only needs no --pre_train
    flags = (Flag('imresize_border', 'bicubic border rule (a run flag)', arg='border'),)

    def __init__(self, scale=(4,), rgb_range=255, border='symmetric'):
        super().__init__(scale)
        self.rgb_range = rgb_range
        self.border = border  # the border rule of MATLAB's imresize (data/imresize.py)

    def forward(self, x):
        return imresize_tensor(x, self.scale, quantize_range=self.rgb_range, border=self.border)
