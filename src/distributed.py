"""The processes of a run: World(rank, world_size, local_rank), read from
torchrun's environment by setup(); one process without torchrun. It lives
beside `args` (which stay as parsed) and is passed to what needs it."""
import datetime
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self):
        """Rank 0: the one process that writes logs, images and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1

    def device(self, args):
        if args.cpu or not torch.cuda.is_available():
            return torch.device('cpu')
        return torch.device('cuda', self.local_rank)

    def all_sum(self, values, device=None):
        """Sums of a list of floats over all ranks (the values themselves in one process)."""
        if not self.distributed:
            return list(values)
        on = device if device is not None and device.type == 'cuda' else 'cpu'
        t = torch.tensor(values, dtype=torch.float64, device=on)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def all_mean(self, value, device=None):
        if not self.distributed:
            return value
        return self.all_sum([value], device)[0] / self.world_size

    def mean_(self, tensors):
        """Each tensor becomes (in place) its mean over all ranks: gradients of
        a network that is not wrapped in DDP. One all_reduce per dtype."""
        if not self.distributed:
            return
        for dtype in {t.dtype for t in tensors}:
            same = [t for t in tensors if t.dtype == dtype]
            flat = torch.cat([t.reshape(-1) for t in same])
            torch.distributed.all_reduce(flat)
            flat /= self.world_size
            for t, v in zip(same, flat.split([t.numel() for t in same])):
                t.copy_(v.view_as(t))

    def broadcast_(self, tensors):
        """Rank 0's values into each tensor on every rank (a network built on each rank starts the same)."""
        if self.distributed:
            with torch.no_grad():
                for t in tensors:
                    torch.distributed.broadcast(t, 0)

    def sum_with_grad(self, t):
        """t summed over all ranks, with the gradient flowing back to every
        rank's share: the sums behind a statistic of the whole batch. `t`
        itself in one process."""
        return RankSum.apply(t) if self.distributed else t

    def barrier(self):
        if self.distributed:
            torch.distributed.barrier()


class RankSum(torch.autograd.Function):
    """The sum over ranks (all_reduce); its gradient is the sum over ranks of theirs."""

    @staticmethod
    def forward(ctx, t):
        t = t.clone()
        torch.distributed.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


def setup(args):
    """The World of this process; starts the process group (nccl on GPU, gloo
    on CPU) under torchrun."""
    world = World(rank=int(os.environ.get('RANK', '0')), world_size=int(os.environ.get('WORLD_SIZE', '1')),
                  local_rank=int(os.environ.get('LOCAL_RANK', '0')))
    if world.distributed and not torch.distributed.is_initialized():
        cuda = not args.cpu and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(world.local_rank)
        torch.distributed.init_process_group('nccl' if cuda else 'gloo',
                                             timeout=datetime.timedelta(minutes=args.dist_timeout))
    return world


def close():
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
