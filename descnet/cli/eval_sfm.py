"""Compare descriptors by structure from motion on one image folder (hloc's comparison), with COLMAP.

Every descriptor describes the same keypoints (detected once: SIFT, up to --max-keypoints), matches the same
pairs (all, or --pairs) with the same matcher, and COLMAP (pycolmap) verifies and maps each set of matches;
COLMAP's own SIFT pipeline is the reference row. The defaults follow COLMAP's: 8192 keypoints, mutual
nearest neighbours with ratio test 0.8. OpenCV's RootSIFT on the same keypoints is added unless
--no-baselines. Prints a table: registered images, 3D points, observations, track length, reprojection
error, verified pairs, inlier matches, seconds.

Writes --out DIR: DIR/sfm.json (settings, environment, every row), DIR/sfm.md (the table), and per row
DIR/<row>/features.h5, matches.h5 (reused by a rerun) and DIR/<row>/colmap/ (database, model, summary);
DIR/colmap-sift/. Needs pycolmap: pip install 'descnet[sfm]'.

examples:
  descnet eval sfm ../shared/data/sfm/sacre_coeur --model runs/csa --out results/eval/sfm
  descnet eval sfm photos/ --model tfeat:tfeat-liberty.params --model runs/csa --no-colmap --threads 4
"""
from __future__ import annotations

import argparse

from descnet.features.options import DETECTOR_NAMES, MATCHERS, KeypointOptions, MatchOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from descnet.cli.common import add_quiet
    from descnet.cli.reconstruct import add_sfm_arguments

    parser.add_argument("images", metavar="IMAGES", help="the image folder")
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="model SPEC to compare (repeat; default: descnet-hardnet-csa, the shipped default); "
                             "opencv-sift / opencv-rootsift name OpenCV's descriptors")
    parser.add_argument("--no-baselines", action="store_true", help="do not add OpenCV's RootSIFT")
    parser.add_argument("--no-colmap", action="store_true", help="do not add COLMAP's own SIFT pipeline")
    parser.add_argument("--image-list", metavar="FILE", help="only the images named in FILE (relative to IMAGES)")
    parser.add_argument("--pairs", metavar="PAIRS.txt", help="the pairs to match (default: all pairs)")
    parser.add_argument("--detector", default="sift",
                        help=f"OpenCV detector for the keypoints: {', '.join(DETECTOR_NAMES)} (default: sift)")
    parser.add_argument("--max-keypoints", type=int, default=8192, metavar="N",
                        help="strongest N keypoints per image, and COLMAP's SIFT count (default: 8192, COLMAP's)")
    parser.add_argument("--mr-size", type=float, default=None, metavar="X",
                        help="region half-side per unit of keypoint size (default: the detector's, 6 for sift)")
    parser.add_argument("--matcher", choices=MATCHERS, default="smnn",
                        help="matcher (default: smnn, mutual nearest neighbours with the ratio test)")
    parser.add_argument("--ratio", type=float, default=0.8, help="ratio-test threshold (default: 0.8, COLMAP's)")
    parser.add_argument("--device", default="cpu", help="torch device for the models (default: cpu)")
    parser.add_argument("--out", default="results/eval/sfm", metavar="DIR",
                        help="output folder (default: results/eval/sfm)")
    add_sfm_arguments(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from descnet.cli.common import output_dir
    from descnet.cli.reconstruct import sfm_options
    from descnet.colmap import format_table
    from descnet.eval.sequences import label_models
    from descnet.eval.sfm import compare_sfm
    from descnet.features.inference import check_device
    from descnet.features.pairs import read_pairs
    from descnet.models.pretrained import DEFAULT_MODEL

    check_device(args.device, "--device")
    keypoint_options = KeypointOptions(detector=args.detector, max_keypoints=args.max_keypoints, mr_size=args.mr_size)
    match_options = MatchOptions(matcher=args.matcher, ratio=None if args.matcher == "mnn" else args.ratio,
                                 geometry="fundamental")
    models = label_models(dict.fromkeys((args.model or [DEFAULT_MODEL])
                                        + ([] if args.no_baselines else ["opencv-rootsift"])))
    out = output_dir(args.out)
    rows = compare_sfm(args.images, models, out, image_list=args.image_list,
                       pairs=read_pairs(args.pairs) if args.pairs else None, colmap_sift=not args.no_colmap,
                       keypoint_options=keypoint_options, match_options=match_options, options=sfm_options(args),
                       device=args.device, progress=not args.quiet)
    print(format_table(rows))
    print(f"wrote {out / 'sfm.json'}, {out / 'sfm.md'}")
    return 0
