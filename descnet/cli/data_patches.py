"""Build HPatches-style patch sets (hpatches-release layout, optionally Brown) from image sequences.

Regions are detected in image 1 (DoG by default; Hessian and Harris on request), sized 5x the detected
scale sigma (--mr-size 2.5: half-side 2.5 x the keypoint size 2 sigma, the unit of describe/match), given one
dominant orientation, merged when they overlap by more than 50%, and kept when they lie
inside every image. Each target image k gets three jittered copies of every region (easy, hard, tough
affine noise), mapped through the ground-truth homography and sampled anti-aliased into 65x65 patches.

Output:
  OUT/hpatches-release/<sequence>/{ref,e1..e5,h1..h5,t1..t5}.png   (row i = the same scene point)
  OUT/<NAME>/   with --brown NAME: Brown layout (patchesNNNN.bmp, info.txt, interest.txt, m50 pairs)
  OUT/patchify.json                                                (every parameter, rows per sequence)
  OUT/tasks/        HPatches task files for `descnet eval hpatches --root OUT/hpatches-release`: split full
                    (every sequence) and, with --test-sequences or --test-fraction, split custom; GENERATED

A jitter level is ROTATION,SCALE,ANISOTROPY,TRANSLATION (degrees, then fractions; see
descnet.data.patchify.Jitter) or key=value pairs overriding the defaults, e.g. --jitter-hard translation=0.3,
or 'none'. Defaults: easy 10,0.15,0.15,0.10  hard 20,0.32,0.32,0.20  tough 30,0.5,0.5,0.27.

examples:
  descnet data patches --sequences data/hpatches-sequences-release --out data/my-hpatches
  descnet data patches --sequences data/synth --out data/synth-patches --brown synthetic --max-points 500
  descnet data patches --sequences data/synth --out data/p --detectors dog,hessian,harris --image-scale 0.5
  descnet data patches --sequences data/synth --out data/p --test-fraction 0.3
  descnet eval hpatches --root data/p/hpatches-release --split custom --model hardnet:hardnet.pth
"""
from __future__ import annotations

import argparse

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sequences", required=True, metavar="DIR",
                        help="a folder of sequence folders (HPatches or Oxford layout) or one sequence folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (new, empty, or an earlier "
                        "patch set with --overwrite)")
    parser.add_argument("--brown", metavar="NAME", help="also write the Brown (UBC Phototour) layout to OUT/NAME")
    parser.add_argument("--max-points", type=int, default=2000, metavar="N",
                        help="rows per sequence, strongest first; 0 = all (default: 2000)")
    parser.add_argument("--detectors", default="dog", metavar="LIST",
                        help="comma-separated: dog, hessian, harris (default: dog)")
    region = parser.add_mutually_exclusive_group()
    region.add_argument("--mr-size", type=float, default=None, metavar="X",
                        help="region half-side per unit of keypoint size (size = 2 x the detected scale sigma, "
                             "OpenCV's SIFT KeyPoint.size), the unit of describe and match (default: 2.5 = 5 sigma, "
                             "HPatches')")
    # before descnet 0.2: the half-side in units of sigma, i.e. 2 x --mr-size
    region.add_argument("--magnification", type=float, default=None, metavar="M", help=argparse.SUPPRESS)
    parser.add_argument("--min-sigma", type=float, default=1.6, metavar="S",
                        help="drop detections with a smaller scale, pixels (default: 1.6)")
    parser.add_argument("--max-overlap", type=float, default=0.5, metavar="F",
                        help="merge regions overlapping more than this (IoU; default: 0.5)")
    parser.add_argument("--image-scale", type=float, default=1.0, metavar="F",
                        help="resize the images by F first, e.g. 0.5 to be 4x faster (default: 1)")
    parser.add_argument("--upright", action="store_true", help="no orientation estimation")
    parser.add_argument("--jitter-easy", metavar="SPEC", help="easy (e) jitter, see above")
    parser.add_argument("--jitter-hard", metavar="SPEC", help="hard (h) jitter")
    parser.add_argument("--jitter-tough", metavar="SPEC", help="tough (t) jitter")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the jitter and pairs (default: 0)")
    parser.add_argument("--brown-types", default="ref,e,h", metavar="LIST",
                        help="patch types a Brown point draws from: ref and level letters (default: ref,e,h)")
    parser.add_argument("--brown-per-point", type=int, default=4, metavar="K",
                        help="Brown patches per scene point (default: 4)")
    parser.add_argument("--brown-pairs", type=int, default=100_000, metavar="M",
                        help="Brown test pairs, half matching (default: 100000)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--test-sequences", nargs="+", metavar="NAME",
                       help="test sequences of the split 'custom' written to OUT/tasks (train = the others)")
    split.add_argument("--test-fraction", type=float, metavar="F",
                       help="draw this fraction of the sequences (with --seed) as the test sequences of 'custom'")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier patch set in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import time

    from descnet.cli.common import output_dir
    from descnet.data.patchify import (JITTER_LEVELS, BrownOptions, PatchDatasetOptions, PatchifyOptions,
                                       parse_jitter, write_patch_dataset)

    output_dir(args.out)  # a file there, or a file on its path: refused before any work
    jitter = {level: parse_jitter(text, JITTER_LEVELS[level], f"--jitter-{word}") if text is not None
              else JITTER_LEVELS[level]
              for level, word, text in (("e", "easy", args.jitter_easy), ("h", "hard", args.jitter_hard),
                                        ("t", "tough", args.jitter_tough))}
    if args.max_points < 0:
        raise ValueError(f"--max-points must be >= 0 (0 = all), got {args.max_points}")
    if args.mr_size is not None and args.mr_size <= 0:
        raise ValueError(f"--mr-size must be positive, got {args.mr_size}")
    brown = BrownOptions(args.brown, _names(args.brown_types), args.brown_per_point,
                         args.brown_pairs) if args.brown is not None else None
    options = PatchDatasetOptions(
        PatchifyOptions(detectors=_names(args.detectors), max_points=args.max_points or None,
                        magnification=2.0 * args.mr_size if args.mr_size is not None else (args.magnification or 5.0),
                        min_sigma=args.min_sigma, max_overlap=args.max_overlap, image_scale=args.image_scale,
                        upright=args.upright, jitter=jitter),
        seed=args.seed, brown=brown, test_fraction=args.test_fraction,
        test_sequences=tuple(args.test_sequences) if args.test_sequences is not None else None)
    start = time.perf_counter()
    summary = write_patch_dataset(args.sequences, args.out, options, overwrite=args.overwrite,
                                  progress=not args.quiet)
    rows = summary["rows"]
    print(f"wrote {sum(rows.values())} patch rows from {len(rows)} sequences to {args.out}/hpatches-release "
          f"in {time.perf_counter() - start:.1f} s")
    for name, why in summary["skipped"].items():
        print(f"skipped {name}: {why}")
    for name, info in summary["tasks"]["splits"].items():
        print(f"wrote GENERATED task files {args.out}/tasks: split {name} ({info['test_sequences']} test "
              f"sequences, {info['queries']} retrieval queries, {info['distractors']} distractors)")
    for warning in summary["tasks"]["warnings"]:
        print(f"warning: {warning}")
    if "brown" in summary:
        b = summary["brown"]
        print(f"wrote Brown layout {args.out}/{b['name']}: {b['patches']} patches of {b['points']} points, "
              f"{b['pairs']} pairs")
    return 0


def _names(text: str) -> tuple[str, ...]:
    """``'dog, hessian'`` -> ``('dog', 'hessian')``."""
    return tuple(t.strip() for t in text.split(",") if t.strip())
