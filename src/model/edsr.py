"""EDSR (Lim et al., CVPR 2017 workshops). Keys and shapes are those of the
released EDSR-PyTorch models; with several scales the body is shared and each
scale has its own tail (`tail.<k>.*`), picked by set_scale()."""
import torch.nn as nn

from model import common
from registry import MODELS


@MODELS.register('EDSR')
class EDSR(common.ResidualSR):
    def __init__(self, args, conv=common.default_conv):
        super().__init__(args)
        n_feats, kernel_size = args.n_feats, 3
        self.head = nn.Sequential(conv(args.n_colors, n_feats, kernel_size))
        body = [common.ResBlock(conv, n_feats, kernel_size, act=common.make_act(args.act), res_scale=args.res_scale)
                for _ in range(args.n_resblocks)]
        body.append(conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*body)
        self.tail = self.per_scale(lambda s: common.upsampling_tail(conv, s, n_feats, args.n_colors, kernel_size))

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
