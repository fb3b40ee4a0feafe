"""Structure from motion: photos, or a features file and a matches file -> a COLMAP sparse model (through pycolmap).

Without --features and --matches: the whole pipeline on the photos of IMAGES, with COLMAP's own choices (its SIFT
detection, up to 8192 locations per image; mutual nearest neighbours with ratio 0.8 on all pairs; --model
describes): --out DIR gets features.h5, matches.h5 and colmap/ (the files below), with a progress bar and time
estimate for every stage.

With --features and --matches: imports the images of the pair list from IMAGES (the folder they were described from), their keypoints
(+0.5 px: COLMAP's origin is the corner of the first pixel) and all raw matches into a new COLMAP database,
runs COLMAP's geometric verification and incremental mapping, keeps the model with the most images.
Writes into --out DIR, as one set (all new, or after a failure or kill all as before; one run at a time):
  database.db   the COLMAP database (images, cameras, keypoints, matches, verified two-view geometries)
  model/        the sparse model in COLMAP's binary format (cameras, images, points3D, frames, rigs)
  summary.json  registered images, 3D points, observations, track length, reprojection error, pairs and
                matches before/after verification, seconds per stage, settings; summary.md: the same as a table
With --ground-truth PATH (a Strecha scene folder or a COLMAP model), the model is aligned to the ground-truth
cameras and summary.json/summary.md and the printout also give the camera errors (eval sfm --help).
Needs pycolmap: pip install 'descnet[sfm]'. Mapping uses one thread and seed 0 by default, so a run repeats
exactly (--threads N: faster on large scenes, not repeatable).

examples:
  descnet reconstruct photos/ --out sfm                       # describe, match, reconstruct
  descnet describe photos/ --model runs/csa --max-keypoints 8192 --out sfm/features.h5
  descnet pairs sfm/features.h5 --out sfm/pairs.txt
  descnet match --features sfm/features.h5 --pairs sfm/pairs.txt --out sfm/matches.h5   # the model's own matcher
  descnet reconstruct photos/ --features sfm/features.h5 --matches sfm/matches.h5 --out sfm/colmap
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from descnet.cli.common import add_keypoint_arguments, add_match_arguments, add_model_arguments, add_quiet
    from descnet.features.options import COLMAP_KEYPOINTS, COLMAP_MATCHING  # COLMAP's SIFT detection, count, matcher

    parser.add_argument("images", metavar="IMAGES", help="the image folder (the features were computed from)")
    parser.add_argument("--features", metavar="FEATURES.h5",
                        help="features file (descnet's or hloc's); without it and --matches: describe and match IMAGES")
    parser.add_argument("--matches", metavar="MATCHES.h5", help="matches file (descnet's or hloc's)")
    parser.add_argument("--pairs", metavar="PAIRS.txt",
                        help="use only these pairs (default: every pair of --matches, or all pairs of IMAGES)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for database.db, model/, summary.json")
    group = parser.add_argument_group("from photos (without --features and --matches)")
    add_model_arguments(group)
    add_keypoint_arguments(group, max_keypoints=COLMAP_KEYPOINTS.max_keypoints, detector=COLMAP_KEYPOINTS.detector)
    # without --matcher/--ratio the model's recommended matcher; COLMAP's smnn 0.8 for models without one
    add_match_arguments(group, matcher=COLMAP_MATCHING.matcher, ratio=COLMAP_MATCHING.ratio,
                        geometry=COLMAP_MATCHING.geometry, fixed_geometry=True, recommended=True)
    parser.add_argument("--ground-truth", metavar="PATH",
                        help="ground-truth cameras (a Strecha scene folder or a COLMAP model): report camera errors")
    add_sfm_arguments(parser)
    add_quiet(parser)


def add_sfm_arguments(parser: argparse.ArgumentParser) -> None:
    """COLMAP options shared by ``reconstruct`` and ``eval sfm``."""
    from descnet.geometry.colmap import CAMERA_MODES

    parser.add_argument("--camera-mode", choices=tuple(CAMERA_MODES), default="auto",
                        help="cameras: auto (COLMAP's; shared when image size and EXIF agree), single, per-folder, "
                             "per-image (default: auto)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="threads of the incremental mapper (default: 1, which makes runs repeat exactly)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of COLMAP's RANSAC and mapper (default: 0)")
    parser.add_argument("--verbose", action="store_true", help="show COLMAP's log")


def sfm_options(args: argparse.Namespace):
    from descnet.geometry.colmap import SfmOptions

    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    return SfmOptions(camera_mode=args.camera_mode, threads=args.threads, seed=args.seed, verbose=args.verbose)


def run(args: argparse.Namespace) -> int:
    from descnet.cli.common import describe_matching, keypoint_options, model_match_options, output_dir
    from descnet.geometry.colmap import format_table, no_model_reason, reconstruct
    from descnet.features.pairs import read_pairs

    if (args.features is None) != (args.matches is None):
        raise ValueError("give --features and --matches together, or neither (to describe and match IMAGES)")
    out = output_dir(args.out)
    pairs = read_pairs(args.pairs) if args.pairs else None
    truth = None
    if args.ground_truth:
        from descnet.geometry.cameras import read_ground_truth

        truth = read_ground_truth(args.ground_truth)
    if args.features is None:
        from descnet.features.inference import check_device
        from descnet.geometry.pipeline import reconstruct_images

        check_device(args.device, "--device")
        from descnet.features.options import COLMAP_MATCHING

        matching, origin = model_match_options(args, args.model, COLMAP_MATCHING.geometry, COLMAP_MATCHING.matcher,
                                               COLMAP_MATCHING.ratio)
        summary = reconstruct_images(args.images, out, model=args.model, pairs=pairs,
                                     keypoint_options=keypoint_options(args), match_options=matching,
                                     options=sfm_options(args), device=args.device, progress=not args.quiet,
                                     ground_truth=truth)
        label = args.model
        print(f"matching: {describe_matching(matching, origin)}")
        print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in summary.seconds.items()))
        out = out / "colmap"
        features = [out.parent / "features.h5", out.parent / "matches.h5"]
    else:
        summary = reconstruct(args.images, args.features, args.matches, out, pairs=pairs, options=sfm_options(args),
                              label=str(args.features), progress=not args.quiet, ground_truth=truth)
        label = str(args.features)
        features = []
    if summary.cameras is not None:
        from descnet.geometry.alignment import format_camera_table

        print(f"camera errors against {args.ground_truth}:")
        print(format_camera_table({label: summary.cameras}))
        print()
    print(format_table({label: summary}))
    wrote = features + [out / "database.db", out / "model", out / "summary.json", out / "summary.md"]
    if summary.registered == 0:
        print(f"COLMAP made no model ({summary.verified_pairs} of {summary.pairs} pairs verified): "
              f"{no_model_reason(summary)}")
        print(f"wrote {', '.join(str(p) for p in wrote if p.name != 'model')}")
        return 1
    print(f"wrote {', '.join(map(str, wrote))}")
    return 0
