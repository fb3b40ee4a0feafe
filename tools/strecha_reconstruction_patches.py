#!/usr/bin/env python
"""Training patches from a Strecha scene with its ground-truth cameras (e.g. Herz-Jesus-P8).

    python tools/strecha_reconstruction_patches.py SCENE OUT [--scale 0.5] [--max-keypoints 4000]

SCENE holds ``images/*.jpg`` and ``gt_dense_cameras/<image>.camera``. Steps (files under OUT-work): the images
resized by --scale; OpenCV SIFT keypoints described with RootSIFT through descnet's pipeline
(``describe_to_file``); every pair matched (mutual nearest neighbours + ratio 0.8, fundamental matrix); the
matches triangulated with the known cameras (:func:`descnet.geometry.triangulate.triangulate_known_cameras`);
then :func:`descnet.geometry.tracks.reconstruction_patches` writes OUT/points (Brown) and OUT/hpatches-release.

Never run it on the held-out scenes (fountain-P11, entry-P10, castle-P19/P30): they judge the models.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HELD_OUT = ("fountain-P11", "entry-P10", "castle-P19", "castle-P30")


def main() -> None:
    import cv2

    from descnet.data.point_patches import PointPatchOptions
    from descnet.features.options import KeypointOptions, MatchOptions
    from descnet.features.pairs import exhaustive_pairs
    from descnet.features.pipeline import describe_to_file, image_sources, match_to_file
    from descnet.geometry.cameras import read_strecha_scene
    from descnet.geometry.triangulate import triangulate_known_cameras
    from descnet.geometry.tracks import ReconstructionPatchOptions, reconstruction_patches

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--max-keypoints", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.scene.name in HELD_OUT:
        raise SystemExit(f"{args.scene.name} is held out for evaluation: never cut training patches from it")
    work = args.out.with_name(args.out.name + "-work")
    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    seconds = {}
    t0 = time.perf_counter()
    cameras = {}
    for jpg, camera in read_strecha_scene(args.scene).items():
        path = args.scene / "images" / jpg
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if (image.shape[1], image.shape[0]) != (camera.width, camera.height):
            raise SystemExit(f"{path}: {image.shape[1]}x{image.shape[0]}, its camera says {camera.width}x{camera.height}")
        size = (round(camera.width * args.scale), round(camera.height * args.scale))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        name = path.with_suffix(".png").name
        cv2.imwrite(str(images / name), small)
        cameras[name] = camera.resized(*size)
    seconds["resize"] = time.perf_counter() - t0
    sources = image_sources([images])
    t0 = time.perf_counter()
    describe_to_file(sources, work / "features.h5", model="opencv-rootsift",
                     options=KeypointOptions(max_keypoints=args.max_keypoints))
    seconds["describe"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    match_to_file(work / "features.h5", exhaustive_pairs(list(sources)), work / "matches.h5",
                  options=MatchOptions("smnn", 0.8, "fundamental"))
    seconds["match"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = triangulate_known_cameras(images, work / "features.h5", work / "matches.h5", cameras, work / "sfm")
    seconds["triangulate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = reconstruction_patches(work / "sfm" / "model", images, args.out, features=work / "features.h5",
                                     options=ReconstructionPatchOptions(patches=PointPatchOptions(seed=args.seed)),
                                     overwrite=True)
    seconds["patches"] = time.perf_counter() - t0
    report = {"scene": str(args.scene), "scale": args.scale, "max_keypoints": args.max_keypoints,
              "points3D": model.num_points3D(), "observations": model.compute_num_observations(),
              "mean_reprojection_error": model.compute_mean_reprojection_error(),
              "kept": {"observations": summary["observations"], "points3D": summary["points3D"]},
              "brown": summary["brown"], "hpatches_rows": summary.get("rows"),
              "sequences": summary.get("sequences"), "seconds": seconds}
    (work / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
