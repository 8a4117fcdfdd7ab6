"""RRDBNet (Wang et al., ESRGAN, ECCV workshops 2018), as BasicSR and
Real-ESRGAN define it (basicsr/archs/rrdbnet_arch.py): a conv, blocks of
three residual dense blocks (5 convs each, every conv adding `growth`
channels, LeakyReLU 0.2, residuals scaled by 0.2), a conv with a skip from
the first, then per factor 2 a nearest upsampling and a conv with LeakyReLU,
and two convs at the high resolution. Real-ESRGAN's x2 and x1 models
pixel-unshuffle the input by 2 / 4 first (--unshuffle; the input is
reflect-padded to a multiple of it, as Real-ESRGAN's inference does). The
network works on 0..1, as published: input and output are scaled from and to
--rgb_range. One scale per network, as every published file holds.

Keys are BasicSR's (conv_first, body.<i>.rdb<j>.conv<k>, conv_body,
conv_up<k>, conv_hr, conv_last). read_layout() also reads the original
ESRGAN layout (`model.N`, the old BasicSR architecture of ESRGAN's first
release and of most community files) and the ESRGAN repository's names
(RRDB_trunk, trunk_conv, upconv<k>, HRconv).

Parameters of RealESRGAN_x4plus / ESRGAN x4 (23 blocks, 64 features,
growth 32, x4): 16,697,987; of RealESRGAN_x2plus (the same with
--unshuffle 2, x2): 16,703,171; of RealESRGAN_x4plus_anime_6B (6 blocks):
4,467,779; computed from the architecture definition above with the
configurations Real-ESRGAN's inference script builds for those files
(test/test_interop.py counts them).
"""
import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.flags import Flag
from model.layouts import Reading, fits
from registry import MODELS


class DenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the input and all earlier outputs; residual x 0.2."""

    def __init__(self, n_feats, growth):
        super().__init__()
        for i in range(5):
            out = growth if i < 4 else n_feats
            setattr(self, f'conv{i + 1}', nn.Conv2d(n_feats + i * growth, out, 3, 1, 1))
        self.lrelu = nn.LeakyReLU(0.2, True)
        for i in range(5):  # BasicSR's initialisation: Kaiming normal x 0.1, zero bias
            conv = getattr(self, f'conv{i + 1}')
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x):
        feats = [x]
        for i in range(1, 5):
            feats.append(self.lrelu(getattr(self, f'conv{i}')(torch.cat(feats, 1))))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, residual x 0.2."""

    def __init__(self, n_feats, growth):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (DenseBlock(n_feats, growth) for _ in range(3))

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


def pad_multiple(x, m):
    """Reflect-pad bottom/right to a multiple of m (replicate when a side is
    too short to reflect), in one pad whose size the ONNX exporter traces."""
    h, w = x.shape[-2:]
    mode = 'reflect' if min(h, w) >= m else 'replicate'
    return F.pad(x, (0, (m - w % m) % m, 0, (m - h % m) % m), mode=mode)


def upsampling_steps(scale, unshuffle):
    """The number of x2 nearest-upsampling convs for `scale` after a pixel-unshuffle by `unshuffle`."""
    if unshuffle not in (1, 2, 4):
        raise ValueError(f'--unshuffle: must be 1, 2 or 4, got {unshuffle}')
    total = scale * unshuffle
    if total < 2 or total & (total - 1):
        raise ValueError(f'--scale: RRDBNet upsamples by powers of 2; x{scale} with --unshuffle {unshuffle} '
                         'is not one (x2, x4, x8; x1 and x2 with --unshuffle 4 and 2)')
    return int(math.log2(total))


# community layouts: (name, key pattern -> BasicSR name). Old ESRGAN's top-level convs are named by position.
ESRGAN_REPO = ((r'RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.', r'body.\1.rdb\2.conv\3.'), (r'trunk_conv\.', 'conv_body.'),
               (r'upconv(\d)\.', r'conv_up\1.'), (r'HRconv\.', 'conv_hr.'), (r'conv_first\.', 'conv_first.'),
               (r'conv_last\.', 'conv_last.'))
BASICSR = ((r'(body\.\d+\.rdb\d\.conv\d|conv_body|conv_up\d|conv_hr|conv_first|conv_last)\.', r'\1.'),)


def rename(state, table):
    """`state` with keys renamed by the first matching (pattern, replacement)
    of `table` (patterns match the key's start, up to 'weight'/'bias'); None
    when a key matches none."""
    out = {}
    for k, v in state.items():
        for pattern, repl in table:
            m = re.fullmatch(pattern + r'(weight|bias)', k)
            if m:
                out[m.expand(repl) + m.group(m.re.groups)] = v
                break
        else:
            return None
    return out


def from_original(state):
    """The original ESRGAN layout (model.0 conv, model.1.sub.<i>.RDB<j>.conv<k>.0
    blocks and model.1.sub.<n> conv, then upsampling convs every 3 indices,
    the HR conv and the last conv) under BasicSR names; None when it is not."""
    tops = sorted({int(m.group(1)) for k in state for m in [re.fullmatch(r'model\.(\d+)\.(weight|bias)', k)] if m})
    if len(tops) < 3 or tops[0] != 0:
        return None
    names = {0: 'conv_first', tops[-2]: 'conv_hr', tops[-1]: 'conv_last'}
    names.update({i: f'conv_up{j + 1}' for j, i in enumerate(tops[1:-2])})
    n_blocks = len({k.split('.')[3] for k in state if k.startswith('model.1.sub.') and '.RDB' in k})
    table = ((r'model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.', r'body.\1.rdb\2.conv\3.'),
             (rf'model\.1\.sub\.{n_blocks}\.', 'conv_body.'),
             *((rf'model\.{i}\.', f'{name}.') for i, name in names.items()))
    return rename(state, table)


@MODELS.register('RRDBNet')
class RRDBNet(nn.Module):
    flags = (Flag('n_resblocks', 'RRDB blocks', arg='n_blocks'), Flag('n_feats', 'feature maps'),
             Flag('growth', 'channels each dense-block conv adds'),
             Flag('unshuffle', 'pixel-unshuffle factor of the input: 1, or 2 / 4 as Real-ESRGAN x2 / x1'))
    # ESRGAN's PSNR-oriented stage: L1, lr 2e-4 halved every 200k of 1,000k iterations (epochs of --test_every
    # 1000), batch 16, 128-pixel HR patches; its GAN stage is --template ESRGAN (src/template.py)
    templates = {'RRDBNet_PSNR': dict(n_resblocks=23, n_feats=64, growth=32, scale='4', loss='1*L1', lr=2e-4,
                                      betas='0.9-0.99', patch_size=128, batch_size=16, epochs=1000,
                                      decay='200-400-600-800', gamma=0.5)}
    layouts = {'Real-ESRGAN / BasicSR': 'conv_first, body.N.rdb1.conv1',  # layout: its telltale keys
               'original ESRGAN': 'model.0, model.1.sub.N.RDB1.conv1.0',
               'ESRGAN repository': 'RRDB_trunk.N.RDB1.conv1'}

    def __init__(self, scale=(4,), n_colors=3, rgb_range=255, n_blocks=23, n_feats=64, growth=32, unshuffle=1):
        super().__init__()
        scale = (scale,) if isinstance(scale, int) else tuple(scale)
        if len(scale) != 1:
            raise ValueError(f"--scale: RRDBNet builds one scale, as its published files hold; "
                             f"give one, not {'+'.join(map(str, scale))}")
        if min(n_blocks, n_feats, growth) < 1:
            raise ValueError('--n_resblocks, --n_feats, --growth: RRDBNet needs positive values')
        self.scale, self.unshuffle, self.rgb_range = scale[0], unshuffle, rgb_range
        steps = upsampling_steps(self.scale, unshuffle)
        self.conv_first = nn.Conv2d(n_colors * unshuffle ** 2, n_feats, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(n_feats, growth) for _ in range(n_blocks)])
        self.conv_body = nn.Conv2d(n_feats, n_feats, 3, 1, 1)
        for i in range(steps):
            setattr(self, f'conv_up{i + 1}', nn.Conv2d(n_feats, n_feats, 3, 1, 1))
        self.steps = steps
        self.conv_hr = nn.Conv2d(n_feats, n_feats, 3, 1, 1)
        self.conv_last = nn.Conv2d(n_feats, n_colors, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        h, w = x.shape[-2:]
        x = x / self.rgb_range
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(pad_multiple(x, self.unshuffle), self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for i in range(self.steps):
            feat = self.lrelu(getattr(self, f'conv_up{i + 1}')(F.interpolate(feat, scale_factor=2, mode='nearest')))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        if self.unshuffle > 1:
            out = out[..., :h * self.scale, :w * self.scale]
        return out * self.rgb_range

    def from_basicsr(self, state):
        """BasicSR's names are this network's."""
        return dict(state)

    @classmethod
    def read_layout(cls, state):
        """Reading of a community RRDBNet file, or None."""
        readers = (lambda: rename(state, BASICSR), lambda: from_original(state), lambda: rename(state, ESRGAN_REPO))
        for layout, read in zip(cls.layouts, readers):
            native = read()
            found = native is not None and sizes(native)
            if found and fits(cls, found, native):
                return Reading(layout, found, native)
        return None

    @staticmethod
    def describe(flag_values):
        v = flag_values
        extra = f", pixel-unshuffle {v['unshuffle']}" if v['unshuffle'] > 1 else ''
        return f"{v['n_resblocks']} blocks, {v['n_feats']} features, growth {v['growth']}{extra}"


def sizes(state):
    """RRDBNet's flags read from a state_dict under BasicSR names ({} when it lacks a needed tensor)."""
    try:
        first, last = state['conv_first.weight'], state['conv_last.weight']
        growth, n_colors = state['body.0.rdb1.conv1.weight'].shape[0], last.shape[0]
        unshuffle = math.isqrt(first.shape[1] // n_colors)
    except (KeyError, IndexError, ZeroDivisionError):
        return {}
    steps = len({k.split('.')[0] for k in state if k.startswith('conv_up')})
    return {'n_resblocks': len({k.split('.')[1] for k in state if k.startswith('body.')}),
            'n_feats': first.shape[0], 'growth': growth, 'unshuffle': unshuffle,
            'scale': [2 ** steps // unshuffle], 'n_colors': n_colors}
