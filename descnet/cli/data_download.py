"""Download a dataset into --root and unpack it there.

  brown               UBC Phototour liberty, notredame, yosemite -> ROOT/<subset>/ (pick with --subset)
  hpatches            HPatches patches (4.2 GB)                -> ROOT/hpatches-release/
  hpatches-sequences  HPatches full images (1.3 GB)            -> ROOT/hpatches-sequences-release/
  hpatches-tasks      official benchmark task files            -> ROOT/tasks/ (splits/splits.json, CSVs)
  strecha             Strecha et al.'s six scenes with ground-truth cameras (openMVG's copy, one archive)
                                                               -> ROOT/<scene>/images/, gt_dense_cameras/
                      (--subset fountain-P11 Herz-Jesus-P8 entry-P10 castle-P19 castle-P30 Herz-Jesus-P25)

Interrupted downloads resume (ROOT/<archive>.part); known checksums are verified; a folder that already
exists is left alone (--force replaces it). Offline? Put the archive into ROOT by hand and run again, or
serve the archives yourself and pass --mirror URL (or set DESCNET_MIRROR): <URL>/<archive> is fetched.

examples:
  descnet data download brown --root data/brown --subset liberty notredame
  descnet data download hpatches-tasks --root data/hpatches
  descnet data download brown --root data/brown --list
  descnet data download strecha --root data/strecha --subset fountain-P11 entry-P10
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from descnet.data.download import DATASETS

    parser.add_argument("dataset", choices=tuple(DATASETS), help="what to download")
    parser.add_argument("--root", required=True, help="folder to download and unpack into")
    parser.add_argument("--subset", nargs="+", metavar="NAME",
                        help="only these parts (brown: liberty, notredame, yosemite; strecha: its scenes, e.g. "
                             "fountain-P11; default: all)")
    parser.add_argument("--mirror", action="append", metavar="URL",
                        help="base URL holding the archives, tried instead of the official URLs "
                             "(repeat for several; default: $DESCNET_MIRROR)")
    parser.add_argument("--force", action="store_true", help="download and replace folders that already exist")
    parser.add_argument("--keep-archive", action="store_true", help="keep the archive after unpacking")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="network timeout in seconds (default: 30)")
    parser.add_argument("--list", action="store_true", help="print the archives, URLs and folders; download nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from descnet.data.download import CHECKSUMS, candidate_urls, download_dataset, resources

    chosen = resources(args.dataset, args.subset)
    root = Path(args.root)
    if args.list:
        for resource in chosen:
            print(f"{resource.name}: {root / resource.filename} -> {root / resource.dest}")
            for url in candidate_urls(resource, args.mirror):
                known = CHECKSUMS.get(url)
                check = ", ".join(f"{k} {v}" for k, v in known._asdict().items() if v) if known else ""
                print(f"  {url}" + (f"  ({check})" if check else ""))
        return 0
    if root.exists() and not root.is_dir():
        raise ValueError(f"--root {root}: not a folder")
    download_dataset(args.dataset, root, args.subset, log=lambda line: print(line, flush=True),
                     mirrors=args.mirror, force=args.force, keep_archive=args.keep_archive,
                     progress=not args.quiet, timeout=args.timeout)
    return 0
