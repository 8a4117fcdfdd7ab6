"""SwinIR (Liang et al., ICCVW 2021) for classical (pixelshuffle) and
lightweight (pixelshuffledirect) SR, in plain PyTorch.

Parameter names are those of the official release and BasicSR (conv_first,
patch_embed.norm, layers.<i>.residual_group.blocks.<j>.{norm1,attn,norm2,mlp},
layers.<i>.conv, norm, conv_after_body, conv_before_upsample.0, upsample.*,
conv_last), so an official .pth loads by name; the relative_position_index
and attn_mask buffers are rebuilt, not stored. The input on 0..rgb_range is
scaled to 0..1, reflect-padded to a multiple of --window_size and cropped
back. With several scales only `upsample` is per scale (`upsample.<k>.*`).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from model import common
from model.flags import Flag, flag_text, plus_ints
from model.released import SWINIR_URL, Released
from registry import MODELS

NUM_FEAT = 64  # channels of the classical reconstruction tail (fixed in SwinIR)
BUFFERS = ('relative_position_index', 'attn_mask')


def check_lists(depths, num_heads, embed_dim):
    """(depths, heads) as tuples of positive ints, one head count per group, each dividing embed_dim."""
    out = []
    for flag, v in (('--depths', depths), ('--num_heads', num_heads)):
        try:
            vals = plus_ints(v)
        except (TypeError, ValueError):
            vals = ()
        if not vals or min(vals) < 1:
            raise ValueError(f"{flag}: '{flag_text(v)}' must be positive integers joined with '+', e.g. 6+6+6+6")
        out.append(vals)
    depths, heads = out
    if len(heads) != len(depths):
        raise ValueError(f"--num_heads: '{flag_text(heads)}' needs one value per group of --depths "
                         f"'{flag_text(depths)}'")
    if any(embed_dim % h for h in heads):
        raise ValueError(f"--num_heads: every value must divide --embed_dim {embed_dim}, got '{flag_text(heads)}'")
    return depths, heads


def drop_path(x, p, training):
    """Stochastic depth: drop the whole residual branch per sample."""
    if p == 0 or not training:
        return x
    keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - p)
    return x * keep / (1 - p)


def window_partition(x, ws):
    """B,H,W,C -> B*nW, ws*ws, C"""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(win, ws, h, w):
    """B*nW, ws*ws, C -> B,H,W,C"""
    c = win.shape[-1]
    x = win.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shift_mask(h, w, ws, shift, device):
    """-100 between tokens of a shifted window that come from different regions."""
    img = torch.zeros(1, h, w, 1, device=device)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, hs in enumerate(cuts):
        for j, wsl in enumerate(cuts):
            img[:, hs, wsl, :] = 3 * i + j
    win = window_partition(img, ws).squeeze(-1)  # nW, ws*ws
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0)


def pad_to(x, m):
    """Reflect-pad bottom/right to a multiple of m (repeated when the image is
    smaller than the pad; replicate for 1-pixel sides)."""
    ph, pw = -x.shape[-2] % m, -x.shape[-1] % m
    while ph or pw:
        a, b = min(ph, x.shape[-2] - 1), min(pw, x.shape[-1] - 1)
        if (ph and not a) or (pw and not b):
            return F.pad(x, (0, pw, 0, ph), mode='replicate')
        x = F.pad(x, (0, b, 0, a), mode='reflect')
        ph, pw = ph - a, pw - b
    return x


class WindowAttention(nn.Module):
    def __init__(self, dim, ws, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        c = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing='ij')).flatten(1)
        rel = (c[:, :, None] - c[:, None, :]) + (ws - 1)  # 2, N, N
        self.register_buffer('relative_position_index', rel[0] * (2 * ws - 1) + rel[1], persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.normal_(self.relative_position_bias_table, std=.02)

    def forward(self, x, mask=None):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b // nw, nw, self.heads, n, n) + mask.to(attn.dtype)[None, :, None]
            attn = attn.view(-1, self.heads, n, n)
        attn = attn.softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim, heads, ws, shift, mlp_ratio, drop):
        super().__init__()
        self.ws, self.shift, self.drop = ws, shift, drop
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, size, mask):
        (h, w), (b, n, c), s = size, x.shape, self.shift
        y = self.norm1(x).view(b, h, w, c)
        if s:
            y = torch.roll(y, (-s, -s), (1, 2))
        y = window_reverse(self.attn(window_partition(y, self.ws), mask if s else None), self.ws, h, w)
        if s:
            y = torch.roll(y, (s, s), (1, 2))
        x = x + drop_path(y.reshape(b, n, c), self.drop, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop, self.training)


class BasicLayer(nn.Module):
    def __init__(self, dim, depth, heads, ws, mlp_ratio, drops):
        super().__init__()
        self.blocks = nn.ModuleList([SwinBlock(dim, heads, ws, 0 if i % 2 == 0 else ws // 2, mlp_ratio, drops[i])
                                     for i in range(depth)])

    def forward(self, x, size, mask):
        for blk in self.blocks:
            x = blk(x, size, mask)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer block: Swin blocks, a 3x3 conv, a skip."""

    def __init__(self, dim, depth, heads, ws, mlp_ratio, drops):
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, heads, ws, mlp_ratio, drops)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x, size, mask):
        y = self.residual_group(x, size, mask)
        y = self.conv(y.transpose(1, 2).reshape(y.shape[0], -1, *size))
        return y.flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    """Holds the LayerNorm applied to the tokens (key patch_embed.norm)."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x.flatten(2).transpose(1, 2))


CLASSICAL = dict(embed_dim=180, depths='6+6+6+6+6+6', num_heads='6+6+6+6+6+6', window_size=8, mlp_ratio=2,
                 swin_upsampler='pixelshuffle')
LIGHT = dict(embed_dim=60, depths='6+6+6+6', num_heads='6+6+6+6', window_size=8, mlp_ratio=2,
             swin_upsampler='pixelshuffledirect')
TRAIN = dict(lr=2e-4, epochs=500, decay='250-400-450-475', gamma=0.5, loss='1*L1')


def released_rows():
    rows = [Released(f'001_classicalSR_DF2K_s64w8_SwinIR-M_x{s}.pth', SWINIR_URL, None, (s,), CLASSICAL)
            for s in (2, 3, 4, 8)]
    rows += [Released(f'001_classicalSR_DIV2K_s48w8_SwinIR-M_x{s}.pth', SWINIR_URL, None, (s,), CLASSICAL)
             for s in (2, 3, 4, 8)]
    rows += [Released(f'002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{s}.pth', SWINIR_URL, None, (s,), LIGHT)
             for s in (2, 3, 4)]
    return tuple(rows)


@MODELS.register('SwinIR')
class SwinIR(common.MultiScale):
    scale_modules = ('upsample',)
    flags = (Flag('embed_dim', 'feature maps'), Flag('depths', "Swin blocks per residual group, joined with '+'"),
             Flag('num_heads', "attention heads per residual group, joined with '+'"),
             Flag('window_size', 'attention window (input padded to a multiple)'),
             Flag('mlp_ratio', 'MLP hidden size / --embed_dim'),
             Flag('swin_upsampler', 'tail: pixelshuffle (classical) or pixelshuffledirect (lightweight)',
                  arg='upsampler'),
             Flag('drop_path', 'stochastic depth rate (training only)', record=False))
    templates = {'SwinIR': dict(CLASSICAL, batch_size=32, lr_patch=48, **TRAIN),
                 'SwinIR_light': dict(LIGHT, batch_size=64, lr_patch=64, **TRAIN)}
    released = released_rows()

    def __init__(self, scale=(4,), n_colors=3, rgb_range=255, embed_dim=180, depths=(6, 6, 6, 6, 6, 6),
                 num_heads=(6, 6, 6, 6, 6, 6), window_size=8, mlp_ratio=2.0, upsampler='pixelshuffle',
                 drop_path=0.1):
        super().__init__(scale)
        depths, heads = check_lists(depths, num_heads, embed_dim)
        dim, ws = embed_dim, window_size
        if ws < 2:
            raise ValueError(f'--window_size: must be at least 2, got {ws}')
        if upsampler not in common.TAILS:
            raise ValueError(f"--swin_upsampler: '{upsampler}' must be pixelshuffle or pixelshuffledirect")
        self.direct = upsampler == 'pixelshuffledirect'
        self.window = ws
        self.rgb_range = rgb_range
        self.n_colors = n_colors
        mean = (0.4488, 0.4371, 0.4040) if n_colors == 3 else (0.0,) * n_colors
        self.register_buffer('mean', torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self._masks = {}

        self.conv_first = nn.Conv2d(n_colors, dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(dim)
        n = sum(depths)
        drops = [drop_path * i / max(n - 1, 1) for i in range(n)]  # linspace(0, rate, n)
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList([RSTB(dim, d, h, ws, mlp_ratio, drops[s:s + d])
                                     for d, h, s in zip(depths, heads, starts)])
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = nn.Conv2d(dim, dim, 3, 1, 1)
        conv = common.default_conv
        if self.direct:
            ups = self.per_scale(lambda s: common.direct_tail(conv, s, dim, n_colors, 3))
        else:
            self.conv_before_upsample = nn.Sequential(conv(dim, NUM_FEAT, 3), nn.LeakyReLU(inplace=True))
            ups = self.per_scale(lambda s: common.Upsampler(conv, s, NUM_FEAT))
            self.conv_last = conv(NUM_FEAT, n_colors, 3)
        self.upsample = ups  # registered after conv_last: the released key order
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        # official: trunc_normal_(std=.02) cut at +-2, i.e. at 100 sigma: a plain normal (and much faster)
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def shift_mask(self, h, w, device):
        key = (h, w, str(device))
        if key not in self._masks:
            if len(self._masks) > 16:
                self._masks.clear()
            self._masks[key] = shift_mask(h, w, self.window, self.window // 2, device)
        return self._masks[key]

    def forward_features(self, x):
        b, c, h, w = x.shape
        mask = self.shift_mask(h, w, x.device)
        t = self.patch_embed(x)
        for layer in self.layers:
            t = layer(t, (h, w), mask)
        return self.norm(t).transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x):
        h, w = x.shape[-2:]
        s = self.scale
        x = pad_to(x / self.rgb_range, self.window) - self.mean
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        up = self.at_scale(self.upsample)
        x = up(x) if self.direct else self.conv_last(up(self.conv_before_upsample(x)))
        return (x + self.mean)[..., :h * s, :w * s] * self.rgb_range

    def scale_of(self, tail):
        """Scale of an `upsample` module from its conv shapes."""
        convs = [v for k, v in sorted(tail.items()) if k.endswith('weight') and getattr(v, 'ndim', 0) == 4]
        if self.direct:
            return math.isqrt(convs[0].shape[0] // self.n_colors) if convs else None
        return math.prod(math.isqrt(v.shape[0] // v.shape[1]) for v in convs)

    def adapt_state_dict(self, state):
        state = {k: v for k, v in state.items() if not k.endswith(BUFFERS)}
        return super().adapt_state_dict(state)

    def from_basicsr(self, state):
        """BasicSR's SwinIR names are the official ones: only drop the rebuilt buffers."""
        return {k: v for k, v in state.items() if not k.endswith(BUFFERS)}
