"""Released weights for `--pre_train download`: a table of known files and
find_released(args), which returns the file under --dir_models (checking the
SHA-256 prefix published in EDSR-PyTorch file names) or says where to get it.
Nothing is downloaded at run time. The wrapper asks it for every --model;
it registers no network, so it is no --model itself."""
import hashlib
import os

import utility

EDSR_URL = 'https://cv.snu.ac.kr/research/EDSR/models/'
SWINIR_URL = 'https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/'
SWINIR_CLASSICAL = dict(embed_dim=180, depths='6+6+6+6+6+6', num_heads='6+6+6+6+6+6', window_size=8,
                        swin_upsampler='pixelshuffle')
SWINIR_LIGHT = dict(embed_dim=60, depths='6+6+6+6', num_heads='6+6+6+6', window_size=8,
                    swin_upsampler='pixelshuffledirect')

# (model, flags the file needs, scales in the file, file name, URL, SHA-256 prefix or None)
RELEASED = [
    ('edsr', dict(n_resblocks=16, n_feats=64), (2,), 'edsr_baseline_x2-1bc95232.pt', EDSR_URL, '1bc95232'),
    ('edsr', dict(n_resblocks=16, n_feats=64), (3,), 'edsr_baseline_x3-abf2a44e.pt', EDSR_URL, 'abf2a44e'),
    ('edsr', dict(n_resblocks=16, n_feats=64), (4,), 'edsr_baseline_x4-6b446fab.pt', EDSR_URL, '6b446fab'),
    ('edsr', dict(n_resblocks=32, n_feats=256), (2,), 'edsr_x2-0edfb8a3.pt', EDSR_URL, '0edfb8a3'),
    ('edsr', dict(n_resblocks=32, n_feats=256), (3,), 'edsr_x3-ea3ef2c6.pt', EDSR_URL, 'ea3ef2c6'),
    ('edsr', dict(n_resblocks=32, n_feats=256), (4,), 'edsr_x4-4f62e9ef.pt', EDSR_URL, '4f62e9ef'),
    ('mdsr', dict(n_resblocks=16, n_feats=64), (2, 3, 4), 'mdsr_baseline-a00cab12.pt', EDSR_URL, 'a00cab12'),
    ('mdsr', dict(n_resblocks=80, n_feats=64), (2, 3, 4), 'mdsr-4a78bedf.pt', EDSR_URL, '4a78bedf'),
] + [
    ('swinir', SWINIR_CLASSICAL, (s,), f'001_classicalSR_DF2K_s64w8_SwinIR-M_x{s}.pth', SWINIR_URL, None)
    for s in (2, 3, 4, 8)
] + [
    ('swinir', SWINIR_CLASSICAL, (s,), f'001_classicalSR_DIV2K_s48w8_SwinIR-M_x{s}.pth', SWINIR_URL, None)
    for s in (2, 3, 4, 8)
] + [
    ('swinir', SWINIR_LIGHT, (s,), f'002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{s}.pth', SWINIR_URL, None)
    for s in (2, 3, 4)
]


def sha256_prefix(path, n=8):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()[:n]


def _fits(flags, args):
    return all(str(vars(args)[k]) == str(v) for k, v in flags.items())


def check_file(path, prefix, url):
    """SRLabError unless the file's SHA-256 starts with `prefix` (None: no check)."""
    if prefix is None:
        return path
    got = sha256_prefix(path, len(prefix))
    if got != prefix:
        raise utility.SRLabError(
            f'--pre_train download: {path} has SHA-256 {got}..., expected {prefix}... '
            f'(incomplete or another file); fetch it again from {url}')
    return path


def find_released(args):
    """Path of the released file for these flags under --dir_models."""
    name = args.model.lower()
    rows = [r for r in RELEASED if r[0] == name]
    if not rows:
        known = sorted({r[0] for r in RELEASED})
        raise utility.SRLabError(f'--pre_train download: no released weights are known for --model {args.model} '
                                 f"(known: {', '.join(known)}); give a file to --pre_train")
    fit = [r for r in rows if _fits(r[1], args)]
    if not fit:
        configs = sorted({', '.join(f'--{k} {v}' for k, v in r[1].items()) for r in rows})
        raise utility.SRLabError(f'--pre_train download: no released {args.model} has these flags; '
                                 f"released ones: {' | '.join(configs)}")
    fit = [r for r in fit if set(args.scale) <= set(r[2])]
    if not fit:
        raise utility.SRLabError(f"--pre_train download: no released {args.model} file covers --scale "
                                 f"{'+'.join(map(str, args.scale))} (released files hold one scale each"
                                 f"{'' if name != 'mdsr' else ' of 2+3+4'}); give a single --scale")
    for r in fit:  # the first file present wins
        path = os.path.join(args.dir_models, r[3])
        if os.path.isfile(path):
            return check_file(path, r[5], r[4] + r[3])
    r = fit[0]
    raise utility.SRLabError(f'--pre_train download: {r[3]} is not in --dir_models; download {r[4] + r[3]} '
                             f'and put it at {os.path.join(args.dir_models, r[3])}')
