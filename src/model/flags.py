"""What a network declares about itself, and the one mapping from command-line
flags to a network's keyword arguments.

A network class registered in MODELS takes plain keyword arguments and may
declare, next to its constructor:

    flags      Flag(...) for each argument the command line sets (`--n_feats` ...)
    templates  {'NAME': {flag: value, ...}}: its paper presets (`--template NAME`);
               `lr_patch` sets --patch_size to it x the largest --scale
    released   model.released.Released(...) rows: published weight files

A flag's default is its constructor argument's default, so a network built
from Python (model.create_model) equals the one the command line builds.
Besides its declared flags, a network receives the run flags named in COMMON
that its constructor takes (`scale`, `n_colors`, `rgb_range`). Two networks
may declare the same flag (`--n_feats`) with their own defaults; the value
type must agree.
"""
import argparse
import inspect
from dataclasses import dataclass

from registry import MODELS

COMMON = ('scale', 'n_colors', 'rgb_range')  # run flags a network takes when its constructor names them
ALWAYS = ('model',) + COMMON                   # recorded with every network's weights


class BadValue(argparse.ArgumentTypeError, ValueError):
    """A flag value of the wrong form (argparse prints its message)."""


def str2bool(v):
    if isinstance(v, bool):
        return v
    if str(v).lower() in ('true', '1', 'yes', 'y'):
        return True
    if str(v).lower() in ('false', '0', 'no', 'n'):
        return False
    raise BadValue(f"expected true/false, got '{v}'")


def plus_ints(v):
    """'6+6+6' (or a list of ints) -> (6, 6, 6)."""
    if isinstance(v, (list, tuple)):
        return tuple(int(x) for x in v)
    try:
        return tuple(int(x) for x in str(v).split('+'))
    except ValueError:
        raise BadValue(f"expected integers joined with '+', e.g. 6+6+6, got '{v}'") from None


PARSERS = {bool: str2bool, int: int, float: float, str: str, tuple: plus_ints}


def flag_text(v):
    """A value as it is typed on the command line."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):
        return '+'.join(map(str, v))
    return str(v)


@dataclass(frozen=True)
class Flag:
    """A command-line flag `--<name>` that sets the constructor argument `arg`
    (default: the same name). `record`: saved with the weights, compared when
    they are loaded and fixed for a resumed run (False for training-only flags,
    e.g. SwinIR's --drop_path)."""
    name: str
    help: str
    arg: str = ''
    record: bool = True

    @property
    def kwarg(self):
        return self.arg or self.name


def defaults(cls):
    """{constructor argument: default} of a network class."""
    params = inspect.signature(cls.__init__).parameters
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def declared(cls):
    """{flag name: (Flag, default)} that network class `cls` declares."""
    d = defaults(cls)
    out = {}
    for f in getattr(cls, 'flags', ()):
        if f.kwarg not in d:
            raise TypeError(f'{cls.__name__}: flag --{f.name} names no constructor argument {f.kwarg!r} with a default')
        out[f.name] = (f, d[f.kwarg])
    return out


def parser_of(default):
    return PARSERS[type(default)]


def command_line():
    """{flag name: (parse, help)} of every flag a network declares, for
    option.py: the help lists each network's use and default."""
    seen = {}
    for name in MODELS.names():
        cls = MODELS.get(name)
        for flag, (f, default) in declared(cls).items():
            seen.setdefault(flag, []).append((name, f, default))
    out = {}
    for flag, uses in seen.items():
        kinds = {type(d) for _, _, d in uses}
        if len(kinds) > 1:
            raise TypeError(f'--{flag}: networks declare it with different types '
                            f"({', '.join(f'{n}: {type(d).__name__}' for n, _, d in uses)})")
        helps = '; '.join(f'{n}: {f.help} (default {flag_text(d)})' for n, f, d in uses)
        out[flag] = (parser_of(uses[0][2]), helps)
    return out


def resolve(model, given):
    """{flag: value} of `model`'s declared flags: the value given (None: not
    given) in the flag's type, else the network's default."""
    out = {}
    for flag, (f, default) in declared(MODELS.get(model)).items():
        v = given.get(flag)
        out[flag] = default if v is None else parser_of(default)(flag_text(v))
    return out


def network_kwargs(args):
    """(class, keyword arguments) of the network that `args` ask for: the one
    place where flags become constructor arguments."""
    cls = MODELS.get(args.model)
    takes = defaults(cls)
    kwargs = {k: getattr(args, k) for k in COMMON if k in takes}
    for flag, (f, _) in declared(cls).items():
        kwargs[f.kwarg] = getattr(args, flag)
    if 'scale' in kwargs:
        kwargs['scale'] = tuple(kwargs['scale'])
    return cls, kwargs


def recorded(name, kwargs):
    """The flags that give a network's weights their meaning, as plain types:
    'model', COMMON and its declared flags (not the training-only ones). They
    are saved in its checkpoints' metadata, compared on loading and fixed on
    resume. `kwargs`: what it was built with, under constructor-argument
    names, plus the COMMON run flags (defaults fill the rest)."""
    cls = MODELS.get(name)
    d = {**RUN_DEFAULTS, **defaults(cls), **kwargs}
    out = {'model': MODELS.canonical(name), **{k: d[k] for k in COMMON}}
    out.update({flag: d[f.kwarg] for flag, (f, _) in declared(cls).items() if f.record})
    return {k: plain(v) for k, v in sorted(out.items())}


RUN_DEFAULTS = {'scale': (4,), 'n_colors': 3, 'rgb_range': 255}  # the command line's defaults


def plain(v):
    """A flag value as plain types (what a weights_only load reads back)."""
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def same(a, b):
    """Two recorded values are the same setting (1 and 1.0 alike; [6, 6] and
    the '6+6' that older files hold alike)."""
    a, b = plain(a), plain(b)
    if isinstance(a, str) != isinstance(b, str):
        return flag_text(a) == flag_text(b)
    return a == b
