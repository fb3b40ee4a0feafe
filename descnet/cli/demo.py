"""Run descnet's whole workflow on synthetic data it makes itself (no downloads), in under 10 minutes on a
2-core CPU: synthetic sequences -> HPatches-style patch sets -> train hardnet and hardnet-csa -> HPatches
tasks, FPR95 and image-sequence matching against RootSIFT -> one matched image pair -> OUT/report.md.

Each step is a real descnet command, printed before it runs. Finished steps are reused on a second run;
delete OUT (or one step's folder) to redo them.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results/demo", help="output folder (default results/demo)")
    parser.add_argument("--train-steps", type=int, default=120, help="optimiser steps per model (default 120)")
    parser.add_argument("--batch-size", type=int, default=128, help="pairs per step (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import sys

    from descnet.cli.demo_driver import DemoOptions, DemoStepFailed, run_demo

    if args.train_steps < 3 or args.batch_size < 2:
        raise ValueError("--train-steps must be >= 3 and --batch-size >= 2")
    try:
        run_demo(DemoOptions(out=Path(args.out), train_steps=args.train_steps, batch_size=args.batch_size,
                             seed=args.seed, quiet=args.quiet))
    except DemoStepFailed as err:
        print(f"descnet demo: {err}", file=sys.stderr)
        return err.status
    return 0
