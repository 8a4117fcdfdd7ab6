"""What a loss term declares about itself, and the one mapping from
command-line flags to a term's keyword arguments (as model/flags.py is for
networks).

A term class registered in LOSSES takes plain keyword arguments and declares,
next to its constructor, `flags`: a Flag for each argument the command line
sets (`--gan_k`, `--eps`). A flag's default is its constructor argument's
default, so a term built from Python (loss.create_loss) equals the one the
command line builds. Terms that declare the same flag (GAN, RGAN and WGAN_GP
all take --gan_k) must agree on its default. Besides its declared flags, a
term receives the run flags named in COMMON that its constructor takes, and
`training` (loss.term.Training) when it names that.
"""
import argparse
import inspect
from dataclasses import dataclass
from typing import Callable

from model.flags import declared, flag_text, parser_of
from registry import LOSSES

COMMON = ('n_colors', 'rgb_range', 'patch_size', 'dir_models')  # run flags a term takes when its constructor names them


@dataclass(frozen=True)
class Flag:
    """A command-line flag `--<name>` that sets the constructor argument `arg`
    (default: the same name). `type` reads the command line's text (default:
    by the type of the argument's default); `choices` limits the values."""
    name: str
    help: str
    arg: str = ''
    type: Callable = None
    choices: tuple = ()

    @property
    def kwarg(self):
        return self.arg or self.name


def positive_int(v):
    if not str(v).isdigit() or int(v) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got '{v}'")
    return int(v)


def parameters(cls):
    """The names of the constructor arguments of term class `cls`."""
    return [k for k in inspect.signature(cls.__init__).parameters if k != 'self']


def command_line():
    """{flag: (parse, default, choices, help)} of every flag a loss term declares, for option.py."""
    seen = {}
    for name in LOSSES.names():
        for flag, (f, default) in declared(LOSSES.get(name)).items():
            seen.setdefault(flag, []).append((name, f, default))
    out = {}
    for flag, uses in seen.items():
        if len({(type(d), flag_text(d)) for _, _, d in uses}) > 1:
            raise TypeError(f'--{flag}: loss terms declare it with different defaults '
                            f"({', '.join(f'{n}: {d!r}' for n, _, d in uses)})")
        _, f, default = uses[0]
        terms = ', '.join(n for n, _, _ in uses)
        shown = flag_text(default) or "''"
        out[flag] = (f.type or parser_of(default), default, f.choices or None, f'{f.help} ({terms}; default {shown})')
    return out


def term_kwargs(name, args):
    """The keyword arguments of term `name` from the run's flags (the one place where flags become them)."""
    cls = LOSSES.get(name)
    takes = parameters(cls)
    kwargs = {k: getattr(args, k) for k in COMMON if k in takes}
    for flag, (f, _) in declared(cls).items():
        kwargs[f.kwarg] = getattr(args, flag)
    return kwargs
