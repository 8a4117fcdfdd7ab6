"""Released weights for `--pre_train download`: each network file lists the
files published for it (`released = (Released(...), ...)`); find_released(args)
returns the one for these flags under --dir_models (checking the SHA-256 prefix
published in EDSR-PyTorch file names) or says where to get it. Nothing is
downloaded at run time. This module registers no network."""
import hashlib
import os
from dataclasses import dataclass, field

from errors import SRLabError
from model import flags as F
from registry import MODELS

EDSR_URL = 'https://cv.snu.ac.kr/research/EDSR/models/'
SWINIR_URL = 'https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/'


@dataclass(frozen=True)
class Released:
    """A published weight file: its name, where it is published, the SHA-256
    prefix in its name (None: not published), the scales it holds and the
    flag values it needs."""
    file: str
    url: str
    sha: str = None
    scales: tuple = ()
    flags: dict = field(default_factory=dict)


def rows(model):
    """The Released rows of network `model` (registered name, any case)."""
    return tuple(getattr(MODELS.get(model), 'released', ()))


def sha256_prefix(path, n=8):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()[:n]


def _fits(row, args):
    return all(F.same(getattr(args, k), v) for k, v in row.flags.items())


def check_file(path, prefix, url):
    """SRLabError unless the file's SHA-256 starts with `prefix` (None: no check)."""
    if prefix is None:
        return path
    got = sha256_prefix(path, len(prefix))
    if got != prefix:
        raise SRLabError(
            f'--pre_train download: {path} has SHA-256 {got}..., expected {prefix}... '
            f'(incomplete or another file); fetch it again from {url}')
    return path


def find_released(args):
    """Path of the released file for these flags under --dir_models."""
    known = rows(args.model)
    if not known:
        names = sorted(n for n in MODELS.names() if rows(n))
        raise SRLabError(f'--pre_train download: no released weights are known for --model {args.model} '
                         f"(known: {', '.join(names)}); give a file to --pre_train")
    fit = [r for r in known if _fits(r, args)]
    if not fit:
        configs = sorted({', '.join(f'--{k} {F.flag_text(v)}' for k, v in r.flags.items()) for r in known})
        raise SRLabError(f'--pre_train download: no released {args.model} has these flags; '
                         f"released ones: {' | '.join(configs)}")
    fit = [r for r in fit if set(args.scale) <= set(r.scales)]
    if not fit:
        several = any(len(r.scales) > 1 for r in known)
        raise SRLabError(f"--pre_train download: no released {args.model} file covers --scale "
                         f"{'+'.join(map(str, args.scale))} (released files hold one scale each"
                         f"{' of 2+3+4' if several else ''}); give a single --scale")
    for r in fit:  # the first file present wins
        path = os.path.join(args.dir_models, r.file)
        if os.path.isfile(path):
            return check_file(path, r.sha, r.url + r.file)
    r = fit[0]
    raise SRLabError(f'--pre_train download: {r.file} is not in --dir_models; download {r.url + r.file} '
                     f'and put it at {os.path.join(args.dir_models, r.file)}')
