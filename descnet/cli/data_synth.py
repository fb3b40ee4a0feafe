"""Synthesise image sequences with exact homographies, in the HPatches full-image layout.

Each sequence is 6 images of one planar scene: v_* (viewpoint) sequences get random homographies of
growing strength, i_* (illumination) sequences near-identity ones with strong lighting change; all get
gain/gamma/shading, blur, noise and occluders. Scenes are procedural textures (shapes, strokes, text,
multi-scale noise: plenty of SIFT keypoints) or your own images (--images). Deterministic by --seed.

Output: OUT/<i_|v_><name><index>/1.ppm..6.ppm + H_1_2..H_1_6, and OUT/synth.json (all options).

--kind scene3d renders scenes with real depth instead: textured planes at different depths and a box,
occluding each other, seen by a camera that rotates and translates, with photometric change; each view is
exact (per-plane homographies and a z-buffer), so every pixel has its depth and surface, and the
correspondences across occlusion boundaries and out-of-plane rotations are exact (descnet/data/scene3d.py).
Output: OUT/scenes/s3dNNN/1..6.png + geometry.npz (K, R, t, depth, surface ids), and HPatches-style patches
OUT/hpatches-release/v_s3dNNN (DoG regions of view 1 seen by every view, mapped by their plane with the
easy/hard/tough jitter) + OUT/tasks: train on them with data.source patchset, data.root OUT.

examples:
  descnet data synth --out data/synth --sequences 10
  descnet data synth --out data/synth-photos --images my_photos/ --size 800x600 --seed 3
  descnet data patches --sequences data/synth --out data/synth-patches
  descnet data synth --kind scene3d --images my_photos/ --sequences 20 --out data/synth3d
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (new, empty, or an earlier "
                        "synth output with --overwrite)")
    parser.add_argument("--sequences", type=int, default=10, metavar="N", help="number of sequences (default: 10)")
    parser.add_argument("--images", metavar="DIR", help="use the images in DIR as scenes (cycled, sorted by name) "
                        "instead of procedural textures")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--size", default="640x480", metavar="WxH", help="image size (default: 640x480)")
    parser.add_argument("--kind", choices=("both", "viewpoint", "illumination", "scene3d"), default="both",
                        help="sequence kinds; both alternates v_ and i_; scene3d: 3D scenes with depth and "
                             "occlusions (default: both)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier synth output in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_size(text: str) -> tuple[int, int]:
    """``'640x480'`` -> ``(640, 480)``."""
    parts = text.lower().split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--size must look like 640x480, got {text!r}") from None
    from descnet.data.synth import MAX_SIDE

    if not (64 <= w <= MAX_SIDE and 64 <= h <= MAX_SIDE):
        raise ValueError(f"--size {text}: each side must be from 64 to {MAX_SIDE} pixels")
    return w, h


def run(args: argparse.Namespace) -> int:
    import time

    from descnet.cli.common import output_dir
    from descnet.data.synth import SynthOptions, write_synthetic_sequences

    output_dir(args.out)  # a file there, or a file on its path: refused before any work
    if args.kind == "scene3d":
        from descnet.data.scene3d import Scene3DOptions, write_scene_sequences

        start = time.perf_counter()
        summary = write_scene_sequences(args.out, count=args.sequences, images=args.images, seed=args.seed,
                                        options=Scene3DOptions(size=parse_size(args.size)), overwrite=args.overwrite,
                                        progress=not args.quiet)
        rows = summary["rows"]
        print(f"wrote {len(summary['scenes'])} 3D scene sequences ({args.size}) to {args.out}/scenes and "
              f"{sum(rows.values())} patch rows in {len(rows)} HPatches-style sequences to "
              f"{args.out}/hpatches-release in {time.perf_counter() - start:.1f} s")
        return 0
    options = SynthOptions(size=parse_size(args.size))
    start = time.perf_counter()
    folders = write_synthetic_sequences(args.out, count=args.sequences, images=args.images, seed=args.seed,
                                        options=options, kinds=args.kind, overwrite=args.overwrite,
                                        progress=not args.quiet)
    print(f"wrote {len(folders)} sequences of {options.num_images} images ({args.size}) to {args.out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
