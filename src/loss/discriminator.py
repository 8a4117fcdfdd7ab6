"""Discriminators for the adversarial loss terms.

Discriminator (--gan_arch srgan): EDSR-PyTorch's / SRGAN's: 3x3 conv blocks
with BN and LeakyReLU, channels doubling every second block, stride 2 in
every other block, then a linear head. It takes patches of --patch_size only.
PatchDiscriminator (--gan_arch patch): pix2pix's PatchGAN (70x70 receptive
field), fully convolutional: one logit per location, any input size."""
import torch.nn as nn

from errors import SRLabError


def make_norm(c, norm):
    # WGAN-GP penalises per-sample gradients, which batch statistics break:
    # it uses a per-sample (layer) norm instead of BN, as Gulrajani et al.
    return nn.GroupNorm(1, c) if norm == 'layer' else nn.BatchNorm2d(c)


class Discriminator(nn.Module):
    def __init__(self, args, norm='batch', depth=7):
        super().__init__()
        self.patch_size = args.patch_size

        def block(c_in, c_out, stride=1):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                                 make_norm(c_out, norm), nn.LeakyReLU(0.2, inplace=True))

        c_in, c_out, size = args.n_colors, 64, args.patch_size
        m = [block(c_in, c_out)]
        for i in range(depth):
            c_in = c_out
            if i % 2 == 1:
                stride, c_out = 1, c_out * 2
            else:
                stride, size = 2, (size + 1) // 2
            m.append(block(c_in, c_out, stride))
        self.features = nn.Sequential(*m)
        self.classifier = nn.Sequential(nn.Linear(c_out * size * size, 1024),
                                        nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))

    def forward(self, x):
        if x.shape[-2:] != (self.patch_size, self.patch_size):
            raise SRLabError(
                f'--gan_arch srgan takes {self.patch_size}x{self.patch_size} patches (--patch_size), got '
                f'{x.shape[-2]}x{x.shape[-1]}: use a --patch_size divisible by every --scale, or --gan_arch patch')
        f = self.features(x)
        return self.classifier(f.flatten(1))


class PatchDiscriminator(nn.Module):
    def __init__(self, args, norm='batch', n_feats=64, n_layers=3):
        super().__init__()
        m = [nn.Conv2d(args.n_colors, n_feats, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        c = n_feats
        for i in range(1, n_layers + 1):
            c_out = n_feats * min(2 ** i, 8)
            m += [nn.Conv2d(c, c_out, 4, stride=2 if i < n_layers else 1, padding=1, bias=False),
                  make_norm(c_out, norm), nn.LeakyReLU(0.2, inplace=True)]
            c = c_out
        m.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
        self.body = nn.Sequential(*m)

    def forward(self, x):
        return self.body(x)


def make_discriminator(args, norm='batch'):
    arch = args.gan_arch
    if arch == 'patch':
        return PatchDiscriminator(args, norm)
    if arch == 'srgan':
        return Discriminator(args, norm)
    raise SRLabError(f"--gan_arch: unknown discriminator '{arch}' (srgan, patch)")
