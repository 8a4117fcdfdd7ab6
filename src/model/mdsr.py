"""MDSR (Lim et al., 2017): one body for x2/x3/x4 with per-scale pre-processing
blocks and upsamplers. Keys are those of the released EDSR-PyTorch models
(`pre_process.<k>`, `upsample.<k>` even with one scale)."""
import torch.nn as nn

from model import common
from registry import MODELS


@MODELS.register('MDSR')
class MDSR(common.MultiScale):
    scale_modules = ('pre_process', 'upsample')

    def __init__(self, args, conv=common.default_conv):
        super().__init__(args.scale)
        n_feats, kernel_size = args.n_feats, 3
        self.shift_mean = common.add_mean_shift(self, args)
        self.head = nn.Sequential(conv(args.n_colors, n_feats, kernel_size))
        self.pre_process = self.per_scale(lambda s: nn.Sequential(
            common.ResBlock(conv, n_feats, 5, act=common.make_act(args.act)),
            common.ResBlock(conv, n_feats, 5, act=common.make_act(args.act))), listed=True)
        body = [common.ResBlock(conv, n_feats, kernel_size, act=common.make_act(args.act))
                for _ in range(args.n_resblocks)]
        body.append(conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*body)
        self.upsample = self.per_scale(lambda s: common.Upsampler(conv, s, n_feats), listed=True)
        self.tail = nn.Sequential(conv(n_feats, args.n_colors, kernel_size))

    def forward(self, x):
        if self.shift_mean:
            x = self.sub_mean(x)
        x = self.head(x)
        x = self.at_scale(self.pre_process)(x)
        x = self.body(x) + x
        x = self.at_scale(self.upsample)(x)
        x = self.tail(x)
        if self.shift_mean:
            x = self.add_mean(x)
        return x

    def adapt_state_dict(self, state):
        """Re-index pre_process/upsample by scale (scales read from the upsamplers)."""
        idx = {}
        for k in {int(k.split('.')[1]) for k in state if k.startswith('upsample.')}:
            s = common.upsampler_scale(state, f'upsample.{k}.')
            if s in self.scales:
                idx[k] = self.scales.index(s)
        out = {}
        for k, v in state.items():
            head, _, rest = k.partition('.')
            if head in self.scale_modules:
                i, _, rest = rest.partition('.')
                if int(i) not in idx:
                    out[f'{head}.unused{i}.{rest}'] = v  # reported as not loaded
                    continue
                k = f'{head}.{idx[int(i)]}.{rest}'
            out[k] = v
        return out
