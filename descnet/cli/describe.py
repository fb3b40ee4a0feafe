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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from descnet.cli.common import add_keypoint_arguments, add_model_arguments, add_quiet

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
    add_model_arguments(parser)
    add_keypoint_arguments(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from descnet.cli.common import keypoint_options, output_file
    from descnet.features.inference import check_device
    from descnet.features.pipeline import describe_to_file, image_sources

    check_device(args.device, "--device")
    options = keypoint_options(args)
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
    report = describe_to_file(images, out, model=args.model, keypoints=keypoints, options=options,
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
