"""Image matching on full-image sequences with ground-truth homographies (HPatches or Oxford layout).

Every model describes the same keypoints (detected once per image, SIFT by default) of image 1 and of
each image k = 2..n of every sequence; their matches are scored with the ground-truth H_1_k:
  MMA@t      share of matches within t px (t = 1..10), averaged over pairs (before verification)
  correct@t  number of matches within t px (t = 1, 3, 5) = MMA@t x matches, averaged over pairs; MMA alone
             rewards matching less (a few safe matches score high), so a descriptor must win here too
  H@e        share of pairs whose estimated homography (MAGSAC) moves the image corners by <= e px (1, 3, 5)
  matches    matches and inliers per pair
split by sequence kind: illumination (i_*), viewpoint (v_*), other (e.g. Oxford graf).
OpenCV's own SIFT and RootSIFT on the same keypoints are included as baselines unless --no-baselines.

Writes --out DIR/sequences.json (settings, environment, summaries, every pair) and DIR/mma.png
(MMA and correct matches per pair against the threshold).

examples:
  descnet eval sequences --root data/hpatches-sequences-release --model tfeat:tfeat-liberty.params --model runs/csa
  descnet eval sequences --root ../shared/data/oxford-affine --root ../shared/data/hpatches/sequences \\
      --model tfeat:tfeat-liberty.params --max-keypoints 1000 --out results/eval/sequences
"""
from __future__ import annotations

import argparse

from descnet.cli.common import add_benchmark_arguments, add_keypoint_arguments, add_match_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", action="append", required=True, metavar="DIR",
                        help="a folder of sequence folders, or one sequence folder (repeat for several)")
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="model SPEC to compare (repeat; default: descnet-hardnet-csa, the shipped default); "
                             "opencv-sift / opencv-rootsift name the baselines")
    parser.add_argument("--no-baselines", action="store_true",
                        help="do not add OpenCV SIFT and RootSIFT to the models")
    parser.add_argument("--kind", choices=("illumination", "viewpoint"), help="only these sequences")
    parser.add_argument("--sequence", action="append", metavar="NAME", help="only these sequences (repeat)")
    add_keypoint_arguments(parser)
    add_match_arguments(parser, fixed_geometry=True)
    parser.add_argument("--out", default="results/eval/sequences", metavar="DIR",
                        help="folder for sequences.json and mma.png (default: results/eval/sequences)")
    add_benchmark_arguments(parser, batch_size=False)


def run(args: argparse.Namespace) -> int:
    from descnet.cli.common import keypoint_options, match_options, output_dir
    from descnet.eval.sequences import benchmark_sequences, format_summary
    from descnet.features.inference import check_device

    check_device(args.device, "--device")
    output_dir(args.out)  # a file there, or a file on its path: refused before any work
    run = benchmark_sequences(args.root, args.out, models=args.model, baselines=not args.no_baselines,
                              kind=args.kind, names=args.sequence, keypoint_options=keypoint_options(args),
                              match_options=match_options(args, "homography"), device=args.device, overwrite=args.overwrite,
                              progress=not args.quiet)
    if run.kept:
        print(run.kept_note())
    print(format_summary(run.payload["summary"]))
    for warning in run.payload.get("warnings", {}).values():
        print(warning)
    print(run.written_note())
    return 0
