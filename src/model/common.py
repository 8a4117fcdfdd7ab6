"""Building blocks shared by the networks (EDSR-PyTorch module layout, so that
released state_dict key names match), and the per-scale plumbing: MultiScale
(scale list, set_scale, per-scale modules, re-keying checkpoints by scale) and
ResidualSR (EDSR's forward). Registers no network."""
import math

import torch
import torch.nn as nn

from model.flags import Flag

# flags several networks declare
ACT = Flag('act', 'activation: relu, lrelu, prelu or tanh')
SHIFT_MEAN = Flag('shift_mean', 'subtract the DIV2K mean at input, add at output (RGB)')
N_FEATS = Flag('n_feats', 'feature maps')
N_RESBLOCKS = Flag('n_resblocks', 'residual blocks')
RES_SCALE = Flag('res_scale', 'residual scaling')


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
    if name == 'tanh':
        return nn.Tanh()
    raise ValueError(f"--act: unknown activation '{name}' (relu, lrelu, prelu, tanh)")


class MeanShift(nn.Conv2d):
    """Subtracts (sign=-1) or adds (sign=1) the DIV2K RGB mean; not trained."""

    def __init__(self, rgb_range, rgb_mean=(0.4488, 0.4371, 0.4040), rgb_std=(1.0, 1.0, 1.0), sign=-1):
        super().__init__(3, 3, kernel_size=1)
        std = torch.tensor(rgb_std, dtype=torch.float32)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(rgb_mean, dtype=torch.float32) / std
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


def shuffle_steps(scale):
    """The PixelShuffle factors of a sub-pixel upsampler for `scale`: its prime
    factors, smallest first (x4: [2, 2], x6: [2, 3], x5: [5]); the released
    2^n and x3 layouts are the special cases."""
    if not isinstance(scale, int) or scale < 2:
        raise ValueError(f'--scale: sub-pixel upsampling needs an integer scale >= 2, not {scale}')
    steps, p = [], 2
    while scale > 1:
        while scale % p == 0:
            steps.append(p)
            scale //= p
        p += 1
    return steps


class Upsampler(nn.Sequential):
    """Sub-pixel upsampling: per prime factor r of the scale (smallest first)
    a conv to r*r*n and PixelShuffle(r); x4 is 2 x (conv to 4n, shuffle 2)."""

    def __init__(self, conv, scale, n_feats, bn=False, act=False, bias=True):
        m = []
        for r in shuffle_steps(scale):
            m.append(conv(n_feats, r * r * n_feats, 3, bias))
            m.append(nn.PixelShuffle(r))
            if bn:
                m.append(nn.BatchNorm2d(n_feats))
            if act == 'relu':
                m.append(nn.ReLU(True))
            elif act == 'prelu':
                m.append(nn.PReLU(n_feats))
        super().__init__(*m)


def upsampling_tail(conv, scale, n_feats, n_colors, kernel_size=3, act=False):
    """EDSR's tail for one scale: Upsampler (tail.0) and the last conv (tail.1)."""
    return nn.Sequential(Upsampler(conv, scale, n_feats, act=act), conv(n_feats, n_colors, kernel_size))


def add_mean_shift(net, n_colors, rgb_range, shift_mean):
    """Give `net` the frozen sub_mean/add_mean pair (RGB only; keys as released).
    Returns whether its forward should use them (`shift_mean`)."""
    if n_colors == 3:
        net.sub_mean = MeanShift(rgb_range)
        net.add_mean = MeanShift(rgb_range, sign=1)
    return shift_mean and n_colors == 3


def with_mean_shift(state, net):
    """`state` with net's own MeanShift tensors added (BasicSR files have none)."""
    out = dict(state)
    for k, v in net.state_dict().items():
        if k.startswith(('sub_mean.', 'add_mean.')):
            out[k] = v.clone()
    return out


def upsampler_scale(state, prefix):
    """The scale of a sub-pixel Upsampler stored under `prefix` in a state_dict,
    read from its conv shapes: the product of the shuffle factors r, each conv
    having r*r x its input channels (None when there is none or a shape fits no r)."""
    convs = [v for k, v in state.items()
             if k.startswith(prefix) and k.endswith('weight') and getattr(v, 'ndim', 0) == 4]
    if not convs:
        return None
    scale = 1
    for v in convs:
        ratio = v.shape[0] // v.shape[1]  # r*r for a conv feeding PixelShuffle(r)
        r = math.isqrt(ratio)
        if r < 2 or r * r * v.shape[1] != v.shape[0]:
            return None
        scale *= r
    return scale


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _split_per_scale(rest):
    """The per-scale modules of a checkpoint: one (single-scale layout, where
    some key sits directly on a child: `0.weight`, `1.bias`) or one per
    `<k>.` group (multi-scale layout)."""
    if any(k.count('.') == 1 for k in rest):
        return [rest]
    groups = {}
    for k, v in rest.items():
        i, _, r = k.partition('.')
        groups.setdefault(i, {})[r] = v
    return list(groups.values())


def remap_per_scale(state, scales, prefix, scale_of):
    """Re-key the per-scale module `prefix` of a checkpoint for a model with `scales`.

    A single-scale model stores it as `<prefix>.*` (e.g. EDSR's `tail.0.*`
    upsampler and `tail.1.*` conv), a multi-scale one as `<prefix>.<k>.*`.
    Modules are matched by the scale scale_of() reads from their shapes, so
    x2 weights land in the x2 slot of a 2+3+4 model and the reverse; unmatched
    ones go under `<prefix>.unused<j>` (reported as not loaded). When nothing
    matches a single-scale model the first one stays in place, so shape
    mismatches are reported (x3 training from x2 weights).
    """
    p = prefix + '.'
    out = {k: v for k, v in state.items() if not k.startswith(p)}
    rest = {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
    if not rest:
        return out
    found = _split_per_scale(rest)
    by_scale = {}
    for t in found:
        by_scale.setdefault(scale_of(t), t)
    if len(scales) == 1:
        placed = {'': by_scale.get(scales[0], found[0])}
    else:
        placed = {f'{i}.': by_scale[s] for i, s in enumerate(scales) if s in by_scale}
    used = {id(t) for t in placed.values()}
    for j, extra in enumerate(t for t in found if id(t) not in used):
        placed[f'unused{j}.'] = extra
    for name, t in placed.items():
        out.update({p + name + k: v for k, v in t.items()})
    return out


class MultiScale(nn.Module):
    """A network for the scales of --scale, one selected at a time (set_scale,
    called by the wrapper before each forward). Its per-scale modules, built
    with per_scale() and named in `scale_modules`, are picked with at_scale()
    and re-keyed by scale when a checkpoint is loaded (adapt_state_dict)."""
    scale_modules = ()  # names of the per-scale modules: loading tolerates mismatches there

    def __init__(self, scales):
        super().__init__()
        self.scales = [scales] if isinstance(scales, int) else list(scales)
        self.scale_idx = 0

    def set_scale(self, idx_scale):
        self.scale_idx = idx_scale

    @property
    def scale(self):
        return self.scales[self.scale_idx]

    def per_scale(self, make, listed=False):
        """make(s) for each scale: the module itself for one scale (keys
        `<name>.*`, as released single-scale weights), else an nn.ModuleList
        (`<name>.<k>.*`); `listed`: a ModuleList even for one scale."""
        mods = [make(s) for s in self.scales]
        return mods[0] if len(mods) == 1 and not listed else nn.ModuleList(mods)

    def at_scale(self, module):
        """The current scale's part of a per_scale() module."""
        return module[self.scale_idx] if isinstance(module, nn.ModuleList) else module

    @staticmethod
    def scale_of(part):
        """The scale of one per-scale module of a checkpoint ({'0.0.weight': ...}):
        here an upsampling tail whose Upsampler is child 0."""
        return upsampler_scale(part, '0.')

    def adapt_state_dict(self, state):
        for name in self.scale_modules:
            state = remap_per_scale(state, self.scales, name, self.scale_of)
        return state


class ResidualSR(MultiScale):
    """EDSR's shape, also RCAN's and SRResNet's: MeanShift in, head, body with
    a skip from the head, the current scale's tail, MeanShift out."""
    scale_modules = ('tail',)

    def __init__(self, scale, n_colors, rgb_range, shift_mean):
        super().__init__(scale)
        self.shift_mean = add_mean_shift(self, n_colors, rgb_range, shift_mean)

    def forward(self, x):
        if self.shift_mean:
            x = self.sub_mean(x)
        x = self.head(x)
        x = self.body(x) + x
        x = self.at_scale(self.tail)(x)
        if self.shift_mean:
            x = self.add_mean(x)
        return x
