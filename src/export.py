"""Export a network: ONNX checked by ONNX Runtime, and .safetensors.

    python export.py --pre_train FILE --onnx out.onnx          a weight file (srlab's or a community one)
    python export.py --load RUN --safetensors out.safetensors  a run's tested weights
    python export.py --model EDSR --scale 2 --pre_train none --onnx edsr.onnx

The network comes from main.py's flags, read as `--test_only` reads them: a
weight file brings its network and flags, --load <run> the run's, and flags
given win. --safetensors writes its weights with those flags in the header
(`--pre_train out.safetensors` then needs no other flag). --onnx writes the
network at one scale (--export_scale, default the first of --scale): input
'lr' N x C x H x W float32 on 0..--rgb_range, output 'sr', height and width
dynamic (the TorchScript-based torch.onnx exporter). The file is checked
with onnx.checker and run by ONNX Runtime on a real image (--image; default
scikit-image's astronaut photo, a --size crop) and on a second, odd size:
the largest difference to torch, in units of --rgb_range, must be at most
--tolerance (1e-4). Then both runtimes' CPU inference speed (output MP/s,
timed alternately on the same input and threads) is printed with the CPU
kind. ONNX needs the optional extra: pip install -r requirements-extra.txt.
"""
import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout

import torch

from errors import SRLabError, UsageError, error_text

EXTRA = 'pip install -r requirements-extra.txt (onnx, onnxruntime)'


def parse(argv):
    """(export's own flags, main.py's flags as --test_only parses them)."""
    p = argparse.ArgumentParser(prog='export.py', description=__doc__.split('\n\n')[0],
                                epilog='Every other flag is main.py\'s (--model, --scale, --pre_train, --load, ...).')
    p.add_argument('--onnx', default='', help='write the network as ONNX here and check it with ONNX Runtime')
    p.add_argument('--safetensors', default='', help='write the weights as .safetensors here (with srlab\'s flags)')
    p.add_argument('--export_scale', type=int, default=0, help='the scale exported to ONNX (default: the first)')
    p.add_argument('--image', default='', help="image for the ONNX check and timing (default: scikit-image's "
                   'astronaut photo)')
    p.add_argument('--size', type=int, default=128, help='side of the centre crop of --image fed to the network')
    p.add_argument('--repeat', type=int, default=5, help='timed runs of each runtime')
    p.add_argument('--threads', type=int, default=0, help="threads of both runtimes (default: torch's, "
                   'usually the cores)')
    p.add_argument('--tolerance', type=float, default=1e-4, help='largest ONNX-torch difference, in --rgb_range units')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset')
    own, rest = p.parse_known_args(argv)
    if not (own.onnx or own.safetensors):
        p.exit(2, 'export.py: error: nothing to write: give --onnx FILE and/or --safetensors FILE\n')
    if own.size < 8 or own.repeat < 1 or own.threads < 0 or not own.tolerance > 0:
        p.exit(2, 'export.py: error: --size must be at least 8, --repeat at least 1, --threads not negative, '
               '--tolerance positive\n')
    import option
    args = option.parse_args(rest + ['--test_only'])
    return own, args


def network(args, log=print):
    """(network in eval mode with its weights, the flags it records) for main.py's `args`."""
    from model import build_network, weights
    from paths import EXPERIMENTS
    net, meta = build_network(args)
    start = weights.start_file(args, str(EXPERIMENTS / (args.load or args.save) / 'model'), True)
    if start is not None:
        path, flag, strict = start
        loaded = weights.load_into(net, weights.load_file(path, flag), path, meta, log, strict, flag)
        weights.check_scales(net, loaded, path, flag)
    return net.eval(), meta


def at_scale(net, scales, scale):
    """Select `scale` (0: the first of --scale) on a multi-scale network; returns it."""
    scale = scale or scales[0]
    if scale not in scales:
        raise UsageError(f"--export_scale: {scale} is not among --scale {'+'.join(map(str, scales))}")
    if hasattr(net, 'set_scale'):
        net.set_scale(scales.index(scale))
    return scale


def real_image(path, n_colors, rgb_range, size):
    """1 x C x size x size (smaller images whole) on 0..rgb_range: the centre of `path` or of astronaut."""
    from data import common
    if path:
        img = common.read_image(path, n_colors)
    else:
        from skimage import data as samples
        img = common.set_channel(samples.astronaut(), n_colors)
    h, w = img.shape[:2]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    img = img[top:top + size, left:left + size]
    return common.np2tensor(img, rgb_range).unsqueeze(0)


def onnx_modules():
    """(onnx, onnxruntime), or a one-line error saying what to install."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise SRLabError(f'--onnx: needs the {e.name} package: {EXTRA}')
    return onnx, onnxruntime


def write_onnx(net, x, path, opset):
    """The network traced on `x` as ONNX at `path`, height and width dynamic."""
    dynamic = {'lr': {0: 'n', 2: 'h', 3: 'w'}, 'sr': {0: 'n', 2: 'H', 3: 'W'}}
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(net, (x,), path, dynamo=False, input_names=['lr'], output_names=['sr'],
                              dynamic_axes=dynamic, opset_version=opset)
    except Exception as e:
        raise SRLabError(f'--onnx: torch.onnx.export failed: {error_text(e)}') from e


def session(ort, path, threads):
    """An ONNX Runtime CPU session on `threads` threads that do not spin between runs (spinning
    threads would hold the cores while torch runs, in the alternating timing)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])


def difference(sess, net, x, rgb_range):
    """Largest |ONNX Runtime - torch| on `x`, in units of rgb_range."""
    with torch.inference_mode():
        ref = net(x)
    out = torch.from_numpy(sess.run(None, {'lr': x.numpy()})[0])
    if out.shape != ref.shape:
        return float('inf')
    return float((out - ref).abs().max()) / rgb_range


def check_onnx(onnx, sess, path, net, x, own, rgb_range):
    """SRLabError unless the file passes onnx.checker and ONNX Runtime matches
    torch on `x` and on a second, odd size (the graph's sizes are not fixed)."""
    onnx.checker.check_model(path)
    odd = x[..., :max(x.shape[-2] - 5, 3) | 1, :max(x.shape[-1] - 9, 3) | 1]
    diffs = []
    for inp in (x, odd):
        try:
            diffs.append(difference(sess, net, inp, rgb_range))
        except Exception as e:  # ONNX Runtime refuses the other size: a size the trace fixed
            raise SRLabError(f'--onnx: ONNX Runtime cannot run the graph on a {inp.shape[-2]}x{inp.shape[-1]} '
                             f'input after tracing it on {x.shape[-2]}x{x.shape[-1]} (the network computes '
                             f'with its input size in Python); nothing written ({type(e).__name__})')
    if max(diffs) > own.tolerance:
        raise SRLabError(f'--onnx: ONNX Runtime differs from torch by {max(diffs):.3g} --rgb_range '
                         f'on {"the real image" if diffs[0] > own.tolerance else "a second size"}, above '
                         f'--tolerance {own.tolerance:g}; nothing written')
    return diffs


def speeds(sess, net, x, repeat):
    """(torch MP/s, ONNX Runtime MP/s): the median of `repeat` timed runs each, alternating."""
    feed = {'lr': x.numpy()}
    runs = {'torch': [], 'onnxruntime': []}
    with torch.inference_mode():
        out = net(x)  # warm-up, and the output size
        sess.run(None, feed)
        for _ in range(repeat):
            t = time.perf_counter()
            net(x)
            runs['torch'].append(time.perf_counter() - t)
            t = time.perf_counter()
            sess.run(None, feed)
            runs['onnxruntime'].append(time.perf_counter() - t)
    mp = out.shape[0] * out.shape[-2] * out.shape[-1] / 1e6
    return mp / statistics.median(runs['torch']), mp / statistics.median(runs['onnxruntime'])


def cpu_kind():
    """'<model name>, <n> cores (flags: avx512f, avx512_bf16, amx_tile...)' from /proc/cpuinfo."""
    name, flags = 'unknown CPU', set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'model name' and name == 'unknown CPU':
                    name = value.strip()
                elif key.strip() == 'flags' and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    isa = [f for f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_tile') if f in flags]
    return f"{name}, {os.cpu_count()} cores ({', '.join(isa) if isa else 'no AVX2'})"


def export_onnx(net, own, args, scale):
    """Write, check and time the ONNX file; print the report."""
    onnx, ort = onnx_modules()
    x = real_image(own.image, args.n_colors, args.rgb_range, own.size)
    if own.threads:
        torch.set_num_threads(own.threads)
    threads = torch.get_num_threads()
    d = os.path.dirname(os.path.abspath(own.onnx))
    fd, tmp = tempfile.mkstemp(prefix='.export.', suffix='.onnx', dir=d)
    os.close(fd)
    try:
        write_onnx(net, x, tmp, own.opset)
        sess = session(ort, tmp, threads)
        diffs = check_onnx(onnx, sess, tmp, net, x, own, args.rgb_range)
        os.replace(tmp, own.onnx)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    t_mps, o_mps = speeds(sess, net, x, own.repeat)
    h, w = x.shape[-2:]
    print(f'ONNX: {own.onnx} ({args.model} x{scale}, opset {own.opset}, input lr: N x {args.n_colors} x H x W '
          f'on 0..{args.rgb_range}, H and W dynamic)')
    print(f'ONNX Runtime vs torch: largest difference {diffs[0]:.2e} on {h}x{w}, {diffs[1]:.2e} on a second size '
          f'(in units of --rgb_range; tolerance {own.tolerance:g})')
    print(f"CPU inference, {h}x{w} -> {h * scale}x{w * scale}, {threads} thread{'s' * (threads > 1)}, "
          f'median of {own.repeat}: '
          f'torch {t_mps:.3f} MP/s, ONNX Runtime {o_mps:.3f} MP/s ({o_mps / t_mps:.2f}x) on {cpu_kind()}')


def main(argv=None):
    own, args = parse(sys.argv[1:] if argv is None else [str(a) for a in argv])
    try:
        net, meta = network(args)
        if own.safetensors:
            from model import tensorfile
            from model.flags import flag_text
            tensorfile.write(net.state_dict(), meta, own.safetensors)
            flags = ' '.join(f'--{k} {flag_text(v)}' for k, v in sorted(meta.items()))
            print(f'safetensors: {own.safetensors} ({len(net.state_dict())} tensors; flags in its header: {flags})')
        if own.onnx:
            export_onnx(net, own, args, at_scale(net, args.scale, own.export_scale))
    except SRLabError as e:
        print(f'export.py: error: {str(e).splitlines()[0]}', file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
