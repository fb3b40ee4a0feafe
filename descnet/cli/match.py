"""Match two images: describe their keypoints, match the descriptors, verify with a robust geometric model.

Writes into --out DIR:
  matches.h5    keypoints, descriptors, matches, inlier mask and the estimated model
                (layout: descnet.features_io; read it with descnet.features_io.read_matches)
  matches.png   the two images side by side, inlier matches drawn, counts in the caption
  summary.json  keypoints, matches, inliers, the estimated model and the seconds spent per stage

The geometric model is a homography (planar scenes, rotations: the default) or a fundamental matrix
(general 3D scenes), fitted by OpenCV's findHomography / findFundamentalMat with MAGSAC by default.

examples:
  descnet match img1.png img2.png --model tfeat:tfeat-liberty.params --out out/pair
  descnet match a.jpg b.jpg --model runs/csa --matcher snn --ratio 0.9 --geometry fundamental --out out/ab
  descnet match a.png b.png --model opencv-rootsift --out out/rootsift
"""
from __future__ import annotations

import argparse

from descnet.cli.describe import add_common_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image1", metavar="IMAGE1", help="first image (grey or RGB, 8 or 16 bit)")
    parser.add_argument("image2", metavar="IMAGE2", help="second image")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for matches.h5, matches.png, summary.json")
    parser.add_argument("--keypoints1", metavar="FILE", help="keypoint file ('x y size angle' rows) for IMAGE1")
    parser.add_argument("--keypoints2", metavar="FILE", help="keypoint file for IMAGE2")
    add_common_arguments(parser)
    parser.add_argument("--matcher", choices=("mnn", "snn", "smnn"), default="mnn",
                        help="mutual nearest neighbours (default), ratio test, or both")
    parser.add_argument("--ratio", type=float, default=None,
                        help="ratio-test threshold for snn/smnn (default: 0.8 snn, 0.95 smnn)")
    parser.add_argument("--geometry", choices=("homography", "fundamental"), default="homography",
                        help="model fitted to the matches (default: homography)")
    parser.add_argument("--estimator", choices=("magsac", "usac", "accurate", "prosac", "ransac", "lmeds"),
                        default="magsac", help="OpenCV robust estimator (default: magsac = cv2.USAC_MAGSAC)")
    parser.add_argument("--threshold", type=float, default=None, metavar="PX",
                        help="inlier threshold in pixels (default: 3 for homography, 1 for fundamental)")
    parser.add_argument("--draw-outliers", action="store_true", help="also draw rejected matches (in red)")


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import cv2

    from descnet.cli.describe import check_common
    from descnet.description import read_image
    from descnet.features_io import write_matches
    from descnet.io import atomic_path, write_json
    from descnet.matching import draw_matches, match_pair
    from descnet.runinfo import environment_info

    check_common(args)
    if args.ratio is not None and args.matcher == "mnn":
        raise ValueError("--ratio applies to --matcher snn or smnn, not mnn")
    if args.threshold is not None and args.threshold <= 0:
        raise ValueError(f"--threshold must be positive, got {args.threshold}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")

    start = time.perf_counter()
    timings: dict[str, float] = {}
    result = match_pair(args.image1, args.image2, model=args.model, keypoints1=args.keypoints1,
                        keypoints2=args.keypoints2, detector=args.detector, max_keypoints=args.max_keypoints or None,
                        mr_size=args.mr_size, method=args.matcher, ratio=args.ratio, geometry=args.geometry,
                        estimator=args.estimator, threshold=args.threshold, device=args.device, timings=timings)
    for image, kp_file, feats in ((args.image1, args.keypoints1, result.features1),
                                  (args.image2, args.keypoints2, result.features2)):
        if len(feats) == 0:
            source = f"keypoint file {kp_file} has no rows" if kp_file else f"the {args.detector} detector found none"
            raise ValueError(f"{image}: no keypoints to match ({source})")

    label = result.features1.info.get("model", args.model)
    n_matches, n_inliers = len(result.matches), int(result.inliers.sum())
    caption = (f"{label} | keypoints {len(result.features1)} / {len(result.features2)} | matches {n_matches} | "
               f"inliers {n_inliers} ({args.geometry}, {args.estimator})")
    picture = draw_matches(read_image(args.image1), read_image(args.image2), result.points1, result.points2,
                           result.inliers, caption, draw_outliers=args.draw_outliers)
    ok, png = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("OpenCV could not encode matches.png")
    summary = {
        "image1": args.image1, "image2": args.image2, "model": label, "detector": result.features1.info["detector"],
        "keypoints": [len(result.features1), len(result.features2)], "matches": n_matches, "inliers": n_inliers,
        **result.settings, "model_found": result.model is not None,
        "estimated_model": None if result.model is None else result.model.tolist(),
        "seconds": {**timings, "total": time.perf_counter() - start},
        "environment": environment_info(args.device),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_matches(out / "matches.h5", result)
    with atomic_path(out / "matches.png") as tmp:
        tmp.write_bytes(png.tobytes())
    write_json(out / "summary.json", summary)
    seconds = ", ".join(f"{k} {v:.2f}" for k, v in summary["seconds"].items())
    print(f"{caption}\nseconds: {seconds}\nwrote {out / 'matches.h5'}, {out / 'matches.png'}, {out / 'summary.json'}")
    return 0
