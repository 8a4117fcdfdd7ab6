"""Where a number came from: the block that results.json, the head of
log.txt, evaluate.py's and speed.py's JSON carry.

    {'srlab': {'commit': ..., 'dirty': ...}, 'python': ..., 'torch': ...,
     'cuda': ..., 'cudnn': ..., 'device': {'cpu': model, 'kind': ..., 'isa': ..., 'threads': n} or {'gpu': name},
     'precision': ..., 'seed': ..., 'command': ...}

fp32 sums differ in their last digits between CPU kinds (and GPUs), so two
tables made on two machines can both be right; this block says which
machine made which.
"""
import functools
import os
import platform
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=1)
def commit():
    """{'commit': hash or None, 'dirty': True/False/None}: srlab's git state (None outside a checkout)."""
    def git(*a):
        return subprocess.run(['git', '-C', str(REPO), *a], capture_output=True, text=True, timeout=10)
    try:
        head = git('rev-parse', 'HEAD')
        if head.returncode:
            return {'commit': None, 'dirty': None}
        status = git('status', '--porcelain', '--untracked-files=no')
        return {'commit': head.stdout.strip(), 'dirty': bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {'commit': None, 'dirty': None}


def cpuinfo(key):
    """The first value of `key` in /proc/cpuinfo ('' where there is none)."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.split(':')[0].strip() == key:
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return ''


def cpu_model():
    """The CPU's model name (/proc/cpuinfo on Linux; platform.processor() elsewhere)."""
    return cpuinfo('model name') or platform.processor() or platform.machine()


def cpu_kind():
    """The CPU's widest matrix/vector kind, as its flags list it: AMX, AVX-512-BF16, AVX-512, AVX2 or other
    (what decides whether bf16 is faster than fp32)."""
    flags = set(cpuinfo('flags').split())
    for flag, kind in (('amx_bf16', 'AMX'), ('avx512_bf16', 'AVX-512-BF16'), ('avx512f', 'AVX-512'),
                       ('avx2', 'AVX2')):
        if flag in flags:
            return kind
    return platform.machine()


# environment variables that lower the ISA torch and oneDNN use (the AVX2 emulation: README "Tests")
ISA_LIMITS = ('ONEDNN_MAX_CPU_ISA', 'ATEN_CPU_CAPABILITY')


def device(dev=None):
    """{'gpu': name} for a CUDA device, else {'cpu': model, 'kind': cpu_kind(), 'isa': torch's CPU
    capability, 'threads': n, 'isa_limits': {...} when set}."""
    import torch
    if dev is not None and getattr(dev, 'type', dev) == 'cuda':
        return {'gpu': torch.cuda.get_device_name(dev)}
    out = {'cpu': cpu_model(), 'kind': cpu_kind(), 'isa': torch.backends.cpu.get_cpu_capability(),
           'threads': torch.get_num_threads()}
    limits = {k: os.environ[k] for k in ISA_LIMITS if k in os.environ}
    return {**out, 'isa_limits': limits} if limits else out


def block(precision=None, seed=None, command=None, dev=None):
    """The provenance block; `precision`, `seed` and the command line (a string, command_of) when a run has
    them."""
    import torch
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {'srlab': commit(), 'python': platform.python_version(), 'torch': torch.__version__,
            'cuda': torch.version.cuda, 'cudnn': cudnn, 'device': device(dev), 'precision': precision,
            'seed': seed, 'command': command}


def of_run(args, dev=None):
    """The block of a main.py run: the precision it used (after --amp auto), its seed and command line."""
    from precision import describe, test_amp
    used = describe(args.amp, args.channels_last)
    if args.test_only and args.precision != 'single':
        used += f' (weights in {args.precision})'
    if test_amp(args) != args.amp:
        used += ' (tested in fp32)'
    return {**block(used, args.seed, command_of(['main.py'] + list(args.argv)), dev), 'gray_hr': args.gray_hr}


def of_tool(name, argv, **extra):
    """The block of a tool's run (evaluate.py: scores computed in float64 on the CPU, so the device says
    where they were computed, not how the images were made); `extra`: its own settings."""
    return {**block(command=command_of([name] + list(argv))), **extra}


def command_of(argv):
    """A command line (the tool's name and its arguments) as one string, quoted as a shell would need."""
    return shlex.join([str(a) for a in argv])


def lines(b):
    """The block as log lines."""
    d = b['device']
    limits = ''.join(f', {k}={v}' for k, v in d.get('isa_limits', {}).items())
    where = d.get('gpu') or f"{d['cpu']} ({d['kind']}; torch ISA {d['isa']}{limits}; {d['threads']} threads)"
    src = b['srlab']
    rev = (src['commit'] or 'unknown')[:12] + (' (dirty tree)' if src['dirty'] else '')
    return [f"srlab {rev}; Python {b['python']}, torch {b['torch']}, CUDA {b['cuda']}, cuDNN {b['cudnn']}",
            f"device: {where}; precision: {b['precision']}; seed: {b['seed']}",
            f"command: {b['command']}"]
