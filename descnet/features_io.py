"""Keypoints, features and matches on disk: the keypoint text file and the two HDF5 files of descnet.

Everything here is plain numpy + h5py (no torch), so results can be read anywhere.

**Keypoint convention** (OpenCV's ``cv2.KeyPoint``, used by every array and file of this module): a keypoint
is a row ``x y size angle`` in pixels and degrees. ``(x, y)`` is the position with pixel centres at integer
coordinates (the top-left pixel is ``(0, 0)``), ``size`` is OpenCV's ``KeyPoint.size`` (the diameter of the
detected region, 2 sigma for SIFT) and ``angle`` is OpenCV's ``KeyPoint.angle``: degrees, growing
*clockwise* on screen (image y points down); ``-1`` means "no orientation" and reads as 0 (upright).
:func:`descnet.description.lafs_from_keypoints` turns these into kornia local affine frames.

**Keypoint text file** (``--keypoints FILE``): one keypoint per line, 4 numbers ``x y size angle``
separated by spaces, tabs or commas; blank lines and lines starting with ``#`` are skipped::

    # x y size angle
    120.5 64.0 8.3 272.1

**Features file** (``descnet describe --out FEATURES.h5``)::

    /                       attrs: format="descnet-features", version=1, keypoint_convention (text)
    /<name>/                one group per image; <name> is the image file name (made unique with ~2, ~3 ...)
        attrs: image (path as given), height, width, model, detector, mr_size
        keypoints    (N, 4) float32   x, y, size, angle (the convention above)
        descriptors  (N, D) float32   unit L2 rows
        scores       (N,)   float32   detector response (0 for keypoints given by the caller)
        lafs         (N, 2, 3) float32  the kornia LAFs the patches were cut from, in pixels

**Matches file** (``descnet match --out DIR`` writes ``DIR/matches.h5``)::

    /                       attrs: format="descnet-matches", version=1, keypoint_convention, matcher, ratio,
                            geometry ("homography" | "fundamental"), estimator, threshold, model_found (bool)
    /image1/, /image2/      two feature groups, as in the features file
    matches      (M, 2) int64    rows (index into image1 keypoints, index into image2 keypoints)
    distances    (M,)   float32  L2 distance between the two descriptors of each match
    inliers      (M,)   bool     the match agrees with the estimated model
    model        (3, 3) float64  the estimated homography (image1 -> image2) or fundamental matrix
                                 (x2^T F x1 = 0); all NaN when no model was found
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .io import atomic_path

__all__ = ["Features", "PairMatches", "KEYPOINT_CONVENTION", "parse_keypoints", "read_keypoints",
           "write_features", "read_features", "write_matches", "read_matches", "unique_group_names"]

FORMAT_VERSION = 1
KEYPOINT_CONVENTION = ("rows x y size angle as OpenCV cv2.KeyPoint: pixels, pixel centres at integers, size = "
                       "KeyPoint.size (diameter), angle in degrees growing clockwise on screen, -1 = upright")
_ARRAYS = ("keypoints", "descriptors", "scores", "lafs")


@dataclass(frozen=True)
class Features:
    """Keypoints and descriptors of one image.

    Attributes:
        keypoints: ``(N, 4)`` float32 rows ``x, y, size, angle`` (OpenCV convention, module docstring).
        descriptors: ``(N, D)`` float32, one unit-L2 row per keypoint.
        scores: ``(N,)`` float32 detector responses (0 for keypoints given by the caller).
        lafs: ``(N, 2, 3)`` float32 kornia local affine frames ``[A | c]`` in pixels the patches were cut from.
        image_size: ``(height, width)`` of the image.
        info: free-form metadata written as HDF5 attributes (image path, model, detector, mr_size).
    """

    keypoints: np.ndarray
    descriptors: np.ndarray
    scores: np.ndarray
    lafs: np.ndarray
    image_size: tuple[int, int]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.keypoints)
        if self.keypoints.ndim != 2 or self.keypoints.shape[1] != 4:
            raise ValueError(f"keypoints must be (N, 4) x, y, size, angle, got {self.keypoints.shape}")
        if self.descriptors.ndim != 2 or len(self.descriptors) != n:
            raise ValueError(f"descriptors must be (N, D) with N = {n} keypoints, got {self.descriptors.shape}")
        if self.scores.shape != (n,) or self.lafs.shape != (n, 2, 3):
            raise ValueError(f"scores must be ({n},) and lafs ({n}, 2, 3), got {self.scores.shape} and "
                             f"{self.lafs.shape}")

    def __len__(self) -> int:
        return len(self.keypoints)


@dataclass(frozen=True)
class PairMatches:
    """The result of matching two images (what ``matches.h5`` holds).

    Attributes:
        features1, features2: :class:`Features` of the two images.
        matches: ``(M, 2)`` int64 rows ``(index in features1, index in features2)``.
        distances: ``(M,)`` float32 descriptor L2 distances of the matches.
        inliers: ``(M,)`` bool, the matches consistent with ``model``.
        model: ``(3, 3)`` float64 homography (image 1 -> image 2) or fundamental matrix, or ``None``.
        settings: matcher, ratio, geometry, estimator, threshold (written as HDF5 attributes).
    """

    features1: Features
    features2: Features
    matches: np.ndarray
    distances: np.ndarray
    inliers: np.ndarray
    model: np.ndarray | None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def points1(self) -> np.ndarray:
        """``(M, 2)`` float64 positions in image 1 of the matches."""
        return self.features1.keypoints[self.matches[:, 0], :2].astype(np.float64)

    @property
    def points2(self) -> np.ndarray:
        """``(M, 2)`` float64 positions in image 2 of the matches."""
        return self.features2.keypoints[self.matches[:, 1], :2].astype(np.float64)


# ---------------------------------------------------------------- keypoint text files

_SPLIT = re.compile(r"[,\s]+")


def parse_keypoints(text: str, source: str = "keypoints") -> np.ndarray:
    """Parse keypoint text (module docstring) -> ``(N, 4)`` float32 ``x, y, size, angle``.

    ``source`` names the input in error messages (a file name). Raises ``ValueError`` for a row that does
    not have exactly 4 numbers, with its line number.
    """
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f for f in _SPLIT.split(line) if f]
        if len(fields) != 4:
            raise ValueError(f"{source}, line {number}: expected 4 columns 'x y size angle' (OpenCV keypoint "
                             f"convention), got {len(fields)}: {line[:80]!r}")
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            raise ValueError(f"{source}, line {number}: not a number in {line[:80]!r}") from None
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


def read_keypoints(path: str | os.PathLike) -> np.ndarray:
    """Read a keypoint text file -> ``(N, 4)`` float32 ``x, y, size, angle`` (see :func:`parse_keypoints`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such keypoint file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file of 'x y size angle' rows") from None
    return parse_keypoints(text, str(path))


# ---------------------------------------------------------------- HDF5 features and matches

def unique_group_names(paths: list[str | os.PathLike]) -> list[str]:
    """Group names for images: the file name, made unique with ``~2``, ``~3`` ... in order of appearance."""
    names: list[str] = []
    seen: set[str] = set()
    for p in paths:
        base = Path(p).name or str(p)
        name, k = base, 1
        while name in seen:
            k += 1
            name = f"{base}~{k}"
        seen.add(name)
        names.append(name)
    return names


def _write_group(group: Any, features: Features) -> None:
    group.attrs["height"], group.attrs["width"] = int(features.image_size[0]), int(features.image_size[1])
    _write_attrs(group, features.info)
    group.create_dataset("keypoints", data=np.asarray(features.keypoints, np.float32))
    group.create_dataset("descriptors", data=np.asarray(features.descriptors, np.float32))
    group.create_dataset("scores", data=np.asarray(features.scores, np.float32))
    group.create_dataset("lafs", data=np.asarray(features.lafs, np.float32))


def _read_group(group: Any, where: str) -> Features:
    missing = [key for key in _ARRAYS if key not in group]
    if missing:
        raise ValueError(f"{where}: missing dataset(s) {', '.join(missing)}")
    info = {key: _attr(value) for key, value in group.attrs.items() if key not in ("height", "width")}
    return Features(keypoints=group["keypoints"][()], descriptors=group["descriptors"][()],
                    scores=group["scores"][()], lafs=group["lafs"][()],
                    image_size=(int(group.attrs["height"]), int(group.attrs["width"])), info=info)


def _write_attrs(obj: Any, attrs: Mapping[str, Any]) -> None:
    import h5py

    for key, value in attrs.items():  # None is stored as an empty attribute and read back as None
        obj.attrs[key] = h5py.Empty("f") if value is None else value


def _attr(value: Any) -> Any:
    import h5py

    if isinstance(value, h5py.Empty):
        return None
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _open(path: Path, kind: str):
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {kind} file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from None
    if _attr(f.attrs.get("format")) != f"descnet-{kind}":
        f.close()
        raise ValueError(f"{path}: not a descnet {kind} file (no format='descnet-{kind}' attribute)")
    return f


def write_features(path: str | os.PathLike, features: Mapping[str, Features]) -> Path:
    """Write ``{group name: Features}`` to an HDF5 features file, atomically (module docstring)."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"], f.attrs["version"] = "descnet-features", FORMAT_VERSION
        f.attrs["keypoint_convention"] = KEYPOINT_CONVENTION
        for name, feats in features.items():
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"bad group name {name!r} for {path}: use a plain file name")
            _write_group(f.create_group(name), feats)
    return Path(path)


def read_features(path: str | os.PathLike) -> dict[str, Features]:
    """Read an HDF5 features file -> ``{group name: Features}`` in file order."""
    path = Path(path)
    with _open(path, "features") as f:
        return {name: _read_group(f[name], f"{path}:/{name}") for name in f}


def write_matches(path: str | os.PathLike, result: PairMatches) -> Path:
    """Write a :class:`PairMatches` to an HDF5 matches file, atomically (module docstring)."""
    import h5py

    model = np.full((3, 3), np.nan) if result.model is None else np.asarray(result.model, np.float64)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"], f.attrs["version"] = "descnet-matches", FORMAT_VERSION
        f.attrs["keypoint_convention"] = KEYPOINT_CONVENTION
        _write_attrs(f, result.settings)
        f.attrs["model_found"] = result.model is not None
        _write_group(f.create_group("image1"), result.features1)
        _write_group(f.create_group("image2"), result.features2)
        f.create_dataset("matches", data=np.asarray(result.matches, np.int64).reshape(-1, 2))
        f.create_dataset("distances", data=np.asarray(result.distances, np.float32))
        f.create_dataset("inliers", data=np.asarray(result.inliers, bool))
        f.create_dataset("model", data=model)
    return Path(path)


def read_matches(path: str | os.PathLike) -> PairMatches:
    """Read an HDF5 matches file -> :class:`PairMatches`."""
    path = Path(path)
    with _open(path, "matches") as f:
        for key in ("image1", "image2", "matches", "distances", "inliers", "model"):
            if key not in f:
                raise ValueError(f"{path}: missing {key!r}")
        skip = ("format", "version", "keypoint_convention", "model_found")
        settings = {k: _attr(v) for k, v in f.attrs.items() if k not in skip}
        found = bool(_attr(f.attrs.get("model_found", True)))
        return PairMatches(features1=_read_group(f["image1"], f"{path}:/image1"),
                           features2=_read_group(f["image2"], f"{path}:/image2"),
                           matches=f["matches"][()], distances=f["distances"][()], inliers=f["inliers"][()],
                           model=f["model"][()] if found else None, settings=settings)
