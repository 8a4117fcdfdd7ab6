"""FSRCNN (Dong, Loy, Tang, ECCV 2016) on the LR image: 5x5 feature
extraction to d maps, 1x1 shrinking to s, m 3x3 mapping layers, 1x1 expanding
back to d, each followed by a PReLU, and a 9x9 deconvolution of stride `scale`
to the output. FSRCNN(56, 12, 4) and FSRCNN-s(32, 5, 1) are the paper's two
networks. With several scales the body is shared and each scale has its own
deconvolution (`tail.<k>`): the paper's transfer strategy, trained jointly."""
import torch
import torch.nn as nn

from model import common
from model.flags import Flag
from registry import MODELS

# the paper's Y channel and scale augmentation of T91; instead of its long SGD training with MSE: L1,
# Adam (lr 3e-3, batch 16: chosen on 20 BSD200 images held out as validation, never on a test set) and a
# cosine schedule over 100,000 steps (about 35 minutes on 2 CPU cores)
TRAIN = dict(n_colors=1, loss='1*L1', scale='2+3+4', patch_size=48, batch_size=16, lr=3e-3, epochs=10,
             test_every=10000, decay='cosine', augment_scales='1+0.9+0.8+0.7+0.6', channels_last=True)


class Deconv(nn.ConvTranspose2d):
    """A k x k deconvolution of stride `scale` whose output is exactly `scale`
    times its input; it records its scale (a buffer) for re-keying checkpoints."""

    def __init__(self, channels, out_channels, scale, k=9):
        pad = -(-(k - scale) // 2)
        super().__init__(channels, out_channels, k, stride=scale, padding=pad, output_padding=2 * pad - (k - scale))
        self.register_buffer('scale', torch.tensor(scale))
        nn.init.normal_(self.weight, std=0.001)  # the paper's initialisation of the deconvolution
        nn.init.zeros_(self.bias)


def conv_prelu(c_in, c_out, k):
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)
    nn.init.kaiming_normal_(conv.weight, nonlinearity='relu')  # MSRA, as the paper
    nn.init.zeros_(conv.bias)
    return [conv, nn.PReLU(c_out)]


@MODELS.register('FSRCNN')
class FSRCNN(common.MultiScale):
    scale_modules = ('tail',)
    flags = (Flag('fsrcnn_d', 'feature maps d', arg='d'), Flag('fsrcnn_s', 'shrunk maps s', arg='s'),
             Flag('fsrcnn_m', 'mapping layers m', arg='m'))
    templates = {'FSRCNN': dict(fsrcnn_d=56, fsrcnn_s=12, fsrcnn_m=4, **TRAIN),
                 'FSRCNN_s': dict(fsrcnn_d=32, fsrcnn_s=5, fsrcnn_m=1, **TRAIN)}

    def __init__(self, scale=(3,), n_colors=3, rgb_range=255, d=56, s=12, m=4):
        if min(d, s) < 1 or m < 0:
            raise ValueError(f'--fsrcnn_d, --fsrcnn_s: must be positive and --fsrcnn_m not negative, got {d}, {s}, {m}')
        super().__init__(scale)
        self.rgb_range = rgb_range
        self.head = nn.Sequential(*conv_prelu(n_colors, d, 5))
        body = conv_prelu(d, s, 1)
        for _ in range(m):
            body += conv_prelu(s, s, 3)
        self.body = nn.Sequential(*body, *conv_prelu(s, d, 1))
        self.tail = self.per_scale(lambda r: nn.Sequential(Deconv(d, n_colors, r)))

    def forward(self, x):
        x = self.body(self.head(x / self.rgb_range))
        return self.at_scale(self.tail)(x) * self.rgb_range

    @staticmethod
    def scale_of(part):
        """The scale that a deconvolution of a checkpoint recorded ({'0.weight', '0.bias', '0.scale'})."""
        return int(part['0.scale']) if '0.scale' in part else None
