"""Named presets for --template. A preset only changes defaults: flags given on
the command line always win."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _quick(first):
    """The embedded default: trains on the scikit-image sample photos, and also
    tests on Set5 when --dir_data (or ../shared/data beside the repo) holds it."""
    out = dict(model='EDSR', scale='2+3+4', n_resblocks=4, n_feats=32, res_scale=1,
               data_train='Sample', data_test='Sample', data_range='1-800/801-810',
               patch_size=96, batch_size=16, test_every=100, epochs=6, lr=5e-4, decay='4-5',
               n_threads=2, ext='sep', save='quick', print_every=25)
    shared = REPO.parent / 'shared' / 'data'
    if (Path(first.dir_data) / 'benchmark' / 'Set5' / 'HR').is_dir():
        out['data_test'] = 'Sample+Set5'
    elif first.dir_data == str(REPO / 'dataset') and (shared / 'benchmark' / 'Set5' / 'HR').is_dir():
        out.update(dir_data=str(shared), data_test='Sample+Set5')
    return out


TEMPLATES = {
    'EDSR_baseline': dict(model='EDSR', n_resblocks=16, n_feats=64, res_scale=1),
    'EDSR_paper': dict(model='EDSR', n_resblocks=32, n_feats=256, res_scale=0.1),
    'MDSR': dict(model='MDSR', n_resblocks=16, n_feats=64, patch_size=48, epochs=650, scale='2+3+4'),
    'MDSR_paper': dict(model='MDSR', n_resblocks=80, n_feats=64, patch_size=48, epochs=650, scale='2+3+4'),
    'quick': _quick,
    # >>> gan templates
    # <<< gan templates
    # >>> model zoo templates
    # <<< model zoo templates
}


def get(name, first=None):
    """Defaults of preset `name` (case-insensitive)."""
    names = {k.lower(): k for k in TEMPLATES}
    if name.lower() not in names:
        raise KeyError(f"unknown template '{name}' (one of: {', '.join(TEMPLATES)})")
    t = TEMPLATES[names[name.lower()]]
    return dict(t(first) if callable(t) else t)
