"""Relative pose of image pairs against ground truth: SuperGlue's AUC@5/10/20, descriptors side by side.

Inputs (one of):
  SCENE                        a Strecha scene folder (images/, gt_dense_cameras/): all pairs of its images,
                               or with --max-gap N the pairs at most N apart in name order
  --pairs FILE --images DIR    SuperGlue's pairs file with ground truth (name0 name1 rot0 rot1 K0 K1 T_0to1;
                               EXIF rotations applied as SuperGlue does)
  --cameras MODEL --images DIR ground-truth cameras in a COLMAP model; pairs as for a scene

Every descriptor describes the same keypoints (detected once per image: SIFT, up to --max-keypoints) on the
images scaled by --scale (default 0.5, intrinsics scaled with them). Each descriptor is matched with its own
recommended matcher (descnet's weights: the one in their model card; OpenCV SIFT/RootSIFT and models without
one: mutual nearest neighbours with Lowe's ratio test at 0.8) unless --matcher/--ratio set one for every row;
the table's matcher column says which each row used. OpenCV's SIFT and RootSIFT are added unless
--no-baselines. Per pair: essential matrix by RANSAC on normalised coordinates (threshold 1 px / mean focal,
confidence 0.99999), the pose error = max(rotation angle, translation-direction angle); per descriptor: AUC of
the pose error at 5/10/20 degrees (failures count as infinite error), precision (normalised symmetric epipolar
error < 5e-4), matching score; and the AUC with MAGSAC instead of RANSAC as a second, labelled column.

Writes --out DIR: pose.json (settings, environment, summaries, every pair), pose.md, pose.tex (tables) and
pose.png (cumulative pose error). A rerun into DIR adds its models (--overwrite starts afresh).

examples:
  descnet eval pose ../shared/data/strecha/fountain-P11
  descnet eval pose ../shared/data/strecha/entry-P10 --max-gap 3 --model descnet-hardnet --out results/eval/pose-entry
  descnet eval pose --pairs ../shared/data/scannet-sample/scannet_sample_pairs_with_gt.txt \\
      --images ../shared/data/scannet-sample/images --out results/eval/pose-scannet
"""
from __future__ import annotations

import argparse

from descnet.cli.common import add_benchmark_arguments, add_keypoint_arguments, add_match_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from descnet.eval.pose import DEFAULT_SCALE, POSE_MATCHING

    parser.add_argument("scene", nargs="?", metavar="SCENE", help="a Strecha scene folder (images/, gt_dense_cameras/)")
    parser.add_argument("--pairs", metavar="FILE", help="SuperGlue's pairs file with ground truth (needs --images)")
    parser.add_argument("--cameras", metavar="MODEL", help="ground-truth cameras: a COLMAP model folder (needs --images)")
    parser.add_argument("--images", metavar="DIR", help="the image folder of --pairs or --cameras")
    parser.add_argument("--max-gap", type=int, metavar="N",
                        help="scene pairs: only images at most N apart in name order (default: all pairs)")
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="model SPEC to compare (repeat; default: descnet-hardnet-csa, the shipped default)")
    parser.add_argument("--no-baselines", action="store_true", help="do not add OpenCV SIFT and RootSIFT")
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE, metavar="S",
                        help=f"resize the images by S in (0, 1], intrinsics with them (default: {DEFAULT_SCALE}; "
                             "1 = full resolution)")
    add_keypoint_arguments(parser)
    # without --matcher/--ratio each model's recommended matcher; Lowe's smnn 0.8 for models without one
    add_match_arguments(parser, matcher=POSE_MATCHING.matcher, ratio=POSE_MATCHING.ratio, geometry="fundamental",
                        fixed_geometry=True, recommended=True, verification=False)
    parser.add_argument("--out", default="results/eval/pose", metavar="DIR",
                        help="folder for pose.json, pose.md, pose.tex, pose.png (default: results/eval/pose)")
    add_benchmark_arguments(parser, batch_size=False)


def run(args: argparse.Namespace) -> int:
    from descnet.cli.common import keypoint_options, model_match_options, output_dir
    from descnet.eval.pose import POSE_MATCHING, benchmark_pose, format_pose_table
    from descnet.features.inference import check_device

    check_device(args.device, "--device")
    if not 0 < args.scale <= 1:
        raise ValueError(f"--scale must be in (0, 1], got {args.scale}")
    output_dir(args.out)
    # explicit --matcher/--ratio checked before any work, naming the argument
    model_match_options(args, None, "fundamental", POSE_MATCHING.matcher, POSE_MATCHING.ratio)
    run = benchmark_pose(args.out, args.scene, pairs=args.pairs, cameras=args.cameras, images=args.images,
                         max_gap=args.max_gap, models=args.model, baselines=not args.no_baselines, scale=args.scale,
                         keypoint_options=keypoint_options(args), matcher=args.matcher, ratio=args.ratio,
                         device=args.device, overwrite=args.overwrite, progress=not args.quiet)
    if run.kept:
        print(run.kept_note())
    notes = [w for s in run.payload["models"].values() for w in s.get("warnings", [])]
    print(format_pose_table(run.payload["models"], notes))
    seconds = {label: s["seconds"] for label, s in run.payload["models"].items() if "seconds" in s}
    if seconds:
        pose = sum(s["pose"] for s in seconds.values())
        print(f"pose evaluation (given matches, both estimators): {pose:.2f} s for "
              f"{len(seconds) * len(run.payload['setting']['pairs_evaluated'])} pairs")
    print(run.written_note())
    return 0
