"""Structure from motion: a features file and a matches file -> a COLMAP sparse model (through pycolmap).

Imports the images of the pair list from IMAGES (the folder they were described from), their keypoints
(+0.5 px: COLMAP's origin is the corner of the first pixel) and all raw matches into a new COLMAP database,
runs COLMAP's geometric verification and incremental mapping, keeps the model with the most images.
Writes into --out DIR:
  database.db   the COLMAP database (images, cameras, keypoints, matches, verified two-view geometries)
  model/        the sparse model in COLMAP's binary format (cameras, images, points3D, frames, rigs)
  summary.json  registered images, 3D points, observations, track length, reprojection error, pairs and
                matches before/after verification, seconds per stage, settings; summary.md: the same as a table
With --ground-truth PATH (a Strecha scene folder or a COLMAP model), the model is aligned to the ground-truth
cameras and summary.json/summary.md and the printout also give the camera errors (eval sfm --help).
Needs pycolmap: pip install 'descnet[sfm]'. Mapping uses one thread and seed 0 by default, so a run repeats
exactly (--threads N: faster on large scenes, not repeatable).

examples:
  descnet describe photos/ --model runs/csa --max-keypoints 8192 --out sfm/features.h5
  descnet pairs sfm/features.h5 --out sfm/pairs.txt
  descnet match --features sfm/features.h5 --pairs sfm/pairs.txt --matcher smnn --ratio 0.8 --out sfm/matches.h5
  descnet reconstruct photos/ --features sfm/features.h5 --matches sfm/matches.h5 --out sfm/colmap
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from descnet.cli.common import add_quiet

    parser.add_argument("images", metavar="IMAGES", help="the image folder the features were computed from")
    parser.add_argument("--features", required=True, metavar="FEATURES.h5", help="features file (descnet's or hloc's)")
    parser.add_argument("--matches", required=True, metavar="MATCHES.h5", help="matches file (descnet's or hloc's)")
    parser.add_argument("--pairs", metavar="PAIRS.txt", help="use only these pairs (default: every pair of --matches)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for database.db, model/, summary.json")
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
    from descnet.cli.common import output_dir
    from descnet.geometry.colmap import format_table, reconstruct
    from descnet.features.pairs import read_pairs

    out = output_dir(args.out)
    pairs = read_pairs(args.pairs) if args.pairs else None
    truth = None
    if args.ground_truth:
        from descnet.geometry.cameras import read_ground_truth

        truth = read_ground_truth(args.ground_truth)
    summary = reconstruct(args.images, args.features, args.matches, out, pairs=pairs, options=sfm_options(args),
                          label=str(args.features), progress=not args.quiet, ground_truth=truth)
    if summary.cameras is not None:
        from descnet.geometry.alignment import format_camera_table

        print(f"camera errors against {args.ground_truth}:")
        print(format_camera_table({args.features: summary.cameras}))
        print()
    print(format_table({args.features: summary}))
    wrote = [out / "database.db", out / "model", out / "summary.json", out / "summary.md"]
    if summary.registered == 0:
        print(f"COLMAP made no model ({summary.verified_pairs} of {summary.pairs} pairs verified); "
              f"wrote {', '.join(str(p) for p in wrote if p.name != 'model')}")
        return 1
    print(f"wrote {', '.join(map(str, wrote))}")
    return 0
