"""Brown (UBC Phototour) benchmark: FPR95 of descriptor distances on the test pairs, with ROC curves.

Describes the patches of the pairs of --subset (liberty, notredame or yosemite under --root, or a set
written by `descnet data patches --brown NAME`) with each --model, ranks the pairs by L2 distance and
reports the false positive rate at 95% recall on the 100k pairs (m50_100000_100000_0.txt) or on the given
--pairs files. Writes OUT/brown_<subset>.json and the ROC figure OUT/brown_<subset>_roc.{png,pdf}.

examples:
  descnet eval brown --root data/brown --subset notredame --model hardnet:runs/lib/best.pt --model sift
  descnet eval brown --root data/brown --subset yosemite --model tfeat:tfeat-liberty.params --all-pairs
  descnet eval brown --root data/my-patches --subset mine --model hardnet-csa:run/best.pt --model rootsift
"""
from __future__ import annotations

import argparse

from descnet.cli.common import add_benchmark_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="folder holding the subset (<root>/<subset>/ or <subset>.pt)")
    parser.add_argument("--subset", required=True,
                        help="liberty, notredame, yosemite, or the NAME of a 'descnet data patches --brown NAME' set")
    parser.add_argument("--model", action="append", required=True, metavar="SPEC",
                        help="model SPEC (repeatable): registry name, NAME:WEIGHTS, checkpoint, run directory, "
                             "or sift / rootsift / pixels")
    parser.add_argument("--pairs", action="append", default=[], metavar="FILE",
                        help="m50_*.txt pair file name inside the subset (repeatable; default the 100k pairs)")
    parser.add_argument("--all-pairs", action="store_true", help="evaluate every m50_* file of the subset")
    parser.add_argument("--out", default="results/brown", help="output folder (default results/brown)")
    parser.add_argument("--cache-dir", help="where the subset's HDF5 cache goes (default ROOT; use it when ROOT "
                                            "is read-only)")
    parser.add_argument("--verify-cache", action="store_true",
                        help="hash every source file of the subset again before trusting the cache (by default a "
                             "file is hashed again only when its size, modification or change time changed)")
    add_benchmark_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from descnet.cli.common import output_dir
    from descnet.eval.brown import benchmark_brown, brown_table
    from descnet.features.inference import check_device

    check_device(args.device, "--device")
    output_dir(args.out)  # a file there, or a file on its path: refused before any work
    run = benchmark_brown(args.root, args.subset, args.model, args.out, pairs_files=args.pairs,
                          all_pairs=args.all_pairs, cache_dir=args.cache_dir, batch_size=args.batch_size,
                          device=args.device, overwrite=args.overwrite, progress=not args.quiet,
                          verify_cache=args.verify_cache, log=print)
    print(brown_table(run.payload))
    if run.kept:
        print(run.kept_note())
    print(run.written_note())
    return 0
