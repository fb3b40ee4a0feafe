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

from typing import Any, Callable

import cv2
import numpy as np
import torch
from kornia import feature as KF

from ..data.images import to_gray, to_uint8
from .colmap_sift import (COLMAP_SIFT_BACKENDS, COLMAP_SIFT_SETTINGS, detect_colmap_sift,  # noqa: F401 (re-exported)
                          keypoints_from_colmap, keypoints_from_opencv)
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
