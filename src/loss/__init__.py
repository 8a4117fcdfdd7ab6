"""Loss: a weighted sum of terms parsed from --loss ('1*L1+0.5*MSE').

A term is one class registered with @term(name_regex): built as
cls(args, name), called as term(sr, hr) -> scalar tensor. Per-term values are
logged per epoch (loss_log.pt) and plotted (loss_<term>.pdf/.png).

Optional hooks a term may define (the adversarial terms do): start_log() and
end_log() at the start/end of an epoch, display() -> str for the progress
line, summary() -> str for log.txt at the end of an epoch, plot(apath) for
extra plots. What a term must keep across --resume belongs in its own
state_dict (e.g. get_extra_state/set_extra_state).
"""
import os
import re

import numpy as np
import torch
import torch.nn as nn

REGISTRY = []  # (compiled regex, class)


def term(pattern):
    def deco(cls):
        REGISTRY.append((re.compile(pattern + r'\Z'), cls))
        return cls
    return deco


@term('L1')
class L1(nn.L1Loss):
    def __init__(self, args, name):
        super().__init__()


@term('MSE')
class MSE(nn.MSELoss):
    def __init__(self, args, name):
        super().__init__()


def find_term(name):
    for rx, cls in REGISTRY:
        if rx.match(name):
            return cls
    return None


def parse_loss(text):
    """'1*L1+0.5*MSE' -> [(1.0, 'L1'), (0.5, 'MSE')]; ValueError naming --loss."""
    out = []
    for part in str(text).split('+'):
        m = re.fullmatch(r'\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*\*\s*([A-Za-z][A-Za-z0-9_]*)\s*', part)
        if not m:
            raise ValueError(f"--loss: '{part}' in '{text}' is not of the form <weight>*<term>, e.g. 1*L1")
        w, name = float(m.group(1)), m.group(2)
        if find_term(name) is None:
            known = ', '.join(rx.pattern[:-2] for rx, _ in REGISTRY)
            raise ValueError(f"--loss: unknown term '{name}' (known: {known})")
        if w <= 0:
            raise ValueError(f"--loss: weight of '{name}' must be positive, got {w}")
        out.append((w, name))
    return out


class Loss(nn.Module):
    def __init__(self, args, ckp):
        super().__init__()
        self.loss = []
        self.loss_module = nn.ModuleList()
        for weight, name in parse_loss(args.loss):
            fn = find_term(name)(args, name)
            self.loss.append({'type': name, 'weight': weight, 'function': fn})
            self.loss_module.append(fn)
        if len(self.loss) > 1:
            self.loss.append({'type': 'Total', 'weight': 0, 'function': None})
        for item in self.loss:
            if item['function'] is not None:
                ckp.write_log(f"{item['weight']:.3f} * {item['type']}", quiet=True)
        device = torch.device('cpu' if args.cpu or not torch.cuda.is_available() else 'cuda')
        self.loss_module.to(device)
        self.log = torch.Tensor()
        self.ckp = ckp
        if args.load:
            self.load(ckp.dir)

    def forward(self, sr, hr):
        losses = []
        for i, item in enumerate(self.loss):
            if item['function'] is not None:
                v = item['weight'] * item['function'](sr, hr)
                losses.append(v)
                self.log[-1, i] += v.item()
        total = sum(losses)
        if len(self.loss) > 1:
            self.log[-1, -1] += total.item()
        return total

    def hooks(self, name):
        return [getattr(fn, name) for fn in self.loss_module if hasattr(fn, name)]

    def terms(self, sr, hr):
        """Weighted term values without logging (for skip decisions).
        Note: an adversarial term also takes its discriminator steps here."""
        return [(item['type'], item['weight'] * item['function'](sr, hr))
                for item in self.loss if item['function'] is not None]

    def start_log(self):
        self.log = torch.cat((self.log, torch.zeros(1, len(self.loss))))
        for hook in self.hooks('start_log'):
            hook()

    def end_log(self, n_batches):
        if n_batches > 0:
            self.log[-1].div_(n_batches)
        for hook in self.hooks('end_log'):
            hook()
        for hook in self.hooks('summary'):
            if self.ckp is not None:
                self.ckp.write_log(hook())

    def undo_batch(self, values):
        """Remove one batch's logged values (a skipped batch)."""
        for i, v in enumerate(values):
            self.log[-1, i] -= v

    def last_values(self):
        return self.log[-1].clone()

    def display_loss(self, batch):
        n = batch + 1
        return ''.join([f"[{item['type']}: {c / n:.4f}]" for item, c in zip(self.loss, self.log[-1])]
                       + [hook() for hook in self.hooks('display')])

    def plot_loss(self, apath, epoch):
        if len(self.log) == 0:
            return
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        axis = np.arange(1, len(self.log) + 1)
        for i, item in enumerate(self.loss):
            fig = plt.figure()
            plt.title(f"{item['type']} Loss")
            plt.plot(axis, self.log[:, i].numpy(), label=item['type'])
            plt.legend()
            plt.xlabel('Epochs')
            plt.ylabel('Loss')
            plt.grid(True)
            plt.savefig(os.path.join(apath, f"loss_{item['type']}.pdf"))
            plt.savefig(os.path.join(apath, f"loss_{item['type']}.png"))
            plt.close(fig)
        for hook in self.hooks('plot'):
            hook(apath)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except (RuntimeError, ValueError, KeyError) as e:
            import utility
            detail = ' '.join(str(e).split())[:300]
            raise utility.SRLabError(f'the saved loss state does not fit this --loss/--gan_arch (to train a saved '
                                     f'model with another loss, start a new run with --pre_train): {detail}') from e

    def save(self, apath):
        import utility
        utility.atomic_save(self.state_dict(), os.path.join(apath, 'loss.pt'))
        utility.atomic_save(self.log, os.path.join(apath, 'loss_log.pt'))

    def load(self, apath):
        p = os.path.join(apath, 'loss.pt')
        if os.path.exists(p):
            self.load_state_dict(torch.load(p, map_location='cpu', weights_only=True))
        p = os.path.join(apath, 'loss_log.pt')
        if os.path.exists(p):
            self.log = torch.load(p, weights_only=True)


# terms defined in other files register themselves on import
from loss import adversarial, vgg  # noqa: E402,F401
