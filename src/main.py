"""srlab entry point: `python main.py --model EDSR --scale 2 ...`"""
import shlex
import sys
import time
import traceback

import torch

import option
import precision
import provenance
import utility
from errors import SRLabError, UsageError, one_line


def run(args):
    import data
    import distributed
    import loss
    import model
    from data.common import DataError
    from interrupt import Interrupted
    from trainer import Trainer

    torch.manual_seed(args.seed)
    world = distributed.setup(args)
    ckp = utility.checkpoint(args, world=world)
    trainer, started = None, False
    try:
        args = precision.resolve(args, world, ckp.write_log, resumed_flags(args, ckp))  # --amp auto: timed here
        ckp.write_log('\n'.join(provenance.lines(provenance.of_run(args, world.device(args)))))
        if args.data_test == ['video']:
            import videotester
            tester = videotester.VideoTester(args, model.Model(args, ckp, world), ckp)
            started = True
            tester.test()
        else:
            m = model.Model(args, ckp, world)  # first: a weight file that does not fit is refused before the data
            t0 = time.perf_counter()
            loader = data.Data(args, world)
            ckp.write_log(f'Data ready in {time.perf_counter() - t0:.1f} s (reading and caching; not on the training clock)')
            lo = loss.Loss(args, ckp, world) if not args.test_only else None
            trainer = Trainer(args, loader, m, lo, ckp, world)
            started = True
            while not trainer.terminate():
                trainer.train()
                trainer.test()
            world.barrier()  # torchrun: no rank closes the group while another still tests or saves
    except Interrupted as e:
        trainer.save_interrupted()
        print(f'\nStopped by signal {e.signum}; complete state saved in {ckp.dir}.\n'
              f'Resume with: python main.py {resume_command(args)}', file=sys.stderr)
        return 128 + e.signum
    except (SRLabError, DataError) as e:
        ckp.write_log(f'main.py: error: {one_line(e)}', quiet=True)
        raise
    finally:
        if trainer is not None:
            trainer.close()
        if started:
            ckp.done()
        else:  # a start refused before the run began leaves no folder
            ckp.discard()
        distributed.close()
    return 0


def resumed_flags(args, ckp):
    """The flags saved with the run that --load <run> --resume -1 continues (None otherwise)."""
    if not (args.load and args.resume == -1):
        return None
    import state
    return state.run_flags(ckp.dir)


def resume_command(args):
    """Naming the run is enough: its state holds the flags it was started with."""
    return f'--load {shlex.quote(args.load or args.save)} --resume -1'


def main(argv=None):
    args = option.parse_args(argv)
    try:
        if args.summary:  # the model's cost; no experiment folder, no data
            import summary
            return summary.run(args)
        return run(args)
    except Exception as e:
        from data.common import DataError
        from dataloader import WorkerDied, worker_death
        e = worker_death(e) or e  # a loader worker killed outside the training steps (e.g. in a test)
        known = (SRLabError, DataError, WorkerDied)
        if isinstance(e, known) or any(k.__name__ + ':' in str(e) for k in known):
            print(f'main.py: error: {one_line(e)}', file=sys.stderr)
            return 2 if isinstance(e, UsageError) else 1
        if isinstance(e, OSError):  # disk full, read-only file system, ...: the file and the reason
            where = f'{e.filename}: ' if e.filename else ''
            print(f'main.py: error: {where}{e.strerror or one_line(e)}', file=sys.stderr)
            return 1
        traceback.print_exc()
        return 1


if __name__ == '__main__':
    sys.exit(main())
