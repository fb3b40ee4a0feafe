"""Train a descriptor from a YAML config: ``python -m descnet.cli.train CONFIG [--set KEY=VALUE ...]``.

This is the entry point of ``descnet train`` and of multi-process runs::

    descnet train configs/hardnet+.yaml --set data.root=data/brown --out runs/hardnet+-liberty
    descnet train hardnet+ --set data.root=data/brown        # a config shipped in the package, by name
    descnet train --resume runs/hardnet+-liberty             # continue exactly where it stopped
    descnet train configs/hardnet+.yaml --nproc 4            # 4 processes (GPUs) on this machine
    torchrun --nproc_per_node=4 -m descnet.cli.train configs/hardnet+.yaml   # the same, by hand
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \\
        -m descnet.cli.train configs/hardnet+.yaml --out /shared/runs/x       # several machines

``--set`` takes dotted keys of the config (``optimizer.lr=0.1``, ``data.root=...``, ``runtime.device=cpu``);
values are YAML. The run directory (default ``runs/<config name>``) gets ``config.yaml``,
``environment.json``, ``metrics.jsonl``, ``last.pt`` and ``best.pt``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="YAML config file, or the name of one shipped in the package (configs/: hardnet+, "
                             "hardnet-csa+, ...); optional with --resume")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (repeatable), e.g. --set optimizer.lr=1 --set data.root=DIR")
    parser.add_argument("--resume", metavar="RUN_DIR|CKPT",
                        help="continue a run from its last.pt (or a checkpoint file); only runtime.* may change")
    parser.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/<config name>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (the same as --set runtime.progress=false)")
    parser.add_argument("--nproc", type=int, default=1, metavar="K",
                        help="start K processes on this machine with torchrun (DDP; one GPU each on CUDA)")


def _launch(args: argparse.Namespace) -> int:
    """Re-run this command under ``torch.distributed.run`` with ``--nproc`` processes."""
    import subprocess

    if args.nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {args.nproc}")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
               "-m", "descnet.cli.train"]
    command += [args.config] if args.config else []
    for item in args.overrides:
        command += ["--set", item]
    command += ["--resume", args.resume] if args.resume else []
    command += ["--out", args.out] if args.out else []
    return subprocess.call(command)


def _run_dir(args: argparse.Namespace) -> Path:
    from descnet.runinfo import LAST_CHECKPOINT
    from descnet.training.checkpoint import find_checkpoint

    if args.resume:
        source = find_checkpoint(args.resume).parent
        if args.out and Path(args.out).resolve() != source.resolve() and (Path(args.out) / LAST_CHECKPOINT).exists():
            raise ValueError(f"--out {args.out}: already holds a run; resume into {source} or an empty folder")
        return Path(args.out) if args.out else source
    if args.out:
        return Path(args.out)
    return Path("runs") / Path(args.config).stem


def run(args: argparse.Namespace) -> int:
    if args.nproc != 1 and "LOCAL_RANK" not in os.environ:
        return _launch(args)
    if not args.config and not args.resume:
        raise ValueError("give a CONFIG file, or --resume RUN_DIR to continue a run")
    if getattr(args, "quiet", False):
        args.overrides = [*args.overrides, "runtime.progress=false"]

    from descnet.training import NonFiniteLossError, Trainer, load_checkpoint, load_config
    from descnet.training.config import apply_and_check

    if args.config:
        config = load_config(args.config, args.overrides)
    else:  # the run's own config, with runtime.* overrides (the Trainer refuses other changes)
        config = apply_and_check(load_checkpoint(args.resume)["config"], args.overrides, f"{args.resume} config")
    trainer = Trainer(config, _run_dir(args), resume=args.resume)
    try:
        summary = trainer.fit()
    except KeyboardInterrupt:
        print(f"descnet train: interrupted (continue with --resume {trainer.run_dir})", file=sys.stderr)
        return 130
    except NonFiniteLossError as err:
        print(f"descnet train: stopped: {err}", file=sys.stderr)
        return 1
    finally:
        from descnet.training.distributed import shutdown

        shutdown()
    if trainer.dist.is_main:
        best = summary["best"]
        note = f"; best fpr95 {best['value']:.4f} (epoch {best['epoch']})" if best else ""
        print(f"descnet train: done: {summary['steps']} steps, run directory {summary['run_dir']}{note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m descnet.cli.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    from descnet.cli.main import run_command

    return run_command("descnet train", run, args)

if __name__ == "__main__":
    sys.exit(main())
