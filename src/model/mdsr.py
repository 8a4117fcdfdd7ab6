"""MDSR (Lim et al., 2017): one body for x2/x3/x4 with per-scale pre-processing
blocks and upsamplers. Keys are those of the released EDSR-PyTorch models
(`pre_process.<k>`, `upsample.<k>` even with one scale)."""
import torch.nn as nn

from model import common
from model.released import EDSR_URL, Released
from registry import MODELS


@MODELS.register('MDSR')
class MDSR(common.MultiScale):
    scale_modules = ('pre_process', 'upsample')
    flags = (common.N_RESBLOCKS, common.N_FEATS, common.ACT, common.SHIFT_MEAN)
    templates = {
        'MDSR': dict(n_resblocks=16, n_feats=64, patch_size=48, epochs=650, scale='2+3+4'),
        'MDSR_paper': dict(n_resblocks=80, n_feats=64, patch_size=48, epochs=650, scale='2+3+4'),
    }
    released = (
        Released('mdsr_baseline-a00cab12.pt', EDSR_URL, 'a00cab12', (2, 3, 4), dict(n_resblocks=16, n_feats=64)),
        Released('mdsr-4a78bedf.pt', EDSR_URL, '4a78bedf', (2, 3, 4), dict(n_resblocks=80, n_feats=64)),
    )

    def __init__(self, scale=(2, 3, 4), n_colors=3, rgb_range=255, n_resblocks=16, n_feats=64, act='relu',
                 shift_mean=True, conv=common.default_conv):
        super().__init__(scale)
        self.shift_mean = common.add_mean_shift(self, n_colors, rgb_range, shift_mean)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        self.pre_process = self.per_scale(lambda s: nn.Sequential(
            common.ResBlock(conv, n_feats, 5, act=common.make_act(act)),
            common.ResBlock(conv, n_feats, 5, act=common.make_act(act))), listed=True)
        body = [common.ResBlock(conv, n_feats, 3, act=common.make_act(act)) for _ in range(n_resblocks)]
        body.append(conv(n_feats, n_feats, 3))
        self.body = nn.Sequential(*body)
        self.upsample = self.per_scale(lambda s: common.Upsampler(conv, s, n_feats), listed=True)
        self.tail = nn.Sequential(conv(n_feats, n_colors, 3))

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
