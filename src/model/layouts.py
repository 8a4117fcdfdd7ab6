"""Community weight files read by their keys: which registered network a
file without srlab's flags holds, in which published layout, and with which
flags (sizes and scale read from the tensors' names and shapes).

A network class that reads such files declares `layouts` ({layout name:
its telltale keys}, for messages) and a classmethod

    read_layout(state) -> Reading(layout, flags, state) or None

where `flags` are its flag values ('scale': [s] and 'n_colors' among them)
and `state` the tensors under the network's own names. A reading counts
only when the renamed tensors have exactly the keys and shapes of the
network built from those flags (fits()). weights.py asks detect() for files
that carry no srlab flags; this module registers no network.
"""
from typing import NamedTuple

import torch

from errors import UsageError
from model import flags as F
from registry import MODELS


class Reading(NamedTuple):
    layout: str   # e.g. 'original ESRGAN': a key of the class's `layouts`
    flags: dict   # flag -> value, with 'scale' ([s]) and 'n_colors'
    state: dict   # the tensors under the network's own names


class Found(NamedTuple):
    model: str    # the registered network name
    layout: str
    flags: dict   # the Reading's flags and 'model': what the file brings to the command line
    state: dict


def readers():
    """The registered network names whose class reads community layouts."""
    return [n for n in MODELS.names() if hasattr(MODELS.get(n), 'read_layout')]


def detect(state):
    """Found for a state_dict in a community layout, else None."""
    if not all(hasattr(v, 'shape') for v in state.values()):
        return None
    for name in readers():
        reading = MODELS.get(name).read_layout(state)
        if reading is not None:
            return Found(name, reading.layout, {'model': name, **reading.flags}, reading.state)
    return None


def fits(cls, flag_values, state):
    """Whether `state` has exactly the keys and shapes of cls built with
    `flag_values` (flag names, plus the COMMON run flags), built on the meta
    device: no memory, no compute."""
    declared = F.declared(cls)
    takes = F.defaults(cls)
    kwargs = {k: flag_values[k] for k in F.COMMON if k in flag_values and k in takes}
    kwargs.update({declared[k][0].kwarg: v for k, v in flag_values.items() if k in declared})
    try:
        with torch.device('meta'):
            own = cls(**kwargs).state_dict()
    except (ValueError, TypeError, RuntimeError):
        return False
    return set(own) == set(state) and all(tuple(own[k].shape) == tuple(state[k].shape) for k in own)


def looked_for():
    """What detect() recognises, in words (for the refusal of an unknown file)."""
    return '; '.join(f'{n} in the {name} layout ({keys})'
                     for n in readers() for name, keys in MODELS.get(n).layouts.items())


def describe(found, source, flag, wrapper, n_params):
    """The log line naming what a community file was read as."""
    cls = MODELS.get(found.model)
    where = f" in '{wrapper}'" if wrapper else ''
    scale = found.flags['scale'][0]
    return (f'{flag}: {source}: {found.model} in the {found.layout} layout{where}: {cls.describe(found.flags)}, '
            f'x{scale}, {n_params:,} parameters')


def check_fits(found, meta, source, flag):
    """UsageError (one line, exit 2) when the run's flags (`meta`, as
    flags.recorded gives them) ask for another network or for scales that do
    not include the file's."""
    scale = found.flags['scale'][0]
    what = f'{source} holds {found.model} weights for x{scale} ({found.layout} layout)'
    if meta['model'] != found.model:
        raise UsageError(f'{flag}: {what}; --model {meta["model"]} cannot read it '
                         '(leave --model out: the file brings its network)')
    if scale not in meta['scale']:
        raise UsageError(f"{flag}: {what}; --scale {F.flag_text(meta['scale'])} does not include {scale} "
                         '(leave --scale out: the file brings its own)')


def refuse_unknown(source, flag, model, net):
    """UsageError for a file that carries no srlab flags, is in no community
    layout and shares no key with --model's network `net`."""
    keys = ', '.join([k for k, p in net.named_parameters() if p.requires_grad][:2])
    raise UsageError(f"{flag}: {source} matches no known layout; looked for srlab's flags (_metadata['srlab']), "
                     f'{looked_for()}, and the keys of --model {model} ({keys}, ...)')
