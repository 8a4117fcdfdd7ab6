"""Building blocks shared by the networks (EDSR-PyTorch module layout, so that
released state_dict key names match)."""
import math

import torch
import torch.nn as nn


def default_conv(in_channels, out_channels, kernel_size, bias=True):
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


def make_act(name='relu'):
    name = name.lower()
    if name == 'relu':
        return nn.ReLU(True)
    if name == 'lrelu':
        return nn.LeakyReLU(0.2, True)
    if name == 'prelu':
        return nn.PReLU()
    raise ValueError(f"--act: unknown activation '{name}'")


class MeanShift(nn.Conv2d):
    """Subtracts (sign=-1) or adds (sign=1) the DIV2K RGB mean; not trained."""

    def __init__(self, rgb_range, rgb_mean=(0.4488, 0.4371, 0.4040), rgb_std=(1.0, 1.0, 1.0), sign=-1):
        super().__init__(3, 3, kernel_size=1)
        std = torch.Tensor(rgb_std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.Tensor(rgb_mean) / std
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    """conv-act-conv with a scaled identity skip (keys body.0, body.2)."""

    def __init__(self, conv, n_feats, kernel_size, bias=True, bn=False, act=None, res_scale=1):
        super().__init__()
        m = []
        for i in range(2):
            m.append(conv(n_feats, n_feats, kernel_size, bias=bias))
            if bn:
                m.append(nn.BatchNorm2d(n_feats))
            if i == 0:
                m.append(act if act is not None else nn.ReLU(True))
        self.body = nn.Sequential(*m)
        self.res_scale = res_scale

    def forward(self, x):
        return self.body(x).mul(self.res_scale) + x


class Upsampler(nn.Sequential):
    """Sub-pixel upsampling: log2(s) x (conv to 4n, shuffle 2) or conv to 9n, shuffle 3."""

    def __init__(self, conv, scale, n_feats, bn=False, act=False, bias=True):
        m = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                m.append(conv(n_feats, 4 * n_feats, 3, bias))
                m.append(nn.PixelShuffle(2))
                if bn:
                    m.append(nn.BatchNorm2d(n_feats))
                if act == 'relu':
                    m.append(nn.ReLU(True))
                elif act == 'prelu':
                    m.append(nn.PReLU(n_feats))
        elif scale == 3:
            m.append(conv(n_feats, 9 * n_feats, 3, bias))
            m.append(nn.PixelShuffle(3))
            if bn:
                m.append(nn.BatchNorm2d(n_feats))
            if act == 'relu':
                m.append(nn.ReLU(True))
            elif act == 'prelu':
                m.append(nn.PReLU(n_feats))
        else:
            raise ValueError(f'--scale: sub-pixel upsampling supports 2^n and 3, not {scale}')
        super().__init__(*m)


def upsampler_scale(state, prefix):
    """The scale of a sub-pixel Upsampler stored under `prefix` in a state_dict,
    read from its conv shapes (None when there is none)."""
    convs = [v for k, v in state.items()
             if k.startswith(prefix) and k.endswith('weight') and getattr(v, 'ndim', 0) == 4]
    if not convs:
        return None
    ratios = [v.shape[0] // v.shape[1] for v in convs]
    if all(r == 4 for r in ratios):
        return 2 ** len(ratios)
    if ratios == [9]:
        return 3
    return None


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def remap_tails(state, scales, prefix='tail'):
    """Re-key the per-scale tails of a checkpoint for a model with `scales`.

    A single-scale model stores its tail as `<prefix>.0.*` (upsampler) and
    `<prefix>.1.*` (last conv); a multi-scale one as `<prefix>.<k>.*`, one per
    scale. Tails are matched by the scale read from their upsampler shapes, so
    x2 weights land in the x2 tail of a 2+3+4 model and the reverse. A tail
    whose scale the model lacks is kept under an unused name (reported as not
    loaded); when nothing matches a single-scale model, keys stay as they are
    (shape mismatches are then reported, as for x3 training from x2 weights).
    """
    p = prefix + '.'
    out = {k: v for k, v in state.items() if not k.startswith(p)}
    rest = {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
    if not rest:
        return dict(state)
    if '1.weight' in rest:  # single-scale layout
        tails = [rest]
    else:
        groups = {}
        for k, v in rest.items():
            i, _, r = k.partition('.')
            groups.setdefault(i, {})[r] = v
        tails = list(groups.values())
    by_scale = {}
    for t in tails:
        by_scale.setdefault(upsampler_scale(t, '0.'), t)
    if len(scales) == 1:
        t = by_scale.get(scales[0], tails[0])
        out.update({p + k: v for k, v in t.items()})
        for j, t2 in enumerate(x for x in tails if x is not t):
            out.update({f'{p}unused{j}.{k}': v for k, v in t2.items()})
        return out
    used = set()
    for i, s in enumerate(scales):
        if s in by_scale:
            used.add(id(by_scale[s]))
            out.update({f'{p}{i}.{k}': v for k, v in by_scale[s].items()})
    for j, t in enumerate(x for x in tails if id(x) not in used):
        out.update({f'{p}unused{j}.{k}': v for k, v in t.items()})
    return out
