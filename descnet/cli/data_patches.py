"""Build HPatches-style patch sets (hpatches-release layout, optionally Brown) from image sequences, or Brown +
HPatches-style sets from the 3D points of a COLMAP reconstruction (--reconstruction).

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

From a 3D reconstruction (--reconstruction MODEL, a COLMAP model such as `descnet reconstruct`'s OUT/model):
one patch per observation of each 3D point, at the observation's keypoint (--features: the features file the
model was made from; without it a fixed scale from the point's depth and the dominant gradient orientation),
after the track filters (--max-reprojection-error, --min-track-length, --min-view-angle). Writes the Brown
layout OUT/<--brown, default points>/ (info.txt = the 3D point ids) and HPatches-style sequences of 6 images
that see the same points (OUT/hpatches-release, OUT/tasks). Layouts: descnet/data/point_patches.py.

A jitter level is ROTATION,SCALE,ANISOTROPY,TRANSLATION (degrees, then fractions; see
descnet.data.patchify.Jitter) or key=value pairs overriding the defaults, e.g. --jitter-hard translation=0.3,
or 'none'. Defaults: easy 10,0.15,0.15,0.10  hard 20,0.32,0.32,0.20  tough 30,0.5,0.5,0.27.

examples:
  descnet data patches --sequences data/hpatches-sequences-release --out data/my-hpatches
  descnet data patches --sequences data/synth --out data/synth-patches --brown synthetic --max-points 500
  descnet data patches --sequences data/synth --out data/p --detectors dog,hessian,harris --image-scale 0.5
  descnet data patches --sequences data/synth --out data/p --test-fraction 0.3
  descnet eval hpatches --root data/p/hpatches-release --split custom --model hardnet:hardnet.pth
  descnet data patches --reconstruction sfm/model --images photos --features sfm/features.h5 --out data/sfm-patches
  descnet eval brown --root data/sfm-patches --subset points --model descnet-hardnet --model rootsift
"""
from __future__ import annotations

import argparse

def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sequences", metavar="DIR",
                        help="a folder of sequence folders (HPatches or Oxford layout) or one sequence folder")
    source.add_argument("--reconstruction", metavar="MODEL", help="a COLMAP model folder (cameras, images, points3D)")
    parser.add_argument("--images", metavar="DIR", help="--reconstruction: the folder its image names are relative to")
    parser.add_argument("--features", metavar="FEATURES.h5",
                        help="--reconstruction: the features file it was made from (its 2D point i = keypoint i)")
    parser.add_argument("--max-reprojection-error", type=float, default=2.0, metavar="PX",
                        help="--reconstruction: drop observations farther from their projected point (default: 2)")
    parser.add_argument("--min-track-length", type=int, default=3, metavar="N",
                        help="--reconstruction: keep points with at least N observations after that (default: 3)")
    parser.add_argument("--min-view-angle", type=float, default=2.0, metavar="DEG",
                        help="--reconstruction: keep points whose viewing rays spread at least DEG degrees "
                             "(default: 2)")
    parser.add_argument("--fixed-half-side", type=float, default=16.0, metavar="PX",
                        help="--reconstruction without keypoint sizes: patch half-side at the point's median depth "
                             "(default: 16)")
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
    parser.add_argument("--brown-per-point", type=int, default=None, metavar="K",
                        help="Brown patches per scene point (default: 4; --reconstruction: at most K, default 10)")
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

    if args.reconstruction is not None:
        return _run_reconstruction(args)
    if args.images or args.features:
        raise ValueError("--images and --features go with --reconstruction")
    from descnet.data.patchify import BrownOptions, PatchDatasetOptions, PatchifyOptions, write_patch_dataset

    output_dir(args.out)  # a file there, or a file on its path: refused before any work
    jitter = _jitter_and_points(args)
    if args.mr_size is not None and args.mr_size <= 0:
        raise ValueError(f"--mr-size must be positive, got {args.mr_size}")
    per_point = 4 if args.brown_per_point is None else args.brown_per_point
    brown = BrownOptions(args.brown, _names(args.brown_types), per_point,
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


def _run_reconstruction(args: argparse.Namespace) -> int:
    import time

    from descnet.cli.common import output_dir
    from descnet.data.point_patches import PointPatchOptions
    from descnet.geometry.tracks import ReconstructionPatchOptions, TrackFilter, reconstruction_patches

    if not args.images:
        raise ValueError("--reconstruction needs --images DIR, the folder its image names are relative to")
    if args.test_sequences:
        raise ValueError("--test-sequences: the sequences of a reconstruction are named after their images; "
                         "use --test-fraction")
    output_dir(args.out)
    jitter = _jitter_and_points(args)
    per_point = 10 if args.brown_per_point is None else args.brown_per_point
    patches = PointPatchOptions(brown=args.brown or "points", max_per_point=per_point, pairs=args.brown_pairs,
                                max_rows=args.max_points or None, jitter=jitter, test_fraction=args.test_fraction,
                                seed=args.seed)
    options = ReconstructionPatchOptions(
        TrackFilter(args.max_reprojection_error, args.min_track_length, args.min_view_angle),
        mr_size=args.mr_size, fixed_half_side=args.fixed_half_side, patches=patches)
    start = time.perf_counter()
    summary = reconstruction_patches(args.reconstruction, args.images, args.out, features=args.features,
                                     options=options, overwrite=args.overwrite, progress=not args.quiet)
    obs, pts = summary["observations"], summary["points3D"]
    print(f"kept {obs['kept']} of {obs['all']} observations of {pts['kept']} of {pts['all']} 3D points "
          f"(frames: {summary['frames']}) in {time.perf_counter() - start:.1f} s")
    b = summary["brown"]
    print(f"wrote Brown layout {args.out}/{b['name']}: {b['patches']} patches of {b['points']} points, "
          f"{b['pairs']} pairs")
    rows = summary.get("rows") or {}
    print(f"wrote {sum(rows.values())} patch rows in {len(rows)} HPatches-style sequences of 6 images to "
          f"{args.out}/hpatches-release" + ("" if rows else " (no 6 images share enough points)"))
    return 0


def _names(text: str) -> tuple[str, ...]:
    """``'dog, hessian'`` -> ``('dog', 'hessian')``."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _jitter_and_points(args: argparse.Namespace) -> dict:
    """The e/h/t jitter of ``--jitter-easy/hard/tough`` (each level's default where not given); ``--max-points``
    checked."""
    from descnet.data.patchify import JITTER_LEVELS, parse_jitter

    if args.max_points < 0:
        raise ValueError(f"--max-points must be >= 0 (0 = all), got {args.max_points}")
    return {level: parse_jitter(text, JITTER_LEVELS[level], f"--jitter-{word}") if text is not None
            else JITTER_LEVELS[level]
            for level, word, text in (("e", "easy", args.jitter_easy), ("h", "hard", args.jitter_hard),
                                      ("t", "tough", args.jitter_tough))}
