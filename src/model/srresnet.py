"""SRResNet (Ledig et al., CVPR 2017): 9x9 head conv + PReLU, residual blocks
conv-BN-PReLU-conv-BN, conv-BN with a skip from the head, sub-pixel x2
steps with PReLU, 9x9 last conv. EDSR-style keys (head, body, tail); with
several scales each scale has its own tail (`tail.<k>.*`)."""
import torch.nn as nn

from model import common


def make_model(args):
    return SRResNet(args)


def released(args):
    from model.released import find_released
    return find_released(args)


class SRResNet(nn.Module):
    scale_modules = ('tail',)

    def __init__(self, args, conv=common.default_conv):
        super().__init__()
        n_feats = args.n_feats
        self.scales = list(args.scale)
        self.scale_idx = 0
        self.shift_mean = args.shift_mean and args.n_colors == 3
        if args.n_colors == 3:
            self.sub_mean = common.MeanShift(args.rgb_range)
            self.add_mean = common.MeanShift(args.rgb_range, sign=1)
        self.head = nn.Sequential(conv(args.n_colors, n_feats, 9), nn.PReLU())
        body = [common.ResBlock(conv, n_feats, 3, bn=True, act=nn.PReLU()) for _ in range(args.n_resblocks)]
        body += [conv(n_feats, n_feats, 3), nn.BatchNorm2d(n_feats)]
        self.body = nn.Sequential(*body)
        tails = [nn.Sequential(common.Upsampler(conv, s, n_feats, act='prelu'), conv(n_feats, args.n_colors, 9))
                 for s in self.scales]
        self.tail = tails[0] if len(tails) == 1 else nn.ModuleList(tails)

    def set_scale(self, idx_scale):
        self.scale_idx = idx_scale

    def forward(self, x):
        if self.shift_mean:
            x = self.sub_mean(x)
        x = self.head(x)
        x = self.body(x) + x
        x = (self.tail if len(self.scales) == 1 else self.tail[self.scale_idx])(x)
        if self.shift_mean:
            x = self.add_mean(x)
        return x

    def adapt_state_dict(self, state):
        return common.remap_tails(state, self.scales, 'tail')
