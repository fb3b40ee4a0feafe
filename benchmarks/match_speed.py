"""Time describe + match + verification on a 1000x800 image pair with 2000 keypoints per image.

descnet's route (``descnet.features.matching.match_pair``: OpenCV SIFT keypoints, kornia pyramid patches,
``describe_patches``, kornia mutual-NN matching, OpenCV MAGSAC homography) against, in the same run:

* ``kornia``: the same keypoints and network through ``kornia.feature.get_laf_descriptors`` (kornia's own
  LAF -> patch -> descriptor path, the one users compare with), ``kornia.feature.match_mnn``, the same MAGSAC;
* ``opencv-sift``: OpenCV's ``SIFT.detectAndCompute``, ``BFMatcher(crossCheck=True)``, the same MAGSAC.

The pair is synthetic (a multi-scale blob texture and its warp by a known homography), so the benchmark
runs anywhere; the corner error of each route's homography is printed as a sanity check. Times are the
median of ``--repeats`` runs after one warm-up run. Target: under 2.5 s in total for hardnet-csa on 2 cores.

    .venv/bin/python benchmarks/match_speed.py [--model descnet-hardnet-csa] [--repeats 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch
from _common import format_table, save_results  # first: puts the repository on sys.path
from kornia import feature as KF

from descnet.features.keypoints import detect_keypoints, lafs_from_keypoints
from descnet.data.images import to_gray
from descnet.features.matching import match_pair, verify
from descnet.features.options import KeypointOptions
from descnet.models import model_label, resolve_model

WIDTH, HEIGHT = 1000, 800
HOMOGRAPHY = np.array([[0.93, 0.12, 30.0], [-0.1, 0.95, 40.0], [6e-5, 4e-5, 1.0]])


def make_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(800, 1000)`` uint8 multi-scale blob texture and its warp by :data:`HOMOGRAPHY`."""
    rng = np.random.default_rng(seed)
    img = np.zeros((HEIGHT, WIDTH), np.float32)
    for sigma, weight in ((1.5, 0.5), (4.0, 1.0), (10.0, 1.5)):
        layer = cv2.GaussianBlur(rng.random((HEIGHT, WIDTH)).astype(np.float32), (0, 0), sigma)
        img += weight * (layer - layer.mean()) / layer.std()
    img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return img, cv2.warpPerspective(img, HOMOGRAPHY, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REFLECT)


def corner_error(model: np.ndarray | None) -> float:
    if model is None:
        return float("inf")
    corners = np.array([[[0, 0], [WIDTH - 1, 0], [WIDTH - 1, HEIGHT - 1], [0, HEIGHT - 1]]], np.float64)
    return float(np.linalg.norm(cv2.perspectiveTransform(corners, model)
                                - cv2.perspectiveTransform(corners, HOMOGRAPHY), axis=2).mean())


def run_descnet(img1, img2, net, keypoints, device):
    timings: dict[str, float] = {}
    result = match_pair(img1, img2, model=net, keypoint_options=KeypointOptions(max_keypoints=keypoints),
                        device=device, timings=timings)
    timings.pop("load_model", None)
    return timings, len(result.matches), int(result.inliers.sum()), corner_error(result.geometry_matrix)


@torch.inference_mode()
def run_kornia(img1, img2, net, keypoints, device):
    t: dict[str, float] = {"detect": 0.0, "extract+describe": 0.0}
    descs, kps = [], []
    for img in (img1, img2):
        t0 = time.perf_counter()
        gray = to_gray(img)
        kp, _ = detect_keypoints(gray, "sift", keypoints)
        lafs = lafs_from_keypoints(kp, 6.0).to(device)
        t1 = time.perf_counter()
        timg = torch.from_numpy(gray)[None, None].to(device)
        descs.append(KF.get_laf_descriptors(timg, lafs, net.to(device).eval(), patch_size=32)[0].float())
        kps.append(kp)
        t2 = time.perf_counter()
        t["detect"] += t1 - t0
        t["extract+describe"] += t2 - t1
    t0 = time.perf_counter()
    _, idx = KF.match_mnn(descs[0], descs[1])
    idx = idx.cpu().numpy()
    t1 = time.perf_counter()
    v = verify(kps[0][idx[:, 0], :2], kps[1][idx[:, 1], :2], "homography", "magsac")
    t["match"], t["verify"] = t1 - t0, time.perf_counter() - t1
    return t, len(idx), int(v.inliers.sum()), corner_error(v.geometry_matrix)


def run_opencv(img1, img2, net, keypoints, device):
    t: dict[str, float] = {"detect+describe": 0.0}
    sift = cv2.SIFT_create(nfeatures=keypoints)
    out = []
    for img in (img1, img2):
        t0 = time.perf_counter()
        out.append(sift.detectAndCompute(img, None))
        t["detect+describe"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    matches = cv2.BFMatcher(cv2.NORM_L2, crossCheck=True).match(out[0][1], out[1][1])
    t1 = time.perf_counter()
    p1 = np.array([out[0][0][m.queryIdx].pt for m in matches])
    p2 = np.array([out[1][0][m.trainIdx].pt for m in matches])
    v = verify(p1, p2, "homography", "magsac")
    t["match"], t["verify"] = t1 - t0, time.perf_counter() - t1
    return t, len(matches), int(v.inliers.sum()), corner_error(v.geometry_matrix)


def timed(route, repeats, *args):
    route(*args)  # warm-up
    runs = [route(*args) for _ in range(repeats)]
    stages = {k: statistics.median(r[0][k] for r in runs) for k in runs[0][0]}
    stages["total"] = statistics.median(sum(r[0].values()) for r in runs)
    return {"seconds": stages, "matches": runs[-1][1], "inliers": runs[-1][2], "corner_error_px": runs[-1][3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="descnet-hardnet-csa",
                        help="model SPEC (default: descnet-hardnet-csa, the shipped CSA weights)")
    parser.add_argument("--keypoints", type=int, default=2000, help="keypoints per image (default: 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after a warm-up (default: 3)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    args = parser.parse_args()

    img1, img2 = make_pair()
    net = resolve_model(args.model)
    found = len(detect_keypoints(img1, "sift", args.keypoints)[0])
    print(f"{WIDTH}x{HEIGHT} pair, {found} keypoints per image, model {model_label(args.model)}, "
          f"{torch.get_num_threads()} torch threads, device {args.device}")
    results = {
        "descnet": timed(run_descnet, args.repeats, img1, img2, net, args.keypoints, args.device),
        "kornia": timed(run_kornia, args.repeats, img1, img2, net, args.keypoints, args.device),
        "opencv-sift": timed(run_opencv, args.repeats, img1, img2, net, args.keypoints, args.device),
    }
    total = results["descnet"]["seconds"]["total"]
    rows = []
    for name, r in results.items():
        stages = ", ".join(f"{k} {v:.3f}" for k, v in r["seconds"].items() if k != "total")
        rows.append([name, r["seconds"]["total"], total / r["seconds"]["total"], r["matches"], r["inliers"],
                     r["corner_error_px"], stages])
    print(format_table(["route", "total s", "descnet/route", "matches", "inliers", "corner err px",
                        "seconds per stage (both images)"], rows, floatfmt=".3f"))
    print(f"target: descnet total under 2.5 s on 2 CPU cores -> {'met' if total < 2.5 else 'NOT met'} ({total:.2f} s)")
    settings = {"model": args.model, "keypoints": args.keypoints, "found_keypoints": found, "repeats": args.repeats,
                "image": f"{WIDTH}x{HEIGHT} synthetic", "device": args.device,
                "torch_threads": torch.get_num_threads()}
    save_results("match_speed", settings, results, device=args.device)


if __name__ == "__main__":
    main()
