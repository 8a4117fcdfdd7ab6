"""Named presets for --template. A preset only changes defaults: flags given on
the command line always win.

Each network file declares its paper presets (`templates` on its class, see
model/flags.py); the presets here are those of no single network. A preset's
`lr_patch` is the paper's LR patch: --patch_size becomes it x the largest --scale.
"""
from pathlib import Path

from errors import did_you_mean
from paths import DATASET, SHARED


def _quick(first):
    """The embedded default: trains on the scikit-image sample photos, and also
    tests on Set5 when --dir_data (or ../shared/data beside the repo) holds it."""
    out = dict(model='EDSR', scale='2+3+4', n_resblocks=4, n_feats=32, res_scale=1,
               data_train='Sample', data_test='Sample', data_range='1-800/801-810',
               patch_size=96, batch_size=16, test_every=100, epochs=8, lr=5e-4, decay='5-7',
               n_threads=2, ext='sep', save='quick', print_every=25)
    if (Path(first.dir_data) / 'benchmark' / 'Set5' / 'HR').is_dir():
        out['data_test'] = 'Sample+Set5'
    elif first.dir_data == str(DATASET) and (SHARED / 'benchmark' / 'Set5' / 'HR').is_dir():
        out.update(dir_data=str(SHARED), data_test='Sample+Set5')
    return out


PRESETS = {
    'quick': _quick,
    # EDSR-PyTorch's GAN recipe (fine-tune a x4 EDSR, e.g. with --pre_train)
    'GAN': dict(model='EDSR', scale='4', loss='5*VGG54+0.15*GAN', lr=5e-5, patch_size=96,
                epochs=200, decay='150'),
    # the 30-minute CPU speedrun: one EDSR (8 blocks, 64 maps, the lightweight per-scale tails: 1.44-1.55x
    # the steps/s of EDSR's; the bicubic-upsampled input added to the output, as VDSR) for x2, x3 and x4
    # from scratch on the 291 images and their copies downscaled by 0.9, 0.8, 0.7 and 0.6 (FSRCNN's
    # augmentation), L1 then an MSE tail over the last 20% of the run, Adam at lr 5e-4
    # (all chosen on BSD200val at full length: README, "The speedrun"),
    # 100 steps of warmup then a cosine over a step count fitted to 30 minutes of training from the
    # warmup's rate and again at 72% of the run (--steps auto: logged, and --steps N:N2 replays the run),
    # the precision --amp auto measures fastest here, Set5 tested every 750 steps and Set5, Set14
    # (grayscale files on their own values, as VDSR's table) and B100 at the end, in fp32 (--test_fp32)
    'speedrun': dict(model='EDSR', n_resblocks=8, n_feats=64, res_scale=1, upsampler='pixelshuffledirect',
                     global_skip='bicubic', scale='2+3+4', data_train='T91+BSD200',
                     data_test='Set5+Set14+B100', curve_sets='Set5', patch_size=64, batch_size=16,
                     loss='1*L1[:0.8]+0.1*MSE[0.8:]',
                     lr=5e-4, betas='0.9-0.99', decay='cosine', warmup=100, steps='auto', time_budget=30,
                     test_every=750, n_threads=0, amp='auto', test_fp32=True, gray_hr='own',
                     augment_scales='1+0.9+0.8+0.7+0.6'),
    # ESRGAN's network (RRDBNet, 23 blocks), loss and schedule (400k iterations = 400 epochs of --test_every
    # 1000), fine-tuning its PSNR-oriented stage (--template RRDBNet_PSNR) with --pre_train
    'ESRGAN': dict(model='RRDBNet', scale='4', loss='1*VGG54+0.005*RGAN+0.01*L1', lr=1e-4, betas='0.9-0.99',
                   patch_size=128, batch_size=16, epochs=400, decay='50-100-200-300', gamma=0.5),
}


def networks():
    """{template name: (network name, preset)} declared by the network files."""
    from registry import MODELS
    out = {}
    for name in MODELS.names():
        for t, preset in getattr(MODELS.get(name), 'templates', {}).items():
            if t in out or t in PRESETS:
                raise ValueError(f'--template {t} is declared twice ({out.get(t, ("template.py",))[0]} and {name})')
            out[t] = (name, preset)
    return out


def names():
    return list(PRESETS) + list(networks())


def get(name, first):
    """Defaults of preset `name` (case-insensitive); `first`: the flags parsed so far."""
    nets = networks()
    known = {k.lower(): k for k in names()}
    if name.lower() not in known:
        raise KeyError(f"unknown template '{name}' (one of: {', '.join(names())})" + did_you_mean(name, names()))
    key = known[name.lower()]
    if key in PRESETS:
        t = PRESETS[key]
        return dict(t(first) if callable(t) else t)
    model, preset = nets[key]
    out = dict(model=model, **preset)
    if 'lr_patch' in out:  # HR --patch_size for the paper's LR patch at the largest --scale
        scales = [int(s) for s in str(first.scale).split('+') if s.isdigit()]
        out['patch_size'] = out.pop('lr_patch') * max(scales, default=4)
    return out
