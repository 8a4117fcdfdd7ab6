"""Adversarial loss terms: GAN (vanilla), WGAN_GP and RGAN (relativistic
average, ESRGAN), each a small class over Adversarial, which owns the
discriminator and its training.

Each training step (Trainer.step) first calls step_discriminator: --gan_k
discriminator steps on the detached SR batch, as EDSR-PyTorch orders them;
then the term's forward gives the generator loss from the updated
discriminator. The discriminator's steps are tentative until the generator's
step is decided: commit() keeps them, reject() (a skipped batch) puts its
weights, buffers, optimizer and gradient scaler state and its log back as
they were (Stepper.snapshot: a copy into buffers allocated once).

The discriminator is trained as the generator is (loss.term.Training): its
optimizer and schedule come from the same flags; under --amp its steps run in
its own autocast, with its own fp16 gradient scaler; under torchrun its
gradients are averaged over the ranks and its batch statistics (BatchNorm,
RGAN's means) are those of the whole batch, so that 2 ranks train it as one
process does. It, its optimizer, its schedule and its per-epoch log are part
of the term's state_dict, saved with the run and restored by --resume -1."""
import os

import torch
import torch.nn.functional as F

from loss.discriminator import ARCHS, make_discriminator, whole_batch_norm
from loss.flags import Flag, positive_int
from loss.term import Term, Training
from plot import save_plot
from registry import LOSSES
from stepper import Stepper

GAN_ARCH = Flag('gan_arch', 'discriminator: srgan (EDSR/SRGAN, --patch_size inputs) or patch (PatchGAN, any size)',
                choices=ARCHS)
GAN_K = Flag('gan_k', 'discriminator steps per generator step', type=positive_int)


def bce(x, real):
    return F.binary_cross_entropy_with_logits(x, torch.full_like(x, float(real)))


def hits(x, real):
    """Fraction of logits on the right side of 0."""
    return ((x > 0) if real else (x < 0)).float().mean().item()


class Adversarial(Term):
    """A GAN loss term: the discriminator, its steps, log and state. A variant
    (a subclass) gives d_loss and g_loss; norm, has_accuracy and
    make_optimizer say how its discriminator differs."""
    flags = (GAN_ARCH, GAN_K)
    norm = 'batch'        # the discriminator's normalisation (make_discriminator)
    has_accuracy = True   # d_loss gives an accuracy

    def __init__(self, n_colors=3, patch_size=96, gan_arch='srgan', gan_k=1, training=Training()):
        super().__init__()
        self.gan_k, self.world, self.device = gan_k, training.world, training.device
        dis = make_discriminator(gan_arch, n_colors, patch_size, self.norm).to(training.device)
        self.dis = whole_batch_norm(dis, self.world) if self.world.distributed else dis
        self.world.broadcast_(list(self.dis.parameters()) + list(self.dis.buffers()))
        self.optimizer = self.make_optimizer(training)
        self.scheduler = training.scheduler(self.optimizer)
        self.stepper = Stepper(self.optimizer, self.dis, self.scheduler, training.amp, training.device, self.world,
                               average=True)
        self.log = torch.zeros(0, 3)     # per epoch: sum of D loss, sum of D accuracy, D steps
        self.before = None               # the log's row before the last, undecided steps

    def make_optimizer(self, training):
        return training.optimizer(self.dis.parameters())

    # ---- a variant's losses ------------------------------------------------
    def d_loss(self, d_fake, d_real, fake, real):
        """(The discriminator's loss, its accuracy or None)."""
        raise NotImplementedError

    def g_loss(self, d_fake, real):
        """The generator's adversarial loss."""
        raise NotImplementedError

    def mean(self, x):
        """The mean of x over the whole batch of all torchrun ranks, with its gradient (x.mean() in one process)."""
        if not self.world.distributed:
            return x.mean()
        sums = self.world.sum_with_grad(torch.stack([x.float().sum(), x.new_tensor(x.numel(), dtype=torch.float32)]))
        return (sums[0] / sums[1].detach()).to(x.dtype)

    # ---- training ------------------------------------------------------------
    def step_discriminator(self, fake, real):
        """--gan_k discriminator steps on the (detached) SR batch `fake`, in
        the discriminator's own autocast; tentative until commit() or reject()."""
        if len(self.log) == 0:
            self.start_log()
        self.before = self.log[-1].clone()
        self.stepper.snapshot()
        for _ in range(self.gan_k):
            self.stepper.zero_grad()
            with self.stepper.autocast():
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
            self.stepper.undo()
            self.log[-1] = self.before
            self.before = None

    def end_log(self):
        """End of an epoch: the log's row becomes its mean over the torchrun
        ranks; the D learning rate follows its schedule (--decay/--gamma, as G's)."""
        if self.world.distributed and len(self.log):
            sums = self.world.all_sum(self.log[-1, :2].tolist(), self.device)
            self.log[-1, :2] = torch.tensor(sums) / self.world.world_size
        self.stepper.end_epoch()

    def means(self):
        """Per-epoch mean D loss and accuracy (NaN where undefined)."""
        n = self.log[:, 2].clamp(min=1)
        acc = self.log[:, 1] / n if self.has_accuracy else torch.full_like(n, float('nan'))
        return self.log[:, 0] / n, acc

    def display(self):
        if len(self.log) == 0:
            return ''
        loss, acc = (v[-1].item() for v in self.means())
        return f'[{self.label} D: {loss:.4f}' + ('' if acc != acc else f' acc {acc:.3f}') + ']'

    def summary(self):
        return f'Discriminator {self.display()} lr {self.stepper.lr():.2e}'

    def plot(self, apath):
        """loss_D_<name>.pdf/.png: the discriminator's loss (and accuracy) per epoch."""
        if len(self.log) == 0:
            return
        loss, acc = (v.numpy() for v in self.means())
        axis = range(1, len(loss) + 1)
        panels = [('loss', loss)] + ([('accuracy', acc)] if self.has_accuracy else [])
        save_plot(os.path.join(apath, f'loss_D_{self.label}'),
                  [(label, {f'D {label}': (axis, v)}, {}) for label, v in panels], f'{self.label} discriminator')

    # ---- saved with the run -------------------------------------------------
    def get_extra_state(self):
        scaler = self.stepper.scaler  # fp16: the discriminator's own gradient scaler
        return {'optimizer': self.optimizer.state_dict(), 'scheduler': self.scheduler.state_dict(), 'log': self.log,
                'scaler': scaler.state_dict() if scaler is not None else None}

    def set_extra_state(self, state):
        self.optimizer.load_state_dict(state['optimizer'])
        if state.get('scaler') and self.stepper.scaler is not None:
            self.stepper.scaler.load_state_dict(state['scaler'])
        if 'scheduler' in state:
            self.scheduler.load_state_dict(state['scheduler'])
        else:  # saved before the scheduler: the epoch count is here
            self.scheduler.load_state_dict({'last_epoch': state['epochs']})
        self.log = state['log'].clone()


@LOSSES.register('GAN')
class GAN(Adversarial):
    """Vanilla GAN (SRGAN, EDSR-PyTorch): binary cross-entropy, real against fake."""

    def d_loss(self, d_fake, d_real, fake, real):
        return bce(d_real, 1) + bce(d_fake, 0), (hits(d_real, 1) + hits(d_fake, 0)) / 2

    def g_loss(self, d_fake, real):
        return bce(d_fake, 1)


@LOSSES.register('RGAN')
class RGAN(Adversarial):
    """Relativistic average GAN (ESRGAN): each side judged against the mean of the other."""

    def d_loss(self, d_fake, d_real, fake, real):
        r, f = d_real - self.mean(d_fake), d_fake - self.mean(d_real)
        return (bce(r, 1) + bce(f, 0)) / 2, (hits(r, 1) + hits(f, 0)) / 2

    def g_loss(self, d_fake, real):
        d_real = self.dis(real).detach()
        return (bce(d_real - self.mean(d_fake), 0) + bce(d_fake - self.mean(d_real), 1)) / 2


@LOSSES.register('WGAN_GP')
class WGAN_GP(Adversarial):
    """WGAN with gradient penalty (Gulrajani et al.): a per-sample (layer) norm
    in the discriminator, Adam(0, 0.9) as in the paper and EDSR-PyTorch."""
    flags = Adversarial.flags + (Flag('gp_weight', 'WGAN_GP gradient penalty weight'),)
    norm = 'layer'
    has_accuracy = False

    def __init__(self, n_colors=3, patch_size=96, gan_arch='srgan', gan_k=1, gp_weight=10.0, training=Training()):
        super().__init__(n_colors, patch_size, gan_arch, gan_k, training)
        self.gp_weight = gp_weight

    def make_optimizer(self, training):
        return training.optimizer(self.dis.parameters(), optimizer='ADAM', betas=(0.0, 0.9))

    def d_loss(self, d_fake, d_real, fake, real):
        eps = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
        hat = (fake * (1 - eps) + real * eps).requires_grad_(True)
        grad, = torch.autograd.grad(self.dis(hat).sum(), hat, create_graph=True)
        gp = (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
        return d_fake.mean() - d_real.mean() + self.gp_weight * gp, None

    def g_loss(self, d_fake, real):
        return -d_fake.mean()
