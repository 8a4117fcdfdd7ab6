"""Named presets for --template. A preset only changes defaults: flags given on
the command line always win."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _quick(first):
    """The embedded default: trains on the scikit-image sample photos, and also
    tests on Set5 when --dir_data (or ../shared/data beside the repo) holds it."""
    out = dict(model='EDSR', scale='2+3+4', n_resblocks=4, n_feats=32, res_scale=1,
               data_train='Sample', data_test='Sample', data_range='1-800/801-810',
               patch_size=96, batch_size=16, test_every=100, epochs=8, lr=5e-4, decay='5-7',
               n_threads=2, ext='sep', save='quick', print_every=25)
    shared = REPO.parent / 'shared' / 'data'
    if (Path(first.dir_data) / 'benchmark' / 'Set5' / 'HR').is_dir():
        out['data_test'] = 'Sample+Set5'
    elif first.dir_data == str(REPO / 'dataset') and (shared / 'benchmark' / 'Set5' / 'HR').is_dir():
        out.update(dir_data=str(shared), data_test='Sample+Set5')
    return out


def _hr_patch(first, lr_patch):
    """HR --patch_size for a paper's LR patch at the largest --scale given."""
    scales = [int(s) for s in str(first.scale).split('+') if s.isdigit()]
    return lr_patch * max(scales, default=4)


TEMPLATES = {
    'EDSR_baseline': dict(model='EDSR', n_resblocks=16, n_feats=64, res_scale=1),
    'EDSR_paper': dict(model='EDSR', n_resblocks=32, n_feats=256, res_scale=0.1),
    'MDSR': dict(model='MDSR', n_resblocks=16, n_feats=64, patch_size=48, epochs=650, scale='2+3+4'),
    'MDSR_paper': dict(model='MDSR', n_resblocks=80, n_feats=64, patch_size=48, epochs=650, scale='2+3+4'),
    'quick': _quick,
    # EDSR-PyTorch's GAN recipe (fine-tune a x4 EDSR, e.g. with --pre_train)
    'GAN': dict(model='EDSR', scale='4', loss='5*VGG54+0.15*GAN', lr=5e-5, patch_size=96,
                epochs=200, decay='150'),
    # ESRGAN's loss and schedule (400k iterations = 400 epochs of --test_every 1000)
    'ESRGAN': dict(scale='4', loss='1*VGG54+0.005*RGAN+0.01*L1', lr=1e-4, betas='0.9-0.99',
                   patch_size=128, batch_size=16, epochs=400, decay='50-100-200-300', gamma=0.5),
    # paper settings; patch_size is HR = the paper's LR patch x the largest --scale
    # VDSR works on Y (--n_colors 1), as in the paper
    'VDSR': dict(model='VDSR', n_resblocks=20, n_feats=64, n_colors=1, scale='2+3+4', patch_size=48, batch_size=64,
                 loss='1*MSE'),
    'SRResNet': dict(model='SRResNet', n_resblocks=16, n_feats=64, scale='4', patch_size=96, batch_size=16,
                     loss='1*MSE', lr=1e-4, epochs=1000, decay='0'),
    'RCAN': lambda f: dict(
        model='RCAN', n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16, res_scale=1, chop=True,
        patch_size=_hr_patch(f, 48)),
    'RDN': lambda f: dict(
        model='RDN', G0=64, RDNconfig='B', RDNkSize=3, batch_size=16, epochs=200,
        patch_size=_hr_patch(f, 32)),
    'DDBPN': lambda f: dict(
        model='DDBPN', dbpn_stages=7, dbpn_n0=256, dbpn_nr=64, scale='4', batch_size=20, epochs=1000,
        decay='500', gamma=0.1, weight_decay=1e-4, loss='1*MSE',
        patch_size=_hr_patch(f, 32)),
    'SwinIR': lambda f: dict(
        model='SwinIR', embed_dim=180, depths='6+6+6+6+6+6', num_heads='6+6+6+6+6+6', window_size=8,
        mlp_ratio=2, swin_upsampler='pixelshuffle', batch_size=32, lr=2e-4, epochs=500,
        decay='250-400-450-475', gamma=0.5, loss='1*L1',
        patch_size=_hr_patch(f, 48)),
    'SwinIR_light': lambda f: dict(
        model='SwinIR', embed_dim=60, depths='6+6+6+6', num_heads='6+6+6+6', window_size=8,
        mlp_ratio=2, swin_upsampler='pixelshuffledirect', batch_size=64, lr=2e-4, epochs=500,
        decay='250-400-450-475', gamma=0.5, loss='1*L1',
        patch_size=_hr_patch(f, 64)),
}


def get(name, first=None):
    """Defaults of preset `name` (case-insensitive)."""
    names = {k.lower(): k for k in TEMPLATES}
    if name.lower() not in names:
        raise KeyError(f"unknown template '{name}' (one of: {', '.join(TEMPLATES)})")
    t = TEMPLATES[names[name.lower()]]
    return dict(t(first) if callable(t) else t)
