"""Make a pair list: which images `descnet match --pairs` matches.

The images are those of a features file (its image names) or of an image folder (named as `descnet
describe FOLDER` names them: paths relative to the folder), in name order:
  exhaustive         every pair once: n (n - 1) / 2 pairs (the default)
  sequential         each image with the next --window images in name order (video frames, walks)
The file has one 'name0 name1' line per pair (hloc's pairs format; COLMAP's verify_matches reads it too).

examples:
  descnet pairs features.h5 --out pairs.txt
  descnet pairs photos/ --mode sequential --window 5 --out pairs-seq.txt
"""
from __future__ import annotations

import argparse

from descnet.features.options import PAIR_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="FEATURES.h5|FOLDER", help="a features file, or an image folder")
    parser.add_argument("--image-list", metavar="FILE", help="with a folder: only the images named in FILE")
    parser.add_argument("--mode", choices=PAIR_MODES, default="exhaustive",
                        help="exhaustive (default) or sequential (each image with the next --window)")
    parser.add_argument("--window", type=int, default=None, metavar="N",
                        help="sequential: how many following images each image is paired with")
    parser.add_argument("--out", required=True, metavar="PAIRS.txt", help="pair file to write (replaced atomically)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from descnet.cli.common import output_file
    from descnet.features.files import list_feature_names
    from descnet.features.pairs import make_pairs, write_pairs
    from descnet.features.pipeline import image_sources

    out = output_file(args.out, "pairs.txt")
    source = Path(args.source)
    if source.is_dir():
        names = list(image_sources([source], args.image_list))
    elif args.image_list:
        raise ValueError("--image-list applies to an image folder, not a features file")
    else:
        names = list_feature_names(source)
    if len(names) < 2:
        raise ValueError(f"{source}: {len(names)} image(s); a pair needs two")
    pairs = make_pairs(names, args.mode, args.window)
    write_pairs(out, pairs)
    print(f"wrote {len(pairs)} {args.mode} pairs of {len(names)} images to {out}")
    return 0
