"""The tracks of a COLMAP reconstruction as plain arrays, their filters, and training patches cut from them.

>>> tracks = read_tracks("sfm/model")                       # one row per observation of a 3D point
>>> kept = filter_tracks(tracks, TrackFilter())             # boolean (M,): documented filters below
>>> reconstruction_patches("sfm/model", "photos", "patches", features="features.h5")   # Brown + HPatches layouts

This is how the Brown (UBC Phototour) data were made -- patches of the 3D points of a multi-view
reconstruction, one per image that sees the point -- for any reconstruction: one made by ``descnet
reconstruct`` from a photo folder, or triangulated from known cameras (:mod:`descnet.geometry.triangulate`).

**Observations** (:class:`Tracks`): a 3D point seen in image ``i`` at 2D point ``j`` of that image. COLMAP's 2D
point ``j`` is keypoint ``j`` of the features file the reconstruction was made from (``descnet reconstruct``
writes every keypoint, :mod:`descnet.geometry.colmap`), so the observation's frame is that keypoint's
(``x y size angle``). Coordinates are descnet's (centre of the top-left pixel at (0, 0): COLMAP's minus 0.5).

**Filters** (:class:`TrackFilter`, applied in this order):

1. an observation whose reprojection error (the distance between its 2D point and the projection of its 3D
   point, pixels) exceeds ``max_reprojection_error`` is dropped;
2. a point keeps its remaining observations only when there are at least ``min_track_length`` of them;
3. and when the largest angle between two of its viewing rays (camera centre -> point) is at least
   ``min_view_angle`` degrees: points seen from one direction only teach nothing about viewpoint change.

**Patch frames** (:func:`observation_frames`): with a features file, the keypoint's own frame as ``describe``
cuts it: centre ``(x, y)``, half-side ``mr_size * size``, orientation ``-angle`` (``mr_size`` of the features
file, else :data:`descnet.features.options.DEFAULT_MR_SIZE` for SIFT). Without one (or for keypoints without
size, e.g. hloc's files), a **fixed scale**: half-side ``fixed_half_side`` pixels at the point's median depth,
scaled by ``median depth / depth`` in every other image (so all observations cover about the same surface
patch), oriented along the dominant gradient (:func:`descnet.data.patchify.dominant_orientations`).

The patch sets are written by :func:`descnet.data.point_patches.write_point_patch_dataset` (both layouts).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Tracks", "TrackFilter", "read_tracks", "filter_tracks", "view_angle_spread", "observation_frames",
           "ReconstructionPatchOptions", "reconstruction_patches"]


@dataclass
class Tracks:
    """Every observation of every 3D point of a reconstruction, sorted by point id then image.

    Attributes:
        names: the registered images' names (relative to the image folder), ``(I,)``.
        point_id: int64 ``(M,)`` COLMAP 3D point id of each observation.
        image: int64 ``(M,)`` index into ``names``.
        point2D: int64 ``(M,)`` index of the 2D point in its image (= keypoint index of the features file).
        xy: float64 ``(M, 2)`` the 2D point, descnet's convention (COLMAP's minus 0.5).
        reprojection_error: float64 ``(M,)`` pixels between ``xy`` and the projected 3D point.
        direction: float64 ``(M, 3)`` unit viewing ray camera centre -> point, world frame.
        depth: float64 ``(M,)`` the point's depth in the camera (z of the camera frame).
        xyz: float64 ``(M, 3)`` the 3D point.
        image_size: int64 ``(I, 2)`` (width, height) of each image's camera.
    """

    names: list[str]
    point_id: np.ndarray
    image: np.ndarray
    point2D: np.ndarray
    xy: np.ndarray
    reprojection_error: np.ndarray
    direction: np.ndarray
    depth: np.ndarray
    xyz: np.ndarray
    image_size: np.ndarray

    def __len__(self) -> int:
        return len(self.point_id)

    def subset(self, keep: np.ndarray) -> "Tracks":
        """The observations where the boolean ``keep`` ``(M,)`` is true (same ``names``)."""
        return Tracks(self.names, *(getattr(self, k)[keep] for k in ("point_id", "image", "point2D", "xy",
                                                                     "reprojection_error", "direction", "depth",
                                                                     "xyz")), self.image_size)

    @property
    def num_points(self) -> int:
        return len(np.unique(self.point_id))


def read_tracks(model: Any) -> Tracks:
    """A COLMAP model folder (or a ``pycolmap.Reconstruction``) -> :class:`Tracks` of its registered images."""
    from .colmap import COLMAP_ORIGIN_SHIFT, import_pycolmap

    pycolmap = import_pycolmap()
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_dir() or not any((path / f"{f}.bin").is_file() or (path / f"{f}.txt").is_file()
                                        for f in ("points3D",)):
            raise FileNotFoundError(f"{path}: not a COLMAP model folder (no points3D.bin or points3D.txt)")
        reconstruction = pycolmap.Reconstruction(path)
    else:
        reconstruction = model
    image_ids = sorted(reconstruction.reg_image_ids())
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    names = [reconstruction.images[i].name for i in image_ids]
    sizes = np.array([(reconstruction.images[i].camera.width, reconstruction.images[i].camera.height)
                      for i in image_ids], np.int64).reshape(-1, 2)
    rows = [(pid, index[e.image_id], e.point2D_idx) for pid, point in reconstruction.points3D.items()
            for e in point.track.elements if e.image_id in index]
    table = np.array(sorted(rows), np.int64).reshape(-1, 3)
    m = len(table)
    xy, xyz = np.zeros((m, 2)), np.zeros((m, 3))
    error, depth, direction = np.zeros(m), np.zeros(m), np.zeros((m, 3))
    points = {pid: np.asarray(p.xyz, np.float64) for pid, p in reconstruction.points3D.items()}
    for i, image_id in enumerate(image_ids):
        rows_i = np.flatnonzero(table[:, 1] == i)
        if not len(rows_i):
            continue
        image = reconstruction.images[image_id]
        pose = image.cam_from_world()
        pose = pose.matrix() if hasattr(pose, "matrix") else np.asarray(pose)
        world = np.stack([points[int(p)] for p in table[rows_i, 0]])
        cam = world @ pose[:, :3].T + pose[:, 3]
        projected = np.asarray(image.camera.img_from_cam(cam, False), np.float64).reshape(-1, 2)
        observed = np.array([image.points2D[int(j)].xy for j in table[rows_i, 2]], np.float64).reshape(-1, 2)
        centre = np.asarray(image.projection_center(), np.float64)
        ray = world - centre
        xy[rows_i] = observed - COLMAP_ORIGIN_SHIFT
        xyz[rows_i] = world
        error[rows_i] = np.linalg.norm(projected - observed, axis=1)
        depth[rows_i] = cam[:, 2]
        direction[rows_i] = ray / np.linalg.norm(ray, axis=1, keepdims=True)
    return Tracks(names, table[:, 0], table[:, 1], table[:, 2], xy, error, direction, depth, xyz, sizes)


@dataclass(frozen=True)
class TrackFilter:
    """Which observations become training patches (module docstring, in that order).

    Attributes:
        max_reprojection_error: pixels; larger observations are dropped (COLMAP's mapper keeps up to 4 px).
        min_track_length: observations a point needs after that (2: a matching pair; Brown's points have 2 to
            about 10, 3 on average).
        min_view_angle: degrees; the largest angle between two viewing rays of a point must be at least this.
    """

    max_reprojection_error: float = 2.0
    min_track_length: int = 3
    min_view_angle: float = 2.0

    def __post_init__(self) -> None:
        if not self.max_reprojection_error > 0:
            raise ValueError(f"max_reprojection_error must be > 0 pixels, got {self.max_reprojection_error}")
        if self.min_track_length < 2:
            raise ValueError(f"min_track_length must be at least 2 (a point needs a matching pair), "
                             f"got {self.min_track_length}")
        if not 0 <= self.min_view_angle < 180:
            raise ValueError(f"min_view_angle must be in [0, 180) degrees, got {self.min_view_angle}")


def view_angle_spread(point_id: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The largest angle (degrees) between two viewing rays of the same point, per observation ``(M,)``.

    ``point_id`` ``(M,)`` sorted (the observations of a point consecutive), ``direction`` ``(M, 3)`` unit rays.
    """
    out = np.zeros(len(point_id))
    if not len(point_id):
        return out
    starts = np.flatnonzero(np.r_[True, point_id[1:] != point_id[:-1]])
    ends = np.r_[starts[1:], len(point_id)]
    for s, e in zip(starts.tolist(), ends.tolist()):
        d = direction[s:e]
        cos = np.clip(d @ d.T, -1.0, 1.0)
        out[s:e] = math.degrees(math.acos(float(cos.min())))
    return out


def filter_tracks(tracks: Tracks, options: TrackFilter = TrackFilter()) -> np.ndarray:
    """Boolean ``(M,)``: the observations kept by ``options`` (module docstring)."""
    keep = tracks.reprojection_error <= options.max_reprojection_error
    length = np.zeros(len(tracks), np.int64)
    if keep.any():
        _, inverse, counts = np.unique(tracks.point_id[keep], return_inverse=True, return_counts=True)
        length[keep] = counts[inverse]
    keep &= length >= options.min_track_length
    spread = np.zeros(len(tracks))
    spread[keep] = view_angle_spread(tracks.point_id[keep], tracks.direction[keep])
    return keep & (spread >= options.min_view_angle)


def observation_frames(tracks: Tracks, keypoints: dict[str, np.ndarray] | None, mr_size: float,
                       fixed_half_side: float) -> tuple[np.ndarray, np.ndarray]:
    """Patch regions of the observations (module docstring) -> half-side (pixels) ``(M,)`` and orientation
    ``(M,)`` in radians, :func:`descnet.data.patchify.reference_frames`' convention (NaN: estimate the dominant
    gradient orientation). ``keypoints``: image name -> ``(N, 4)`` ``x y size angle`` rows, or ``None``.

    Where the detector repeated a keypoint once per dominant orientation (OpenCV's SIFT), the reconstruction
    names the first twin; of the twins' angles, each observation takes the one closest to the angle of the
    point's first observation (images are mostly upright, so the same surface patch has about the same angle).
    """
    from .colmap import first_at_position

    m = len(tracks)
    half, angle = np.full(m, np.nan), np.full(m, np.nan)
    twins: list[list[float]] = [[] for _ in range(m)]
    if keypoints is not None:
        for i, name in enumerate(tracks.names):
            rows = np.flatnonzero(tracks.image == i)
            if not len(rows):
                continue
            kp = np.asarray(keypoints[name], np.float64)
            idx = tracks.point2D[rows]
            if idx.max() >= len(kp):
                raise ValueError(f"image {name}: the reconstruction uses 2D point {int(idx.max())} but the features "
                                 f"file has {len(kp)} keypoints: not the features the reconstruction was made from")
            far = np.linalg.norm(kp[idx, :2] - tracks.xy[rows], axis=1)
            if np.nanmax(far) > 0.01:
                worst = int(idx[np.nanargmax(far)])
                raise ValueError(f"image {name}: 2D point {worst} of the reconstruction is {np.nanmax(far):.2f} px "
                                 f"from keypoint {worst} of the features file: not the features the reconstruction "
                                 f"was made from")
            half[rows] = mr_size * kp[idx, 2]
            # OpenCV's SIFT repeats a keypoint once per dominant orientation at one position, and the
            # reconstruction names the first of them (descnet.geometry.colmap): every twin's angle is a candidate
            first = first_at_position(kp)
            by_first: dict[int, list[float]] = {}
            wanted = set(first[idx].tolist())
            for k in np.flatnonzero(np.isin(first, list(wanted))).tolist():
                by_first.setdefault(int(first[k]), []).append(float(kp[k, 3]))
            for r, j in zip(rows.tolist(), idx.tolist()):
                twins[r] = by_first[int(first[j])]
    # one candidate per observation: the twin closest to the point's first observation's angle
    starts = np.flatnonzero(np.r_[True, tracks.point_id[1:] != tracks.point_id[:-1]]) if m else np.zeros(0, int)
    for s, e in zip(starts.tolist(), np.r_[starts[1:], m].tolist()):
        if not twins[s]:
            continue
        ref = twins[s][0]
        for r in range(s, e):
            options = [0.0 if a == -1 else a for a in twins[r]]
            gap = [abs((a - ref + 180.0) % 360.0 - 180.0) for a in options]
            angle[r] = -np.deg2rad(options[int(np.argmin(gap))])
    missing = ~np.isfinite(half) | (half <= 0)
    if missing.any():  # fixed scale: fixed_half_side at the point's median depth
        median = np.repeat([np.median(tracks.depth[s:e]) for s, e in zip(starts, np.r_[starts[1:], m])],
                           np.diff(np.r_[starts, m])) if m else np.zeros(0)
        half[missing] = fixed_half_side * median[missing] / tracks.depth[missing]
        angle[missing] = np.nan
    return half, angle


@dataclass(frozen=True)
class ReconstructionPatchOptions:
    """What :func:`reconstruction_patches` cuts and writes.

    Attributes:
        filter: :class:`TrackFilter`.
        mr_size: patch half-side per unit of keypoint size; ``None``: the features file's ``mr_size`` (what
            ``describe`` cut), else 6 (SIFT's default).
        fixed_half_side: without keypoint sizes, the half-side in pixels at a point's median depth.
        patches: :class:`descnet.data.point_patches.PointPatchOptions` (layouts, pairs, jitter, seed).
    """

    filter: TrackFilter = field(default_factory=TrackFilter)
    mr_size: float | None = None
    fixed_half_side: float = 16.0
    patches: Any = None

    def __post_init__(self) -> None:
        if self.mr_size is not None and not self.mr_size > 0:
            raise ValueError(f"mr_size must be > 0, got {self.mr_size}")
        if not self.fixed_half_side > 0:
            raise ValueError(f"fixed_half_side must be > 0 pixels, got {self.fixed_half_side}")


def reconstruction_patches(model: Any, image_dir: str | os.PathLike, out: str | os.PathLike,
                           features: str | os.PathLike | None = None,
                           options: ReconstructionPatchOptions | None = None, overwrite: bool = False,
                           progress: bool = False) -> dict:
    """Cut one patch per kept observation of each 3D point of ``model`` and write the Brown and HPatches-style
    layouts into ``out`` (:func:`descnet.data.point_patches.write_point_patch_dataset`). Returns its summary
    (``patchify.json``), with the filters and the counts of observations and points before and after them."""
    from ..data.point_patches import PointPatchOptions, write_point_patch_dataset
    from ..features.files import read_features
    from ..features.options import DEFAULT_MR_SIZE

    options = options or ReconstructionPatchOptions()
    patch_options = options.patches or PointPatchOptions()
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: no such image folder")
    tracks = read_tracks(model)
    if not len(tracks):
        raise ValueError(f"{model}: the reconstruction has no 3D points")
    missing = [n for n in tracks.names if not (image_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{image_dir / missing[0]}: no such image ({len(missing)} image(s) of the "
                                f"reconstruction are not under {image_dir})")
    keep = filter_tracks(tracks, options.filter)
    kept = tracks.subset(keep)
    keypoints, mr_size, source = None, options.mr_size, "fixed scale (no features file)"
    if features is not None:
        feats = read_features(features, kept.names)
        keypoints = {name: f.keypoints for name, f in feats.items()}
        if mr_size is None:
            found = [f.info.get("mr_size") for f in feats.values()]
            mr_size = float(found[0]) if found and found[0] is not None and np.isfinite(float(found[0])) else None
        source = f"keypoints of {features}"
    mr_size = mr_size if mr_size is not None else DEFAULT_MR_SIZE["sift"]
    half, angle = observation_frames(kept, keypoints, mr_size, options.fixed_half_side)
    info = {"source": "reconstruction", "model": str(model) if isinstance(model, (str, os.PathLike)) else None,
            "images": str(image_dir), "features": str(features) if features is not None else None,
            "frames": source, "mr_size": mr_size, "fixed_half_side": options.fixed_half_side,
            "filter": asdict(options.filter),
            "observations": {"all": len(tracks), "kept": len(kept)},
            "points3D": {"all": tracks.num_points, "kept": kept.num_points}}
    return write_point_patch_dataset(out, [image_dir / n for n in kept.names], kept.point_id, kept.image,
                                     kept.xy, half, angle, patch_options, info=info, overwrite=overwrite,
                                     progress=progress)
