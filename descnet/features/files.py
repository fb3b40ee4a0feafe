"""Keypoints, features and matches on disk: the keypoint text file and the HDF5 feature and match files.

This module is the one place where these formats are written, read and documented. Everything here is plain
numpy + h5py (no torch), so results can be read anywhere.

**Keypoint convention** (OpenCV's ``cv2.KeyPoint``, used by every array and file of this module): a keypoint
is a row ``x y size angle`` in pixels and degrees. ``(x, y)`` is the position with pixel centres at integer
coordinates (the top-left pixel is ``(0, 0)``; hloc uses the same origin, COLMAP puts it at the corner of the
first pixel, i.e. adds 0.5: :mod:`descnet.geometry.colmap`), ``size`` is OpenCV's ``KeyPoint.size`` (the diameter of
the detected region, 2 sigma for SIFT) and ``angle`` is OpenCV's ``KeyPoint.angle``: degrees, growing
*clockwise* on screen (image y points down); ``-1`` means "no orientation" and reads as 0 (upright).
:func:`descnet.features.keypoints.lafs_from_keypoints` turns these into kornia local affine frames.

**Keypoint text file** (``--keypoints FILE``): one keypoint per line, 4 numbers ``x y size angle``
separated by spaces, tabs or commas; blank lines and lines starting with ``#`` are skipped::

    # x y size angle
    120.5 64.0 8.3 272.1

**Features file** (``descnet describe ... --out FEATURES.h5``): hloc's layout (``hloc/extract_features.py``),
which hloc's readers (``get_keypoints``, its pair datasets, its COLMAP import) use unchanged; descnet's own
fields are extra datasets and attributes that hloc ignores (its matchers load every dataset of an image
group as a float tensor, so all extras are numeric)::

    /                     attrs: format="descnet-features", version=2, keypoint_convention,
                                 model, model_digest, detector, max_keypoints, mr_size (the settings of the
                                 run that made it; model_digest: sha256 of the model's architecture options
                                 and weights, :func:`descnet.models.model_digest`)
    /<name>/              one group per image. <name> is the image path relative to the image folder with
                          "/" separators (nested groups, as hloc), or the file name for images given one by one
        attrs: image (the path as given), image_sha256 (the image file's content), model, weights
               ("trained" | "untrained" | "hand-crafted"), detector (or "given"), mr_size,
               features_sha256 (of this group's keypoints and descriptors: what matches files refer to)
        keypoints    (N, 2)    float32  x, y (the convention above: hloc's)
        descriptors  (D, N)    float32  one unit-L2 *column* per keypoint (hloc's layout)
        scores       (N,)      float32  detector response (0 for keypoints given by the caller)
        image_size   (2,)      int64    (width, height), hloc's order
        sizes        (N,)      float32  OpenCV KeyPoint.size            [descnet]
        angles       (N,)      float32  OpenCV KeyPoint.angle (degrees) [descnet]
        lafs         (N, 2, 3) float32  the kornia LAFs the patches were cut from, in pixels [descnet]

descnet reads hloc's feature files too (no format attribute; float16 allowed; ``sizes``/``angles``/``lafs``
absent read as NaN and ``scores`` as 0; descriptors stored ``(D, N)`` as hloc, or ``(N, D)``, told apart by
the number of keypoints -- when ``N = D`` by the other images of the file, refused when every image is
square) and the version 1 files of earlier descnet releases. Descriptors that are not finite are refused,
naming the file and the image.

**Matches file** (``descnet match --features F --pairs P --out MATCHES.h5``; ``DIR/matches.h5`` of a single
pair): hloc's layout (``hloc/match_features.py``), read by hloc's ``get_matches`` and COLMAP import::

    /                      attrs: format="descnet-matches", version=2, keypoint_convention, matcher, ratio,
                                  geometry, estimator, threshold (the settings of the run that made it)
    /<pair>/               pair = names_to_pair(name0, name1) = name0 and name1 with "/" replaced by "-",
                           joined by "/" (so one group per image 0 holding one group per image 1, as hloc)
        attrs: name0, name1 (the image names), num_keypoints1, model_found, features0, features1 (the
               features_sha256 of the two images' entries the matches index into)   [descnet]
        matches0          (N0,)   int32    index into image 1's keypoints for every keypoint of image 0, -1 if none
        matching_scores0  (N0,)   float32  1 - d^2 / 2 (the cosine similarity of unit descriptors), 0 if none
        distances0        (N0,)   float32  L2 distance of the two descriptors, NaN if none [descnet]
        inliers0          (N0,)   bool     the match agrees with the estimated geometry matrix  [descnet]
        model             (3, 3)  float64  the estimated geometry matrix: homography (image 0 -> image 1) or
                                           fundamental matrix (x1^T F x0 = 0); all NaN when none was found
                                           [descnet; ``PairMatches.geometry_matrix``]

A pair is found under either order (hloc's ``find_pair``; the matches are then swapped, and the geometry
matrix inverted or transposed). Both files can be grown: :func:`append_features` and :func:`append_matches` add
images or pairs to a copy of the file that replaces it when they finish -- also when they stop early with an
error or Ctrl-C, so the finished work is kept and a rerun skips it; an interrupted write never damages the file.
One process writes a file at a time (:func:`descnet.io.output_lock`), and ``overwrite`` replaces only a file in
descnet's format of the same kind (:class:`descnet.io.ForeignFileError` otherwise).

**Provenance**: what is reused is checked by content, not by name. Adding to a file needs the same settings
(model digest included); :mod:`descnet.features.pipeline` checks that a skipped image's ``image_sha256`` is the
image's content now and that a skipped pair's ``features0``/``features1`` are the features file's entries now
(:func:`read_feature_digests`); files without these records (hloc's, older descnet's) are checked by their
keypoint counts.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

__all__ = ["Features", "PairMatches", "KEYPOINT_CONVENTION", "FEATURES_FORMAT", "MATCHES_FORMAT", "parse_keypoints",
           "read_keypoints", "write_features", "read_features", "read_feature_info", "list_feature_names", "append_features",
           "write_matches", "read_matches", "list_match_pairs", "append_matches", "names_to_pair",
           "check_image_name", "unique_group_names", "read_feature_digests", "features_digest", "check_pair_keys"]

FORMAT_VERSION = 2
FEATURES_FORMAT = "descnet-features"
MATCHES_FORMAT = "descnet-matches"
KEYPOINT_CONVENTION = ("hloc/OpenCV: x, y in pixels with pixel centres at integers (top-left pixel = (0, 0)); "
                       "sizes = OpenCV KeyPoint.size (diameter), angles = KeyPoint.angle in degrees growing "
                       "clockwise on screen, -1 = upright")
#: run settings that must agree to add images to a features file / pairs to a matches file
FEATURE_SETTINGS = ("model", "model_digest", "detector", "max_keypoints", "mr_size")
MATCH_SETTINGS = ("matcher", "ratio", "geometry", "estimator", "threshold")


@dataclass(frozen=True)
class Features:
    """Keypoints and descriptors of one image.

    Attributes:
        keypoints: ``(N, 4)`` float32 rows ``x, y, size, angle`` (OpenCV convention, module docstring); size and
            angle are NaN when a file did not record them (hloc's files).
        descriptors: ``(N, D)`` float32, one unit-L2 row per keypoint (files store the transpose, hloc's layout).
        scores: ``(N,)`` float32 detector responses (0 for keypoints given by the caller).
        lafs: ``(N, 2, 3)`` float32 kornia local affine frames ``[A | c]`` in pixels the patches were cut from
            (NaN when unknown).
        image_size: ``(height, width)`` of the image.
        info: free-form metadata written as HDF5 attributes (image path, model, weights, detector, mr_size).
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
    """The matches of one image pair (one group of a matches file).

    Attributes:
        matches: ``(M, 2)`` int64 rows ``(index in image 1, index in image 2)``; each image-1 keypoint at most once.
        distances: ``(M,)`` float32 descriptor L2 distances of the matches (NaN when a file did not record them).
        inliers: ``(M,)`` bool, the matches consistent with ``geometry_matrix``.
        geometry_matrix: the estimated ``(3, 3)`` float64 homography (image 1 -> image 2) or fundamental matrix,
            or ``None`` (stored as the dataset ``model``, with the attribute ``model_found``).
        settings: matcher, ratio, geometry, estimator, threshold (HDF5 attributes of the file).
        features1, features2: the two images' :class:`Features` when known (``match_pair``), else ``None``.
        num_keypoints: ``(N1, N2)``, from the features when given.
        feature_digests: the ``features_sha256`` of the two images' entries the matches were computed from
            (:func:`features_digest`; ``None`` when unknown: hloc's files, older descnet's).
    """

    matches: np.ndarray
    distances: np.ndarray
    inliers: np.ndarray
    geometry_matrix: np.ndarray | None
    settings: dict[str, Any] = field(default_factory=dict)
    features1: Features | None = None
    features2: Features | None = None
    num_keypoints: tuple[int, int] | None = None
    feature_digests: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        m = len(self.matches)
        if self.matches.shape != (m, 2) or self.distances.shape != (m,) or self.inliers.shape != (m,):
            raise ValueError(f"matches must be (M, 2) with (M,) distances and inliers, got {self.matches.shape}, "
                             f"{self.distances.shape} and {self.inliers.shape}")
        if self.num_keypoints is None and self.features1 is not None and self.features2 is not None:
            object.__setattr__(self, "num_keypoints", (len(self.features1), len(self.features2)))
        if self.feature_digests is None and self.features1 is not None and self.features2 is not None:
            object.__setattr__(self, "feature_digests", (features_digest(self.features1),
                                                         features_digest(self.features2)))

    @property
    def points1(self) -> np.ndarray:
        """``(M, 2)`` float64 positions in image 1 of the matches (needs ``features1``)."""
        return self._need(self.features1, 1).keypoints[self.matches[:, 0], :2].astype(np.float64)

    @property
    def points2(self) -> np.ndarray:
        """``(M, 2)`` float64 positions in image 2 of the matches (needs ``features2``)."""
        return self._need(self.features2, 2).keypoints[self.matches[:, 1], :2].astype(np.float64)

    @staticmethod
    def _need(features: Features | None, which: int) -> Features:
        if features is None:
            raise ValueError(f"these matches were read without the features of image {which}: "
                             "read them from the features file (read_features)")
        return features


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


# ---------------------------------------------------------------- names

def unique_group_names(paths: list[str | os.PathLike]) -> list[str]:
    """Group names for images given one by one: the file name, made unique with ``~2``, ``~3`` ... in order."""
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


def check_image_name(name: str, where: str = "image name") -> str:
    """Validate an image name (a relative path with ``/`` separators) -> the name; ``ValueError`` if unusable."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in name:
        raise ValueError(f"{where} {name!r}: use a relative path with '/' separators and no empty, '.' or '..' parts")
    return name


def names_to_pair(name0: str, name1: str, separator: str = "/") -> str:
    """hloc's pair group name: both names with ``/`` replaced by ``-``, joined by ``separator``."""
    return separator.join((name0.replace("/", "-"), name1.replace("/", "-")))


# ---------------------------------------------------------------- provenance

def _digest_arrays(xy: np.ndarray, descriptors_dn: np.ndarray) -> str:
    import hashlib

    h = hashlib.sha256()
    for a in (np.ascontiguousarray(xy, np.float32), np.ascontiguousarray(descriptors_dn, np.float32)):
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def features_digest(features: Features) -> str:
    """sha256 of an image's keypoint positions and descriptors as a features file stores them (float32
    ``(N, 2)`` and ``(D, N)``): the ``features_sha256`` an entry records and a matches file refers to."""
    return _digest_arrays(np.asarray(features.keypoints)[:, :2], np.asarray(features.descriptors, np.float32).T)


def _short(value: Any) -> str:
    """A value for messages: long digests cut to 12 characters."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "..."
    return repr(value)


# ---------------------------------------------------------------- HDF5 helpers

def _attr(value: Any) -> Any:
    import h5py

    if isinstance(value, h5py.Empty):
        return None
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_attrs(obj: Any, attrs: Mapping[str, Any]) -> None:
    import h5py

    for key, value in attrs.items():  # None is stored as an empty attribute and read back as None
        obj.attrs[key] = h5py.Empty("f") if value is None else value


def _open(path: Path, kind: str):
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {kind} file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from None


def _groups_with(f: Any, dataset: str) -> list[str]:
    """Paths (no leading ``/``) of the groups of ``f`` that hold a dataset named ``dataset``, sorted."""
    import h5py

    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and name.rsplit("/", 1)[-1] == dataset:
            found.append(obj.parent.name.strip("/"))

    f.visititems(visit)
    return sorted(found)


def _version(f: Any, path: Path, kind: str) -> int:
    """The layout version of a file: 1 or 2 for descnet's, 0 for a file without descnet's format attribute."""
    fmt = _attr(f.attrs.get("format"))
    other = MATCHES_FORMAT if kind == "features" else FEATURES_FORMAT
    if fmt == other:
        raise ValueError(f"{path}: is a descnet {other.split('-')[1]} file, not a {kind} file")
    if fmt is None:
        return 0
    if fmt != f"descnet-{kind}":
        raise ValueError(f"{path}: format {fmt!r} is not a descnet {kind} file")
    version = int(_attr(f.attrs.get("version", 1)))
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: layout version {version} is newer than this descnet reads ({FORMAT_VERSION}); "
                         "update descnet")
    return version


@contextlib.contextmanager
def _growing(path: str | os.PathLike, kind: str, settings: Mapping[str, Any], checked: tuple[str, ...],
             overwrite: bool) -> Iterator[_Target]:
    """Yield a :class:`_Target` (an open h5py file) to add groups to: a copy of ``path`` (or a new file) that replaces ``path`` at the end.

    It replaces ``path`` when the block ends normally, and also when it ends with an exception (Ctrl-C
    included) after groups were added: every added group is complete, so the finished work is kept. The file
    must be a descnet file of this kind and layout whose ``checked`` settings equal ``settings``.
    """
    import h5py

    from ..io import output_lock

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name such as {path / f'{kind}.h5'}")
    with output_lock(path):
        if overwrite and (path.exists() or path.is_symlink()):
            _check_own_file(path, kind)
        with _growing_locked(path, kind, settings, checked, overwrite) as target:
            yield target


def _check_own_file(path: Path, kind: str) -> None:
    """Refuse to replace ``path`` unless it is a descnet file of ``kind`` (``--overwrite`` replaces only those)."""
    import h5py

    from ..io import ForeignFileError

    fmt = None
    if path.is_file() and not path.is_symlink():
        try:
            with h5py.File(path, "r") as f:
                fmt = _attr(f.attrs.get("format"))
        except OSError:
            fmt = None
    if fmt != f"descnet-{kind}":
        what = "a folder or link" if not path.is_file() or path.is_symlink() else \
            "not an HDF5 file" if not h5py.is_hdf5(path) else \
            f"an HDF5 file descnet did not write as a {kind} file (format {fmt!r})"
        raise ForeignFileError(f"{path}: {what}; --overwrite replaces only descnet's own {kind} files: move it "
                               "away or choose another output file")


@contextlib.contextmanager
def _growing_locked(path: Path, kind: str, settings: Mapping[str, Any], checked: tuple[str, ...],
                    overwrite: bool) -> Iterator[_Target]:
    import h5py

    existing = path.exists() and not overwrite
    if existing:
        with _open(path, kind) as f:
            version = _version(f, path, kind)
            if version != FORMAT_VERSION:
                what = "not a descnet" if version == 0 else f"an older (version {version}) descnet"
                raise ValueError(f"{path}: {what} {kind} file; descnet adds only to its own files of this "
                                 f"version: choose another output file")
            stored = {key: _attr(f.attrs.get(key)) for key in checked}
        wanted = {key: settings.get(key) for key in checked}
        if stored != wanted:
            diff = ", ".join(f"{k} {_short(stored[k])} (this run: {_short(wanted[k])})" for k in checked
                             if stored[k] != wanted[k])
            unrecorded = [k for k in checked if stored[k] is None and wanted[k] is not None]
            note = (f" (the file does not record {', '.join(unrecorded)}: an older descnet made it, so what it "
                    "holds cannot be checked)") if unrecorded else ""
            raise ValueError(f"{path}: holds {kind} made with other settings: {diff}{note}; write to another file "
                             f"(another --out) or start it afresh with --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    from ..io import remove_stale_temporaries

    remove_stale_temporaries(path)  # what writers killed earlier left (a .NAME.PID.*.tmp of a dead process)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".h5.tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        if existing:
            shutil.copyfile(path, tmp)
        f = h5py.File(tmp, "a" if existing else "w")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    committed = False
    try:
        if not existing:
            f.attrs["format"], f.attrs["version"] = f"descnet-{kind}", FORMAT_VERSION
            f.attrs["keypoint_convention"] = KEYPOINT_CONVENTION
            _write_attrs(f, {key: settings.get(key) for key in checked})
        target, finished = _Target(f), False
        try:
            yield target
            finished = True
        finally:
            f.close()
            if target.added or (finished and not existing):
                mask = os.umask(0)
                os.umask(mask)
                os.chmod(tmp, 0o666 & ~mask)
                os.replace(tmp, path)
                committed = True
    finally:
        if not committed:
            tmp.unlink(missing_ok=True)


class _Target:
    """An open HDF5 file being grown, and how many groups were added to it."""

    def __init__(self, file: Any) -> None:
        self.file, self.added = file, 0

    def add_group(self, name: str, fill: Any) -> None:
        """Create group ``name`` and fill it with ``fill(group)``; a failure removes the half-written group."""
        group = self.file.create_group(name)
        try:
            fill(group)
        except BaseException:
            del self.file[name]
            raise
        self.added += 1


# ---------------------------------------------------------------- features files

def _write_image(group: Any, features: Features) -> None:
    info = dict(features.info)
    _write_attrs(group, info)
    kp = np.asarray(features.keypoints, np.float32)
    group.create_dataset("keypoints", data=np.ascontiguousarray(kp[:, :2]))
    group.create_dataset("descriptors", data=np.ascontiguousarray(np.asarray(features.descriptors, np.float32).T))
    group.create_dataset("scores", data=np.asarray(features.scores, np.float32))
    height, width = features.image_size
    group.create_dataset("image_size", data=np.array([width, height], np.int64))
    group.create_dataset("sizes", data=np.ascontiguousarray(kp[:, 2]))
    group.create_dataset("angles", data=np.ascontiguousarray(kp[:, 3]))
    group.create_dataset("lafs", data=np.asarray(features.lafs, np.float32))
    group.attrs["features_sha256"] = features_digest(features)


def _read_image(group: Any, where: str, version: int, layout: Any = None) -> Features:
    """One image group -> :class:`Features`. ``layout()``: the file's descriptor layout ``"DN"``/``"ND"`` (or
    ``None``), asked only when the shapes cannot tell (``N = D`` in a file not in descnet's format)."""
    if version == 1:
        return _read_image_v1(group, where)
    if "keypoints" not in group:
        raise ValueError(f"{where}: this group has no 'keypoints' dataset, so it is not an image of a features "
                         "file (an incomplete or foreign file; the hloc layout needs keypoints, descriptors and "
                         "image_size per image)")
    missing = [key for key in ("descriptors", "image_size") if key not in group]
    if missing:
        raise ValueError(f"{where}: missing dataset(s) {', '.join(missing)} of the hloc feature layout")
    xy = np.asarray(group["keypoints"][()], np.float32)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"{where}: keypoints must be (N, 2) x, y, got {xy.shape}")
    n = len(xy)
    desc = np.asarray(group["descriptors"][()], np.float32)
    if desc.ndim != 2 or n not in desc.shape or (version == 2 and desc.shape[1] != n):
        raise ValueError(f"{where}: descriptors must be (D, N) with N = {n} keypoints (hloc's layout), got "
                         f"{desc.shape}")
    if desc.shape[0] == desc.shape[1] == n and version == 0 and n > 0:
        found = layout() if layout is not None else None
        if found is None:
            raise ValueError(f"{where}: {n} keypoints with {n}-D descriptors: the file does not say which axis is "
                             "the descriptor's (no descnet format, no other image with N != D); cannot read it "
                             "unambiguously")
        desc = desc if found == "DN" else np.ascontiguousarray(desc.T)
    elif desc.shape[1] != n:  # (N, D), D != N: a file written row-wise
        desc = np.ascontiguousarray(desc.T)
    if not np.isfinite(desc).all():
        bad = np.flatnonzero(~np.isfinite(desc).all(axis=0))
        raise ValueError(f"{where}: descriptors of {len(bad)} of {n} keypoints are not finite (NaN or inf; first: "
                         f"keypoint {bad[0]}); describe this image again")
    size = np.asarray(group["image_size"][()]).ravel()
    if size.shape != (2,):
        raise ValueError(f"{where}: image_size must be (width, height), got {size.tolist()}")

    def column(key: str, shape: tuple[int, ...], default: float) -> np.ndarray:
        if key not in group:
            return np.full(shape, default, np.float32)
        value = np.asarray(group[key][()], np.float32)
        if value.shape != shape:
            raise ValueError(f"{where}: {key} must have shape {shape}, got {value.shape}")
        return value

    keypoints = np.concatenate([xy, column("sizes", (n,), np.nan)[:, None], column("angles", (n,), np.nan)[:, None]],
                               axis=1)
    info = {key: _attr(value) for key, value in group.attrs.items() if key != "features_sha256"}  # recomputed on write
    return Features(keypoints=keypoints, descriptors=np.ascontiguousarray(desc.T), scores=column("scores", (n,), 0.0),
                    lafs=column("lafs", (n, 2, 3), np.nan), image_size=(int(size[1]), int(size[0])), info=info)


def _file_layout(f: Any, version: int) -> Any:
    """``() -> "DN" | "ND" | None``: the descriptor layout of a features file: descnet's is ``(D, N)``; else the
    ``descriptor_layout`` attribute, else the first image whose shapes tell (``N != D``). Computed once."""
    cache: list[Any] = []

    def layout() -> Any:
        if not cache:
            found = "DN" if version == 2 else _attr(f.attrs.get("descriptor_layout"))
            if found not in ("DN", "ND"):
                found = None
                for name in _groups_with(f, "keypoints"):
                    group = f[name]
                    if "descriptors" not in group:
                        continue
                    n, shape = len(group["keypoints"]), group["descriptors"].shape
                    if len(shape) == 2 and shape[0] != shape[1] and n in shape:
                        found = "DN" if shape[1] == n else "ND"
                        break
            cache.append(found)
        return cache[0]

    return layout


def _read_image_v1(group: Any, where: str) -> Features:
    """descnet 0.1's layout: (N, 4) keypoints, (N, D) descriptors, height and width attributes."""
    missing = [key for key in ("keypoints", "descriptors", "scores", "lafs") if key not in group]
    if missing:
        raise ValueError(f"{where}: missing dataset(s) {', '.join(missing)}")
    info = {key: _attr(value) for key, value in group.attrs.items() if key not in ("height", "width")}
    return Features(keypoints=group["keypoints"][()], descriptors=group["descriptors"][()],
                    scores=group["scores"][()], lafs=group["lafs"][()],
                    image_size=(int(group.attrs["height"]), int(group.attrs["width"])), info=info)


def _image_names(f: Any, version: int) -> list[str]:
    if version == 1:
        return list(f)
    return _groups_with(f, "keypoints")


def list_feature_names(path: str | os.PathLike) -> list[str]:
    """The image names of a features file (descnet's or hloc's), sorted. ``ValueError`` for an HDF5 file in
    which no group holds a ``keypoints`` dataset (not a features file)."""
    path = Path(path)
    with _open(path, "features") as f:
        version = _version(f, path, "features")
        names = _image_names(f, version)
        if not names and version == 0:
            raise ValueError(f"{path}: not a features file (no group holds a 'keypoints' dataset)")
        return names


def read_feature_digests(path: str | os.PathLike, names: Iterable[str]) -> dict[str, str]:
    """``{name: features_sha256}`` of images of a features file: the recorded digest (descnet's files), else
    computed from the stored keypoints and descriptors (:func:`features_digest`). ``KeyError`` for a missing
    image, as :func:`read_features`."""
    path = Path(path)
    names = list(names)
    with _open(path, "features") as f:
        recorded = {name: _attr(f[name].attrs.get("features_sha256")) for name in names
                    if name in f and hasattr(f[name], "attrs")}
    todo = [name for name in names if not recorded.get(name)]
    computed = {name: features_digest(feats) for name, feats in read_features(path, todo).items()} if todo else {}
    return {name: recorded.get(name) or computed[name] for name in names}


def read_features(path: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, Features]:
    """Read a features file (descnet's or hloc's) -> ``{image name: Features}``, all images or ``names``.

    Raises ``KeyError`` naming the file for an image it does not hold, ``ValueError`` for a file that is not
    a feature file.
    """
    path = Path(path)
    with _open(path, "features") as f:
        version = _version(f, path, "features")
        if names is None:
            names = _image_names(f, version)
            if not names and version == 0:
                raise ValueError(f"{path}: not a feature file (no group holds a 'keypoints' dataset)")
        out = {}
        layout = _file_layout(f, version)
        for name in names:
            if name not in f or not hasattr(f[name], "keys"):
                raise KeyError(f"{path}: no features of image {name!r}")
            out[name] = _read_image(f[name], f"{path}:/{name}", version, layout)
        return out


def read_feature_info(path: str | os.PathLike, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The attributes (image path, model, detector ...) of some images of a features file, without the arrays."""
    path = Path(path)
    with _open(path, "features") as f:
        _version(f, path, "features")
        return {name: {k: _attr(v) for k, v in f[name].attrs.items()} for name in names if name in f}


def write_features(path: str | os.PathLike, features: Mapping[str, Features],
                   settings: Mapping[str, Any] | None = None) -> Path:
    """Write ``{image name: Features}`` to a new features file, atomically (module docstring)."""
    with append_features(path, settings, overwrite=True) as add:
        for name, feats in features.items():
            add(name, feats)
    return Path(path)


class _Adder:
    """What :func:`append_features` / :func:`append_matches` yield: call it to add, ``in`` to test."""

    def __init__(self, target: _Target, path: Path, add: Any, contains: Any, info: Any = None) -> None:
        self._target, self.path, self._add, self._contains, self._info = target, path, add, contains, info

    def info(self, *key: Any) -> dict[str, Any]:
        """What the file records about an entry it holds (an image's attributes; a pair's ``feature_digests``
        and ``num_keypoints`` in the order asked)."""
        return self._info(self._target.file, *key)

    def __call__(self, *args: Any) -> None:
        self._add(self._target, *args)

    def __contains__(self, key: Any) -> bool:
        return self._contains(self._target.file, key)

    @property
    def added(self) -> int:
        """How many groups this block has added."""
        return self._target.added


@contextlib.contextmanager
def append_features(path: str | os.PathLike, settings: Mapping[str, Any] | None = None,
                    overwrite: bool = False) -> Iterator[_Adder]:
    """Add images to a features file (created if absent): ``with append_features(p, s) as add: add(name, f)``.

    ``name in add`` tells whether the file already holds an image. ``settings`` (model, detector, mr_size)
    must equal those of an existing file, else ``ValueError``; ``overwrite=True`` starts a new file instead.
    The file is replaced when the block ends, also after an error once images were added (module docstring).
    """
    settings = dict(settings or {})

    def add(target: _Target, name: str, feats: Features) -> None:
        check_image_name(name)
        if name in target.file:
            raise ValueError(f"{path}: already holds image {name!r}")
        target.add_group(name, lambda group: _write_image(group, feats))

    def contains(f: Any, name: str) -> bool:
        return name in f and "keypoints" in f[name]

    def info(f: Any, name: str) -> dict[str, Any]:
        return {key: _attr(value) for key, value in f[name].attrs.items()}

    with _growing(path, "features", settings, FEATURE_SETTINGS, overwrite) as target:
        yield _Adder(target, Path(path), add, contains, info)


# ---------------------------------------------------------------- matches files

def _find_pair(f: Any, name0: str, name1: str) -> tuple[str, bool] | None:
    """hloc's lookup: the pair group of (name0, name1) in either order, also hloc's older "_" names. A group
    whose recorded names (descnet's ``name0``/``name1``) are another pair's is not this pair's (two pairs can
    give one hloc name: ``a/x.png`` and ``a-x.png``)."""
    for separator in ("/", "_"):
        for a, b, swapped in ((name0, name1, False), (name1, name0, True)):
            key = names_to_pair(a, b, separator)
            if key in f and hasattr(f[key], "keys") and "matches0" in f[key]:
                recorded = (_attr(f[key].attrs.get("name0")), _attr(f[key].attrs.get("name1")))
                if recorded == (None, None) or recorded == (a, b):
                    return key, swapped
    return None


def _pair_held_under(f: Any, name0: str, name1: str) -> tuple[str, str, str] | None:
    """``(key, other name0, other name1)`` when the hloc group of this pair (either order) holds another pair."""
    for a, b in ((name0, name1), (name1, name0)):
        key = names_to_pair(a, b)
        if key in f and hasattr(f[key], "attrs") and "name0" in f[key].attrs:
            recorded = (_attr(f[key].attrs["name0"]), _attr(f[key].attrs["name1"]))
            if recorded != (a, b):
                return key, recorded[0], recorded[1]
    return None


def check_pair_keys(pairs: Iterable[tuple[str, str]], source: str = "pairs") -> None:
    """Refuse two pairs that give one hloc group name (:func:`names_to_pair` turns ``/`` into ``-``, so
    ``a/x.png`` and ``a-x.png`` collide), naming both pairs and the group."""
    seen: dict[str, tuple[str, str]] = {}
    for name0, name1 in pairs:
        for key in (names_to_pair(name0, name1), names_to_pair(name1, name0)):
            other = seen.get(key)
            if other is not None and set(other) != {name0, name1}:
                raise ValueError(f"{source}: the pairs {other[0]} {other[1]} and {name0} {name1} both give the hloc "
                                 f"group {key!r} ('/' in names becomes '-'), so one matches file cannot hold both; "
                                 "rename one of the images")
        seen.setdefault(names_to_pair(name0, name1), (name0, name1))
        seen.setdefault(names_to_pair(name1, name0), (name0, name1))


def _write_pair(group: Any, name0: str, name1: str, pm: PairMatches) -> None:
    if pm.num_keypoints is None:
        raise ValueError(f"pair {name0} {name1}: the number of keypoints of each image is needed to write matches0")
    n0, n1 = pm.num_keypoints
    m = np.asarray(pm.matches, np.int64).reshape(-1, 2)
    if len(m) and (m.min() < 0 or m[:, 0].max() >= n0 or m[:, 1].max() >= n1):
        raise ValueError(f"pair {name0} {name1}: match indices outside the {n0} and {n1} keypoints")
    if len(np.unique(m[:, 0])) != len(m):
        raise ValueError(f"pair {name0} {name1}: a keypoint of {name0} is matched twice; matches0 holds one match "
                         "per keypoint of image 0")
    dist = np.asarray(pm.distances, np.float32)
    matches0 = np.full(n0, -1, np.int32)
    matches0[m[:, 0]] = m[:, 1]
    scores0 = np.zeros(n0, np.float32)
    scores0[m[:, 0]] = 1.0 - dist.astype(np.float64) ** 2 / 2.0
    distances0 = np.full(n0, np.nan, np.float32)
    distances0[m[:, 0]] = dist
    inliers0 = np.zeros(n0, bool)
    inliers0[m[:, 0]] = np.asarray(pm.inliers, bool)
    _write_attrs(group, {"name0": name0, "name1": name1, "num_keypoints1": int(n1),
                         "model_found": pm.geometry_matrix is not None})
    if pm.feature_digests is not None:
        group.attrs["features0"], group.attrs["features1"] = pm.feature_digests
    group.create_dataset("matches0", data=matches0)
    group.create_dataset("matching_scores0", data=scores0)
    group.create_dataset("distances0", data=distances0)
    group.create_dataset("inliers0", data=inliers0)
    group.create_dataset("model", data=np.full((3, 3), np.nan) if pm.geometry_matrix is None
                         else np.asarray(pm.geometry_matrix, np.float64))


def _read_pair(group: Any, where: str, settings: dict[str, Any], swapped: bool) -> PairMatches:
    matches0 = np.asarray(group["matches0"][()]).astype(np.int64).ravel()
    idx = np.flatnonzero(matches0 >= 0)
    matches = np.stack([idx, matches0[idx]], axis=1).reshape(-1, 2)

    def per_match(key: str, default: Any, dtype: Any) -> np.ndarray:
        if key not in group:
            return np.full(len(idx), default, dtype)
        value = np.asarray(group[key][()]).ravel()
        if value.shape != matches0.shape:
            raise ValueError(f"{where}: {key} must have one entry per keypoint ({matches0.shape}), got {value.shape}")
        return value[idx].astype(dtype)

    distances = per_match("distances0", np.nan, np.float32)
    inliers = per_match("inliers0", False, bool)
    matrix = None
    if "model" in group and bool(_attr(group.attrs.get("model_found", True))):
        matrix = np.asarray(group["model"][()], np.float64)
        if not np.isfinite(matrix).all():
            matrix = None
    n1 = _attr(group.attrs.get("num_keypoints1"))
    sizes = (len(matches0), int(n1)) if n1 is not None else None
    digests = (_attr(group.attrs["features0"]), _attr(group.attrs["features1"])) \
        if "features0" in group.attrs and "features1" in group.attrs else None
    if swapped:
        matches = matches[:, ::-1].copy()
        sizes = sizes[::-1] if sizes else None
        digests = digests[::-1] if digests else None
        if matrix is not None:
            matrix = np.linalg.inv(matrix) if settings.get("geometry") == "homography" else matrix.T.copy()
        order = np.argsort(matches[:, 0], kind="stable")
        matches, distances, inliers = matches[order], distances[order], inliers[order]
    return PairMatches(matches=matches, distances=distances, inliers=inliers, geometry_matrix=matrix,
                       settings=dict(settings), num_keypoints=sizes, feature_digests=digests)


def _settings(f: Any) -> dict[str, Any]:
    return {key: _attr(f.attrs[key]) for key in MATCH_SETTINGS if key in f.attrs}


def list_match_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The ``(name0, name1)`` pairs of a matches file (descnet's, or hloc's with "/"-joined pair names)."""
    path = Path(path)
    with _open(path, "matches") as f:
        _version(f, path, "matches")
        pairs = []
        for key in _groups_with(f, "matches0"):
            group = f[key]
            if "name0" in group.attrs:
                pairs.append((_attr(group.attrs["name0"]), _attr(group.attrs["name1"])))
            elif "/" in key:
                pairs.append(tuple(key.split("/", 1)))
        return pairs


def read_matches(path: str | os.PathLike,
                 pairs: Iterable[tuple[str, str]] | None = None) -> dict[tuple[str, str], PairMatches]:
    """Read a matches file (descnet's or hloc's) -> ``{(name0, name1): PairMatches}``, all pairs or ``pairs``.

    A pair stored in the other order is returned swapped (module docstring). ``KeyError`` naming the file
    for a pair it does not hold.
    """
    path = Path(path)
    with _open(path, "matches") as f:
        version = _version(f, path, "matches")
        if version == 1:
            raise ValueError(f"{path}: a matches file of descnet 0.1 (layout version 1); run descnet match again")
        settings = _settings(f)
        pairs = list_match_pairs(path) if pairs is None else list(pairs)
        out = {}
        for name0, name1 in pairs:
            found = _find_pair(f, name0, name1)
            if found is None:
                raise KeyError(f"{path}: no matches of the pair {name0} {name1}")
            key, swapped = found
            out[(name0, name1)] = _read_pair(f[key], f"{path}:/{key}", settings, swapped)
        return out


def write_matches(path: str | os.PathLike, pairs: Mapping[tuple[str, str], PairMatches],
                  settings: Mapping[str, Any] | None = None) -> Path:
    """Write ``{(name0, name1): PairMatches}`` to a new matches file, atomically (module docstring).

    ``settings`` default to those of the first pair.
    """
    if settings is None:
        settings = next(iter(pairs.values())).settings if pairs else {}
    with append_matches(path, settings, overwrite=True) as add:
        for (name0, name1), pm in pairs.items():
            add(name0, name1, pm)
    return Path(path)


@contextlib.contextmanager
def append_matches(path: str | os.PathLike, settings: Mapping[str, Any] | None = None,
                   overwrite: bool = False) -> Iterator[_Adder]:
    """Add pairs to a matches file (created if absent): ``with append_matches(p, s) as add: add(n0, n1, pm)``.

    ``(name0, name1) in add`` tells whether the file holds the pair in either order. ``settings`` (matcher,
    ratio, geometry, estimator, threshold) must equal those of an existing file; see :func:`append_features`.
    """
    settings = dict(settings or {})

    def add(target: _Target, name0: str, name1: str, pm: PairMatches) -> None:
        check_image_name(name0)
        check_image_name(name1)
        f = target.file
        if _find_pair(f, name0, name1) is not None:
            raise ValueError(f"{path}: already holds the pair {name0} {name1}")
        key = names_to_pair(name0, name1)
        held = _pair_held_under(f, name0, name1)
        if held is not None:
            raise ValueError(f"{path}: the pair {name0} {name1} and the pair {held[1]} {held[2]} it holds both give "
                             f"the hloc group {held[0]!r} ('/' in names becomes '-'); rename one of the images")
        if key in f:
            raise ValueError(f"{path}: pair names collide: {name0} {name1} and another pair both give the hloc "
                             f"group {key!r} ('/' in names becomes '-')")
        target.add_group(key, lambda group: _write_pair(group, name0, name1, pm))

    def contains(f: Any, pair: tuple[str, str]) -> bool:
        return _find_pair(f, *pair) is not None

    def info(f: Any, pair: tuple[str, str]) -> dict[str, Any]:
        key, swapped = _find_pair(f, *pair)
        pm = _read_pair(f[key], f"{path}:/{key}", {}, swapped)
        return {"feature_digests": pm.feature_digests, "num_keypoints": pm.num_keypoints}

    with _growing(path, "matches", settings, MATCH_SETTINGS, overwrite) as target:
        yield _Adder(target, Path(path), add, contains, info)
