"""The cost of keeping a GAN discriminator's steps undoable, against a whole GAN step.

    python scripts/gan_undo_cost.py                 # VGG54 + RGAN, EDSR baseline x4, patch 96, batch 16
    python scripts/gan_undo_cost.py --steps 4 --patch_size 48 --batch_size 4   # a quick look

Builds the real objects (main.py's flags, Model, Loss, Trainer; a VGG19 with
random weights in torchvision's layout stands in for vgg19-dcbb9e9d.pth: the
same shapes, so the same cost) and times Trainer.step on fixed random batches,
alternating two ways of keeping the discriminator's state before its steps:

  before  a deep copy of its state_dict and its optimizer's state_dict per step
          (copy.deepcopy, what srlab did), restored by load_state_dict;
  after   Stepper.snapshot: a copy into buffers allocated once (stepper.Kept),
          restored by Stepper.undo.

Both ways run in the same process, step after step in turn (A B A B ...), so
that a drift of the machine's speed moves both. It prints, per way, the median
step and the median time of keeping the state inside it, their ratio, and the
time of an undo (the rare path: a skipped batch).
"""
import argparse
import copy
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))
import loss as loss_mod  # noqa: E402
import model as model_mod  # noqa: E402
import option  # noqa: E402
import utility  # noqa: E402
from loss.adversarial import Adversarial  # noqa: E402
from loss.vgg import VGG19  # noqa: E402
from trainer import Trainer  # noqa: E402

NO_DATA = types.SimpleNamespace(loader_train=[], loader_test=[])


class DeepCopyKeeper:
    """What srlab did before: a deep copy of the state per step."""

    def __init__(self, stepper):
        self.stepper, self.kept = stepper, None

    def snapshot(self):
        self.kept = copy.deepcopy((self.stepper.model.state_dict(), self.stepper.optimizer.state_dict()))

    def undo(self):
        weights, optimizer = self.kept
        self.stepper.model.load_state_dict(weights)
        self.stepper.optimizer.load_state_dict(optimizer)


class Timed:
    """Wraps a keeper's snapshot() and undo(), adding their seconds to `spent`."""

    def __init__(self, snapshot, undo):
        self._snapshot, self._undo, self.spent = snapshot, undo, 0.0

    def snapshot(self):
        t = time.perf_counter()
        self._snapshot()
        self.spent += time.perf_counter() - t

    def undo(self):
        t = time.perf_counter()
        self._undo()
        self.spent += time.perf_counter() - t


def build(a, root):
    vgg = Path(root) / 'vgg19-dcbb9e9d.pth'
    torch.manual_seed(0)
    torch.save(VGG19().state_dict(), vgg)
    args = option.parse_args(['--model', 'EDSR', '--n_resblocks', '16', '--n_feats', '64', '--scale', str(a.scale),
                              '--patch_size', str(a.patch_size), '--batch_size', str(a.batch_size),
                              '--loss', a.loss, '--vgg_weights', str(vgg), '--data_train', 'Sample',
                              '--data_test', 'Sample', '--cpu', '--n_threads', '0', '--save', 'undo_cost'])
    ckp = utility.checkpoint(args, root=root)
    m = model_mod.Model(args, ckp)
    t = Trainer(args, NO_DATA, m, loss_mod.Loss(args, ckp), ckp)
    t.loss.start_log()
    return t, args


def sizes(dis, optimizer):
    n = sum(p.numel() * p.element_size() for p in dis.parameters())
    n += sum(v.numel() * v.element_size() for st in optimizer.state.values() for v in st.values() if torch.is_tensor(v))
    return n / 2 ** 20


def measure(a):
    with tempfile.TemporaryDirectory() as root:
        t, args = build(a, root)
        adv = next(term for term in t.loss.loss_module if isinstance(term, Adversarial))
        st = adv.stepper
        ways = {'before': Timed(*(lambda k: (k.snapshot, k.undo))(DeepCopyKeeper(st))),
                'after': Timed(st.snapshot, st.undo)}
        g = torch.Generator().manual_seed(1)
        hr = torch.rand(args.batch_size, 3, args.patch_size, args.patch_size, generator=g) * 255
        lr = torch.nn.functional.avg_pool2d(hr, args.scale)
        steps, keep = {w: [] for w in ways}, {w: [] for w in ways}
        for i in range(a.warmup + 2 * a.steps):
            name = ('before', 'after')[i % 2]
            w = ways[name]
            st.snapshot, st.undo = w.snapshot, w.undo
            spent, t0 = w.spent, time.perf_counter()
            assert t.step(lr, hr, 0, ['a'] * args.batch_size)
            dt = time.perf_counter() - t0
            if i >= a.warmup:
                steps[name].append(dt)
                keep[name].append(w.spent - spent)
        undo = {}
        for name, w in ways.items():  # the rare path: keep, then undo
            w.snapshot()
            spent = w.spent
            w.undo()
            undo[name] = w.spent - spent
        t.close()
        return steps, keep, undo, sizes(adv.dis, adv.optimizer)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--loss', default='1*VGG54+1*RGAN')
    p.add_argument('--scale', type=int, default=4)
    p.add_argument('--patch_size', type=int, default=96)
    p.add_argument('--batch_size', type=int, default=16)
    p.add_argument('--steps', type=int, default=5, help='timed steps per way')
    p.add_argument('--warmup', type=int, default=2, help='untimed steps first (both ways)')
    a = p.parse_args(argv)
    steps, keep, undo, mib = measure(a)
    print(f'GAN step: --loss {a.loss}, EDSR baseline x{a.scale}, patch {a.patch_size}, batch {a.batch_size}, '
          f'{torch.get_num_threads()} threads; discriminator weights + optimizer state {mib:.0f} MiB; '
          f'{a.steps} steps per way, medians')
    print(f'{"way":8} {"step s":>9} {"keep s":>9} {"keep/step":>10} {"undo s":>9}')
    for name in ('before', 'after'):
        s, k = statistics.median(steps[name]), statistics.median(keep[name])
        print(f'{name:8} {s:9.3f} {k:9.4f} {k / s:10.2%} {undo[name]:9.4f}')
    s_b, s_a = statistics.median(steps['before']), statistics.median(steps['after'])
    k_b, k_a = statistics.median(keep['before']), statistics.median(keep['after'])
    print(f'after/before: step {s_a / s_b:.3f}, keeping the state {k_a / k_b:.3f}')


if __name__ == '__main__':
    main()
