"""Building blocks shared by the networks (EDSR-PyTorch module layout, so that
released state_dict key names match), and the per-scale plumbing: MultiScale
(scale list, set_scale, per-scale modules, re-keying checkpoints by scale) and
ResidualSR (EDSR's forward). Registers no network."""
import functools
import math
import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.flags import Flag

# flags several networks declare
ACT = Flag('act', 'activation: relu, lrelu, prelu or tanh')
SHIFT_MEAN = Flag('shift_mean', 'subtract the DIV2K mean at input, add at output (RGB)')
N_FEATS = Flag('n_feats', 'feature maps')
N_RESBLOCKS = Flag('n_resblocks', 'residual blocks')
RES_SCALE = Flag('res_scale', 'residual scaling')
EXPANSION = Flag('expansion', "wide activation (WDSR-A's): each block's first conv widens to n_feats x this before "
                 "the activation and the second narrows back (1: EDSR's block)")
UPSAMPLER = Flag('upsampler', "tail: pixelshuffle (per factor of the scale a conv to r*r maps and a shuffle, "
                 "then a conv to the colours) or pixelshuffledirect (one conv to colours x scale^2, then a shuffle)")
TAILS = ('pixelshuffle', 'pixelshuffledirect')
GLOBAL_SKIP = Flag('global_skip', "add the input upsampled to the output, so the network learns the residual: none, "
                   "bicubic (VDSR's) or nearest (Real-ESRGAN compact's, ABPN's)")
SKIPS = ('none', 'bicubic', 'nearest')


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
    """conv-act-conv with a scaled identity skip (keys body.0, body.2); with
    `expansion` > 1 the activation is that many times wider than the skip
    (WDSR-A, Yu et al. 2018: the same multiply-adds as n_feats x sqrt(expansion)
    maps throughout)."""

    def __init__(self, conv, n_feats, kernel_size, bias=True, bn=False, act=None, res_scale=1, expansion=1):
        super().__init__()
        if not isinstance(expansion, int) or expansion < 1:
            raise ValueError(f'--expansion: must be a whole number of 1 or more, got {expansion}')
        widths = (n_feats, n_feats * expansion, n_feats)
        m = []
        for i in range(2):
            m.append(conv(widths[i], widths[i + 1], kernel_size, bias=bias))
            if bn:
                m.append(nn.BatchNorm2d(widths[i + 1]))
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


def direct_tail(conv, scale, n_feats, n_colors, kernel_size=3):
    """The lightweight tail for one scale (ESPCN's, SwinIR's pixelshuffledirect):
    one conv at LR to n_colors x scale^2 maps (tail.0), then PixelShuffle(scale)."""
    return nn.Sequential(conv(n_feats, n_colors * scale * scale, kernel_size), nn.PixelShuffle(scale))


def make_tail(kind, conv, scale, n_feats, n_colors, kernel_size=3):
    """The tail `kind` (one of TAILS) for one scale; a one-line ValueError for another."""
    if kind not in TAILS:
        raise ValueError(f"--upsampler: '{kind}' must be one of {', '.join(TAILS)}")
    if kind == 'pixelshuffledirect':
        return direct_tail(conv, scale, n_feats, n_colors, kernel_size)
    return upsampling_tail(conv, scale, n_feats, n_colors, kernel_size)


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


def direct_scale(weight):
    """The scale of a direct tail from its conv's weight: n_colors (3 or 1) x
    scale^2 outputs (never both: 3 s^2 is no square); None when neither fits."""
    if getattr(weight, 'ndim', 0) != 4:
        return None
    for colors in (3, 1):
        s = math.isqrt(weight.shape[0] // colors)
        if s >= 2 and colors * s * s == weight.shape[0]:
            return s
    return None


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _split_per_scale(rest):
    """The per-scale modules of a checkpoint: one (single-scale layout, where
    some key sits directly on a child: `0.weight`, `1.bias`) or one per
    `<k>.` group (multi-scale layout)."""
    if any(k.count('.') == 1 for k in rest):
        return [rest]
    return list(_groups(rest).values())


def _groups(rest):
    """{k: {key: tensor}} of the `<k>.*` keys of a multi-scale layout."""
    groups = {}
    for k, v in rest.items():
        i, _, r = k.partition('.')
        groups.setdefault(i, {})[r] = v
    return groups


def _under(state, prefix):
    """{key: tensor} of the keys under `prefix.`, without it."""
    p = prefix + '.'
    return {k[len(p):]: v for k, v in state.items() if k.startswith(p)}


def remap_per_scale(state, scales, prefix, scale_of, many=None):
    """Re-key the per-scale module `prefix` of a checkpoint for a model with
    `scales`, each of the checkpoint's modules matched by the scale scale_of()
    reads from it (see place_per_scale; `many` defaults to several scales)."""
    rest = _under(state, prefix)
    parts = [(scale_of(t), t) for t in _split_per_scale(rest)] if rest else []
    return place_per_scale(state, prefix, parts, scales, len(scales) > 1 if many is None else many)


def place_per_scale(state, prefix, parts, scales, many):
    """`state` with its per-scale module `prefix` replaced by `parts`
    [(scale or None, {key: tensor})], each placed where the model's module for
    that scale is: `<prefix>.<k>.*` for its k-th scale (`many`: a ModuleList),
    else `<prefix>.*`. Unmatched ones go under `<prefix>.unused<j>` (reported
    as not loaded). When nothing matches a single-scale model the first one
    stays in place, so shape mismatches are reported (x3 training from x2
    weights, as the EDSR paper does)."""
    p = prefix + '.'
    out = {k: v for k, v in state.items() if not k.startswith(p)}
    if not parts:
        return out
    by_scale = {}
    for s, t in parts:
        by_scale.setdefault(s, t)
    if many:
        placed = {f'{i}.': by_scale[s] for i, s in enumerate(scales) if s in by_scale}
    else:
        placed = {'': by_scale.get(scales[0], parts[0][1])}
    used = {id(t) for t in placed.values()}
    for j, extra in enumerate(t for _, t in parts if id(t) not in used):
        placed[f'unused{j}.'] = extra
    for name, t in placed.items():
        out.update({p + name + k: v for k, v in t.items()})
    return out


class MultiScale(nn.Module):
    """A network for several scales (`scales`, in the order of --scale), one at
    a time. Its per-scale modules are built with per_scale(), which records
    the scale of each, and picked with at_scale().

    From Python, `net(x, scale=3)` runs the x3 module for that call. The
    EDSR-PyTorch way, which the training wrapper uses, is set_scale(index):
    the index of a scale in `scales` (set_scale(2) on a 2+3+4 network is x4),
    in force until the next set_scale.

    Loading a checkpoint re-keys its per-scale modules by scale: from the
    scales an srlab file records (its k-th module is its k-th scale,
    from_scales), else by the network's scale_of(part) where it has one
    (reading a foreign file's shapes), else by comparing shapes with its own
    modules (adapt_state_dict)."""
    scale_of = None  # optional: scale_of(part) -> the scale of one per-scale module of a foreign file

    def __init__(self, scales):
        super().__init__()
        self.scales = [scales] if isinstance(scales, int) else list(scales)
        self.scale_idx = 0
        self._built = []  # (module, listed): what per_scale() made

    # ---- which scale ------------------------------------------------------------
    def __call__(self, *args, scale=None, **kwargs):
        if scale is None:
            return super().__call__(*args, **kwargs)
        kept, self.scale_idx = self.scale_idx, self.index_of(scale)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            self.scale_idx = kept

    def index_of(self, scale):
        """The index of `scale` in `scales`; a one-line ValueError for a scale the network was not built for."""
        if scale not in self.scales:
            raise ValueError(f'scale={scale}: this {type(self).__name__} has no x{scale}; it was built for '
                             + ', '.join(f'x{s}' for s in self.scales) + f' (scale={tuple(self.scales)})')
        return self.scales.index(scale)

    def set_scale(self, idx_scale):
        """Select the scale of index `idx_scale` in `scales` (EDSR-PyTorch's
        convention: an index, not a scale) for the calls that follow."""
        try:
            i = operator.index(idx_scale)
        except TypeError:
            i = -1
        if not 0 <= i < len(self.scales):
            raise IndexError(f'set_scale({idx_scale}): takes the index of a scale in {self.scales} '
                             f'(0 to {len(self.scales) - 1}); for a scale itself call net(x, scale=...)')
        self.scale_idx = i

    @property
    def scale(self):
        return self.scales[self.scale_idx]

    # ---- per-scale modules ------------------------------------------------------
    def per_scale(self, make, listed=False):
        """make(s) for each scale: the module itself for one scale (keys
        `<name>.*`, as released single-scale weights), else an nn.ModuleList
        (`<name>.<k>.*`, the k-th for the k-th scale); `listed`: a ModuleList
        even for one scale. Assign it to an attribute of the network."""
        mods = [make(s) for s in self.scales]
        out = mods[0] if len(mods) == 1 and not listed else nn.ModuleList(mods)
        self._built.append((out, listed))
        return out

    @property
    def scale_modules(self):
        """The names of the per-scale modules (the attributes per_scale() made)."""
        return tuple(name for name, child in self.named_children() if self._listed(child) is not None)

    def _listed(self, module):
        return next((listed for m, listed in self._built if m is module), None)

    def at_scale(self, module):
        """The current scale's part of a per_scale() module."""
        return module[self.scale_idx] if isinstance(module, nn.ModuleList) else module

    # ---- loading ----------------------------------------------------------------
    def from_scales(self, state, saved_scales):
        """A checkpoint of this network saved for `saved_scales` (srlab's files
        record them) re-keyed for this one: its k-th per-scale module was built
        for saved_scales[k]."""
        saved = list(saved_scales)
        for name in self.scale_modules:
            rest = _under(state, name)
            listed = len(saved) > 1 or self._listed(getattr(self, name))
            at = {str(k): s for k, s in enumerate(saved)}  # a group beyond them: scale None, reported as not loaded
            parts = [(at.get(i), t) for i, t in _groups(rest).items()] if listed else [(saved[0], rest)]
            parts = parts if rest else []
            state = place_per_scale(state, name, parts, self.scales, isinstance(getattr(self, name), nn.ModuleList))
        return state

    def adapt_state_dict(self, state):
        """A foreign checkpoint re-keyed by scale (see the class)."""
        for name in self.scale_modules:
            scale_of = self.scale_of or functools.partial(self.scale_by_shapes, name)
            state = remap_per_scale(state, self.scales, name, scale_of, isinstance(getattr(self, name), nn.ModuleList))
        return state

    def scale_by_shapes(self, name, part):
        """The scale whose own module `name` has exactly the keys and shapes of
        `part` (None when no scale, or several, do)."""
        module = getattr(self, name)
        own = list(module) if isinstance(module, nn.ModuleList) else [module]
        shapes = {k: tuple(v.shape) for k, v in part.items()}
        fits = [s for s, m in zip(self.scales, own)
                if {k: tuple(v.shape) for k, v in m.state_dict().items()} == shapes]
        return fits[0] if len(fits) == 1 else None


def upsampled(x, scale, mode):
    """`x` resized by `scale` (an int) with `mode` (one of SKIPS but 'none');
    bicubic as PyTorch's (a = -0.75, no antialiasing: it only enlarges)."""
    if mode == 'nearest':
        return F.interpolate(x, scale_factor=scale, mode='nearest')
    return F.interpolate(x, scale_factor=scale, mode='bicubic', align_corners=False)


class ResidualSR(MultiScale):
    """EDSR's shape, also RCAN's and SRResNet's: MeanShift in, head, body with
    a skip from the head, the current scale's tail, MeanShift out; with
    `global_skip`, plus the input upsampled (the tail then learns the residual)."""
    scale_modules = ('tail',)

    @staticmethod
    def scale_of(part):
        """The scale of a tail of a foreign file: upsampling_tail's Upsampler is
        child 0 (`0.0.weight` ...); direct_tail's one conv is (`0.weight`)."""
        if '0.weight' in part:
            return direct_scale(part['0.weight'])
        return upsampler_scale(part, '0.')

    def __init__(self, scale, n_colors, rgb_range, shift_mean, global_skip='none'):
        super().__init__(scale)
        if global_skip not in SKIPS:
            raise ValueError(f"--global_skip: '{global_skip}' must be one of {', '.join(SKIPS)}")
        self.shift_mean = add_mean_shift(self, n_colors, rgb_range, shift_mean)
        self.global_skip = global_skip

    def forward(self, x):
        if self.shift_mean:
            x = self.sub_mean(x)
        lr = x
        x = self.head(x)
        x = self.body(x) + x
        x = self.at_scale(self.tail)(x)
        if self.global_skip != 'none':
            x = x + upsampled(lr, self.scale, self.global_skip)
        if self.shift_mean:
            x = self.add_mean(x)
        return x
