""".safetensors weight files: reading them (the tensors, and srlab's flags
from the header's metadata) and writing srlab's own. The format holds only
tensors and a JSON header, so reading one never runs code. Registers no
network.

srlab's flags travel in the header's metadata as {'format': 'pt', 'srlab':
JSON of the flags}; read back, they sit in the state_dict's `_metadata`
under 'srlab', where torch.load puts them for srlab's .pt files, so the
rest of the loading treats both formats alike.
"""
import json
import struct
from collections import OrderedDict

import atomic
from errors import SRLabError

INSTALL = 'pip install safetensors'


def is_safetensors(path):
    """Whether the file starts as a safetensors file does: an 8-byte header
    length, then the JSON header's '{'."""
    try:
        with open(path, 'rb') as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9 or head[8:9] != b'{':
        return False
    (n,) = struct.unpack('<Q', head[:8])
    return 2 <= n < 100_000_000


def _library(flag):
    try:
        import safetensors.torch
    except ImportError:
        raise SRLabError(f'{flag}: reading and writing .safetensors needs the safetensors package ({INSTALL})')
    return safetensors.torch


def read(path, flag='--pre_train'):
    """The state_dict of a .safetensors file (an OrderedDict whose `_metadata`
    holds srlab's flags when the header has them)."""
    lib = _library(flag)
    try:
        with open(path, 'rb') as f:
            (n,) = struct.unpack('<Q', f.read(8))
            header = json.loads(f.read(n))
        tensors = lib.load_file(path, device='cpu')
    except Exception as e:  # truncated, damaged header
        raise SRLabError(f'{flag}: {path} is not a readable .safetensors file ({type(e).__name__}: '
                         f'{str(e).splitlines()[0] if str(e) else ""})')
    state = OrderedDict(tensors)
    flags = _flags(header.get('__metadata__') or {})
    if flags:
        state._metadata = OrderedDict(srlab=flags)
    return state


def _flags(metadata):
    try:
        flags = json.loads(metadata.get('srlab', ''))
    except ValueError:
        return {}
    return flags if isinstance(flags, dict) else {}


def write(state, meta, path):
    """`state` (a state_dict) as a .safetensors file carrying srlab's flags `meta`, written atomically."""
    lib = _library('--safetensors')
    tensors = {k: v.detach().to('cpu').contiguous().clone() for k, v in state.items()}
    data = lib.save(tensors, metadata={'format': 'pt', 'srlab': json.dumps(meta, sort_keys=True)})
    atomic.atomic_write_bytes(data, path)
