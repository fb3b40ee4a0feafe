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

Ground truth: with --ground-truth PATH (a Strecha scene folder or a COLMAP model), or when IMAGES is the images/
folder of a Strecha scene (its gt_dense_cameras/ beside it is found and used; the run says so), every
reconstruction is aligned to the ground-truth cameras (a robust similarity on the camera centres) and the
camera errors lead the printout: registered images, rotation error (degrees) and camera-centre error
(ground-truth units) as median / mean, the share of images within 1/2/5 degrees and 1/2/5 % of the ground
truth's extent, and the mAA of relative poses (1..10 degrees).

examples:
  descnet eval sfm ../shared/data/sfm/sacre_coeur --model runs/csa --out results/eval/sfm
  descnet eval sfm photos/ --model tfeat:tfeat-liberty.params --model runs/csa --no-colmap --threads 4
  descnet eval sfm ../shared/data/strecha/fountain-P11/images --out results/eval/sfm-fountain
"""
from __future__ import annotations

import argparse
from pathlib import Path

from descnet.cli.common import add_keypoint_arguments, add_match_arguments, add_quiet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from descnet.cli.reconstruct import add_sfm_arguments

    parser.add_argument("images", metavar="IMAGES", help="the image folder")
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="model SPEC to compare (repeat; default: descnet-hardnet-csa, the shipped default); "
                             "opencv-sift / opencv-rootsift name OpenCV's descriptors")
    parser.add_argument("--no-baselines", action="store_true", help="do not add OpenCV's RootSIFT")
    parser.add_argument("--no-colmap", action="store_true", help="do not add COLMAP's own SIFT pipeline")
    parser.add_argument("--image-list", metavar="FILE", help="only the images named in FILE (relative to IMAGES)")
    parser.add_argument("--pairs", metavar="PAIRS.txt", help="the pairs to match (default: all pairs)")
    add_keypoint_arguments(parser, max_keypoints=8192)  # COLMAP's SIFT count, also its SIFT pipeline's
    add_match_arguments(parser, matcher="smnn", ratio=0.8, geometry="fundamental", fixed_geometry=True)  # COLMAP's
    parser.add_argument("--device", default="cpu", help="torch device for the models (default: cpu)")
    parser.add_argument("--out", default="results/eval/sfm", metavar="DIR",
                        help="output folder (default: results/eval/sfm)")
    parser.add_argument("--ground-truth", metavar="PATH",
                        help="ground-truth cameras: a Strecha scene folder or a COLMAP model (default: the Strecha "
                             "scene IMAGES belongs to, if any)")
    add_sfm_arguments(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from descnet.cli.common import keypoint_options, match_options, output_dir
    from descnet.cli.reconstruct import sfm_options
    from descnet.geometry.colmap import format_table
    from descnet.eval.sequences import label_models
    from descnet.eval.sfm import compare_sfm
    from descnet.features.inference import check_device
    from descnet.features.pairs import read_pairs
    from descnet.models.pretrained import DEFAULT_MODEL

    check_device(args.device, "--device")
    if args.matcher == "mnn":  # the default ratio (COLMAP's 0.8) belongs to the ratio-test matchers
        args.ratio = None
    models = label_models(dict.fromkeys((args.model or [DEFAULT_MODEL])
                                        + ([] if args.no_baselines else ["opencv-rootsift"])))
    out = output_dir(args.out)
    ground_truth = args.ground_truth
    if ground_truth is None:
        from descnet.geometry.cameras import STRECHA_CAMERAS, strecha_scene_root

        scene = strecha_scene_root(args.images)
        if scene is not None and scene != Path(args.images):
            ground_truth = scene / STRECHA_CAMERAS
            print(f"ground truth: {ground_truth} (the Strecha scene of {args.images}; --ground-truth PATH chooses "
                  "another)")
    rows = compare_sfm(args.images, models, out, image_list=args.image_list,
                       pairs=read_pairs(args.pairs) if args.pairs else None, colmap_sift=not args.no_colmap,
                       keypoint_options=keypoint_options(args), match_options=match_options(args, "fundamental"), options=sfm_options(args),
                       device=args.device, progress=not args.quiet, ground_truth=ground_truth)
    if ground_truth is not None:
        from descnet.geometry.alignment import format_camera_table

        print(f"camera errors against {ground_truth}:")
        print(format_camera_table({label: s.cameras for label, s in rows.items()}))
        print()
    print(format_table(rows))
    print(f"wrote {out / 'sfm.json'}, {out / 'sfm.md'}")
    return 0
