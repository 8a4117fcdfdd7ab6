"""SRCNN (Dong et al., ECCV 2014; TPAMI 2016): three convolutions on the
bicubic-upsampled image: f1 x f1 to n1 maps, f2 x f2 to n2 maps (ReLU after
each), f3 x f3 back to the image (9-1-5: 9x9, 1x1, 5x5 with n1 = 64, n2 = 32;
9-5-5 has a 5x5 middle layer). As VDSR, the network upsamples with MATLAB
bicubic itself, so one set of weights serves every scale in --scale. The
convolutions are zero-padded to keep the image size (the paper's are
'valid' and lose 6 to 8 pixels at each border)."""
import torch.nn as nn

from data.imresize import imresize_tensor
from model import common
from model.flags import Flag
from registry import MODELS

TRAIN = dict(n_colors=1, loss='1*MSE', patch_size=48, batch_size=128, lr=1e-3, epochs=40, test_every=500,
             decay='cosine')


@MODELS.register('SRCNN')
class SRCNN(common.MultiScale):
    flags = (Flag('srcnn_kernels', "kernel sizes f1+f2+f3 (the paper's 9-1-5 is 9+1+5)", arg='kernels'),
             Flag('n_feats', 'maps of the first layer (n1)', arg='n1'),
             Flag('srcnn_n2', 'maps of the second layer (n2)', arg='n2'))
    templates = {'SRCNN': dict(srcnn_kernels='9+1+5', n_feats=64, srcnn_n2=32, **TRAIN),
                 'SRCNN_955': dict(srcnn_kernels='9+5+5', n_feats=64, srcnn_n2=32, **TRAIN)}

    def __init__(self, scale=(2, 3, 4), n_colors=3, rgb_range=255, kernels=(9, 1, 5), n1=64, n2=32):
        if len(kernels) != 3 or min(kernels) < 1 or not all(k % 2 for k in kernels):
            raise ValueError(f"--srcnn_kernels: needs three odd sizes like 9+1+5, got {'+'.join(map(str, kernels))}")
        super().__init__(scale)
        self.rgb_range = rgb_range
        f1, f2, f3 = kernels
        self.body = nn.Sequential(nn.Conv2d(n_colors, n1, f1, padding=f1 // 2), nn.ReLU(True),
                                  nn.Conv2d(n1, n2, f2, padding=f2 // 2), nn.ReLU(True),
                                  nn.Conv2d(n2, n_colors, f3, padding=f3 // 2))

    def forward(self, x):
        x = imresize_tensor(x, self.scale) / self.rgb_range
        return self.body(x) * self.rgb_range
