"""EDSR (Lim et al., CVPR 2017 workshops). Keys and shapes are those of the
released EDSR-PyTorch models; with several scales the body is shared and each
scale has its own tail (`tail.<k>.*`), picked by set_scale()."""
import torch.nn as nn

from model import common


def make_model(args):
    return EDSR(args)


class EDSR(nn.Module):
    scale_modules = ('tail',)

    def __init__(self, args, conv=common.default_conv):
        super().__init__()
        n_feats, kernel_size = args.n_feats, 3
        self.scales = list(args.scale)
        self.scale_idx = 0
        self.shift_mean = args.shift_mean and args.n_colors == 3
        if args.n_colors == 3:
            self.sub_mean = common.MeanShift(args.rgb_range)
            self.add_mean = common.MeanShift(args.rgb_range, sign=1)
        self.head = nn.Sequential(conv(args.n_colors, n_feats, kernel_size))
        body = [common.ResBlock(conv, n_feats, kernel_size, act=common.make_act(args.act), res_scale=args.res_scale)
                for _ in range(args.n_resblocks)]
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
        tail = self.tail if len(self.scales) == 1 else self.tail[self.scale_idx]
        x = tail(x)
        if self.shift_mean:
            x = self.add_mean(x)
        return x

    def adapt_state_dict(self, state):
        return common.remap_tails(state, self.scales, 'tail')


def from_basicsr(state, model):
    """BasicSR EDSR names -> EDSR-PyTorch names (MeanShift taken from `model`)."""
    n = len(model.body) - 1
    out = {}
    for k, v in state.items():
        k2 = (k.replace('conv_first.', 'head.0.')
               .replace('conv_after_body.', f'body.{n}.')
               .replace('.conv1.', '.body.0.').replace('.conv2.', '.body.2.')
               .replace('upsample.', 'tail.0.').replace('conv_last.', 'tail.1.'))
        out[k2] = v
    for k, v in model.state_dict().items():
        if k.startswith(('sub_mean.', 'add_mean.')):
            out[k] = v.clone()
    return out


def released(args):
    """Path of the released weights for these flags (--pre_train download)."""
    from model.released import find_released
    return find_released(args)
