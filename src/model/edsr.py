"""EDSR (Lim et al., CVPR 2017 workshops). Keys and shapes are those of the
released EDSR-PyTorch models; with several scales the body is shared and each
scale has its own tail (`tail.<k>.*`), picked by set_scale(). --upsampler
pixelshuffledirect swaps EDSR's tail for one conv to colours x scale^2 and a
shuffle (the lightweight tail of ESPCN and SwinIR-light): EDSR's tails are 32%
of the multiply-adds of an 8-block, 64-map network trained at x2, x3 and x4.
--global_skip bicubic adds the bicubic-upsampled input to the output (VDSR's
residual learning; nearest: Real-ESRGAN compact's). A skip adds no weights.
--expansion E gives each block WDSR-A's wide activation (Yu et al. 2018):
n_feats -> E x n_feats -> ReLU -> n_feats; at n_feats 32 and E 4 a block has the
multiply-adds of EDSR's 64-map block."""
import torch.nn as nn

from model import common
from model.released import EDSR_URL, Released
from registry import MODELS

BASELINE, PAPER = dict(n_resblocks=16, n_feats=64), dict(n_resblocks=32, n_feats=256)


@MODELS.register('EDSR')
class EDSR(common.ResidualSR):
    flags = (common.N_RESBLOCKS, common.N_FEATS, common.RES_SCALE, common.ACT, common.SHIFT_MEAN,
             common.UPSAMPLER, common.GLOBAL_SKIP, common.EXPANSION)
    templates = {
        'EDSR_baseline': dict(n_resblocks=16, n_feats=64, res_scale=1),
        'EDSR_paper': dict(n_resblocks=32, n_feats=256, res_scale=0.1),
    }
    released = (
        Released('edsr_baseline_x2-1bc95232.pt', EDSR_URL, '1bc95232', (2,), BASELINE),
        Released('edsr_baseline_x3-abf2a44e.pt', EDSR_URL, 'abf2a44e', (3,), BASELINE),
        Released('edsr_baseline_x4-6b446fab.pt', EDSR_URL, '6b446fab', (4,), BASELINE),
        Released('edsr_x2-0edfb8a3.pt', EDSR_URL, '0edfb8a3', (2,), PAPER),
        Released('edsr_x3-ea3ef2c6.pt', EDSR_URL, 'ea3ef2c6', (3,), PAPER),
        Released('edsr_x4-4f62e9ef.pt', EDSR_URL, '4f62e9ef', (4,), PAPER),
    )

    def __init__(self, scale=(4,), n_colors=3, rgb_range=255, n_resblocks=16, n_feats=64, res_scale=1.0,
                 act='relu', shift_mean=True, upsampler='pixelshuffle', global_skip='none',
                 expansion=1, conv=common.default_conv):
        super().__init__(scale, n_colors, rgb_range, shift_mean, global_skip)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        body = [common.ResBlock(conv, n_feats, 3, act=common.make_act(act), res_scale=res_scale,
                                expansion=expansion)
                for _ in range(n_resblocks)]
        body.append(conv(n_feats, n_feats, 3))
        self.body = nn.Sequential(*body)
        self.tail = self.per_scale(lambda s: common.make_tail(upsampler, conv, s, n_feats, n_colors, 3))

    def from_basicsr(self, state):
        """BasicSR EDSR names -> EDSR-PyTorch names (MeanShift taken from this network)."""
        n = len(self.body) - 1
        out = {}
        for k, v in state.items():
            k2 = (k.replace('conv_first.', 'head.0.')
                   .replace('conv_after_body.', f'body.{n}.')
                   .replace('.conv1.', '.body.0.').replace('.conv2.', '.body.2.')
                   .replace('upsample.', 'tail.0.').replace('conv_last.', 'tail.1.'))
            out[k2] = v
        return common.with_mean_shift(out, self)
