"""Discriminators for the adversarial loss terms.

Discriminator (--gan_arch srgan): EDSR-PyTorch's / SRGAN's: 3x3 conv blocks
with BN and LeakyReLU, channels doubling every second block, stride 2 in
every other block, then a linear head. It takes patches of --patch_size only.
PatchDiscriminator (--gan_arch patch): pix2pix's PatchGAN (70x70 receptive
field), fully convolutional: one logit per location, any input size.
Both take plain arguments; make_discriminator builds one by its --gan_arch name.
Under torchrun, whole_batch_norm makes their BatchNorm layers use the
statistics of the whole batch over all ranks, as one process holding the whole
batch computes them (torch's SyncBatchNorm does this on GPUs only)."""
import torch
import torch.nn as nn

from distributed import World
from errors import SRLabError

ARCHS = ('srgan', 'patch')


def make_norm(c, norm):
    # WGAN-GP penalises per-sample gradients, which batch statistics break:
    # it uses a per-sample (layer) norm instead of BN, as Gulrajani et al.
    return nn.GroupNorm(1, c) if norm == 'layer' else nn.BatchNorm2d(c)


class Discriminator(nn.Module):
    def __init__(self, n_colors=3, patch_size=96, norm='batch', depth=7):
        super().__init__()
        self.patch_size = patch_size

        def block(c_in, c_out, stride=1):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                                 make_norm(c_out, norm), nn.LeakyReLU(0.2, inplace=True))

        c_in, c_out, size = n_colors, 64, patch_size
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
    def __init__(self, n_colors=3, norm='batch', n_feats=64, n_layers=3):
        super().__init__()
        m = [nn.Conv2d(n_colors, n_feats, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
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


def make_discriminator(arch='srgan', n_colors=3, patch_size=96, norm='batch'):
    """The discriminator named `arch` (--gan_arch)."""
    if arch == 'patch':
        return PatchDiscriminator(n_colors, norm)
    if arch == 'srgan':
        return Discriminator(n_colors, patch_size, norm)
    raise SRLabError(f"--gan_arch: unknown discriminator '{arch}' ({', '.join(ARCHS)})")


class WholeBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d that, in training under torchrun, normalises with the mean
    and variance of the whole batch over all ranks (their gradients flow
    through the sums of every rank) and keeps running statistics of it;
    otherwise BatchNorm2d itself. Same parameters and state_dict keys."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, world=World()):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.world = world

    def forward(self, x):
        if not (self.training and self.world.distributed):
            return super().forward(x)
        xf, dims, shape = x.float(), (0, 2, 3), (1, -1, 1, 1)
        sums = self.world.sum_with_grad(torch.cat([xf.sum(dims), xf.new_tensor([x.numel() / x.size(1)])]))
        n = sums[-1].detach()
        mean = sums[:-1] / n
        centred = xf - mean.view(shape)
        var = self.world.sum_with_grad((centred * centred).sum(dims)) / n
        y = centred * torch.rsqrt(var + self.eps).view(shape) * self.weight.view(shape) + self.bias.view(shape)
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * n / (n - 1), self.momentum)
            self.num_batches_tracked.add_(1)
        return y.to(x.dtype)


def whole_batch_norm(net, world):
    """`net` with each BatchNorm2d a WholeBatchNorm over `world` (its weights and statistics kept)."""
    for name, child in net.named_children():
        if type(child) is nn.BatchNorm2d:
            bn = WholeBatchNorm(child.num_features, child.eps, child.momentum, world)
            bn.load_state_dict(child.state_dict())
            setattr(net, name, bn.to(child.weight.device))
        else:
            whole_batch_norm(child, world)
    return net
