"""Command-line flags (EDSR-PyTorch compatible names), parsed and validated.

`parse_args(argv)` returns the namespace main.py uses. Lists are joined with
'+' (`--scale 2+3+4`, `--data_test Set5+Set14`). Any invalid value exits with
one line naming the flag.
"""
import argparse
import os
import re
import sys
from pathlib import Path

import template
from errors import did_you_mean
from model import flags
from paths import DATASET, MODELS



FLOAT32_MAX = 3.4028234663852886e38


class OptionError(ValueError):
    pass


class Args(argparse.Namespace):
    """The parsed flags, read-only once parse_args returns: setting an attribute
    raises. `args.replace(flag=value)` gives a changed, equally read-only copy."""

    def __setattr__(self, name, value):
        if self.__dict__.get('_frozen'):
            raise AttributeError(f'args are read-only after parsing (tried to set args.{name})')
        super().__setattr__(name, value)

    def __delattr__(self, name):
        if self.__dict__.get('_frozen'):
            raise AttributeError(f'args are read-only after parsing (tried to delete args.{name})')
        super().__delattr__(name)

    def freeze(self):
        self.__dict__['_frozen'] = True
        return self

    def flags(self):
        """{flag: value} without the read-only marker."""
        return {k: v for k, v in vars(self).items() if not k.startswith('_')}

    def replace(self, **changes):
        return Args(**{**self.flags(), **changes}).freeze()

    @property
    def testing(self):
        """This session only tests: --test_only, or upscaling a video."""
        return self.test_only or self.data_test == ['video']  # (names are canonical: data.canonical)


class Parser(argparse.ArgumentParser):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        # '-1e-4' and '-inf' are values, not flags (Python < 3.13 takes only '-1' and '-.5'),
        # so `--lr -1e-4` reports the negative value instead of 'expected one argument'
        self._negative_number_matcher = re.compile(r'^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-inf(inity)?$', re.I)

    def error(self, message):
        # one line, no usage dump
        self.exit(2, f'{self.prog}: error: {message}\n')


def build_parser(network=True):
    """The parser of every flag; `network`: with the network files' flags."""
    p = Parser(prog='main.py', description='srlab: EDSR-lineage super-resolution')
    a = p.add_argument
    # hardware
    a('--template', default='.', help='preset: ' + ', '.join(template.names()))
    a('--n_threads', type=int, default=6, help='data loader worker processes (0: main process)')
    a('--cpu', action='store_true', help='run on the CPU even when CUDA is present')
    a('--n_GPUs', type=int, default=1, help='GPUs used by one process (DataParallel)')
    a('--dist_timeout', type=float, default=120,
      help='torchrun: minutes a rank waits for the others (e.g. while rank 0 tests with --save_results)')
    a('--seed', type=int, default=1, help='random seed')
    # data
    a('--dir_data', default=str(DATASET), help='root of DIV2K/ and benchmark/')
    a('--dir_demo', default=str(DATASET / 'demo'), help='folder of LR images for --data_test Demo, or a video')
    a('--dir_train', default='', help='folder of HR images for --data_train Folder')
    a('--dir_cache', default=str(DATASET / 'cache'), help='where srlab writes caches (never inside --dir_data)')
    a('--data_train', default='DIV2K', help="training sets joined with '+'")
    a('--data_test', default='DIV2K', help="test sets joined with '+' (benchmark folder names, DIV2K, Demo, video)")
    a('--data_range', default='1-800/801-810', help='train/test image ranges for DIV2K-style sets')
    a('--ext', default='sep', help='img: decode every access; sep: cache decoded arrays (add -reset to rebuild)')
    a('--scale', default='4', help="scales joined with '+', e.g. 2+3+4")
    a('--scale_weights', default='', help="how often each --scale is drawn for a training batch, joined with "
      "'+' in --scale's order (2+1+1 with --scale 2+3+4: half the batches x2); '': all equally often")
    a('--patch_size', type=int, default=192, help='HR patch size for training')
    a('--lr_patch', type=int, default=0, help='training LR patch side at every scale: the HR patch is it x the '
      "batch's scale (EDSR's 48 at x2, x3 and x4); 0: --patch_size / scale")
    a('--rgb_range', type=int, default=255, help='pixel value range fed to the network')
    a('--n_colors', type=int, default=3, help='1 (Y) or 3 (RGB)')
    a('--degradation', default='BI', type=str.upper, choices=('BI', 'BD', 'DN'),
      help='how LR images are made: BI bicubic, BD Gaussian blur + sampling, DN bicubic + noise (RDN protocols)')
    a('--imresize_border', default='symmetric', choices=('symmetric', 'replicate'),
      help="bicubic border rule: symmetric (MATLAB imresize.m, EDSR benchmark files) or replicate (RCAN/RDN files)")
    a('--blur_sigma', type=float, default=1.6, help='--degradation BD: Gaussian blur sigma')
    a('--noise_level', type=float, default=30, help='--degradation DN: noise standard deviation (0..255 scale)')
    a('--gray_hr', default='stacked', choices=('stacked', 'own'),
      help='how a grayscale HR test image (Set14 bridge) is scored by an RGB network: stacked to 3 channels and '
      'Y-converted (EDSR-PyTorch, BasicSR, RCAN) or on its own values against the SR Y mapped back to 0..255 '
      '(the SRCNN/VDSR-era MATLAB scripts; 1.32 dB lower on such an image). A 1-channel network (--n_colors 1) '
      'sees and is scored on a gray image\'s own values either way')
    a('--chop', action='store_true', help='tiled forward to bound memory at test time')
    a('--chop_size', type=int, default=96, help='LR tile size for --chop')
    a('--chop_overlap', type=int, default=24, help='LR pixels of overlap on each tile side for --chop')
    a('--chop_batch', type=int, default=4, help='tiles per forward for --chop')
    a('--no_augment', action='store_true', help='no random flips/transposes in training')
    a('--sample_by', default='set', choices=('set', 'image', 'area'),
      help="training: what --data_train's patches are drawn in proportion to: set (each set of A+B fills an "
      "equal share, EDSR's), image (every image equally often) or area (every HR pixel equally often: the "
      "dense sub-images of SRCNN, FSRCNN and VDSR)")
    a('--augment_scales', default='1', help="training: each HR image also downscaled by these factors "
      "(MATLAB bicubic, cached), joined with '+'; FSRCNN's: 1+0.9+0.8+0.7+0.6")
    # model
    a('--model', default='EDSR', help='network name: a file src/model/<name>.py')
    a('--pre_train', default='', help="weights to start from (.pt), or 'download' (see --dir_models)")
    a('--pre_train_strict', type=flags.str2bool, default=True, help='fail on any mismatch except per-scale modules')
    a('--dir_models', default=str(MODELS), help='where released weights are looked up')
    a('--extend', default='.', help='weights to extend the model with (loaded non-strictly)')
    a('--precision', default='single', choices=('single', 'half', 'bf16'), help='test-time precision')
    # speed
    a('--amp', default='off', choices=('off', 'bf16', 'fp16', 'auto'),
      help='mixed precision for training and test (--test_fp32: training only; fp16 with a gradient scaler); '
      'auto: the fastest of fp32, bf16 and bf16 + channels_last (CUDA: bf16 or fp16) timed at start on this '
      'network, batch and patch, kept on resume')
    a('--test_fp32', action='store_true', help='test in fp32 whatever --amp: the weights\' own scores, the same on '
      'any CPU kind (the speedrun\'s table, as its shipped file reproduces it)')
    a('--channels_last', action='store_true', help='NHWC memory format for convolutions')
    a('--compile', action='store_true', help='torch.compile the network (falls back to eager where unsupported)')
    a('--ema', type=float, default=0, help='decay of an exponential moving average of the weights, used for testing; '
      'after n updates it is min(decay, (1+n)/(10+n)), so the initial weights do not linger (0: off)')
    a('--cache_mem', type=float, default=8, help='GiB of decoded images held in memory with --ext sep (beyond that: memory-mapped)')
    # training
    a('--reset', action='store_true', help='delete the experiment directory first')
    a('--test_every', type=int, default=1000, help='iterations per epoch')
    a('--epochs', type=int, default=300, help='epochs to train (0: unbounded)')
    a('--time_budget', type=float, default=0, help='minutes of training (steps and their data; not tests, saves or '
      'caching) after which the run tests, saves and ends; a resumed run has what is left (0: none)')
    a('--steps', default='0', help='the run is N training steps (the schedule spans exactly them; epochs of '
      '--test_every steps, the last one shorter; the time budget stops nothing), or auto: N fitted to '
      '--time_budget from the rate of the --warmup steps and fitted again late in the run, saved, logged and in '
      'results.json as N or N:N2 (N steps, refitted to N2), which replays it (0: --epochs)')
    a('--batch_size', type=int, default=16, help='batch size')
    a('--curve_sets', default='', help="the --data_test sets tested between a run's tests of every set (the "
      "curve's points, cheaper), joined with '+'; the final test is always of every set (default: every set)")
    a('--self_ensemble', action='store_true', help='x8 geometric self-ensemble at test time')
    a('--test_only', action='store_true', help='only evaluate')
    # optimization
    a('--lr', type=float, default=1e-4, help='learning rate')
    a('--decay', default='200', help="epochs where lr is multiplied by gamma, joined with '-'; or a schedule "
      "(src/schedule.py): cosine or linear from --lr to 0 over the run's steps (or --time_budget), or wsd (--lr, "
      "then 1 - sqrt to 0 over the last 20%%), set every step")
    a('--warmup', type=int, default=0, help='steps of linear warmup to --lr before the --decay schedule (0: none)')
    a('--gamma', type=float, default=0.5, help='lr decay factor')
    a('--optimizer', default='ADAM', help='SGD, ADAM or RMSprop')
    a('--momentum', type=float, default=0.9, help='SGD momentum')
    a('--betas', default='0.9-0.999', help="Adam betas, e.g. 0.9-0.999 (or '0.9,0.999')")
    a('--epsilon', type=float, default=1e-8, help='Adam/RMSprop epsilon')
    a('--weight_decay', type=float, default=0, help='weight decay')
    a('--gclip', type=float, default=0, help='gradient norm clip (0: off)')
    # loss
    a('--loss', default='1*L1', help="weighted terms, e.g. '1*L1+0.5*MSE'; "
      "'1*L1[:0.8]+0.1*MSE[0.8:]': each for its part of the run's progress")
    a('--skip_threshold', type=float, default=1e8, help='skip a batch whose loss exceeds this x the running mean')
    a('--max_skips', type=int, default=50, help='stop (saving the last good state) after this many skips in a row')
    # video
    a('--video_fps', type=float, default=24, help='frame rate of a frames folder given as --dir_demo (a video keeps its own)')
    a('--video_crf', type=int, default=18, help='output quality, x264/x265 CRF: 0 lossless (with libx264rgb) ... 51 worst')
    a('--video_codec', default='libx264', help='ffmpeg encoder of the output .mp4: libx264 (yuv420p), libx264rgb (RGB), ...')
    a('--video_batch', type=int, default=4, help='frames per model call for --data_test video')
    a('--video_hr', default='', help='ground-truth video or frames folder of the upscaled size: report PSNR/SSIM. '
      'A lossy reference (e.g. H.264) shifts the numbers; a frames folder or a lossless video '
      '(ffv1 or png in .mkv) gives exact ones')
    # log
    a('--save', default='test', help='experiment name: experiment/<save>')
    a('--load', default='', help='experiment to continue: experiment/<load>')
    a('--resume', type=int, default=0, help='-1: latest state of --load; N: model_N.pt; 0: --pre_train')
    a('--save_models', action='store_true', help='keep the weights of every epoch')
    a('--print_every', type=int, default=100, help='log training status every N batches')
    a('--save_results', action='store_true', help='save SR images')
    a('--save_gt', action='store_true', help='also save LR and HR images')
    a('--save_figures', action='store_true',
      help='with --save_results: a comparison figure (HR with a box; HR, Bicubic and SR crops) per test image')
    a('--tensorboard', action='store_true', help='also log to experiment/<save>/tb (needs the tensorboard package)')
    a('--summary', action='store_true', help='print the model cost (parameters, Multi-Adds, time) and exit')
    a('--summary_size', default='1280x720', help='output size WxH for --summary (Multi-Adds, timing)')
    loss_flags(p)
    if network:
        network_flags(p)
    return p


def loss_flags(p):
    """The flags that the loss term files declare (loss/flags.py: --gan_k, --vgg_weights ...), with their defaults."""
    from loss import flags as term_flags
    g = p.add_argument_group('loss term flags (declared by the loss files)')
    run = {a.dest for a in p._actions}
    for name, (parse, default, choices, text) in term_flags.command_line().items():
        if name not in run:
            g.add_argument(f'--{name}', type=parse, default=default, choices=choices, help=text)


def network_flags(p):
    """The architecture flags that the network files declare (model/flags.py),
    but for the run flags a network reads (e.g. --imresize_border). Their
    default is None: a flag not given takes --model's own default."""
    g = p.add_argument_group('network flags (declared by the network files; defaults per --model)')
    run = {a.dest for a in p._actions}
    for name, (parse, text) in flags.command_line().items():
        if name not in run:
            g.add_argument(f'--{name}', type=parse, default=None, help=text)


def run_flags():
    """The names of the flags that are no network's own."""
    return {a.dest for a in build_parser(network=False)._actions}


def _positive_ints(flag, text, sep='+'):
    parts = str(text).split(sep)
    try:
        vals = [int(x) for x in parts]
    except ValueError:
        raise OptionError(f"{flag}: '{text}' is not a list of positive integers joined with '{sep}'")
    if not vals or any(v <= 0 for v in vals):
        raise OptionError(f"{flag}: '{text}' is not a list of positive integers joined with '{sep}'")
    return vals


def _decay(text):
    """--decay: (a schedule's name, []) or (the text, its epochs) for step decay ('' and 0: none)."""
    from registry import SCHEDULES
    name = SCHEDULES.canonical(text)
    if name or str(text) in ('', '0'):
        return name or text, []
    try:
        return text, _positive_ints('--decay', text, '-')
    except OptionError as e:
        names = SCHEDULES.names()
        raise OptionError(f"{e} or a schedule ({', '.join(names)}){did_you_mean(text, names)}") from None


def _steps(args):
    """--steps N or N:N2 (the epochs that hold them) or auto (needs a budget to fit and a warmup to time)."""
    from clock import FIT_FROM
    text = str(args.steps).strip().lower()
    if text == 'auto':
        if not args.time_budget:
            raise OptionError('--steps auto: fits the step count to --time_budget; give --time_budget MINUTES')
        if args.warmup < 2 * FIT_FROM:
            raise OptionError(f'--steps auto: times the --warmup steps; needs --warmup {2 * FIT_FROM} or more, '
                              f'got {args.warmup}')
        args.steps, args.epochs = 'auto', int(1e8)
        return
    first, _, text = text.rpartition(':')  # N:N2, the replay of a run --steps auto fitted twice
    if not text.isdigit() or not (first.isdigit() or first == '') or (first and not (int(first) and int(text))):
        raise OptionError(f"--steps: '{args.steps}' must be a number of steps, N:N2 (a replay of --steps auto: N "
                          "steps, fitted again to N2) or auto")
    args.steps = f'{int(first)}:{int(text)}' if first else int(text)  # (N:N2 kept as text, as it is stored)
    longest = max(int(first or 0), int(text))
    if longest:
        args.epochs = -(-longest // args.test_every)  # the epochs holding them (the last one shorter)


def _schedule_end(args):
    """A schedule that follows the run's progress needs the run to have an end; --warmup counts steps."""
    import schedule
    if args.warmup < 0:
        raise OptionError(f'--warmup: must not be negative, got {args.warmup}')
    if args.decay_epochs or args.decay in ('', '0') or not schedule.follows_progress(args.decay):
        return
    if args.epochs == 0 and not args.time_budget:
        raise OptionError(f'--decay {args.decay}: needs an end to follow: --epochs above 0 or --time_budget')


def _factors(text):
    """--augment_scales '1+0.9+0.8' -> (1.0, 0.9, 0.8): distinct factors in (0, 1]."""
    try:
        vals = tuple(float(x) for x in re.split(r'[+,]', str(text)))
    except ValueError:
        vals = ()
    if not vals or not all(0 < v <= 1 for v in vals) or len(set(vals)) != len(vals):
        raise OptionError(f"--augment_scales: '{text}' must be distinct factors in (0, 1] joined with '+', "
                          'e.g. 1+0.9+0.8+0.7+0.6')
    return vals


def parse_range(text):
    """'1-800/801-810' -> [(1, 800), (801, 810)]; validated."""
    out = []
    for part in str(text).split('/'):
        m = re.fullmatch(r'\s*(\d+)\s*-\s*(\d+)\s*', part)
        if not m:
            raise OptionError(f"--data_range: '{text}' must look like 1-800/801-810")
        lo, hi = int(m.group(1)), int(m.group(2))
        if lo < 1 or hi < lo:
            raise OptionError(f"--data_range: '{part}' is empty or starts below 1 (need 1 <= begin <= end)")
        out.append((lo, hi))
    return out


def validate(args):
    """Parse the list flags and check every value (before the args are frozen)."""
    _lists(args)
    _network(args)
    _numbers(args)
    _choices(args)
    _datasets(args)
    _paths(args)
    _weights(args)
    _resume(args)
    return args


def _lists(args):
    args.scale = _positive_ints('--scale', args.scale)
    if len(set(args.scale)) != len(args.scale):
        raise OptionError(f"--scale: repeated scale in '{'+'.join(map(str, args.scale))}'")
    args.scale_weights = _positive_ints('--scale_weights', args.scale_weights) if args.scale_weights else []
    if args.scale_weights and len(args.scale_weights) != len(args.scale):
        raise OptionError(f"--scale_weights: {len(args.scale_weights)} weights for the {len(args.scale)} scales of "
                          f"--scale {'+'.join(map(str, args.scale))}")
    args.data_range_parsed = parse_range(args.data_range)
    args.decay, args.decay_epochs = _decay(args.decay)
    args.augment_scales = _factors(args.augment_scales)
    if args.decay_epochs != sorted(args.decay_epochs):
        raise OptionError(f"--decay: '{args.decay}' must be increasing epochs joined with '-'")
    betas = re.split(r'[-,]', str(args.betas))
    try:
        args.betas = tuple(float(b) for b in betas)
    except ValueError:
        args.betas = ()
    if len(args.betas) != 2 or not all(0 <= b < 1 for b in args.betas):
        raise OptionError(f"--betas: '{'-'.join(betas)}' must be two numbers in [0, 1) like 0.9-0.999")


def _numbers(args):
    for flag, val in (('--lr', args.lr), ('--gamma', args.gamma), ('--rgb_range', args.rgb_range),
                      ('--batch_size', args.batch_size), ('--patch_size', args.patch_size),
                      ('--test_every', args.test_every),
                      ('--epsilon', args.epsilon), ('--print_every', args.print_every),
                      ('--chop_size', args.chop_size), ('--chop_batch', args.chop_batch),
                      ('--max_skips', args.max_skips), ('--dist_timeout', args.dist_timeout)):
        if not val > 0:
            raise OptionError(f'{flag}: must be positive, got {val}')
    for flag, val in (('--n_threads', args.n_threads), ('--n_GPUs', args.n_GPUs), ('--epochs', args.epochs),
                      ('--weight_decay', args.weight_decay), ('--gclip', args.gclip),
                      ('--momentum', args.momentum),
                      ('--chop_overlap', args.chop_overlap), ('--skip_threshold', args.skip_threshold)):
        if val < 0:
            raise OptionError(f'{flag}: must not be negative, got {val}')
    if not 0 <= args.time_budget < float('inf'):
        raise OptionError(f'--time_budget: must be a non-negative number of minutes, got {args.time_budget}')
    _steps(args)
    _schedule_end(args)
    if args.lr >= FLOAT32_MAX:
        raise OptionError(f'--lr: {args.lr:g} is beyond the float32 range of the weights')
    if args.chop_size <= 2 * args.chop_overlap:
        raise OptionError(f'--chop_size: {args.chop_size} must exceed twice --chop_overlap ({args.chop_overlap})')
    if not 0 <= args.ema < 1:
        raise OptionError(f'--ema: decay must be in [0, 1), got {args.ema}')
    if args.cache_mem < 0:
        raise OptionError(f'--cache_mem: must not be negative, got {args.cache_mem}')
    if not 0 < args.blur_sigma < float('inf'):
        raise OptionError(f'--blur_sigma: must be positive, got {args.blur_sigma}')
    if not 0 <= args.noise_level < float('inf'):
        raise OptionError(f'--noise_level: must be a non-negative number, got {args.noise_level}')


def _network(args):
    """--model and its declared flags: a flag not given takes the network's default."""
    from registry import MODELS
    if args.model not in MODELS:
        raise OptionError(f"--model: unknown model '{args.model}' (one of: {', '.join(MODELS.names())})"
                          + did_you_mean(args.model, MODELS.names()))
    args.model = MODELS.canonical(args.model)
    try:
        values = flags.resolve(args.model, vars(args))
    except ValueError as e:
        raise OptionError(str(e))
    run, given = run_flags(), given_flags(args.argv)
    other = [k for k in flags.command_line() if k not in values and k not in run]  # other networks'
    unused = [k for k in other if k in given]
    if unused:
        print(f"main.py: warning: {', '.join('--' + k for k in unused)} not used by --model {args.model} "
              '(ignored)', file=sys.stderr)
    for k, v in {**dict.fromkeys(other), **values}.items():
        setattr(args, k, v)
    if values.get('n_feats', 1) < 1:
        raise OptionError(f'--n_feats: must be positive, got {values["n_feats"]}')
    if values.get('n_resblocks', 0) < 0:
        raise OptionError(f'--n_resblocks: must not be negative, got {values["n_resblocks"]}')
    if values.get('act') is not None and values['act'].lower() not in ('relu', 'lrelu', 'prelu', 'tanh'):
        raise OptionError(f"--act: unknown activation '{values['act']}' (relu, lrelu, prelu, tanh)")


def _choices(args):
    if args.n_colors not in (1, 3):
        raise OptionError(f'--n_colors: must be 1 or 3, got {args.n_colors}')
    opt = args.optimizer.upper()
    if opt not in ('SGD', 'ADAM', 'RMSPROP'):
        raise OptionError(f"--optimizer: unknown optimizer '{args.optimizer}' (SGD, ADAM, RMSprop)")
    args.optimizer = {'SGD': 'SGD', 'ADAM': 'ADAM', 'RMSPROP': 'RMSprop'}[opt]
    if args.lr_patch < 0:
        raise OptionError(f'--lr_patch: must not be negative, got {args.lr_patch}')
    if args.patch_size < max(args.scale) and not args.test_only and not args.lr_patch:
        raise OptionError(f'--patch_size: {args.patch_size} is smaller than scale {max(args.scale)}')
    ext = args.ext.split('-')
    if ext[0] not in ('img', 'sep') or ext[1:] not in ([], ['reset']):
        raise OptionError(f"--ext: '{args.ext}' must be img, sep or sep-reset")


def _datasets(args):
    import data
    args.data_test = _set_names('--data_test', args.data_test, args.dir_data)
    if not args.data_test:
        raise OptionError('--data_test: no dataset given')
    args.data_train = _set_names('--data_train', args.data_train, args.dir_data, check=not args.test_only)
    args.curve_sets = _set_names('--curve_sets', args.curve_sets, args.dir_data) or None
    other = [n for n in args.curve_sets or () if n not in args.data_test]
    if other:
        raise OptionError(f"--curve_sets: {', '.join(other)} not among --data_test {'+'.join(args.data_test)}")
    for flag, names in (('--data_test', args.data_test), ('--data_train', args.data_train)):
        if data.VIDEO in names and (flag == '--data_train' or len(names) > 1):
            raise OptionError(f'{flag}: video is a test-only set and cannot be combined with others')
    if args.data_test == [data.VIDEO] and not os.path.exists(args.dir_demo):
        raise OptionError(f'--dir_demo: no such video file or frames folder: {args.dir_demo}')
    if not args.test_only and not args.data_train:
        raise OptionError('--data_train: no dataset given')


def _set_names(flag, text, dir_data, check=True):
    """'+'-joined set names in their one spelling (data.canonical); an unknown one is refused (unless not
    `check`: a --data_train that a --test_only run does not read is kept as typed)."""
    import data
    out = []
    for name in (d for d in str(text or '').split('+') if d):
        spelt = data.canonical(name, dir_data)
        if spelt is None and check:
            raise OptionError(f"{flag}: unknown dataset '{name}': no src/data/{name.lower()}.py and no folder "
                              f"{Path(dir_data) / 'benchmark' / name}" + did_you_mean(name, known_sets(dir_data)))
        out.append(spelt or name)
    return out


def known_sets(dir_data):
    """The registered data sets and the benchmark folders under `dir_data`."""
    from registry import DATASETS
    bench = Path(dir_data) / 'benchmark'
    return DATASETS.names() + ['video'] + (sorted(p.name for p in bench.iterdir() if p.is_dir()) if bench.is_dir() else [])


def _paths(args):
    # srlab's own cache folder may sit beside the data sets (default: dataset/cache),
    # but never in --dir_data itself or inside one of its data sets
    cache = Path(args.dir_cache).resolve()
    root = Path(args.dir_data).resolve()
    inside = [d for d in (root / 'DIV2K', root / 'benchmark') if cache == d or d in cache.parents]
    if cache == root or inside:
        raise OptionError(f'--dir_cache: {cache} would write inside the data in --dir_data {root}; '
                          'pick a separate folder')
    import loss  # the registry of loss terms, for validating --loss
    try:
        loss.parse_loss(args.loss)
    except ValueError as e:
        raise OptionError(str(e))
    if args.resume != 0 and not args.load:
        raise OptionError(f'--resume: {args.resume} needs --load <experiment>')
    if args.epochs == 0:
        args.epochs = int(1e8)
    for k in ('save', 'load'):
        v = vars(args)[k]
        if v and (os.sep in v or v in ('.', '..')):
            raise OptionError(f"--{k}: '{v}' must be a plain experiment name, not a path")


def _weights(args):
    """Testing (--test_only, or a video) a learned network needs its weights:
    --pre_train FILE or download, or --load <run>; --pre_train none tests
    the random initialisation on purpose. Named files and runs must exist."""
    from paths import EXPERIMENTS
    from registry import MODELS
    if args.testing and getattr(MODELS.get(args.model), 'learned', True) and not (args.pre_train or args.load):
        raise OptionError(f'--test_only: --model {args.model} has no weights to test; give --pre_train FILE '
                          '(or download), --load <run>, or --pre_train none to test its random initialisation')
    for flag, path in (('--pre_train', args.pre_train), ('--extend', args.extend), ('--vgg_weights', args.vgg_weights)):
        if path and path not in ('download', 'none', '.') and not os.path.isfile(path):
            raise OptionError(f'{flag}: file not found: {path}')
    if args.load and not (EXPERIMENTS / args.load).is_dir():
        raise OptionError(f"--load: no run named '{args.load}' in {EXPERIMENTS}{did_you_mean(args.load, runs())}")


def _resume(args):
    """--load <run> --resume -1 with a flag that defines another run (its data, loss, optimizer or network) is
    refused here, from the run's saved flags, before any data are read or a network is built."""
    if not (args.load and args.resume == -1):
        return
    import state
    from paths import EXPERIMENTS
    saved = state.run_flags(EXPERIMENTS / args.load)
    identity = set(state.IDENTITY) | set(flags.recorded(args.model, {}))
    wrong, _ = state.compare_flags(saved, args.flags(), identity)
    if wrong:
        raise OptionError(state.another_run(args.load, wrong))


def runs():
    from paths import EXPERIMENTS
    return sorted(p.name for p in EXPERIMENTS.iterdir() if p.is_dir()) if EXPERIMENTS.is_dir() else []


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    first, _ = parser.parse_known_args(argv)
    try:
        defaults = template.get(first.template, first) if first.template != '.' else {}
    except KeyError as e:
        parser.exit(2, f'main.py: error: --template: {e.args[0]}\n')
    defaults.update(stored_flags(first, given_flags(argv)))
    parser.set_defaults(**defaults)
    args = parser.parse_args(argv, namespace=Args())
    args.argv = argv
    try:
        return validate(args).freeze()
    except OptionError as e:
        parser.exit(2, f'main.py: error: {e}\n')


_NOT_GIVEN = object()


def given_flags(argv):
    """The flags set on the command line (not by their defaults or a template)."""
    p = build_parser()
    for action in p._actions:
        action.default = _NOT_GIVEN
    ns, _ = p.parse_known_args(argv)
    return {k for k, v in vars(ns).items() if v is not _NOT_GIVEN}


# how this session was started, and what parsing derives: never taken from a saved run
NOT_STORED = ('argv', 'load', 'save', 'resume', 'reset', 'template', 'test_only', 'pre_train', 'extend',
              'summary', 'data_range_parsed', 'decay_epochs')


def stored_flags(first, given):
    """Defaults that srlab's own files bring: the flags saved in the run's
    run state for --load <run> --resume -1 (and --load <run> --test_only), or
    the network flags saved in a --pre_train weight file, for every flag not
    given on the command line. Files without them bring nothing."""
    if first.load and (first.resume == -1 or first.test_only):
        import state
        from paths import EXPERIMENTS
        saved = state.run_flags(EXPERIMENTS / first.load)
    elif first.pre_train and first.pre_train not in ('download', 'none') and os.path.isfile(first.pre_train):
        from model import weights
        saved = weights.file_flags(first.pre_train)
    else:
        return {}
    return {k: _as_typed(k, v) for k, v in saved.items() if k not in NOT_STORED and k not in given}


def _as_typed(key, value):
    """A saved flag value as it is typed ('+'-joined lists, '-'-joined --betas)."""
    if isinstance(value, (list, tuple)):
        return ('-' if key == 'betas' else '+').join(map(str, value))
    return value
