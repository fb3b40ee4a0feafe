"""Compare descriptors by structure from motion on one image folder (hloc's comparison), with COLMAP.

Every descriptor describes the same keypoints (detected once: COLMAP's SIFT detection by default, up to
--max-keypoints locations), matches the same pairs (all, or --pairs), and COLMAP (pycolmap) verifies and maps
each set of matches; COLMAP's own SIFT pipeline is the reference row. 8192 keypoints by default (COLMAP's). Each
descriptor is matched with its own recommended matcher (descnet's weights: the one in their model card; OpenCV
SIFT/RootSIFT and models without one: COLMAP's mutual nearest neighbours with ratio test 0.8) unless
--matcher/--ratio set one for every row; the printout and sfm.json say which setting each row used. OpenCV's
RootSIFT on the same keypoints is added unless
--no-baselines. Prints a table: registered images, 3D points, observations, track length, reprojection
error, verified pairs, inlier matches, seconds.

Writes --out DIR: DIR/sfm.json (settings, environment, every row), DIR/sfm.md (the table), and per row
DIR/<row>/features.h5, matches.h5 (reused by a rerun when made with the same model weights, keypoint settings
and images; refused otherwise: --overwrite starts them afresh) and DIR/<row>/colmap/ (database, model,
summary); DIR/colmap-sift/. A rerun adds its rows to the earlier ones of the same settings (--overwrite drops
them). Needs pycolmap: pip install 'descnet[sfm]'.

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
    from descnet.features.options import COLMAP_KEYPOINTS, COLMAP_MATCHING  # COLMAP's SIFT detection, count, matcher

    parser.add_argument("images", metavar="IMAGES", help="the image folder")
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="model SPEC to compare (repeat; default: descnet-hardnet-csa, the shipped default); "
                             "opencv-sift / opencv-rootsift name OpenCV's descriptors")
    parser.add_argument("--no-baselines", action="store_true", help="do not add OpenCV's RootSIFT")
    parser.add_argument("--no-colmap", action="store_true", help="do not add COLMAP's own SIFT pipeline")
    parser.add_argument("--image-list", metavar="FILE", help="only the images named in FILE (relative to IMAGES)")
    parser.add_argument("--pairs", metavar="PAIRS.txt", help="the pairs to match (default: all pairs)")
    add_keypoint_arguments(parser, max_keypoints=COLMAP_KEYPOINTS.max_keypoints, detector=COLMAP_KEYPOINTS.detector)
    # without --matcher/--ratio each model's recommended matcher; COLMAP's smnn 0.8 for models without one
    add_match_arguments(parser, matcher=COLMAP_MATCHING.matcher, ratio=COLMAP_MATCHING.ratio,
                        geometry=COLMAP_MATCHING.geometry, fixed_geometry=True, recommended=True)
    parser.add_argument("--device", default="cpu", help="torch device for the models (default: cpu)")
    parser.add_argument("--out", default="results/eval/sfm", metavar="DIR",
                        help="output folder (default: results/eval/sfm)")
    parser.add_argument("--overwrite", action="store_true",
                        help="describe and match every row afresh and drop the rows of earlier runs in --out")
    parser.add_argument("--ground-truth", metavar="PATH",
                        help="ground-truth cameras: a Strecha scene folder or a COLMAP model (default: the Strecha "
                             "scene IMAGES belongs to, if any)")
    add_sfm_arguments(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from descnet.cli.common import keypoint_options, match_options, output_dir
    from descnet.features.options import COLMAP_MATCHING
    from descnet.cli.reconstruct import sfm_options
    from descnet.geometry.colmap import format_table
    from descnet.eval.sequences import label_models
    from descnet.eval.sfm import compare_sfm, matching_note
    from descnet.io import read_json
    from descnet.features.inference import check_device
    from descnet.features.pairs import read_pairs
    from descnet.models.pretrained import DEFAULT_MODEL

    check_device(args.device, "--device")
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
    # models without a recommended matcher: COLMAP's (smnn 0.8); the estimator and threshold as given
    fallback = match_options(argparse.Namespace(matcher=COLMAP_MATCHING.matcher, ratio=COLMAP_MATCHING.ratio,
                                                estimator=args.estimator, threshold=args.threshold),
                             COLMAP_MATCHING.geometry)
    rows = compare_sfm(args.images, models, out, image_list=args.image_list,
                       pairs=read_pairs(args.pairs) if args.pairs else None, colmap_sift=not args.no_colmap,
                       keypoint_options=keypoint_options(args), match_options=fallback, matcher=args.matcher,
                       ratio=args.ratio, options=sfm_options(args), device=args.device, progress=not args.quiet,
                       overwrite=args.overwrite, ground_truth=ground_truth)
    if ground_truth is not None:
        from descnet.geometry.alignment import format_camera_table

        print(f"camera errors against {ground_truth}:")
        print(format_camera_table({label: s.cameras for label, s in rows.items()}))
        print()
    print(format_table(rows))
    print(matching_note(read_json(out / "sfm.json")["settings"]["matching"]))
    print(f"wrote {out / 'sfm.json'}, {out / 'sfm.md'}")
    return 0
