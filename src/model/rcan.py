"""RCAN (Zhang et al., ECCV 2018): residual groups of residual channel
attention blocks. Keys are those of the released RCAN / EDSR-PyTorch models
(head.0, body.<g>.body.<b>.body.{0,2,3.conv_du.{0,2}}, body.<g>.body.<B>,
body.<G>, tail.0, tail.1); with several scales each has its own tail."""
import torch.nn as nn

from model import common


def make_model(args):
    return RCAN(args)


def released(args):
    from model.released import find_released
    return find_released(args)


class CALayer(nn.Module):
    """Channel attention: global average pool, squeeze, excite, sigmoid gate."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(True),
            nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    def __init__(self, conv, n_feats, kernel_size, reduction, res_scale=1):
        super().__init__()
        self.body = nn.Sequential(conv(n_feats, n_feats, kernel_size), nn.ReLU(True),
                                  conv(n_feats, n_feats, kernel_size), CALayer(n_feats, reduction))
        self.res_scale = res_scale

    def forward(self, x):
        return self.body(x).mul(self.res_scale) + x


class ResidualGroup(nn.Module):
    def __init__(self, conv, n_feats, kernel_size, reduction, n_resblocks, res_scale=1):
        super().__init__()
        body = [RCAB(conv, n_feats, kernel_size, reduction, res_scale) for _ in range(n_resblocks)]
        body.append(conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*body)

    def forward(self, x):
        return self.body(x) + x


class RCAN(nn.Module):
    scale_modules = ('tail',)

    def __init__(self, args, conv=common.default_conv):
        super().__init__()
        n_feats, kernel_size = args.n_feats, 3
        if args.reduction < 1 or n_feats % args.reduction:
            raise ValueError(f'--reduction: {args.reduction} must divide --n_feats {n_feats}')
        self.scales = list(args.scale)
        self.scale_idx = 0
        self.shift_mean = args.shift_mean and args.n_colors == 3
        if args.n_colors == 3:
            self.sub_mean = common.MeanShift(args.rgb_range)
            self.add_mean = common.MeanShift(args.rgb_range, sign=1)
        self.head = nn.Sequential(conv(args.n_colors, n_feats, kernel_size))
        body = [ResidualGroup(conv, n_feats, kernel_size, args.reduction, args.n_resblocks, args.res_scale)
                for _ in range(args.n_resgroups)]
        body.append(conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*body)
        tails = [nn.Sequential(common.Upsampler(conv, s, n_feats), conv(n_feats, args.n_colors, kernel_size))
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


def from_basicsr(state, model):
    """BasicSR RCAN names -> released RCAN names (MeanShift taken from `model`).
    BasicSR's RCAN scales 0..1 input by img_range 255, so its weights match
    this network with --rgb_range 255."""
    n_groups = len(model.body) - 1
    n_blocks = len(model.body[0].body) - 1 if n_groups else 0
    out = {}
    for k, v in state.items():
        k2 = (k.replace('conv_first.', 'head.0.')
               .replace('conv_after_body.', f'body.{n_groups}.')
               .replace('.residual_group.', '.body.')
               .replace('.rcab.3.attention.1.', '.body.3.conv_du.0.')
               .replace('.rcab.3.attention.3.', '.body.3.conv_du.2.')
               .replace('.rcab.', '.body.')
               .replace('upsample.', 'tail.0.').replace('conv_last.', 'tail.1.'))
        if k2.startswith('body.') and '.conv.' in k2:  # body.<g>.conv -> body.<g>.body.<B>
            k2 = k2.replace('.conv.', f'.body.{n_blocks}.')
        out[k2] = v
    for k, v in model.state_dict().items():
        if k.startswith(('sub_mean.', 'add_mean.')):
            out[k] = v.clone()
    return out
