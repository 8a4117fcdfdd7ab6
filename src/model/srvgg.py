"""SRVGGNetCompact (Wang et al., Real-ESRGAN, ICCV workshops 2021; its compact
model, realesrgan/archs/srvgg_arch.py): a conv and PReLU, --n_resblocks more
conv + PReLU pairs on the LR image, a conv to s*s x channels and a pixel
shuffle, added to the nearest-upsampled input. The network works on 0..1, as
published: input and output are scaled from and to --rgb_range. One scale
per network, as every published file holds.

Keys are Real-ESRGAN's (body.<i>: convs at even i, PReLU slopes at odd i);
read_layout() reads its files (plain, or in 'params' / 'params_ema').

Parameters of realesr-general-x4v3 (64 features, 32 convs, x4): 1,213,296;
of realesr-animevideov3 (16 convs): 621,424; computed from the architecture
definition above with the configurations Real-ESRGAN's inference script
builds for those files (test/test_interop.py counts them).
"""
import math
import re

import torch.nn as nn

from model import common
from model.flags import Flag
from model.layouts import Reading, fits
from registry import MODELS


@MODELS.register('SRVGGNetCompact')
class SRVGGNetCompact(nn.Module):
    flags = (Flag('n_resblocks', 'convolutions after the first (num_conv)', arg='n_conv'),
             Flag('n_feats', 'feature maps'))
    # the released configurations (Real-ESRGAN's realesr-* files)
    templates = {'realesr-general-x4v3': dict(n_resblocks=32, n_feats=64, scale='4'),
                 'realesr-animevideov3': dict(n_resblocks=16, n_feats=64, scale='4')}
    layouts = {'Real-ESRGAN': 'body.N, convs and PReLU slopes'}  # layout: its telltale keys

    def __init__(self, scale=(4,), n_colors=3, rgb_range=255, n_conv=16, n_feats=64):
        super().__init__()
        scale = (scale,) if isinstance(scale, int) else tuple(scale)
        if len(scale) != 1:
            raise ValueError(f"--scale: SRVGGNetCompact builds one scale, as its published files hold; "
                             f"give one, not {'+'.join(map(str, scale))}")
        if n_conv < 0 or n_feats < 1:
            raise ValueError('--n_resblocks, --n_feats: SRVGGNetCompact needs n_resblocks >= 0 and n_feats >= 1')
        self.scale, self.rgb_range = scale[0], rgb_range
        body = [nn.Conv2d(n_colors, n_feats, 3, 1, 1), nn.PReLU(n_feats)]
        for _ in range(n_conv):
            body += [nn.Conv2d(n_feats, n_feats, 3, 1, 1), nn.PReLU(n_feats)]
        body.append(nn.Conv2d(n_feats, n_colors * self.scale ** 2, 3, 1, 1))
        self.body = nn.ModuleList(body)
        self.upsampler = nn.PixelShuffle(self.scale)

    def forward(self, x):
        x = x / self.rgb_range
        out = x
        for layer in self.body:
            out = layer(out)
        base = common.upsampled(x, self.scale, 'nearest')
        return (self.upsampler(out) + base) * self.rgb_range

    def from_basicsr(self, state):
        """Real-ESRGAN's names are this network's."""
        return dict(state)

    @classmethod
    def read_layout(cls, state):
        """Reading of a Real-ESRGAN SRVGGNetCompact file, or None."""
        if not state or not all(re.fullmatch(r'body\.\d+\.(weight|bias)', k) for k in state):
            return None
        last = max(int(k.split('.')[1]) for k in state)
        first, end = state.get('body.0.weight'), state.get(f'body.{last}.weight')
        if first is None or end is None or first.ndim != 4 or end.ndim != 4 or last % 2:
            return None
        n_colors = first.shape[1]
        scale = math.isqrt(end.shape[0] // n_colors)
        found = {'n_resblocks': (last - 2) // 2, 'n_feats': first.shape[0], 'scale': [scale], 'n_colors': n_colors}
        return Reading('Real-ESRGAN', found, dict(state)) if scale and fits(cls, found, state) else None

    @staticmethod
    def describe(flag_values):
        return f"{flag_values['n_resblocks']} convolutions after the first, {flag_values['n_feats']} features"
