"""Keypoints: OpenCV detectors by name, keypoint checks, and the OpenCV keypoint -> kornia LAF convention.

Keypoints come from an OpenCV detector chosen by name (:data:`DETECTORS`: ``sift`` by default, ``orb``
and, where the OpenCV build has them, ``akaze``, ``kaze``, ``brisk``), from COLMAP's SIFT detection
(``colmap-sift``, ``colmap-sift-upright``: :func:`detect_colmap_sift`) or from the caller: an ``(N, 4)``
array, a list of ``cv2.KeyPoint`` or a keypoint text file, all ``x y size angle`` in OpenCV's convention
(:mod:`descnet.features.files`). Any other OpenCV detector: pass its ``cv2.KeyPoint`` list and an ``mr_size``.

**From an OpenCV keypoint to a patch** (the convention users get wrong most often). A keypoint becomes the
kornia local affine frame (LAF) ``[A | c]`` with ``c = (x, y)`` and ``A = s R(theta)``:

* ``s = mr_size * size`` is kornia's LAF scale, *half* the side of the square region that is resampled into
  the ``P x P`` patch (kornia samples ``c + A [-1, 1]^2``), so the patch covers ``2 * mr_size * size``
  pixels. ``mr_size`` defaults per detector (:data:`~descnet.features.options.DEFAULT_MR_SIZE`): 6 for SIFT
  (half-side 6 x ``size`` = 12 sigma, kornia's ``DoGHardNet`` frames), 0.5 for ORB, whose ``size`` is the
  side of its 31 px patch.
* ``theta = -angle`` in degrees: OpenCV's ``KeyPoint.angle`` grows clockwise on screen (image y down) and
  kornia's LAF orientation counter-clockwise. ``angle == -1`` (OpenCV: "no orientation") means upright.

Patches are cut with :func:`kornia.feature.extract_patches_from_pyramid`, which samples a large region
from a smoothed, downsampled pyramid level (anti-aliased), directly at the model's patch size; they are
described by :func:`descnet.features.inference.describe_patches`
(:mod:`descnet.features.patches` cuts them).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
from kornia import feature as KF

from ..data.images import to_gray, to_uint8
from .options import COLMAP_SIFT_DETECTORS, KeypointOptions

__all__ = ["DETECTORS", "detect_keypoints", "check_keypoints", "lafs_from_keypoints",
           "keypoints_from_opencv", "detect_colmap_sift", "keypoints_from_colmap", "COLMAP_SIFT_SETTINGS",
           "COLMAP_SIFT_BACKENDS"]


def _detectors() -> dict[str, Callable[[int | None], Any]]:
    """name -> ``create(max_keypoints) -> cv2.Feature2D``, for the detectors this OpenCV build has."""
    table = {"sift": lambda n: cv2.SIFT_create(nfeatures=n or 0),
             "orb": lambda n: cv2.ORB_create(nfeatures=n or 100000)}
    # moved out of OpenCV 5's main module; present in OpenCV 4. Default mr_size not measured: pass one.
    for name, factory in (("akaze", "AKAZE_create"), ("kaze", "KAZE_create"), ("brisk", "BRISK_create")):
        if hasattr(cv2, factory):
            table[name] = lambda n, f=getattr(cv2, factory): f()
    return table


#: OpenCV detectors by name (those of :data:`descnet.features.options.DETECTOR_NAMES` this OpenCV build has):
#: name -> ``create(max_keypoints) -> cv2.Feature2D``; default ``mr_size``:
#: :data:`~descnet.features.options.DEFAULT_MR_SIZE`
DETECTORS: dict[str, Callable[[int | None], Any]] = _detectors()


# ---------------------------------------------------------------- keypoints


def keypoints_from_opencv(keypoints: Sequence[cv2.KeyPoint]) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.KeyPoint`` list -> ``(N, 4)`` float32 ``x, y, size, angle`` and ``(N,)`` float32 responses."""
    rows = np.array([(k.pt[0], k.pt[1], k.size, k.angle) for k in keypoints], np.float32).reshape(-1, 4)
    return rows, np.array([k.response for k in keypoints], np.float32)


def detect_keypoints(image: np.ndarray, detector: str = "sift",
                     max_keypoints: int | None = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Detect keypoints with an OpenCV detector by name -> ``(N, 4)`` keypoints and ``(N,)`` responses.

    ``image``: anything :func:`to_gray` takes. The strongest ``max_keypoints`` are kept (all when None),
    sorted by response, strongest first (stable, so ties keep OpenCV's order). ``colmap-sift`` and
    ``colmap-sift-upright``: :func:`detect_colmap_sift` (COLMAP's count rule and order).
    """
    key = KeypointOptions(detector, max_keypoints).detector  # checks the name and the count
    if key in COLMAP_SIFT_DETECTORS:
        return detect_colmap_sift(image, max_keypoints, upright=key.endswith("-upright"))
    if key not in DETECTORS:
        raise ValueError(f"detector {detector!r}: this OpenCV build does not have it; choose one of: "
                         f"{', '.join(DETECTORS)}")
    gray = to_gray(image)
    found = DETECTORS[key](max_keypoints).detect(to_uint8(gray), None)
    keypoints, responses = keypoints_from_opencv(found)
    order = np.argsort(-responses, kind="stable")[:max_keypoints]
    return keypoints[order], responses[order]


# ---------------------------------------------------------------- COLMAP's SIFT

#: COLMAP's SIFT extraction settings (``pycolmap.SiftExtractionOptions``, COLMAP's defaults, set explicitly so a
#: pycolmap release with other defaults does not change descnet's keypoints): DoG peak threshold 0.02 / 3 per
#: octave layer, edge threshold 10, first octave -1 (the image up-sampled 2x), 4 octaves of 3 layers, up to 2
#: orientations per location, no affine shape, no domain-size pooling.
COLMAP_SIFT_SETTINGS = {"peak_threshold": 0.02 / 3, "edge_threshold": 10.0, "first_octave": -1, "num_octaves": 4,
                        "octave_resolution": 3, "max_num_orientations": 2}
#: how :func:`detect_colmap_sift` detects: ``pycolmap`` (COLMAP's own code), ``opencv`` (OpenCV's SIFT with the
#: same thresholds), ``auto`` (pycolmap where installed)
COLMAP_SIFT_BACKENDS = ("auto", "pycolmap", "opencv")
_COLMAP_EXTRACTORS = threading.local()  # one pycolmap extractor per thread and settings (they keep buffers)


def keypoints_from_colmap(keypoints: np.ndarray) -> np.ndarray:
    """COLMAP keypoints ``(N, 4)`` ``x y scale orientation`` -> descnet's ``(N, 4)`` float32 ``x y size angle``.

    COLMAP puts the *corner* of the top-left pixel at (0, 0), descnet (and OpenCV, hloc) its centre: ``x - 0.5``,
    ``y - 0.5``. COLMAP's scale is the SIFT sigma, OpenCV's ``size`` twice it (the size of the same DoG
    level: OpenCV's ``size = 2 sigma``): ``size = 2 scale``. COLMAP's orientation is in radians measured from the
    image x axis towards y (down), as OpenCV's angle in degrees: ``angle = degrees(orientation) mod 360``.
    """
    kp = np.asarray(keypoints, np.float64).reshape(-1, 4)
    out = np.empty((len(kp), 4), np.float32)
    out[:, :2] = kp[:, :2] - 0.5
    out[:, 2] = 2.0 * kp[:, 2]
    out[:, 3] = np.mod(np.degrees(kp[:, 3]), 360.0)
    return out


def _pycolmap_extractor(max_keypoints: int, upright: bool) -> Any:
    key = (max_keypoints, upright)
    cache = _COLMAP_EXTRACTORS.__dict__.setdefault("extractors", {})
    if key not in cache:
        import pycolmap

        options = pycolmap.FeatureExtractionOptions()
        options.num_threads = 1
        options.use_gpu = False
        sift = options.sift
        for name, value in COLMAP_SIFT_SETTINGS.items():
            setattr(sift, name, value)
        sift.max_num_features = max_keypoints
        sift.upright = upright
        sift.estimate_affine_shape = False
        sift.domain_size_pooling = False
        sift.darkness_adaptivity = False
        before = pycolmap.logging.minloglevel
        pycolmap.logging.minloglevel = max(before, 2)  # "Creating SIFT CPU feature extractor"
        try:
            cache[key] = pycolmap.FeatureExtractor.create(options, pycolmap.Device.cpu)
        finally:
            pycolmap.logging.minloglevel = before
    return cache[key]


def _colmap_sift_backend(backend: str) -> str:
    if backend not in COLMAP_SIFT_BACKENDS:
        raise ValueError(f"backend {backend!r}: choose one of {', '.join(COLMAP_SIFT_BACKENDS)}")
    if backend != "auto":
        return backend
    try:
        import pycolmap  # noqa: F401
    except ImportError:
        return "opencv"
    return "pycolmap"


#: COLMAP's grey (``Bitmap::CloneAsGrey``): Rec. 709 luma of the 8-bit RGB values, rounded
_COLMAP_LUMA = np.array([0.2126, 0.7152, 0.0722])


def _colmap_gray(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 grey as COLMAP reads an image: colour -> Rec. 709 luma of the 8-bit values, rounded
    (equal to ``pycolmap.Bitmap.read(path, as_rgb=False)`` on the shared photos); grey -> 8 bits."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        to_gray(arr)  # checks the array
        rgb = arr[..., :3]
        if rgb.dtype != np.uint8:
            rgb = to_uint8(rgb.astype(np.float32) / (65535.0 if rgb.dtype == np.uint16 else 1.0))
        return np.ascontiguousarray(np.clip(np.rint(rgb.astype(np.float64) @ _COLMAP_LUMA), 0, 255).astype(np.uint8))
    return np.ascontiguousarray(to_uint8(to_gray(arr)))


def detect_colmap_sift(image: np.ndarray, max_keypoints: int | None = 8192, upright: bool = False,
                       backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """COLMAP's SIFT keypoints of an image -> ``(N, 4)`` ``x y size angle`` (descnet's convention) and ``(N,)`` scores.

    ``image``: anything :func:`to_gray` takes, made 8-bit grey as COLMAP reads images (RGB: Rec. 709 luma,
    rounded; not :func:`to_gray`'s OpenCV weights). Settings:
    :data:`COLMAP_SIFT_SETTINGS`; ``max_keypoints`` is COLMAP's ``max_num_features`` (``None``: 8192, COLMAP's
    default): COLMAP counts *locations* and drops the finest octaves first to meet it, and a location with a
    second dominant orientation gives a second keypoint at the same ``x, y``, so ``N`` may exceed it. ``upright``:
    no orientation (angle 0), one keypoint per location.

    ``backend`` (:data:`COLMAP_SIFT_BACKENDS`): ``pycolmap`` runs COLMAP's own extractor (VLFeat's SIFT; the
    keypoints COLMAP's pipeline gets, converted by :func:`keypoints_from_colmap`); ``opencv`` is the fallback
    without pycolmap: ``cv2.SIFT`` with the same peak threshold (OpenCV's ``contrastThreshold`` is per octave
    *stack*: 0.02), edge threshold and up-sampled first octave (OpenCV's precise up-sampling: the default one shifts
    positions by ~0.25 px). Known gaps of the fallback: OpenCV keeps every
    orientation within 80% of the strongest (COLMAP at most 2), keeps the ``max_keypoints`` strongest responses
    instead of dropping fine octaves, and refines positions slightly differently (~0.1-0.3 px). Keypoints keep
    the extractor's order; scores are 0 from pycolmap (COLMAP reports no response), OpenCV's response otherwise.
    """
    limit = 8192 if max_keypoints is None else int(max_keypoints)
    if limit < 1:
        raise ValueError(f"max_keypoints must be >= 1 (or None), got {max_keypoints!r}")
    gray = _colmap_gray(image)
    if _colmap_sift_backend(backend) == "pycolmap":
        found, _ = _pycolmap_extractor(limit, bool(upright)).extract_from_uint8_array(np.ascontiguousarray(gray))
        raw = np.array([(k.x, k.y, k.compute_scale(), k.compute_orientation()) for k in found],
                       np.float64).reshape(-1, 4)
        keypoints = keypoints_from_colmap(raw)
        if upright:
            keypoints[:, 3] = 0.0
        return keypoints, np.zeros(len(keypoints), np.float32)
    settings = COLMAP_SIFT_SETTINGS
    params = dict(nfeatures=limit, nOctaveLayers=settings["octave_resolution"],
                  contrastThreshold=settings["peak_threshold"] * settings["octave_resolution"],
                  edgeThreshold=settings["edge_threshold"])
    try:  # OpenCV >= 4.8: the up-sampled octave without OpenCV's default 0.25 px shift of every position
        sift = cv2.SIFT_create(**params, enable_precise_upscale=True)
    except TypeError:
        sift = cv2.SIFT_create(**params)
    keypoints, responses = keypoints_from_opencv(sift.detect(gray, None))
    if upright:  # one keypoint per location, no orientation
        _, first = np.unique(keypoints[:, :2], axis=0, return_index=True)
        first = np.sort(first)
        keypoints, responses = keypoints[first], responses[first]
        keypoints[:, 3] = 0.0
    return keypoints, responses


def check_keypoints(keypoints: Any, image_size: tuple[int, int], source: str = "keypoints") -> np.ndarray:
    """Validate caller keypoints -> ``(N, 4)`` float32; ``image_size`` is ``(H, W)``.

    Accepts an ``(N, 4)`` array or a list of ``cv2.KeyPoint``. Every keypoint must be finite, have a
    positive size and lie on the image: ``-0.5 <= x <= W - 0.5`` and ``-0.5 <= y <= H - 0.5``.
    """
    if isinstance(keypoints, (list, tuple)) and keypoints and isinstance(keypoints[0], cv2.KeyPoint):
        keypoints = keypoints_from_opencv(keypoints)[0]
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim != 2 or kp.shape[1] != 4:
        if kp.size == 0:
            return np.zeros((0, 4), np.float32)
        raise ValueError(f"{source}: expected (N, 4) rows 'x y size angle', got shape {kp.shape}")
    bad = ~np.isfinite(kp).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{source}: {int(bad.sum())} keypoint(s) have non-finite values (first: #{i} {kp[i]})")
    bad = kp[:, 2] <= 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{source}: {int(bad.sum())} keypoint(s) have size <= 0 (first: #{i}, size {kp[i, 2]:g})")
    h, w = image_size
    outside = (kp[:, 0] < -0.5) | (kp[:, 0] > w - 0.5) | (kp[:, 1] < -0.5) | (kp[:, 1] > h - 0.5)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(f"{source}: {int(outside.sum())} of {len(kp)} keypoints lie outside the {w}x{h} image "
                         f"(first: #{i} at x={kp[i, 0]:g}, y={kp[i, 1]:g})")
    return kp


def lafs_from_keypoints(keypoints: np.ndarray, mr_size: float = 6.0) -> torch.Tensor:
    """``(N, 4)`` OpenCV keypoints -> ``(1, N, 2, 3)`` float32 kornia LAFs in pixels.

    ``A = mr_size * size * R(-angle)`` (module docstring); ``angle == -1`` reads as upright.
    """
    if mr_size <= 0:
        raise ValueError(f"mr_size must be positive, got {mr_size}")
    kp = torch.as_tensor(np.asarray(keypoints, np.float32)).reshape(-1, 4)
    angle = torch.where(kp[:, 3] == -1, torch.zeros_like(kp[:, 3]), kp[:, 3])
    n = len(kp)
    return KF.laf_from_center_scale_ori(kp[None, :, :2], (mr_size * kp[:, 2]).view(1, n, 1, 1),
                                        (-angle).view(1, n, 1))
