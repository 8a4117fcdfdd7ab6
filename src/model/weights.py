"""Weight files: reading them (plain state_dicts of the EDSR-PyTorch family,
BasicSR's {'params' | 'params_ema': ...}, DataParallel names; .pt through
torch.load(weights_only=True), .safetensors through model.tensorfile: never
code; community ESRGAN-family files recognised by their keys, model.layouts), loading them
into a network by name with a one-line report, and writing srlab's own
(plain state_dicts whose `_metadata` records the flags that give the weights
their meaning, see flags.recorded).

Loading (load_into) maps BasicSR names (the network's from_basicsr) and
per-scale modules (by the scales an srlab file records, rekeyed). Under `strict`, any mismatch
outside the per-scale modules (`scale_modules`) is an error; without it, the
file must still give the body (the trainable tensors outside them).
"""
import os
from collections import OrderedDict

import torch

import atomic
from errors import SRLabError
from model import flags as F
from model import layouts, tensorfile


def start_file(args, apath, testing):
    """(path, flag, strict) of the weights a session starts from, or None:
    --resume N: model_N.pt of the run; --pre_train FILE (or download, a
    released file); testing a run (--load without --pre_train): its latest
    weights, the EMA ones when it kept them (what it tested). --pre_train
    none: the random initialisation, on purpose."""
    if args.resume > 0:
        path = os.path.join(apath, f'model_{args.resume}.pt')
        if not os.path.isfile(path):
            raise SRLabError(f'--resume {args.resume}: no saved model at {path} (were they kept with --save_models?)')
        return path, '--resume', True
    if args.pre_train and args.pre_train != 'none':
        from model import released
        path = released.find_released(args) if args.pre_train == 'download' else args.pre_train
        return path, '--pre_train', args.pre_train_strict
    if testing and args.load:
        for name in ('model_latest_ema.pt', 'model_latest.pt'):
            if os.path.isfile(os.path.join(apath, name)):
                return os.path.join(apath, name), '--load', True
        raise SRLabError(f'--load: {os.path.dirname(apath)} holds no weights (model/model_latest.pt) to test')
    return None


def load_file(path, flag='--pre_train'):
    """The object in a weight file: a .safetensors file's state_dict, or
    what torch.load reads with weights_only (never code)."""
    if not os.path.isfile(path):
        raise SRLabError(f'{flag}: file not found: {path}')
    if tensorfile.is_safetensors(path):
        return tensorfile.read(path, flag)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # corrupt, truncated or not a checkpoint
        raise SRLabError(f'{flag}: {path} is not a readable PyTorch checkpoint ({_load_error(path, e)})')


def _load_error(path, e):
    """Why torch.load failed, in one line, without its advice to retry with weights_only=False."""
    try:
        with open(path, 'rb') as f:
            head = f.read(2)
    except OSError as err:  # unreadable: permissions, I/O error
        return err.strerror or type(err).__name__
    if head != b'PK' and head[:1] != b'\x80':  # torch.save writes a zip, old torch a pickle
        return 'neither a torch.save zip archive nor a pickle'
    if head == b'PK':
        import zipfile
        try:
            with zipfile.ZipFile(path) as z:
                damaged = z.testzip() is not None
        except Exception:
            damaged = True
        if damaged:
            return 'a truncated or damaged zip archive'
    msg = str(e).split('WeightsUnpickler error:', 1)[-1].strip()
    return f'{type(e).__name__}: {msg.splitlines()[0] if msg else ""}'


def file_flags(path):
    """The flags an srlab weight file was saved with (read without loading
    the tensors of a .pt file), or those a community file's layout gives
    (layouts.detect); {} for other files and for files that cannot be read
    (the loading reports those)."""
    try:
        if tensorfile.is_safetensors(path):
            obj = tensorfile.read(path)
        else:
            obj = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        state = unwrap_state(obj)[0]
        found = None if saved_flags(state) else layouts.detect(state)
    except Exception:
        return {}
    return found.flags if found else saved_flags(state)


def file_kwargs(name, path):
    """The constructor arguments of network `name` that a weight file brings:
    the flags it records (file_flags) under their argument names, when it is
    a file of that network ({} otherwise)."""
    from registry import MODELS
    saved = file_flags(path)
    cls = MODELS.get(name)
    if saved.get('model', MODELS.canonical(name)) != MODELS.canonical(name):
        return {}
    takes = F.defaults(cls)
    args = {k: k for k in F.COMMON} | {flag: f.kwarg for flag, (f, _) in F.declared(cls).items()}
    out = {}
    for flag, value in saved.items():
        arg = args.get(flag)
        if arg in takes:
            kind = type(takes[arg])
            out[arg] = F.PARSERS[kind](F.flag_text(value)) if kind in F.PARSERS else value
    return out


def unwrap_state(obj):
    """(state_dict, layout) from a released file: a plain state_dict
    (EDSR-PyTorch family), BasicSR's {'params'|'params_ema': ...}, or
    {'state_dict'|'model': ...}."""
    if isinstance(obj, dict):
        for key, layout in (('params_ema', 'basicsr'), ('params', 'basicsr'), ('state_dict', 'plain'), ('model', 'plain')):
            if key in obj and isinstance(obj[key], dict):
                return obj[key], layout
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError('no state_dict found in it')
    state = obj
    if all(k.startswith('module.') for k in state):  # saved from DataParallel/DDP
        state = with_metadata(OrderedDict((k[len('module.'):], v) for k, v in state.items()), obj)
    return state, 'plain'


def wrapper(obj):
    """The key a released file wraps its state_dict in ('params_ema', 'params'), or None."""
    if isinstance(obj, dict):
        return next((k for k in ('params_ema', 'params') if isinstance(obj.get(k), dict)), None)
    return None


def with_metadata(state, source):
    """`state` carrying the `_metadata` of `source` (module versions and srlab's flags)."""
    meta = getattr(source, '_metadata', None)
    if meta is not None:
        state._metadata = meta
    return state


def saved_flags(state):
    """The flags an srlab checkpoint was saved with ({} for other files)."""
    meta = getattr(state, '_metadata', None)
    flags = meta.get('srlab') if isinstance(meta, dict) else None
    return flags if isinstance(flags, dict) else {}


def tagged(state, meta, versions=None):
    """`state` as an OrderedDict whose `_metadata` (where torch keeps module
    versions; `versions` when `state` has none) also holds `meta` under
    'srlab'. torch.load (weights_only too) keeps it; load_state_dict ignores
    a key that names no module."""
    versions = getattr(state, '_metadata', None) or versions or {}
    out = OrderedDict(state)
    out._metadata = OrderedDict(versions)
    out._metadata['srlab'] = dict(meta)
    return out


def export(net, meta, apath, epoch, is_best=False, ema_state=None, keep_epoch=False):
    """model_latest.pt (and _best, _<epoch> with `keep_epoch`): plain state_dicts
    carrying `meta`. With an EMA, its weights go to model_latest_ema.pt, and
    model_best.pt holds the weights that were tested (the EMA ones)."""
    own = net.state_dict()
    state = tagged(own, meta)
    atomic.atomic_save(state, os.path.join(apath, 'model_latest.pt'))
    if ema_state is not None:
        ema_state = tagged(ema_state, meta, own._metadata)
        atomic.atomic_save(ema_state, os.path.join(apath, 'model_latest_ema.pt'))
    if is_best:
        atomic.atomic_save(ema_state if ema_state is not None else state, os.path.join(apath, 'model_best.pt'))
    if keep_epoch:
        atomic.atomic_save(state, os.path.join(apath, f'model_{epoch}.pt'))


def _short(items, n=4):
    items = list(items)
    s = ', '.join(items[:n])
    return s + (f' and {len(items) - n} more' if len(items) > n else '')


def load_into(net, obj, source, meta, log, strict=True, flag='--pre_train'):
    """Load checkpoint `obj` (read from `source`) into `net` by name; `meta`:
    the flags `net` was built with (flags.recorded), compared with the file's
    own; `log`: where the report lines go. Returns the tensors loaded."""
    try:
        state, layout = unwrap_state(obj)
    except ValueError as e:
        raise SRLabError(f'{flag}: {source}: {e}')
    saved = saved_flags(state)  # before any re-keying, which drops the file's metadata
    check_flags(saved, meta, source, flag, log)
    found = None if saved else layouts.detect(state)
    if found:  # a community file: its network and flags come from its keys and shapes
        layouts.check_fits(found, meta, source, flag)
        log(layouts.describe(found, source, flag, wrapper(obj), sum(v.numel() for v in found.state.values())))
        state, saved = found.state, found.flags
    elif layout == 'basicsr':
        if not hasattr(net, 'from_basicsr'):
            raise SRLabError(f'{flag}: {source} has BasicSR layout, which --model {meta["model"]} cannot read')
        state = net.from_basicsr(state)
    state = rekeyed(net, state, saved, meta)
    own = net.state_dict()
    if strict and not (saved or set(state) & set(own)):
        layouts.refuse_unknown(source, flag, meta['model'], net)
    parts, confined = mismatch(state, own, per_scale(net))
    if parts and strict and not confined:
        raise SRLabError(f'{flag}: {source} does not fit --model {meta["model"]} with these flags: '
                         + '; '.join(parts) + fit_hint(saved, meta, source, flag))
    loaded = [k for k in own if k in state and state[k].shape == own[k].shape]
    if not strict:
        check_body(net, loaded, len(own), source, flag, meta['model'])
    for k in loaded:
        own[k] = state[k]
    net.load_state_dict(own)
    log(f'Loaded {len(loaded)}/{len(own)} tensors from {source}' + ('; not loaded: ' + '; '.join(parts) if parts else ''))
    return loaded


def check_scales(net, loaded, source, flag):
    """SRLabError when, for testing, a tested scale's own modules
    (`scale_modules`) did not all get their tensors from the file: that
    scale's output would come from random weights."""
    for k, s in enumerate(getattr(net, 'scales', ())):
        keys = scale_keys(net, k)
        if not set(keys) <= set(loaded):
            parts = ', '.join(sorted({key.split('.')[0] for key in keys}))
            raise SRLabError(f'{flag}: {source} has no weights for x{s} (its {parts} would be random); test the '
                             f'scales the file holds, or train x{s} from it first (--pre_train {source} --scale {s}, '
                             'without --test_only)')


def scale_keys(net, k):
    """The state_dict keys of the k-th scale's own modules of `net`."""
    own = net.state_dict()
    keys = []
    for name in getattr(net, 'scale_modules', ()):
        many = isinstance(getattr(net, name), torch.nn.ModuleList)
        prefix = f'{name}.{k}.' if many else f'{name}.'
        keys += [key for key in own if key.startswith(prefix)]
    return keys


def rekeyed(net, state, saved, meta):
    """`state` with its per-scale modules re-keyed for `net`: by the scales a
    file of the same network records (its k-th module was built for its k-th
    scale), else by the network's adapt_state_dict (from shapes)."""
    if saved.get('scale') and saved.get('model') == meta['model'] and hasattr(net, 'from_scales'):
        return net.from_scales(state, saved['scale'])
    return net.adapt_state_dict(state) if hasattr(net, 'adapt_state_dict') else state


def fit_hint(saved, meta, source, flag='--pre_train'):
    """What would make a file fit: the flags it was saved with (srlab's files),
    those of the released file of its name, or the flags that size the network."""
    from model import released
    if saved:
        differ = ' '.join(f'--{k} {F.flag_text(saved[k])}' for k in differing(saved, meta))
        if flag == 'pretrained':  # create_model: arguments, not flags
            differ = ', '.join(f'{k}={saved[k]!r}' for k in differing(saved, meta))
        what = 'arguments' if flag == 'pretrained' else 'flags'
        return f' (it was saved with {differ}: leave out the {what} that differ, it brings its own)' if differ else ''
    name = os.path.basename(str(source))
    for row in (r for n in released.MODELS.names() for r in released.rows(n)):
        if row.file == name:
            return f' (it is the released {name}: ' + ' '.join(f'--{k} {F.flag_text(v)}' for k, v in row.flags.items()) + ')'
    sizes = [f'--{k}' for k in meta if k not in F.ALWAYS]
    return f' (check --model and the flags that size it: {", ".join(sizes)})' if sizes else ''


def per_scale(net):
    """Key prefixes of `net`'s per-scale modules ('tail.', ...)."""
    return tuple(p + '.' for p in getattr(net, 'scale_modules', ()))


def mismatch(state, own, prefixes):
    """What of `state` does not fit `own` (a list of report parts), and
    whether all of it lies in the per-scale modules (key `prefixes`)."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    other = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
             for k in own if k in state and state[k].shape != own[k].shape]
    parts = []
    if missing:
        parts.append(f'{len(missing)} missing ({_short(missing)})')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected ({_short(unexpected)})')
    if other:
        parts.append(f'{len(other)} of other shape, checkpoint vs model ({_short(other)})')
    names = missing + unexpected + [m.split(' ')[0] for m in other]
    return parts, bool(prefixes) and all(n.startswith(prefixes) for n in names)


def check_body(net, loaded, total, source, flag, model):
    """A non-strict load that gives no tensor, or (--pre_train) no trainable
    tensor outside the per-scale modules (frozen MeanShift does not count),
    is an error: the run would use random weights. (--extend may add parts
    to weights that --pre_train gave.)"""
    prefixes = per_scale(net)
    body = {n for n, p in net.named_parameters() if p.requires_grad and not n.startswith(prefixes)}
    if not total or (loaded and (flag != '--pre_train' or not body or body & set(loaded))):
        return
    what = f'matches {len(loaded)}/{total} tensors of --model {model} with these flags'
    if loaded:
        what += f', none of its body (only {_short(loaded, 3)})'
    even = ', even with --pre_train_strict false' if flag == '--pre_train' else ''
    raise SRLabError(f'{flag}: {source} {what}; refusing to run on random weights{even} '
                     '(check --model and its size flags)')


def check_flags(saved, meta, source, flag, log):
    """One warning line for each flag whose value in an srlab checkpoint
    differs from this run's (`meta`); --scale aside: other scales are loaded
    on purpose (x2 weights for x4)."""
    for k in differing(saved, meta):
        note = ' (its outputs will be scaled wrongly)' if k == 'rgb_range' else ''
        if flag == 'pretrained':  # create_model: the given argument wins
            log(f'warning: pretrained: {source} was saved with {k}={saved[k]!r}; building with the given '
                f'{k}={meta[k]!r}{note}')
            continue
        log(f'{flag}: {source} was saved with --{k} {F.flag_text(saved[k])}, this run has '
            f'--{k} {F.flag_text(meta[k])}{note}')


def differing(saved, meta):
    """The flags (sorted) whose value in an srlab file differs from this run's
    `meta`; --scale aside: other scales are loaded on purpose."""
    return [k for k in sorted(saved) if k in meta and k != 'scale' and not F.same(saved[k], meta[k])]
