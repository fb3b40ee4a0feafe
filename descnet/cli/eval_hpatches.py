"""HPatches patch benchmark: verification, matching and retrieval mAP with the official protocol's numbers.

Describes the patches of the split's test sequences once per model (cached as HDF5 under
OUT/descriptors/, keyed by the model and its weights), or reads descriptors in the official CSV layout
(--descriptors DIR/<name>), evaluates the tasks exactly as hpatches-benchmark's python code does and writes
OUT/hpatches_<split>.{json,md,tex,png,pdf}. Verification and retrieval pairs come from the official task
files (--tasks-dir, default <root>/../tasks); when the verification files are missing, pairs are generated
by a seeded procedure that follows the official definition, and every output says so. A task folder
written by `descnet data patches` for a custom patch set (it holds GENERATED.json) is used the same way
(--split custom or full), and every output says that its split and retrieval files are generated.

examples:
  descnet eval hpatches --root data/hpatches/hpatches-release --model rootsift --model hardnet:hardnet.pth \\
      --split a --out results/hpatches
  descnet eval hpatches --descriptors my_descs/hardnet --tasks-dir data/hpatches/tasks --split full
  descnet eval hpatches --root data/hpatches/hpatches-release --model sift --export-csv csv_out
  descnet eval hpatches --root data/my-patches/hpatches-release --split custom --model pixels
"""
from __future__ import annotations

import argparse

from descnet.cli.common import add_benchmark_arguments

from descnet.eval.hpatches import TASKS  # numpy only: `descnet --help` loads no torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", help="the hpatches-release folder (needed to describe patches with --model)")
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="model SPEC to describe the patches with (repeatable): a registry name, NAME:WEIGHTS, "
                             "a descnet checkpoint or run directory, or sift / rootsift / pixels")
    parser.add_argument("--descriptors", action="append", default=[], metavar="DIR",
                        help="descriptors in the official layout DIR/<sequence>/<type>.csv (repeatable); the "
                             "folder name is the descriptor's name")
    parser.add_argument("--split", default="a", help="split of splits.json: a, b, c, full, illum or view (default a); custom or full for a "
                                               "patch set built by `descnet data patches`")
    parser.add_argument("--tasks", default=",".join(TASKS),
                        help=f"comma-separated tasks (default all three: {','.join(TASKS)})")
    parser.add_argument("--tasks-dir", help="official task files (splits/splits.json, task CSVs); default "
                                            "<root>/../tasks or <root>/tasks")
    parser.add_argument("--out", default="results/hpatches", help="output folder (default results/hpatches)")
    parser.add_argument("--export-csv", metavar="DIR",
                        help="also write each model's descriptors of the split's test sequences to "
                             "DIR/<name>/<sequence>/<type>.csv (the official layout; use --split full for all)")
    parser.add_argument("--cache-dir", help="descriptor cache folder (default OUT/descriptors)")
    parser.add_argument("--no-cache", action="store_true",
                        help="describe again, ignoring cached descriptors (the cache is keyed by the model's "
                             "architecture and weights and by the content of each sequence's patch files)")
    parser.add_argument("--verify-cache", action="store_true",
                        help="hash every patch file again before trusting the cache (by default a file is hashed "
                             "again only when its size, modification or change time changed)")
    parser.add_argument("--verification-pairs", type=int, default=1_000_000,
                        help="pairs per file when the verification files must be generated (default 1e6)")
    parser.add_argument("--seed", type=int, default=42, help="seed of generated verification pairs (default 42)")
    add_benchmark_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from descnet.cli.common import output_dir
    from descnet.eval.hpatches_benchmark import benchmark_hpatches
    from descnet.features.inference import check_device

    check_device(args.device, "--device")
    output_dir(args.out)  # a file there, or a file on its path: refused before any work
    run = benchmark_hpatches(args.out, root=args.root, models=args.model, descriptors=args.descriptors,
                             split=args.split, tasks=args.tasks.split(","), tasks_dir=args.tasks_dir,
                             export_csv=args.export_csv, cache_dir=args.cache_dir, use_cache=not args.no_cache,
                             verify_cache=args.verify_cache,
                             verification_pairs=args.verification_pairs, seed=args.seed, batch_size=args.batch_size,
                             device=args.device, overwrite=args.overwrite, progress=not args.quiet, log=print)
    if run.kept:
        print(run.kept_note())
    print(run.written_note())
    return 0
