"""COLMAP's SIFT detection (``colmap-sift``): the keypoints COLMAP's own extraction finds, in descnet's convention.

Through pycolmap where installed (COLMAP's code: :func:`detect_colmap_sift`, exactly the keypoints
``pycolmap.extract_features`` stores: tested on the shared photos), else OpenCV's SIFT with COLMAP's thresholds.
:func:`keypoints_from_colmap` converts COLMAP's keypoints (pixel-corner origin, sigma, radians) to descnet's ``x y
size angle`` (pixel-centre origin, OpenCV's size and degrees).

pycolmap's extractor holds Python's GIL while it runs (about 1.4 s for a 1000 x 800 photo), so threads cannot
detect in parallel; :func:`detect_colmap_sift_parallel` runs it in worker processes instead (kept for the session),
which also frees the calling process's cores for the network. This module imports only numpy, OpenCV and pycolmap,
so a worker process starts fast.
"""
from __future__ import annotations

import atexit
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Sequence

import cv2
import numpy as np

from ..data.images import to_gray, to_uint8

__all__ = ["detect_colmap_sift", "detect_colmap_sift_parallel", "keypoints_from_colmap", "keypoints_from_opencv",
           "COLMAP_SIFT_SETTINGS",
           "COLMAP_SIFT_BACKENDS"]


def keypoints_from_opencv(keypoints: Sequence[cv2.KeyPoint]) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.KeyPoint`` list -> ``(N, 4)`` float32 ``x, y, size, angle`` and ``(N,)`` float32 responses (defined
    here, without torch, so that the worker processes of :func:`detect_colmap_sift_parallel` start fast;
    :mod:`descnet.features.keypoints` re-exports it)."""
    rows = np.array([(k.pt[0], k.pt[1], k.size, k.angle) for k in keypoints], np.float32).reshape(-1, 4)
    return rows, np.array([k.response for k in keypoints], np.float32)


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




_POOL: dict[int, ProcessPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ProcessPoolExecutor:
    """The session's worker processes (started once, by ``spawn``: no copy of this process's threads and locks)."""
    import multiprocessing

    with _POOL_LOCK:
        if workers not in _POOL:
            _POOL[workers] = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            atexit.register(_POOL[workers].shutdown, cancel_futures=True)
        return _POOL[workers]


def detect_colmap_sift_parallel(image: np.ndarray, max_keypoints: int | None = 8192, upright: bool = False,
                                workers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """:func:`detect_colmap_sift` in one of ``workers`` worker processes when pycolmap is installed (call it from
    several threads to detect several images at once; the calling thread waits without holding the GIL), in this
    process otherwise or when worker processes cannot be started. Same result."""
    if _colmap_sift_backend("auto") != "pycolmap" or workers < 1:
        return detect_colmap_sift(image, max_keypoints, upright)
    try:
        future = _pool(workers).submit(detect_colmap_sift, np.asarray(image), max_keypoints, upright, "pycolmap")
    except (OSError, RuntimeError):  # no processes here (a sandbox, a shut-down pool)
        return detect_colmap_sift(image, max_keypoints, upright)
    return future.result()
