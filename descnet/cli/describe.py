"""Describe the keypoints of one or more images; write them to one HDF5 features file.

Keypoints are detected with OpenCV (--detector, SIFT by default) or read from --keypoints files: one per
image, rows 'x y size angle' in OpenCV's convention (angle in degrees, clockwise on screen). Each keypoint
becomes a square region of side 2 x MR_SIZE x size (MR_SIZE: 6 for SIFT), rotated by the keypoint angle,
cut from an anti-aliased pyramid and described by the model. The file holds one group per image, named
after the image file (layout: descnet.features_io; read it back with descnet.features_io.read_features).

examples:
  descnet describe img1.png img2.png --model tfeat:tfeat-liberty.params --out features.h5
  descnet describe img1.png --keypoints img1.kp --model runs/csa --out img1.h5
  descnet describe img1.png --model opencv-rootsift --detector orb --max-keypoints 5000 --out img1.h5
"""
from __future__ import annotations

import argparse

from descnet.models.pretrained import DEFAULT_MODEL


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``describe`` and ``match``: model, detector, region size, device."""
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="SPEC",
                        help=f"trained model name (default: {DEFAULT_MODEL}, descnet's shipped weights; "
                             "`descnet models` lists them), NAME:WEIGHTS, checkpoint, run dir, NAME:random (untrained), "
                             "or opencv-sift / opencv-rootsift (OpenCV's own SIFT descriptor on the same keypoints)")
    parser.add_argument("--detector", default="sift",
                        help="OpenCV detector: sift (default), orb, and akaze/kaze/brisk where OpenCV has them")
    parser.add_argument("--max-keypoints", type=int, default=2000, metavar="N",
                        help="keep the N strongest detections (default: 2000; 0 = all)")
    parser.add_argument("--mr-size", type=float, default=None, metavar="X",
                        help="region half-side per unit of keypoint size (kornia LAF scale = X * size; "
                             "default: 6 for sift, 0.5 for orb)")
    parser.add_argument("--device", default="cpu", help="torch device for the model (default: cpu)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (grey or RGB, 8 or 16 bit)")
    parser.add_argument("--keypoints", nargs="+", metavar="FILE",
                        help="keypoint files, one per IMAGE in the same order, instead of detecting "
                             "(the region size still follows --detector or --mr-size)")
    parser.add_argument("--out", required=True, metavar="FEATURES.h5", help="HDF5 file to write")
    add_common_arguments(parser)


def check_common(args: argparse.Namespace) -> None:
    """Validate the shared options early, naming the argument."""
    from descnet.description import DETECTORS

    if args.detector.lower() not in DETECTORS:
        raise ValueError(f"--detector {args.detector}: unknown; choose one of: {', '.join(DETECTORS)}")
    if args.max_keypoints < 0:
        raise ValueError(f"--max-keypoints must be >= 0 (0 = all), got {args.max_keypoints}")
    if args.mr_size is not None and args.mr_size <= 0:
        raise ValueError(f"--mr-size must be positive, got {args.mr_size}")


def load_model(spec: str):
    """An ``nn.Module`` for a SPEC, or the OpenCV baseline name unchanged."""
    from descnet.description import OPENCV_DESCRIPTORS
    from descnet.models import resolve_model

    return spec if spec in OPENCV_DESCRIPTORS else resolve_model(spec)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    import torch
    from tqdm.auto import tqdm

    from descnet.description import describe_images
    from descnet.features_io import unique_group_names, write_features
    from descnet.models import spec_label

    check_common(args)
    if args.keypoints and len(args.keypoints) != len(args.images):
        raise ValueError(f"--keypoints: give one file per image ({len(args.images)} images, "
                         f"{len(args.keypoints)} keypoint files)")
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out}: is a folder; give a file name such as {out / 'features.h5'}")
    model = load_model(args.model)
    label = args.model if isinstance(model, str) else spec_label(args.model)
    jobs = list(zip(unique_group_names(args.images), args.images, args.keypoints or [None] * len(args.images)))
    per_call = 2 * max(1, torch.get_num_threads())  # images described together: one per thread, one network pass
    features = {}
    with tqdm(total=len(jobs), desc="describe", unit="image", disable=len(jobs) < 2) as bar:
        for start in range(0, len(jobs), per_call):
            part = jobs[start:start + per_call]
            described = describe_images([image for _, image, _ in part], [kp for _, _, kp in part], model=model,
                                        detector=args.detector, max_keypoints=args.max_keypoints or None,
                                        mr_size=args.mr_size, device=args.device)
            for (name, image, kp_file), feats in zip(part, described):
                if len(feats) == 0:
                    source = (f"keypoint file {kp_file} has no rows" if kp_file
                              else f"the {args.detector} detector found none")
                    raise ValueError(f"{image}: no keypoints to describe ({source})")
                features[name] = feats = replace(feats, info={**feats.info, "model": label})
                bar.write(f"{image}: {len(feats)} keypoints, {feats.descriptors.shape[1]}-D descriptors -> /{name}")
            bar.update(len(part))
    write_features(out, features)
    print(f"wrote {out}")
    return 0
