"""Full-image sequences with ground-truth homographies (HPatches and Oxford layouts).

This module is the one place that reads and writes sequence folders: image files and homography text files.

On-disk formats (one folder per sequence, images numbered from 1; image 1 is the reference)::

    HPatches (hpatches-sequences-release)        Oxford affine / EF
    v_churchill/                                 graf/
        1.ppm 2.ppm ... 6.ppm                        img1.png ... img6.png   (.ppm .pgm .png .jpg too)
        H_1_2 H_1_3 ... H_1_6                        H1to2p ... H1to6p

A homography file holds the 3x3 matrix mapping pixel ``(x, y, 1)`` of image 1 to image ``k`` as 9 numbers
separated by white space, row by row (MATLAB-style exponents such as ``1.2e+000`` are fine). Pixel
coordinates are OpenCV's: the centre of the top-left pixel is ``(0, 0)``. Folder names starting with ``i_``
are illumination sequences and ``v_`` viewpoint sequences (the HPatches convention); other names have
kind ``None``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from descnet.data.images import read_image

__all__ = ["ImageSequence", "ImageSequences", "read_sequence", "read_homography",
           "write_homography", "write_sequence", "sequence_kind", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".ppm", ".pgm", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_EXT = "|".join(e[1:] for e in IMAGE_EXTENSIONS)
# layout -> (image file pattern, homography file pattern, homography file name for k)
_LAYOUTS = {
    "hpatches": (re.compile(rf"^(\d+)\.({_EXT})$", re.I), re.compile(r"^H_1_(\d+)$"), "H_1_{}"),
    "oxford": (re.compile(rf"^img(\d+)\.({_EXT})$", re.I), re.compile(r"^H1to(\d+)p$"), "H1to{}p"),
}
_KINDS = {"i_": "illumination", "v_": "viewpoint"}


def sequence_kind(name: str) -> str | None:
    """``'illumination'`` for ``i_*`` names, ``'viewpoint'`` for ``v_*``, else ``None``."""
    return _KINDS.get(name[:2])


@dataclass(frozen=True)
class ImageSequence:
    """One image sequence. Images and homographies are indexed by image number ``k`` (1-based, as on disk).

    ``homographies[k]`` is ``H_1_k``, float64 ``(3, 3)``, mapping image-1 pixels to image-``k`` pixels;
    ``homographies[1]`` is the identity. Images are read on demand with :meth:`image`.
    """

    name: str
    path: Path
    kind: str | None                        # 'illumination', 'viewpoint' or None
    layout: str                             # 'hpatches' or 'oxford'
    image_paths: dict[int, Path]            # k -> image file, k = 1..n
    homographies: dict[int, np.ndarray]     # k -> H_1_k, k = 1..n

    def __len__(self) -> int:
        return len(self.image_paths)

    @property
    def targets(self) -> list[int]:
        """The image numbers compared with the reference: ``[2, ..., n]``."""
        return list(range(2, len(self) + 1))

    def image(self, k: int, gray: bool = True) -> np.ndarray:
        """Image ``k`` (uint8, or uint16 for 16-bit files): ``(H, W)`` when ``gray``, else ``(H, W, 3)`` RGB."""
        if k not in self.image_paths:
            raise KeyError(f"{self.name}: no image {k} (the sequence has images 1..{len(self)})")
        return read_image(self.image_paths[k], gray=gray)

    def homography(self, i: int, j: int) -> np.ndarray:
        """``(3, 3)`` float64 map from image ``i`` to image ``j``: ``H_1_j @ inv(H_1_i)``, scaled to ``[2, 2] = 1``."""
        for k in (i, j):
            if k not in self.homographies:
                raise KeyError(f"{self.name}: no image {k} (the sequence has images 1..{len(self)})")
        h = self.homographies[j] @ np.linalg.inv(self.homographies[i])
        return h / h[2, 2]


def read_homography(path: str | os.PathLike) -> np.ndarray:
    """Parse a 3x3 homography text file (9 white-space separated numbers, row-major) -> float64 ``(3, 3)``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such homography file") from None
    tokens = text.replace(",", " ").split()
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise ValueError(f"{path}: cannot parse homography: {bad[:40]!r} is not a number") from None
    if len(values) != 9:
        raise ValueError(f"{path}: cannot parse homography: expected 9 numbers (a 3x3 matrix), found {len(values)}")
    h = np.array(values, dtype=np.float64).reshape(3, 3)
    if not np.isfinite(h).all():
        raise ValueError(f"{path}: homography has non-finite entries (NaN or inf); fix or remove the file")
    if not _invertible(h):
        raise ValueError(f"{path}: homography is singular (rank below 3, also after scaling its rows and columns: "
                         "not invertible; all zero?); fix or remove the file")
    return h


def _invertible(h: np.ndarray) -> bool:
    """Whether a finite ``(3, 3)`` matrix is invertible, whatever the scale of its entries: its rows and columns
    are scaled to unit maximum (a few rounds, which changes neither invertibility nor the mapping up to a change
    of units), then the ratio of its smallest to largest singular value must exceed ``1e-12``. A far-off but
    invertible homography (a translation of 100,000 px) passes; a rank-2 or all-zero one does not."""
    m = np.asarray(h, np.float64)
    for _ in range(4):
        for axis in (1, 0):
            scale = np.abs(m).max(axis=axis, keepdims=True)
            if not (scale > 0).all():
                return False  # a zero row or column
            m = m / scale
    s = np.linalg.svd(m, compute_uv=False)
    return bool(np.isfinite(s).all() and s[-1] > 1e-12 * s[0])


def _is_float(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def write_homography(path: str | os.PathLike, h: np.ndarray) -> None:
    """Write a ``(3, 3)`` homography as three lines of full-precision numbers (the HPatches text format)."""
    h = np.asarray(h, dtype=np.float64)
    if h.shape != (3, 3):
        raise ValueError(f"{path}: a homography must be (3, 3), got {h.shape}")
    Path(path).write_text("".join(" ".join(f"{v:.17g}" for v in row) + "\n" for row in h))


def write_sequence(folder: str | os.PathLike, images: list[np.ndarray], homographies: dict[int, np.ndarray],
                   extension: str = ".ppm") -> Path:
    """Write a sequence in the HPatches layout: ``1.ppm..n.ppm`` and ``H_1_2..H_1_n``.

    ``images``: n uint8 arrays ``(H, W)`` or ``(H, W, 3)`` RGB; ``homographies[k]`` for k = 2..n.
    The folder is created; files are written directly (callers build into a temporary folder).
    """
    from descnet.data.images import encode_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, image in enumerate(images, start=1):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"image {k}: expected uint8 (H, W) or (H, W, 3), got {image.dtype} {image.shape}")
        try:
            data = encode_image(image, extension)
        except ValueError as err:
            raise ValueError(f"{folder / f'{k}{extension}'}: {err}") from None
        (folder / f"{k}{extension}").write_bytes(data)
    for k in range(2, len(images) + 1):
        if k not in homographies:
            raise ValueError(f"{folder}: no homography given for image {k}")
        write_homography(folder / f"H_1_{k}", homographies[k])
    return folder


def _scan(folder: Path) -> tuple[str, dict[int, list[Path]], dict[int, Path]] | None:
    """The layout and the numbered image / homography files of ``folder``, or None if it has none."""
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_file())
    except NotADirectoryError:
        return None
    found = []
    for layout, (image_re, h_re, _) in _LAYOUTS.items():
        images: dict[int, list[Path]] = {}
        homs: dict[int, Path] = {}
        for name in names:
            if m := image_re.match(name):
                images.setdefault(int(m.group(1)), []).append(folder / name)
            elif m := h_re.match(name):
                homs[int(m.group(1))] = folder / name
        if images or homs:
            found.append((layout, images, homs))
    if len(found) > 1:
        raise ValueError(f"{folder}: mixes the HPatches (1.ppm, H_1_2) and Oxford (img1.ppm, H1to2p) layouts")
    return found[0] if found else None


def read_sequence(folder: str | os.PathLike) -> ImageSequence:
    """Read one sequence folder (either layout); homographies are parsed now, images on demand."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such sequence folder")
    scanned = _scan(folder)
    if scanned is None:
        raise ValueError(f"{folder}: not an image sequence (expected 1.ppm..6.ppm with H_1_2..H_1_6, "
                         f"or img1..img6 with H1to2p..H1to6p)")
    layout, images, homs = scanned
    image_re, _, h_name = _LAYOUTS[layout]
    n = max([*images, *homs])
    if n < 2:
        raise ValueError(f"{folder}: a sequence needs at least 2 images and 1 homography")
    extension = Path(next(iter(images.values()))[0]).suffix if images else ".ppm"
    stem = "{}" if layout == "hpatches" else "img{}"
    image_paths: dict[int, Path] = {}
    for k in range(1, n + 1):
        files = images.get(k)
        if not files:
            raise FileNotFoundError(f"{folder / (stem.format(k) + extension)}: missing image {k} of the "
                                    f"{n}-image sequence {folder.name}")
        if len(files) > 1:
            raise ValueError(f"{folder}: image {k} is ambiguous: {', '.join(f.name for f in files)}")
        image_paths[k] = files[0]
    homographies = {1: np.eye(3)}
    for k in range(2, n + 1):
        if k not in homs:
            raise FileNotFoundError(f"{folder / h_name.format(k)}: missing homography from image 1 to image {k} "
                                    f"of sequence {folder.name}")
        homographies[k] = read_homography(homs[k])
    extra = sorted(set(homs) - set(range(2, n + 1)))
    if extra:
        raise ValueError(f"{folder / h_name.format(extra[0])}: homography for an image that does not exist")
    for h in homographies.values():
        h.setflags(write=False)
    return ImageSequence(name=folder.name, path=folder, kind=sequence_kind(folder.name), layout=layout,
                    image_paths=image_paths, homographies=homographies)


class ImageSequences:
    """Image sequences with homographies, in the HPatches or Oxford layout (see the module docstring).

    ``root`` is a folder of sequence folders (``hpatches-sequences-release/``) or one sequence folder.
    Sub-folders that hold no sequence files (hidden folders, notes) are ignored; a sequence folder with a
    missing image or homography, or an unreadable homography, raises an error naming the file.

    Args:
        root: the folder.
        kind: keep only ``'illumination'`` or ``'viewpoint'`` sequences (by the ``i_`` / ``v_`` prefix).

    Example::

        seqs = ImageSequences("hpatches-sequences-release", kind="viewpoint")
        seq = seqs["v_churchill"]
        img1, img3, h13 = seq.image(1), seq.image(3), seq.homographies[3]
    """

    def __init__(self, root: str | os.PathLike, kind: str | None = None) -> None:
        self.root = Path(root)
        if kind not in (None, "illumination", "viewpoint"):
            raise ValueError(f"kind must be 'illumination', 'viewpoint' or None, got {kind!r}")
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such folder of image sequences")
        if _scan(self.root) is not None:
            folders = [self.root]
        else:
            folders = [p for p in sorted(self.root.iterdir())
                       if p.is_dir() and not p.name.startswith((".", "_")) and _scan(p) is not None]
        if not folders:
            raise ValueError(f"{self.root}: no image sequences found (expected folders with 1.ppm..6.ppm and "
                             f"H_1_2..H_1_6, or img1..img6 and H1to2p..H1to6p)")
        sequences = [read_sequence(p) for p in folders]
        self.sequences = [s for s in sequences if kind is None or s.kind == kind]
        self._index = {s.name: i for i, s in enumerate(self.sequences)}

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sequences]

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, key: int | str) -> ImageSequence:
        if isinstance(key, str):
            if key not in self._index:
                raise KeyError(f"{self.root}: no sequence named {key!r}")
            return self.sequences[self._index[key]]
        return self.sequences[key]

    def __iter__(self) -> Iterator[ImageSequence]:
        return iter(self.sequences)

    def __repr__(self) -> str:
        return f"ImageSequences(root={str(self.root)!r}, sequences={len(self)})"
