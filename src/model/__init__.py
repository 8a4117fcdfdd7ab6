"""Networks: build one by name, from Python or from the command line.

    from model import create_model
    net = create_model('EDSR', scale=(2,), n_resblocks=16, n_feats=64)
    net = create_model('EDSR', scale=(2,), pretrained='experiment/x/model/model_best.pt')

Model is the wrapper main.py uses: it builds the network registered as
--model (registry.MODELS) from the flags (model/flags.py), loads weights
(--pre_train, --resume N, --extend; model/weights.py), exports them, and runs
the test-time forward (--chop, --self_ensemble, --precision; model/forward.py).
"""

import torch
import torch.nn as nn

from distributed import World
from errors import SRLabError, error_text
from model import flags, weights
from model.common import count_parameters
from model.forward import DTYPES, TestForward, cache_per_capability, is_oom
from registry import MODELS

__all__ = ['Model', 'create_model', 'build_network', 'DTYPES', 'is_oom', 'count_parameters']


def create_model(name, pretrained=None, strict=True, log=print, **kwargs):
    """The network registered as `name`, built with `kwargs` (its constructor's
    arguments); `pretrained`: a weight file loaded into it as --pre_train loads
    one (strict, with a one-line report to `log`); srlab's files bring the
    arguments they were saved with, given `kwargs` win (one warning each)."""
    if pretrained:
        kwargs = {**weights.file_kwargs(name, pretrained), **kwargs}
    net = MODELS.get(name)(**kwargs)
    if pretrained:
        meta = flags.recorded(name, kwargs)
        weights.load_into(net, weights.load_file(pretrained, 'pretrained'), pretrained, meta, log,
                          strict=strict, flag='pretrained')
    return net


def build_network(args):
    """(network, recorded flags) for the flags in `args`; a value it cannot
    take is a one-line SRLabError."""
    try:
        cls, kwargs = flags.network_kwargs(args)
        net = cls(**kwargs)
    except KeyError as e:  # option.py checks --model; this is for callers that did not
        raise SRLabError(f'--model: {e.args[0]}') from e
    except ValueError as e:
        raise SRLabError(str(e).splitlines()[0]) from e
    common = {k: getattr(args, k) for k in flags.COMMON}
    return net, flags.recorded(args.model, {**common, **kwargs})


class Model(nn.Module):
    """The network of --model on its device, for training (forward in train
    mode: the plain, compiled or DDP-wrapped network) and testing (eval mode:
    TestForward)."""

    def __init__(self, args, ckp, world=None):
        super().__init__()
        ckp.write_log('Making model...')
        self.args, self.ckp = args, ckp
        self.scale = args.scale
        self.device = (world or World()).device(args)
        self.model, self.meta = build_network(args)  # meta: saved with the weights, checked on loading
        self.model.to(self.device)
        if args.test_only and args.precision != 'single':
            self.model.to(DTYPES[args.precision])
        if args.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.runner = self.model       # what training calls: the network, compiled or DDP-wrapped
        self.test_runner = self.model  # what tests call: the network, compiled
        self.compiled = False
        self.tester = TestForward.from_args(args, lambda x: self._run(x, test=True), self.device, ckp.write_log)
        ckp.write_log(f'Trainable parameters: {count_parameters(self.model):,}')
        self.load(ckp.get_path('model'))
        if args.extend != '.':
            self.load_weights(weights.load_file(args.extend, '--extend'), args.extend, strict=False, flag='--extend')

    # ---- forward -------------------------------------------------------
    def setup_speed(self, ddp=False):
        """--compile and DistributedDataParallel (called once by the Trainer).
        Training calls self.runner (compiled and/or DDP-wrapped); tests call
        self.test_runner, never DDP (under torchrun the ranks test on their own)."""
        if ddp:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.device.index] if self.device.type == 'cuda' else None
            # find_unused_parameters: only the tail of the batch's scale is used
            self.runner = DistributedDataParallel(self.model, device_ids=ids,
                                                  find_unused_parameters=len(self.scale) > 1)
        if self.args.compile:
            try:
                cache_per_capability()
                self.runner = torch.compile(self.runner)
                self.test_runner = torch.compile(self.model) if ddp else self.runner
                self.compiled = True
            except Exception as e:
                self.ckp.write_log(f'--compile: not supported here ({error_text(e)}); running eager')

    def _run(self, x, test=False):
        if self.args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        net = self.test_runner if test else self.runner
        if not self.compiled:
            return net(x)
        try:
            return net(x)
        except Exception as e:  # compile errors surface at the first call
            if is_oom(e):
                raise
            self.ckp.write_log(f'--compile: failed ({error_text(e)}); running eager')
            self.runner = getattr(self.runner, '_orig_mod', self.runner)
            self.test_runner = self.model
            self.compiled = False
            return (self.test_runner if test else self.runner)(x)

    def dtype(self):
        """The dtype of the network's weights (float32 unless --precision casts them for --test_only)."""
        return next(iter(self.model.parameters()), torch.empty(0)).dtype

    def prepare(self, *tensors):
        """Batch tensors on the network's device, floating-point ones in its dtype."""
        dtype = self.dtype()
        return [t.to(self.device, dtype=dtype if t.is_floating_point() else t.dtype, non_blocking=True)
                for t in tensors]

    def forward(self, x, idx_scale=0):
        if hasattr(self.model, 'set_scale'):
            self.model.set_scale(idx_scale)
        if self.training:
            if self.args.n_GPUs > 1 and self.device.type == 'cuda' and self.runner is self.model:
                return nn.parallel.data_parallel(self.model, x, range(self.args.n_GPUs))
            return self._run(x)
        return self.tester(x, self.scale[idx_scale], self.dtype())

    # ---- weights -------------------------------------------------------
    def get_model(self):
        return self.model

    def state_dict(self, *a, **k):
        return self.model.state_dict(*a, **k)

    def load_state_dict(self, state, strict=True):
        """Into the network (plain state_dict, as state_dict() gives)."""
        return self.model.load_state_dict(state, strict=strict)

    def export(self, apath, epoch, is_best=False, ema_state=None):
        """model_latest.pt, model_best.pt, model_latest_ema.pt (--ema) and
        model_<epoch>.pt (--save_models), carrying this run's flags."""
        weights.export(self.model, self.meta, apath, epoch, is_best, ema_state, self.args.save_models)

    def load(self, apath):
        """The weights a session starts from (weights.start_file; --resume -1 of
        training is restored by the run state, not here). Testing stops when a
        tested scale's own modules (its tail) got no weights."""
        start = weights.start_file(self.args, apath, self.args.testing)
        if start is not None:
            path, flag, strict = start
            loaded = self.load_weights(weights.load_file(path, flag), path, strict=strict, flag=flag)
            if self.args.testing:
                weights.check_scales(self.model, loaded, path, flag)

    def load_weights(self, obj, source, strict=True, flag='--pre_train'):
        """Load a checkpoint into the network, reporting to the run's log (weights.load_into)."""
        return weights.load_into(self.model, obj, source, self.meta, self.ckp.write_log, strict, flag)
