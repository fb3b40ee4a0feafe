"""Image pair lists: which images to match (hloc's and COLMAP's pair file format).

A pair file has one pair per line, two image names separated by white space (``name0 name1``), the names
being those of the features file (paths relative to the image folder); blank lines and ``#`` lines are
skipped. hloc's ``pairs_from_exhaustive`` / ``pairs_from_retrieval`` write this format and COLMAP's
``verify_matches`` reads it.

* :func:`exhaustive_pairs`: every unordered pair once, ``(names[i], names[j])`` with ``i < j``;
* :func:`sequential_pairs`: each image with the next ``window`` images in name order (video, walks);
* :func:`read_pairs`: a file written by hand or by another tool.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from .options import PAIR_MODES
from ..io import ForeignFileError, atomic_path, read_text_rows

__all__ = ["PAIR_MODES", "exhaustive_pairs", "sequential_pairs", "make_pairs", "read_pairs", "write_pairs",
           "check_pairs"]


def exhaustive_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """All ``n (n - 1) / 2`` unordered pairs, ``(names[i], names[j])`` for ``i < j``, in that order."""
    names = list(names)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


def sequential_pairs(names: Sequence[str], window: int) -> list[tuple[str, str]]:
    """Each image with the next ``window`` images: ``(names[i], names[j])`` for ``0 < j - i <= window``."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    names = list(names)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:i + 1 + window]]


def make_pairs(names: Sequence[str], mode: str = "exhaustive", window: int | None = None) -> list[tuple[str, str]]:
    """Pairs of ``names`` by ``mode`` (:data:`PAIR_MODES`); ``window`` only for ``sequential``."""
    if mode not in PAIR_MODES:
        raise ValueError(f"unknown pair mode {mode!r}; choose one of: {', '.join(PAIR_MODES)}")
    if mode == "exhaustive":
        if window is not None:
            raise ValueError("a window applies to sequential pairs, not exhaustive ones")
        return exhaustive_pairs(names)
    if window is None:
        raise ValueError("sequential pairs need a window (how many following images each image is paired with)")
    return sequential_pairs(names, window)


def check_pairs(pairs: Iterable[tuple[str, str]], names: Iterable[str] | None = None,
                source: str = "pairs") -> list[tuple[str, str]]:
    """Validate pairs -> a list without repeats (a pair listed in both orders counts once, first kept).

    A pair of an image with itself is an error, and so is a name not in ``names`` (when given), naming
    ``source``.
    """
    known = None if names is None else set(names)
    out, seen = [], set()
    for a, b in pairs:
        if a == b:
            raise ValueError(f"{source}: pairs an image with itself: {a}")
        for name in (a, b):
            if known is not None and name not in known:
                raise ValueError(f"{source}: {name} is not an image of the features file")
        key = (a, b) if a <= b else (b, a)
        if key not in seen:
            seen.add(key)
            out.append((a, b))
    return out


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Read a pair file (module docstring) -> ``[(name0, name1), ...]`` in file order, repeats dropped."""
    pairs = []
    for number, fields in read_text_rows(path, "pair file of 'name0 name1' lines"):
        if len(fields) != 2:
            raise ValueError(f"{path}, line {number}: expected two image names 'name0 name1', got {len(fields)} "
                             f"field(s): {' '.join(fields)[:80]!r}")
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise ValueError(f"{path}: lists no pairs")
    return check_pairs(pairs, source=str(path))


def write_pairs(path: str | os.PathLike, pairs: Iterable[tuple[str, str]]) -> Path:
    """Write pairs, one ``name0 name1`` line each, atomically. Names with white space cannot be written. An
    existing file is replaced only when it is a pair file (``ForeignFileError`` naming it otherwise)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        try:
            ours = path.is_file() and all(len(fields) == 2 for _, fields in read_text_rows(path, "pair file"))
        except (OSError, ValueError):
            ours = False
        if not ours:
            raise ForeignFileError(f"{path}: exists and is not a pair file ('name0 name1' lines); descnet replaces "
                                   "only its own files: move it away or choose another --out")
    lines = []
    for a, b in pairs:
        for name in (a, b):
            if not name or any(c.isspace() for c in name):
                raise ValueError(f"image name {name!r}: a pair file cannot hold names with white space")
        lines.append(f"{a} {b}\n")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines))
    return Path(path)
