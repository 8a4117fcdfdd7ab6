"""Adversarial loss terms GAN (vanilla), WGAN_GP and RGAN (relativistic
average, ESRGAN).

Each training step (Trainer.step) first calls step_discriminator: --gan_k
discriminator steps on the detached SR batch, as EDSR-PyTorch orders them;
then the term's forward gives the generator loss from the updated
discriminator. The discriminator's steps are tentative until the generator's
step is decided: commit() keeps them, reject() (a skipped batch) restores the
discriminator's weights, optimizer state and log as they were before.
The discriminator, its optimizer, its scheduler (stepper.make_scheduler: the
generator's --decay/--gamma) and its per-epoch log are part of the term's
state_dict, so they are saved with the run and restored by --resume -1."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from loss.discriminator import make_discriminator
from plot import save_plot
from registry import LOSSES
from stepper import Stepper, make_optimizer, make_scheduler


def bce(x, real):
    return F.binary_cross_entropy_with_logits(x, torch.full_like(x, float(real)))


def hits(x, real):
    """Fraction of logits on the right side of 0."""
    return ((x > 0) if real else (x < 0)).float().mean().item()


@LOSSES.register('GAN')
@LOSSES.register('WGAN_GP')
@LOSSES.register('RGAN')
class Adversarial(nn.Module):
    def __init__(self, args, name):
        super().__init__()
        self.name = name
        self.gan_k = args.gan_k
        self.gp_weight = args.gp_weight
        self.dis = make_discriminator(args, 'layer' if name == 'WGAN_GP' else 'batch')
        if name == 'WGAN_GP':  # Adam(0, 0.9) as in the WGAN-GP paper and EDSR-PyTorch
            self.optimizer = make_optimizer(args, self.dis.parameters(), optimizer='ADAM', betas=(0.0, 0.9))
        else:
            self.optimizer = make_optimizer(args, self.dis.parameters())
        self.scheduler = make_scheduler(args, self.optimizer)
        self.stepper = Stepper(self.optimizer, self.dis, self.scheduler)
        self.log = torch.zeros(0, 3)     # per epoch: sum of D loss, sum of D accuracy, D steps
        self.before = None               # the discriminator's state before the last, undecided steps

    # ---- losses ----------------------------------------------------------
    def d_loss(self, d_fake, d_real, fake, real):
        """Discriminator loss and accuracy (None for WGAN_GP)."""
        if self.name == 'GAN':
            return bce(d_real, 1) + bce(d_fake, 0), (hits(d_real, 1) + hits(d_fake, 0)) / 2
        if self.name == 'RGAN':
            r, f = d_real - d_fake.mean(), d_fake - d_real.mean()
            return (bce(r, 1) + bce(f, 0)) / 2, (hits(r, 1) + hits(f, 0)) / 2
        eps = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
        hat = (fake * (1 - eps) + real * eps).requires_grad_(True)
        grad, = torch.autograd.grad(self.dis(hat).sum(), hat, create_graph=True)
        gp = (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
        return d_fake.mean() - d_real.mean() + self.gp_weight * gp, None

    def g_loss(self, d_fake, real):
        if self.name == 'GAN':
            return bce(d_fake, 1)
        if self.name == 'RGAN':
            d_real = self.dis(real).detach()
            return (bce(d_real - d_fake.mean(), 0) + bce(d_fake - d_real.mean(), 1)) / 2
        return -d_fake.mean()

    def step_discriminator(self, fake, real):
        """--gan_k discriminator steps on the (detached) SR batch `fake`;
        tentative until commit() or reject()."""
        if len(self.log) == 0:
            self.start_log()
        self.before = (self.stepper.snapshot(), self.log[-1].clone())
        for _ in range(self.gan_k):
            self.stepper.zero_grad()
            loss_d, acc = self.d_loss(self.dis(fake), self.dis(real), fake, real)
            self.stepper.step(loss_d)
            self.log[-1] += torch.tensor([loss_d.item(), acc or 0.0, 1.0])

    def forward(self, fake, real):
        """The generator's adversarial loss (the discriminator takes no gradient)."""
        self.dis.requires_grad_(False)
        try:
            return self.g_loss(self.dis(fake), real)
        finally:
            self.dis.requires_grad_(True)

    # ---- hooks called by Loss ---------------------------------------------
    def start_log(self):
        self.log = torch.cat((self.log, torch.zeros(1, 3)))

    def commit(self):
        """The generator took the batch: the discriminator's steps stand."""
        self.before = None

    def reject(self):
        """The generator skipped the batch: undo the discriminator's steps."""
        if self.before is not None:
            snapshot, row = self.before
            self.stepper.undo(snapshot)
            self.log[-1] = row
            self.before = None

    def end_log(self):
        """End of an epoch: the D learning rate follows --decay/--gamma like G's."""
        self.stepper.end_epoch()

    def means(self):
        """Per-epoch mean D loss and accuracy (NaN where undefined)."""
        n = self.log[:, 2].clamp(min=1)
        acc = self.log[:, 1] / n if self.name != 'WGAN_GP' else torch.full_like(n, float('nan'))
        return self.log[:, 0] / n, acc

    def display(self):
        if len(self.log) == 0:
            return ''
        loss, acc = (v[-1].item() for v in self.means())
        return f'[{self.name} D: {loss:.4f}' + ('' if acc != acc else f' acc {acc:.3f}') + ']'

    def summary(self):
        return f'Discriminator {self.display()} lr {self.optimizer.param_groups[0]["lr"]:.2e}'

    def plot(self, apath):
        """loss_D_<name>.pdf/.png: the discriminator's loss (and accuracy) per epoch."""
        if len(self.log) == 0:
            return
        loss, acc = (v.numpy() for v in self.means())
        axis = range(1, len(loss) + 1)
        panels = [('loss', loss)] + ([] if self.name == 'WGAN_GP' else [('accuracy', acc)])
        save_plot(os.path.join(apath, f'loss_D_{self.name}'),
                  [(label, {f'D {label}': (axis, v)}, {}) for label, v in panels], f'{self.name} discriminator')

    # ---- saved with the run -------------------------------------------------
    def get_extra_state(self):
        return {'optimizer': self.optimizer.state_dict(), 'scheduler': self.scheduler.state_dict(), 'log': self.log}

    def set_extra_state(self, state):
        self.optimizer.load_state_dict(state['optimizer'])
        if 'scheduler' in state:
            self.scheduler.load_state_dict(state['scheduler'])
        else:  # saved before the scheduler: its lr is in the optimizer state, the epoch count here
            self.scheduler.last_epoch = state['epochs']
        self.log = state['log'].clone()
