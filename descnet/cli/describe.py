"""Describe the keypoints of images -- files, or a whole folder -- into one HDF5 features file.

Keypoints are detected with OpenCV (--detector, SIFT by default) or read from --keypoints files: one per
image, rows 'x y size angle' in OpenCV's convention (angle in degrees, clockwise on screen). Each keypoint
becomes a square region of side 2 x MR_SIZE x size (MR_SIZE: 6 for SIFT), rotated by the keypoint angle,
cut from an anti-aliased pyramid and described by the model.

The file follows hloc's layout (hloc's readers and COLMAP import use it unchanged; descnet reads hloc's):
one group per image named by its path relative to the image folder (or by file name for files given one by
one), keypoints (N, 2), descriptors (D, N), scores, image_size (W, H), plus descnet's sizes, angles and LAFs.
The layout is documented in descnet.features.files.

--out is added to: images already in the file are skipped, so an interrupted run resumes, and new images
join a collection. The file must have been made with the same model, detector and region size (or pass
--overwrite to start a new one). It is replaced, never half-written: when the run ends, also early (an
error, Ctrl-C), it holds every image finished so far.

examples:
  descnet describe photos/ --model tfeat:tfeat-liberty.params --out features.h5
  descnet describe photos/ --image-list day1.txt --model opencv-rootsift --out features.h5
  descnet describe img1.png img2.png --keypoints img1.kp img2.kp --model runs/csa --out features.h5
  descnet pairs features.h5 --out pairs.txt && descnet match --features features.h5 --pairs pairs.txt --out matches.h5
"""
from __future__ import annotations

import argparse
from pathlib import Path

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
    from descnet.cli.common import add_quiet

    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (grey or RGB, 8 or 16 bit), or one folder: every image under it")
    parser.add_argument("--image-list", metavar="FILE",
                        help="with a folder: only the images named in FILE, one path relative to the folder per line")
    parser.add_argument("--keypoints", nargs="+", metavar="FILE",
                        help="keypoint files, one per IMAGE file in the same order, instead of detecting "
                             "(the region size still follows --detector or --mr-size)")
    parser.add_argument("--out", required=True, metavar="FEATURES.h5",
                        help="HDF5 features file to add to (created if absent)")
    parser.add_argument("--overwrite", action="store_true", help="start a new --out file instead of adding to it")
    add_common_arguments(parser)
    add_quiet(parser)


def check_common(args: argparse.Namespace) -> None:
    """Validate the shared options early, naming the argument."""
    from descnet.features.keypoints import DETECTORS

    if args.detector.lower() not in DETECTORS:
        raise ValueError(f"--detector {args.detector}: unknown; choose one of: {', '.join(DETECTORS)}")
    if args.max_keypoints < 0:
        raise ValueError(f"--max-keypoints must be >= 0 (0 = all), got {args.max_keypoints}")
    if args.mr_size is not None and args.mr_size <= 0:
        raise ValueError(f"--mr-size must be positive, got {args.mr_size}")


def load_model(spec: str):
    """An ``nn.Module`` for a SPEC, or the OpenCV baseline name unchanged."""
    from descnet.features.options import OPENCV_DESCRIPTORS
    from descnet.models import resolve_model

    return spec if spec in OPENCV_DESCRIPTORS else resolve_model(spec)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from descnet.features.inference import check_device
    from descnet.cli.common import output_file
    from descnet.features.pipeline import describe_to_file, image_sources

    check_device(args.device, "--device")
    check_common(args)
    out = output_file(args.out, "features.h5")
    images = image_sources(args.images, args.image_list)
    keypoints = None
    if args.keypoints:
        if any(Path(p).is_dir() for p in args.images):
            raise ValueError("--keypoints: give image files one by one with their keypoint files, not a folder")
        if len(args.keypoints) != len(args.images):
            raise ValueError(f"--keypoints: give one file per image ({len(args.images)} images, "
                             f"{len(args.keypoints)} keypoint files)")
        keypoints = dict(zip(images, args.keypoints))
    report = describe_to_file(images, out, model=args.model, keypoints=keypoints,
                              detector=args.detector, max_keypoints=args.max_keypoints or None, mr_size=args.mr_size,
                              device=args.device, overwrite=args.overwrite, progress=not args.quiet,
                              log=None if args.quiet else tqdm.write)
    if report.skipped:
        print(f"skipped {len(report.skipped)} image(s) already in {out}")
    if report.elsewhere:
        print(f"warning: {len(report.elsewhere)} skipped image name(s) were described from another file: "
              f"{', '.join(report.elsewhere[:5])}" + (" ..." if len(report.elsewhere) > 5 else "")
              + " (same name, other folder? use another --out, or --overwrite)")
    if report.empty:
        print(f"warning: no keypoints in {len(report.empty)} image(s), stored empty: {', '.join(report.empty[:5])}"
              + (" ..." if len(report.empty) > 5 else ""))
    print(f"described {len(report.described)} image(s), {report.keypoints} keypoints, in {report.seconds:.1f} s "
          f"({report.images_per_second:.2f} images/s)")
    print(f"wrote {out}" if report.described else f"{out} already held every image; nothing to do")
    return 0
