"""Conventions shared by the verbs: what ``--out`` means, ``--quiet``.

**--out**: a verb that writes one file takes ``--out FILE`` (``describe``, ``pairs``, ``match --pairs``,
``export``); a verb that writes several takes ``--out DIR`` and writes fixed names inside it (``match IMAGE1
IMAGE2``, ``reconstruct``, ``eval ...``, ``train``, ``data ...``). A file that is an existing folder, or a
folder that is an existing file, is an error naming the path; files descnet did not write are never removed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from descnet.io import check_output_parents

__all__ = ["output_file", "output_dir", "add_quiet"]


def output_file(path: str, example: str, option: str = "--out") -> Path:
    """``--out`` naming one file: refuse an existing folder (suggesting ``folder/example``)."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{option} {out}: is a folder; this command writes one file, e.g. {out / example}")
    check_output_parents(out, option)
    return out


def output_dir(path: str, option: str = "--out") -> Path:
    """``--out`` naming a folder of results: refuse an existing file."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {out}: exists and is not a folder; this command writes several files into a "
                         "folder")
    check_output_parents(out, option)
    return out


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bars or per-item lines (the summary is still printed)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-item lines")
