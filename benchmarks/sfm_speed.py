"""Whole-pipeline time of ``descnet reconstruct IMAGES`` against COLMAP's own SIFT pipeline, in one run.

descnet: :func:`descnet.geometry.pipeline.reconstruct_images` with the default descriptor and COLMAP's choices
(COLMAP's SIFT keypoints, mutual NN + ratio 0.8 on all pairs, COLMAP's verification and mapping). COLMAP:
:func:`descnet.geometry.colmap.reconstruct_colmap_sift` (its extraction, exhaustive matching with verification, the
same mapping). Both run round-robin ``--repeats`` times, each into a fresh folder (nothing is reused from an earlier
run; the first descnet run also loads the model and starts its worker processes), on the CPU with torch's threads.
The target: descnet at most 2x COLMAP's time. Reported: every run's seconds, the best of each, the ratio of the
bests and of each round, descnet's stages (describe, match, COLMAP import, verification, mapping) and COLMAP's
(extract, match, map), the registered images and 3D points of both.

    .venv/bin/python benchmarks/sfm_speed.py [--images ../shared/data/sfm/sacre_coeur] [--model SPEC] [--repeats 2]

Writes ``results/benchmarks/sfm_speed.json``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from _common import REPO, format_table, save_results  # first: puts the repository on sys.path

from descnet.geometry.colmap import reconstruct_colmap_sift
from descnet.geometry.pipeline import reconstruct_images
from descnet.models.pretrained import DEFAULT_MODEL
from descnet.precision import cpu_kind

TARGET = 2.0


def main() -> int:
    shared = Path(os.environ.get("DESCNET_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default=str(shared / "sfm" / "sacre_coeur"), help="the photo folder")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"descnet's descriptor (default {DEFAULT_MODEL})")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not Path(args.images).is_dir():
        parser.error(f"--images {args.images}: no such folder (set DESCNET_SHARED_DATA or pass --images)")

    runs: dict[str, list[dict]] = {"descnet": [], "colmap": []}
    with tempfile.TemporaryDirectory(prefix="sfm_speed.") as tmp:
        for r in range(args.repeats):
            t0 = time.perf_counter()
            colmap = reconstruct_colmap_sift(args.images, Path(tmp) / f"colmap{r}")
            runs["colmap"].append({"seconds": time.perf_counter() - t0, "stages": colmap.seconds,
                                   "registered": colmap.registered, "images": colmap.images,
                                   "points3D": colmap.points3D})
            t0 = time.perf_counter()
            ours = reconstruct_images(args.images, Path(tmp) / f"descnet{r}", model=args.model)
            runs["descnet"].append({"seconds": time.perf_counter() - t0, "stages": ours.seconds,
                                    "registered": ours.registered, "images": ours.images, "points3D": ours.points3D})
    best = {k: min(v, key=lambda run: run["seconds"]) for k, v in runs.items()}
    ratio = best["descnet"]["seconds"] / best["colmap"]["seconds"]
    rounds = [d["seconds"] / c["seconds"] for d, c in zip(runs["descnet"], runs["colmap"])]
    rows = []
    for name, label in (("descnet", f"descnet reconstruct ({args.model})"), ("colmap", "COLMAP SIFT pipeline")):
        b = best[name]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in b["stages"].items() if k != "total")
        rows.append([label, f"{b['seconds']:.1f}", " / ".join(f"{run['seconds']:.1f}" for run in runs[name]),
                     f"{b['registered']}/{b['images']}", f"{b['points3D']:,}", stages])
    print(f"{args.images}: best of {args.repeats}, {torch.get_num_threads()} threads")
    print(format_table(["pipeline", "best s", "all runs s", "registered", "3D points", "stages of the best (s)"], rows))
    print(f"descnet / COLMAP: {ratio:.2f}x (rounds: {', '.join(f'{x:.2f}x' for x in rounds)}; target <= {TARGET:g}x): "
          f"{'PASS' if ratio <= TARGET else 'MISS'}, CPU kind {cpu_kind()}")
    settings = {"images": args.images, "model": args.model, "repeats": args.repeats,
                "threads": torch.get_num_threads(), "timing": "best wall-clock of the repeats, round-robin"}
    save_results("sfm_speed", settings, {"runs": runs, "ratio": ratio, "round_ratios": rounds, "target": TARGET,
                                         "cpu_kind": cpu_kind()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
