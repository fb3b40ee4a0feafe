"""Match images: two images for a quick look, or every pair of a pair list from a features file.

Two images (descnet match IMAGE1 IMAGE2 --out DIR): describe their keypoints, match the descriptors,
verify them with a robustly fitted geometry matrix, and write into DIR:
  features.h5   both images' keypoints and descriptors    } hloc's layouts (descnet.features.files);
  matches.h5    the pair's matches, inliers and matrix     } hloc and `descnet reconstruct` read them
  matches.png   the two images side by side, inlier matches drawn (at most --max-lines, thin lines), the
                caption naming the model, whether it is trained, and the counts
  summary.json  keypoints, matches, inliers, the estimated matrix and the seconds spent per stage

A pair list (descnet match --features FEATURES.h5 --pairs PAIRS.txt --out MATCHES.h5): match every listed
pair with the descriptors of the features file, in one pass, adding to MATCHES.h5 (pairs already in it are
skipped, so an interrupted run resumes; same settings required, or --overwrite). `descnet pairs` makes
exhaustive or sequential lists; any file of 'name0 name1' lines (hloc's) works.

The geometry matrix is a homography (planar scenes, rotations: the default for two images) or a fundamental
matrix (general 3D scenes: the default for pair lists), fitted by OpenCV's findHomography / findFundamentalMat
with MAGSAC by default.

The matcher: --matcher/--ratio when given; else the model's recommended matcher (chosen on its training data,
in its model card: `descnet models --json`), for a pair list the one of the model named in FEATURES.h5;
OpenCV SIFT/RootSIFT get Lowe's ratio test (smnn 0.8); other models mutual nearest neighbours. The summary and
the printout say which setting was used and why.

examples:
  descnet match img1.png img2.png --model tfeat:tfeat-liberty.params --out out/pair
  descnet match a.jpg b.jpg --model runs/csa --matcher snn --ratio 0.9 --geometry fundamental --out out/ab
  descnet match a.png b.png --model opencv-rootsift --keypoints a.kp b.kp --draw-outliers --out out/rootsift
  descnet match --features features.h5 --pairs pairs.txt --out matches.h5
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from descnet.cli.common import add_keypoint_arguments, add_match_arguments, add_model_arguments, add_quiet

    parser.add_argument("images", nargs="*", metavar="IMAGE", help="the two images to match (grey or RGB, 8 or 16 bit)")
    parser.add_argument("--features", metavar="FEATURES.h5", help="match the pairs of --pairs from this features file")
    parser.add_argument("--pairs", metavar="PAIRS.txt", help="pair list: one 'name0 name1' line per pair")
    parser.add_argument("--out", required=True, metavar="DIR|MATCHES.h5",
                        help="two images: folder for features.h5, matches.h5, matches.png, summary.json; "
                             "--pairs: the HDF5 matches file to add to (created if absent)")
    parser.add_argument("--keypoints", nargs=2, metavar=("FILE1", "FILE2"),
                        help="keypoint files ('x y size angle' rows) for IMAGE1 and IMAGE2 instead of detecting")
    parser.add_argument("--keypoints1", help=argparse.SUPPRESS)  # before 0.2: one option per image
    parser.add_argument("--keypoints2", help=argparse.SUPPRESS)
    add_model_arguments(parser)
    add_keypoint_arguments(parser)
    add_match_arguments(parser, geometry=None, recommended=True)
    parser.add_argument("--draw-outliers", action="store_true", help="also draw rejected matches (in red)")
    parser.add_argument("--max-lines", type=int, default=300, metavar="N",
                        help="draw at most N matches, a random subset when there are more (default: 300; 0 = all)")
    parser.add_argument("--overwrite", action="store_true", help="--pairs: start a new --out file instead of adding")
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from descnet.cli.common import keypoint_options, model_match_options
    from descnet.features.inference import check_device
    from descnet.models.pretrained import DEFAULT_MODEL

    check_device(args.device, "--device")
    keypoints = keypoint_options(args)
    pair_list = bool(args.features or args.pairs)
    if args.max_lines < 0:
        raise ValueError(f"--max-lines must be >= 0 (0 = all), got {args.max_lines}")
    if pair_list:
        return _run_pairs(args)
    # without --matcher/--ratio: the model's recommended matcher (model card), else mutual nearest neighbours
    matching = model_match_options(args, args.model or DEFAULT_MODEL, "homography")
    return _run_two(args, keypoints, matching)


def _features_model(features: str) -> str | None:
    """The model named in a features file (the label of the model that described its first image)."""
    from descnet.features.files import list_feature_names, read_feature_info

    names = list_feature_names(features)
    info = read_feature_info(features, names[:1]) if names else {}
    return next((i.get("model") for i in info.values()), None)


def _run_pairs(args: argparse.Namespace) -> int:
    from descnet.cli.common import describe_matching, model_match_options, output_file
    from descnet.features.pairs import read_pairs
    from descnet.features.pipeline import match_to_file

    if not (args.features and args.pairs):
        raise ValueError("give both --features FEATURES.h5 and --pairs PAIRS.txt to match a pair list")
    if args.images:
        raise ValueError(f"{args.images[0]}: give image files or --features/--pairs, not both (a pair list is "
                         "matched from the descriptors of the features file)")
    if args.keypoints or args.keypoints1 or args.keypoints2:
        raise ValueError("--keypoints: a pair list uses the keypoints of the features file")
    # without --matcher/--ratio: the recommended matcher of the model that made the features file
    options, origin = model_match_options(args, _features_model(args.features), "fundamental")
    out = output_file(args.out, "matches.h5")
    report = match_to_file(args.features, read_pairs(args.pairs), out, options=options, overwrite=args.overwrite,
                           progress=not args.quiet)
    if report.skipped:
        print(f"skipped {len(report.skipped)} pair(s) already in {out}")
    print(f"matched {len(report.matched)} pair(s) in {report.seconds:.1f} s ({report.pairs_per_second:.1f} pairs/s): "
          f"{report.mean_matches:.0f} matches, {report.mean_inliers:.0f} inliers per pair "
          f"({options.geometry}, {options.estimator})")
    print(f"matcher: {describe_matching(options, origin)}")
    print(f"wrote {out}" if report.matched else f"{out} already held every pair; nothing to do")
    return 0


def _run_two(args: argparse.Namespace, keypoint_options, matching) -> int:
    from descnet.cli.common import describe_matching, output_dir
    from descnet.features.pipeline import match_pair_to_dir

    if len(args.images) != 2:
        raise ValueError(f"give two images to match (got {len(args.images)}), or --features and --pairs")
    if args.keypoints and (args.keypoints1 or args.keypoints2):
        raise ValueError("--keypoints FILE1 FILE2 replaces --keypoints1/--keypoints2: give one or the other")
    keypoints1, keypoints2 = args.keypoints or (args.keypoints1, args.keypoints2)
    match_options, origin = matching
    out = output_dir(args.out)
    summary = match_pair_to_dir(args.images[0], args.images[1], out, model=args.model, keypoints1=keypoints1,
                                keypoints2=keypoints2, keypoint_options=keypoint_options,
                                match_options=match_options, device=args.device, draw_outliers=args.draw_outliers,
                                max_lines=args.max_lines or None, matcher_origin=origin)
    seconds = ", ".join(f"{k} {v:.2f}" for k, v in summary["seconds"].items())
    files = ", ".join(str(out / name) for name in ("features.h5", "matches.h5", "matches.png", "summary.json"))
    print(f"{summary['caption']}\nmatcher: {describe_matching(match_options, origin)}\nseconds: {seconds}\n"
          f"wrote {files}")
    return 0
