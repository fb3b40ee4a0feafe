"""Calibrated pinhole cameras with ground-truth poses, and the readers of the files that hold them.

A :class:`Camera` is ``K`` (3x3 intrinsics, pixels), ``R`` (3x3, **world -> camera** rotation, COLMAP's
``cam_from_world`` and OpenCV's convention), ``C`` (3, the camera centre in world coordinates) and the image
``width`` x ``height`` it belongs to. A world point ``X`` projects to ``x ~ K R (X - C)``; the translation of the
world -> camera transform is ``t = -R C``. The pixel convention is the one of ``K``'s source (descnet's own
keypoints put the centre of the top-left pixel at (0, 0)).

Readers (errors name the file, and the line where there is one):

* :func:`read_strecha_camera`: one Strecha et al. (CVPR 2008) ``.camera`` file, 26 white-space separated numbers:
  ``K`` (9, row-major), 3 radial distortion terms (0 in the benchmark; kept in ``distortion``, not applied), the
  **camera -> world** rotation (9, row-major), ``C`` (3), width, height; so ``x ~ K R_c2w^T (X - C)`` and
  ``Camera.R = R_c2w^T``.
* :func:`read_strecha_scene`: a Strecha scene folder, ``images/<name>`` and ``gt_dense_cameras/<name>.camera``
  (openMVG's copy: ``0000.jpg`` and ``0000.jpg.camera``) -> ``{image name: Camera}``.
* :func:`read_pairs_with_pose`: SuperGlue's pairs file (``match_pairs.py --eval``), one pair per line:
  ``name0 name1 rot0 rot1 K0(9) K1(9) T_0to1(16)`` -- EXIF rotations (quarter turns, 0-3), the intrinsics of the
  two images as stored, and the 4x4 row-major transform taking a point from camera 0's frame to camera 1's.
* :func:`cameras_from_colmap`: the registered images of a COLMAP model (``pycolmap.Reconstruction``) as
  ground truth; ``K`` is the camera's calibration matrix, its principal point moved by -0.5 px into descnet's
  pixel-centre convention (distortion parameters are not applied).
* :func:`read_ground_truth`: either of the folders above, recognised by content.

Relative pose of two cameras: :func:`relative_pose` (``T_0to1``: ``X_1 = R X_0 + t``). Resized and rotated
images: :func:`scale_intrinsics` (SuperGlue's convention: ``K' = diag(w'/w, h'/h, 1) K``) and :func:`rotate_pair`
(SuperGlue's EXIF handling: the image turned by ``np.rot90(image, k=rot)``, its intrinsics and the pose with it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["Camera", "PosePair", "STRECHA_CAMERAS", "read_strecha_camera", "read_strecha_scene", "strecha_scene_root",
           "read_pairs_with_pose", "cameras_from_colmap", "cameras_from_reconstruction", "read_ground_truth",
           "relative_pose", "pose_matrix", "scale_intrinsics", "rotate_intrinsics", "inplane_rotation", "rotate_pair"]

#: the folder of a Strecha scene that holds the ground-truth cameras
STRECHA_CAMERAS = "gt_dense_cameras"
_STRECHA_FIELDS = "K (9 numbers), 3 distortion terms, R camera-to-world (9), C (3), width, height"


@dataclass(frozen=True)
class Camera:
    """A calibrated camera with its pose (module docstring): ``K`` (3, 3), ``R`` (3, 3) world -> camera,
    ``C`` (3,) centre in world coordinates, the image ``width`` and ``height`` in pixels."""

    K: np.ndarray
    R: np.ndarray
    C: np.ndarray
    width: int
    height: int
    distortion: tuple[float, ...] = field(default=())

    @property
    def t(self) -> np.ndarray:
        """``(3,)`` translation of the world -> camera transform: ``X_cam = R X + t``."""
        return -self.R @ self.C

    def project(self, points: np.ndarray) -> np.ndarray:
        """``(N, 3)`` world points -> ``(N, 2)`` pixels (no distortion)."""
        cam = (np.asarray(points, np.float64) - self.C) @ self.R.T @ self.K.T
        return cam[:, :2] / cam[:, 2:]

    def resized(self, width: int, height: int) -> "Camera":
        """The same camera for its image resized to ``width`` x ``height`` as ``cv2.resize`` does (pixel centres at
        integers: ``x' = s x + (s - 1) / 2`` per axis; exact, unlike :func:`scale_intrinsics`, SuperGlue's rule)."""
        sx, sy = width / self.width, height / self.height
        S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return Camera(S @ np.asarray(self.K, np.float64), self.R, self.C, int(width), int(height), self.distortion)


@dataclass(frozen=True)
class PosePair:
    """One line of a pairs file with ground truth: image names, EXIF quarter turns ``rot0``/``rot1`` (0-3),
    ``K0``/``K1`` (3, 3) of the images as stored, ``T_0to1`` (4, 4): camera 0's frame -> camera 1's."""

    name0: str
    name1: str
    rot0: int
    rot1: int
    K0: np.ndarray
    K1: np.ndarray
    T_0to1: np.ndarray


def _check_rotation(R: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(R)) or np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or abs(np.linalg.det(R) - 1) > 1e-3:
        raise ValueError(f"{where}: the rotation is not a rotation matrix (R R^T != I or det(R) != 1)")


def _check_intrinsics(K: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]):
        raise ValueError(f"{where}: not an intrinsics matrix (positive focal lengths, last row 0 0 1), got "
                         f"{K.ravel().tolist()}")


def _numbers(path: Path) -> list[tuple[float, int]]:
    """Every number of a text file with its line number; a token that is not a number names file and line."""
    from ..io import read_text_rows

    values = []
    for number, fields in read_text_rows(path, f"Strecha camera file ({_STRECHA_FIELDS})"):
        for token in fields:
            try:
                values.append((float(token), number))
            except ValueError:
                raise ValueError(f"{path}:{number}: {token!r} is not a number") from None
    return values


def read_strecha_camera(path: str | os.PathLike) -> Camera:
    """One Strecha ``.camera`` file -> :class:`Camera` (module docstring; ``R`` becomes world -> camera)."""
    path = Path(path)
    values = _numbers(path)
    if len(values) != 26:
        where = f"{path}:{values[26][1]}" if len(values) > 26 else str(path)
        raise ValueError(f"{where}: a Strecha camera has 26 numbers ({_STRECHA_FIELDS}), this file has {len(values)}")
    v = np.array([x for x, _ in values], np.float64)
    K, R_c2w, C = v[:9].reshape(3, 3), v[12:21].reshape(3, 3), v[21:24]
    _check_intrinsics(K, f"{path}:{values[0][1]}")
    _check_rotation(R_c2w, f"{path}:{values[12][1]}")
    width, height = v[24], v[25]
    if width != int(width) or height != int(height) or width < 1 or height < 1:
        raise ValueError(f"{path}:{values[24][1]}: width and height must be whole positive numbers, got {width} {height}")
    return Camera(K=K, R=R_c2w.T.copy(), C=C, width=int(width), height=int(height), distortion=tuple(v[9:12]))


def strecha_scene_root(path: str | os.PathLike) -> Path | None:
    """The Strecha scene folder of ``path`` (the scene itself, its ``images/`` or its ``gt_dense_cameras/``
    folder), or ``None`` when ``path`` is none of these."""
    path = Path(path)
    for candidate in (path, path.parent):
        if (candidate / STRECHA_CAMERAS).is_dir():
            return candidate
    return None


def read_strecha_scene(folder: str | os.PathLike) -> dict[str, Camera]:
    """A Strecha scene folder -> ``{image name: Camera}`` in name order (module docstring).

    Every image of ``images/`` must have its camera file, and every camera file its image (when ``images/`` is
    there). Image sizes are not read here; ``descnet eval pose`` checks them against the cameras when it decodes
    the images.
    """
    from ..data.images import list_images

    root = strecha_scene_root(folder)
    if root is None:
        raise FileNotFoundError(f"{folder}: not a Strecha scene (no {STRECHA_CAMERAS}/ folder in it or beside it)")
    cams_dir, images_dir = root / STRECHA_CAMERAS, root / "images"
    files = sorted(p for p in cams_dir.iterdir() if p.name.endswith(".camera"))
    if not files:
        raise ValueError(f"{cams_dir}: holds no .camera files")
    cameras = {p.name[:-len(".camera")]: read_strecha_camera(p) for p in files}
    if images_dir.is_dir():
        images = list_images(images_dir)
        missing = [n for n in images if n not in cameras]
        if missing:
            raise ValueError(f"{images_dir / missing[0]}: no camera file {cams_dir / (missing[0] + '.camera')}")
        lost = [n for n in cameras if n not in images]
        if lost:
            raise ValueError(f"{cams_dir / (lost[0] + '.camera')}: no image {images_dir / lost[0]}")
    return cameras


def read_pairs_with_pose(path: str | os.PathLike) -> list[PosePair]:
    """SuperGlue's pairs file with ground truth -> ``[PosePair]`` (module docstring). Blank lines and ``#``
    comments are skipped; a line with another number of fields, a rotation outside 0-3 or a value that is not a
    number is an error naming the file and the line."""
    from ..io import read_text_rows

    path = Path(path)
    pairs = []
    for number, fields in read_text_rows(path, "pairs file"):
        where = f"{path}:{number}"
        if len(fields) != 38:
            raise ValueError(f"{where}: {len(fields)} fields; a pair with ground truth has 38: name0 name1 rot0 rot1 "
                             f"K0 (9 numbers) K1 (9) T_0to1 (16, a 4x4 row-major matrix)")
        try:
            rot = [int(f) for f in fields[2:4]]
        except ValueError:
            raise ValueError(f"{where}: the rotations {fields[2]} {fields[3]} must be whole numbers 0-3") from None
        if not all(0 <= r <= 3 for r in rot):
            raise ValueError(f"{where}: the rotations {rot[0]} {rot[1]} must be quarter turns 0-3")
        try:
            v = np.array(fields[4:], np.float64)
        except ValueError:
            bad = next(f for f in fields[4:] if not _is_number(f))
            raise ValueError(f"{where}: {bad!r} is not a number") from None
        K0, K1, T = v[:9].reshape(3, 3), v[9:18].reshape(3, 3), v[18:].reshape(4, 4)
        _check_intrinsics(K0, f"{where} (K0)")
        _check_intrinsics(K1, f"{where} (K1)")
        _check_rotation(T[:3, :3], f"{where} (T_0to1)")
        pairs.append(PosePair(fields[0], fields[1], rot[0], rot[1], K0, K1, T))
    if not pairs:
        raise ValueError(f"{path}: holds no pairs")
    return pairs


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def cameras_from_reconstruction(reconstruction: Any) -> dict[str, Camera]:
    """The registered images of a ``pycolmap.Reconstruction`` -> ``{image name: Camera}`` (``K``: the camera's
    calibration matrix with the principal point moved by -0.5 px into descnet's convention -- COLMAP puts the
    origin at the top-left pixel's corner, descnet at its centre; ``R``, ``C``: ``cam_from_world``)."""
    cameras = {}
    for image in reconstruction.images.values():
        if not image.has_pose:
            continue
        pose = image.cam_from_world()
        camera = image.camera
        K = np.asarray(camera.calibration_matrix(), np.float64).copy()
        K[:2, 2] -= 0.5  # COLMAP's pixel-corner origin -> descnet's pixel-centre origin
        cameras[image.name] = Camera(K=K,
                                     R=np.asarray(pose.rotation.matrix(), np.float64),
                                     C=np.asarray(image.projection_center(), np.float64),
                                     width=int(camera.width), height=int(camera.height))
    return dict(sorted(cameras.items()))


def cameras_from_colmap(model: str | os.PathLike) -> dict[str, Camera]:
    """A COLMAP model folder (``cameras``/``images`` ``.bin`` or ``.txt``) -> ``{image name: Camera}`` of its
    registered images. Needs pycolmap."""
    model = Path(model)
    if not _is_colmap_model(model):
        raise FileNotFoundError(f"{model}: not a COLMAP model (no cameras.bin/images.bin or .txt in it)")
    try:  # not through descnet.geometry.colmap, which imports this module
        import pycolmap
    except ImportError:
        raise ModuleNotFoundError("reading a COLMAP model needs pycolmap, which is not installed: "
                                  "pip install 'descnet[sfm]' (or: pip install pycolmap)") from None
    try:
        reconstruction = pycolmap.Reconstruction(model)
    except Exception as err:  # pycolmap raises its own errors for broken files
        raise ValueError(f"{model}: COLMAP cannot read this model ({err})") from None
    cameras = cameras_from_reconstruction(reconstruction)
    if not cameras:
        raise ValueError(f"{model}: the model has no registered images")
    return cameras


def _is_colmap_model(folder: Path) -> bool:
    return any((folder / f"cameras{ext}").is_file() and (folder / f"images{ext}").is_file() for ext in (".bin", ".txt"))


def read_ground_truth(path: str | os.PathLike) -> dict[str, Camera]:
    """Ground-truth cameras from a Strecha scene folder (or its ``images/`` or ``gt_dense_cameras/``) or a COLMAP
    model folder (``PATH`` or ``PATH/model``), recognised by content -> ``{image name: Camera}``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such ground-truth folder")
    if strecha_scene_root(path) is not None:
        return read_strecha_scene(path)
    for folder in (path, path / "model", path / "sparse" / "0"):
        if _is_colmap_model(folder):
            return cameras_from_colmap(folder)
    raise ValueError(f"{path}: neither a Strecha scene ({STRECHA_CAMERAS}/ with .camera files) nor a COLMAP model "
                     "(cameras.bin and images.bin)")


def pose_matrix(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(3, 3)`` rotation and ``(3,)`` translation -> the ``(4, 4)`` rigid transform."""
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, np.asarray(t, np.float64).ravel()
    return T


def relative_pose(camera0: Camera, camera1: Camera) -> np.ndarray:
    """``T_0to1`` (4, 4): a point in camera 0's frame -> camera 1's frame (``R = R1 R0^T``, ``t = t1 - R t0``)."""
    R = camera1.R @ camera0.R.T
    return pose_matrix(R, camera1.t - R @ camera0.t)


def scale_intrinsics(K: np.ndarray, size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """Intrinsics of an image resized from ``size`` to ``new_size`` (both ``(width, height)``):
    ``diag(w'/w, h'/h, 1) K``, SuperGlue's ``scale_intrinsics`` convention (the principal point scaled with the
    focal length; exact for a pixel-corner origin, a quarter pixel off at half size for a pixel-centre one)."""
    (w, h), (w1, h1) = size, new_size
    return np.diag([w1 / w, h1 / h, 1.0]) @ np.asarray(K, np.float64)


def rotate_intrinsics(K: np.ndarray, rot: int, width: int, height: int) -> np.ndarray:
    """Intrinsics of an image of ``width`` x ``height`` (before turning) turned by ``np.rot90(image, k=rot)``
    (``rot`` quarter turns counter-clockwise): pixel ``(x, y)`` moves to ``(y, w-1-x)`` for ``rot = 1``,
    ``(w-1-x, h-1-y)`` for 2, ``(h-1-y, x)`` for 3 -- SuperGlue's ``rotate_intrinsics``."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    rot %= 4
    if rot == 0:
        return np.asarray(K, np.float64).copy()
    f = (fy, fx) if rot % 2 else (fx, fy)
    c = {1: (cy, width - 1 - cx), 2: (width - 1 - cx, height - 1 - cy), 3: (height - 1 - cy, cx)}[rot]
    return np.array([[f[0], 0.0, c[0]], [0.0, f[1], c[1]], [0.0, 0.0, 1.0]])


def inplane_rotation(rot: int) -> np.ndarray:
    """``(3, 3)`` rotation of the camera frame that goes with ``np.rot90(image, k=rot)``: about the optical axis
    by ``-90 * rot`` degrees (new ``x`` = old ``y``, new ``y`` = -old ``x`` for ``rot = 1``)."""
    a = np.deg2rad(-90.0 * (rot % 4))
    c, s = np.round(np.cos(a)), np.round(np.sin(a))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotate_pair(pair: PosePair, sizes: Mapping[str, tuple[int, int]] | tuple[tuple[int, int], tuple[int, int]]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(K0, K1, T_0to1)`` of a pair after turning each image by its EXIF rotation, as SuperGlue's
    ``match_pairs.py`` does: intrinsics by :func:`rotate_intrinsics`, the pose by the in-plane rotations
    (``T' = Rz1 T Rz0^-1``). ``sizes``: ``((w0, h0), (w1, h1))`` of the images before turning (the size the
    given intrinsics belong to)."""
    (w0, h0), (w1, h1) = sizes
    K0 = rotate_intrinsics(pair.K0, pair.rot0, w0, h0)
    K1 = rotate_intrinsics(pair.K1, pair.rot1, w1, h1)
    T0, T1 = pose_matrix(inplane_rotation(pair.rot0), np.zeros(3)), pose_matrix(inplane_rotation(pair.rot1), np.zeros(3))
    return K0, K1, T1 @ pair.T_0to1 @ np.linalg.inv(T0)
