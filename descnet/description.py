"""Keypoints -> local affine frames -> patches -> descriptors: ``descnet.describe(image, model=SPEC)``.

>>> feats = descnet.describe("img1.png", model="tfeat:tfeat-liberty.params")   # SIFT keypoints
>>> feats.keypoints.shape, feats.descriptors.shape                             # (N, 4), (N, 128)

Keypoints come from an OpenCV detector chosen by name (:data:`DETECTORS`: ``sift`` by default, ``orb``
and, where the OpenCV build has them, ``akaze``, ``kaze``, ``brisk``) or from the caller: an ``(N, 4)``
array, a list of ``cv2.KeyPoint`` or a keypoint text file, all ``x y size angle`` in OpenCV's convention
(:mod:`descnet.features_io`). Any other OpenCV detector: pass its ``cv2.KeyPoint`` list and an ``mr_size``.

**From an OpenCV keypoint to a patch** (the convention users get wrong most often). A keypoint becomes the
kornia local affine frame (LAF) ``[A | c]`` with ``c = (x, y)`` and ``A = s R(theta)``:

* ``s = mr_size * size`` is kornia's LAF scale, *half* the side of the square region that is resampled into
  the ``P x P`` patch (kornia samples ``c + A [-1, 1]^2``), so the patch covers ``2 * mr_size * size``
  pixels. ``mr_size`` defaults per detector (:data:`DETECTORS`): 6 for SIFT (half-side 6 x ``size`` = 12
  sigma, kornia's ``DoGHardNet`` frames), 0.5 for ORB, whose ``size`` is the side of its 31 px patch.
* ``theta = -angle`` in degrees: OpenCV's ``KeyPoint.angle`` grows clockwise on screen (image y down) and
  kornia's LAF orientation counter-clockwise. ``angle == -1`` (OpenCV: "no orientation") means upright.

Patches are cut with :func:`kornia.feature.extract_patches_from_pyramid`, which samples a large region
from a smoothed, downsampled pyramid level (anti-aliased), directly at the model's patch size; they are
described by :func:`descnet.inference.describe_patches`.

Besides any model SPEC, ``model`` takes ``"opencv-sift"`` and ``"opencv-rootsift"``: OpenCV's own SIFT
descriptor computed by ``cv2.SIFT.compute`` on the same keypoints (RootSIFT = square root of the
L1-normalised SIFT vector). This is what users compare against; the registry's ``sift``/``rootsift``
models are patch-based re-implementations.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import cv2
import numpy as np
import torch
from kornia import feature as KF
from torch import nn

from .choices import OPENCV_DESCRIPTORS  # re-exported: model names of OpenCV's own descriptors
from .data.images import read_image
from .features_io import Features, read_keypoints
from .inference import describe_patches, model_name
from .models import resolve_model, spec_label
from .models.pretrained import DEFAULT_MODEL
from .parallel import ordered_map

__all__ = ["describe", "describe_images", "read_image", "to_gray", "detect_keypoints", "check_keypoints",
           "lafs_from_keypoints", "extract_patches", "keypoints_from_opencv", "keypoints_to_opencv",
           "opencv_sift_descriptors", "weights_kind",
           "DETECTORS", "OPENCV_DESCRIPTORS"]


class Detector(NamedTuple):
    create: Callable[[int | None], Any]  # max_keypoints -> cv2.Feature2D
    mr_size: float                       # default LAF scale per unit of KeyPoint.size


def _detectors() -> dict[str, Detector]:
    table = {
        # 6 x size (kornia's DoGHardNet frames): of 2, 3, 4, 6, 8, TFeat's correct matches at 3 px with 6 were
        # within 2% of the best on graf 1-2, 1-3, boat 1-3 and v_churchill 1-3
        "sift": Detector(lambda n: cv2.SIFT_create(nfeatures=n or 0), 6.0),
        # ORB's size is its 31 px patch at the detection level: 0.5 x size is that patch (0.3 .. 1 tried)
        "orb": Detector(lambda n: cv2.ORB_create(nfeatures=n or 100000), 0.5),
    }
    # moved out of OpenCV 5's main module; present in OpenCV 4. Defaults not measured: pass mr_size.
    for name, factory, mr_size in (("akaze", "AKAZE_create", 3.0), ("kaze", "KAZE_create", 3.0),
                                   ("brisk", "BRISK_create", 1.0)):
        if hasattr(cv2, factory):
            table[name] = Detector(lambda n, f=getattr(cv2, factory): f(), mr_size)
    return table


#: OpenCV detectors by name (those this OpenCV build has) with their default ``mr_size``
DETECTORS: dict[str, Detector] = _detectors()


# ---------------------------------------------------------------- images

def to_gray(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Grey, RGB or RGBA image, uint8 / uint16 / float in [0, 1] -> ``(H, W)`` float32 grey in [0, 1].

    Colour arrays are taken as RGB (numpy/PIL order; :func:`read_image` returns RGB) and converted with
    OpenCV's weights (0.299 R + 0.587 G + 0.114 B).
    """
    if isinstance(image, torch.Tensor):
        raise TypeError(f"{name}: pass a numpy (H, W) or (H, W, 3) array or a file path, not a torch tensor")
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"{name}: expected an (H, W) grey or (H, W, 3) RGB image, got shape {arr.shape}")
    if min(arr.shape[:2]) < 1:
        raise ValueError(f"{name}: empty image of shape {arr.shape}")
    if arr.dtype == np.uint8:
        gray = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        gray = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        gray = arr.astype(np.float32)
        if not np.isfinite(gray).all() or gray.min() < 0.0 or gray.max() > 1.0:
            raise ValueError(f"{name}: a float image must have finite values in [0, 1], got "
                             f"[{np.nanmin(gray):g}, {np.nanmax(gray):g}]")
    else:
        raise TypeError(f"{name}: pixels must be uint8, uint16 or float in [0, 1], got {arr.dtype}")
    if gray.ndim == 3:
        gray = cv2.cvtColor(np.ascontiguousarray(gray[..., :3]), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(gray)


def _to_uint8(gray: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- keypoints

def keypoints_from_opencv(keypoints: Sequence[cv2.KeyPoint]) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.KeyPoint`` list -> ``(N, 4)`` float32 ``x, y, size, angle`` and ``(N,)`` float32 responses."""
    rows = np.array([(k.pt[0], k.pt[1], k.size, k.angle) for k in keypoints], np.float32).reshape(-1, 4)
    return rows, np.array([k.response for k in keypoints], np.float32)


def keypoints_to_opencv(keypoints: np.ndarray, image_size: tuple[int, int] | None = None) -> list[cv2.KeyPoint]:
    """``(N, 4)`` ``x, y, size, angle`` -> ``cv2.KeyPoint`` list, with SIFT's packed ``octave`` field.

    OpenCV's SIFT descriptor reads the pyramid octave and layer from ``KeyPoint.octave``; they are
    recovered from ``size`` exactly as SIFT sets them (``size = 3.2 * 2 ** (octave + (layer + xi) / 3)``),
    clamped to octaves -1 .. log2(min(H, W)) - 3 when ``image_size`` ``(H, W)`` is given.
    """
    top = int(math.log2(max(min(image_size), 16))) - 3 if image_size else 64
    out = []
    for x, y, size, angle in np.asarray(keypoints, np.float64).reshape(-1, 4):
        t = 3.0 * math.log2(max(size, 1e-6) / 3.2)
        n = int(round(t))
        octave = (n - 1) // 3
        layer, xi = n - 3 * octave, t - n
        if octave < -1:
            octave, layer, xi = -1, 1, 0.0
        elif octave > top:
            octave, layer, xi = top, 3, 0.0
        packed = (octave & 255) | (layer << 8) | (int(round((xi + 0.5) * 255)) << 16)
        out.append(cv2.KeyPoint(float(x), float(y), float(size), float(angle), 0.0, packed))
    return out


def detect_keypoints(image: np.ndarray, detector: str = "sift",
                     max_keypoints: int | None = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Detect keypoints with an OpenCV detector by name -> ``(N, 4)`` keypoints and ``(N,)`` responses.

    ``image``: anything :func:`to_gray` takes. The strongest ``max_keypoints`` are kept (all when None),
    sorted by response, strongest first (stable, so ties keep OpenCV's order).
    """
    key = detector.lower()
    if key not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; choose one of: {', '.join(DETECTORS)}")
    if max_keypoints is not None and max_keypoints < 1:
        raise ValueError(f"max_keypoints must be at least 1, got {max_keypoints}")
    gray = to_gray(image)
    found = DETECTORS[key].create(max_keypoints).detect(_to_uint8(gray), None)
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


def extract_patches(gray: np.ndarray | torch.Tensor, lafs: torch.Tensor, patch_size: int = 32) -> torch.Tensor:
    """Cut anti-aliased patches: ``(H, W)`` grey image, ``(1, N, 2, 3)`` LAFs -> ``(N, 1, P, P)`` float32.

    Uses :func:`kornia.feature.extract_patches_from_pyramid`; cells outside the image repeat the border.
    """
    img = torch.as_tensor(gray, dtype=torch.float32)
    if img.ndim != 2:
        raise ValueError(f"extract_patches expects an (H, W) grey image, got shape {tuple(img.shape)}")
    lafs = lafs.reshape(1, -1, 2, 3).float()
    with torch.inference_mode():
        patches = KF.extract_patches_from_pyramid(img[None, None], lafs, PS=patch_size)
    return patches[0]


# ---------------------------------------------------------------- descriptors

def opencv_sift_descriptors(image: np.ndarray, keypoints: np.ndarray, root: bool = False) -> np.ndarray:
    """OpenCV's SIFT descriptor on given keypoints -> ``(N, 128)`` float32 unit-L2 rows.

    ``root=True`` gives RootSIFT (Arandjelovic & Zisserman 2012): L1-normalise, then square root. The
    keypoints keep their order (see :func:`keypoints_to_opencv` for the octave OpenCV needs).
    """
    gray = to_gray(image)
    if len(keypoints) == 0:
        return np.zeros((0, 128), np.float32)
    # SIFT builds its pyramid from the lowest octave among the keypoints; a first keypoint at octave -1
    # makes it start, as detection does, from the 2x upsampled image (its descriptor is dropped)
    cv_kps = keypoints_to_opencv(np.vstack([[0.0, 0.0, 2.0, 0.0], keypoints]), gray.shape)
    out_kps, desc = cv2.SIFT_create().compute(_to_uint8(gray), cv_kps)
    if desc is None or len(out_kps) != len(cv_kps):
        raise RuntimeError(f"OpenCV SIFT described {0 if desc is None else len(desc)} of {len(cv_kps)} keypoints")
    desc = desc[1:].astype(np.float32)
    if root:
        desc = np.sqrt(desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-12))
    return desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)


def _model_label(model: Any) -> str:
    """The table/file name of a model: from the SPEC it was resolved from (``hardnet:random`` ->
    ``hardnet-random``, so an untrained network says so), else its registry name."""
    return spec_label(model_name(model) if isinstance(model, nn.Module) else model)


def describe(image: np.ndarray | str | os.PathLike, keypoints: Any = None, *,
             model: str | os.PathLike | nn.Module = DEFAULT_MODEL,
             detector: str = "sift", max_keypoints: int | None = 2000, mr_size: float | None = None,
             batch_size: int | None = None, device: str | torch.device = "cpu", progress: bool = False,
             timings: dict[str, float] | None = None) -> Features:
    """Keypoints and descriptors of one image.

    Args:
        image: a file path, or an ``(H, W)`` / ``(H, W, 3)`` RGB array, uint8, uint16 or float in [0, 1].
        keypoints: ``None`` to detect them with ``detector``; else ``(N, 4)`` rows ``x y size angle``
            (OpenCV convention), a list of ``cv2.KeyPoint`` or the path of a keypoint text file.
        model: a model SPEC (trained name, ``name:weights``, checkpoint, run dir; default
            :data:`~descnet.models.pretrained.DEFAULT_MODEL`, descnet's shipped weights), an ``nn.Module``, or
            ``"opencv-sift"`` / ``"opencv-rootsift"`` (module docstring). Resolve a SPEC once with
            :func:`descnet.models.resolve_model` and pass the module when describing many images.
        detector: OpenCV detector name (:data:`DETECTORS`); also picks the default ``mr_size``.
        max_keypoints: keep the strongest detections (ignored for given keypoints).
        mr_size: LAF scale per unit of ``KeyPoint.size`` (default: the detector's, 6 for SIFT).
        batch_size, device, progress: passed to :func:`descnet.inference.describe_patches` (``batch_size=None``:
            its tuned default for the model, backend and device).
        timings: if given, filled with seconds per stage: ``detect``, ``extract``, ``describe``.

    Returns:
        :class:`descnet.features_io.Features`: ``(N, 4)`` keypoints, ``(N, D)`` descriptors, ``(N,)``
        scores, ``(N, 2, 3)`` LAFs. An image without keypoints gives ``N = 0``.
    """
    return describe_images([image], [keypoints], model=model, detector=detector, max_keypoints=max_keypoints,
                           mr_size=mr_size, batch_size=batch_size, device=device, progress=progress,
                           timings=timings)[0]


class _Located(NamedTuple):
    """An image's grey pixels and keypoints, ready to be described."""
    source: str
    gray: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    lafs: torch.Tensor
    detector: str  # the detector's name, or "given"
    mr_size: float


def _locate(image: Any, keypoints: Any, detector: str, max_keypoints: int | None,
            mr_size: float | None) -> _Located:
    """Read the image, then detect or check its keypoints and turn them into LAFs."""
    source = str(image) if isinstance(image, (str, os.PathLike)) else "image"
    pixels = read_image(image) if isinstance(image, (str, os.PathLike)) else image
    gray = to_gray(pixels, source)
    if keypoints is None:
        kps, scores = detect_keypoints(gray, detector, max_keypoints)
    else:
        where = "keypoints"
        if isinstance(keypoints, (str, os.PathLike)):
            where, keypoints = str(keypoints), read_keypoints(keypoints)
        kps = check_keypoints(keypoints, gray.shape, where)
        scores = np.zeros(len(kps), np.float32)
    mr = DETECTORS[detector].mr_size if mr_size is None else float(mr_size)
    return _Located(source, gray, kps, scores, lafs_from_keypoints(kps, mr),
                    detector if keypoints is None else "given", mr)


def describe_images(images: Sequence[np.ndarray | str | os.PathLike], keypoints: Sequence[Any] | None = None, *,
                    model: str | os.PathLike | nn.Module = DEFAULT_MODEL, detector: str = "sift", max_keypoints: int | None = 2000,
                    mr_size: float | None = None, batch_size: int | None = None, device: str | torch.device = "cpu",
                    progress: bool = False, timings: dict[str, float] | None = None) -> list[Features]:
    """:func:`describe` for several images at once -> one :class:`~descnet.features_io.Features` per image.

    Same arguments as :func:`describe`, with ``keypoints`` a list (one entry per image, ``None`` entries
    detect) or ``None``. Faster than describing the images one by one: images are read, their keypoints
    detected and their patches cut on ``torch.get_num_threads()`` threads at once (OpenCV and kornia release
    the GIL), and all patches go through the network in one :func:`~descnet.inference.describe_patches`
    call. All patches are held in memory together (4 KB per keypoint). ``timings`` gets the wall-clock
    seconds of each stage for all images together.
    """
    images = list(images)
    keypoints = [None] * len(images) if keypoints is None else list(keypoints)
    if len(keypoints) != len(images):
        raise ValueError(f"keypoints: give one entry per image ({len(images)} images, {len(keypoints)} entries)")
    key = detector.lower()
    if key not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; choose one of: {', '.join(DETECTORS)}")
    workers = min(len(images), max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    located = list(ordered_map(lambda args: _locate(*args, key, max_keypoints, mr_size), zip(images, keypoints),
                               workers))
    t1 = time.perf_counter()
    if isinstance(model, str) and model in OPENCV_DESCRIPTORS:
        root = OPENCV_DESCRIPTORS[model]
        descriptors = list(ordered_map(lambda loc: opencv_sift_descriptors(loc.gray, loc.keypoints, root=root),
                                       located, workers))
        t2 = t1
    else:
        net = model if isinstance(model, nn.Module) else resolve_model(model)
        patch_size = int(getattr(net, "patch_size", 32))
        patches = list(ordered_map(lambda loc: extract_patches(loc.gray, loc.lafs, patch_size), located, workers))
        t2 = time.perf_counter()
        described = describe_patches(net, torch.cat(patches) if len(patches) > 1 else patches[0],
                                     batch_size=batch_size, device=device, progress=progress).numpy()
        descriptors = np.split(described, np.cumsum([len(p) for p in patches])[:-1])
    t3 = time.perf_counter()
    if timings is not None:
        timings.update(detect=t1 - t0, extract=t2 - t1, describe=t3 - t2)
    label, weights = _model_label(model), weights_kind(model)
    return [Features(keypoints=loc.keypoints, descriptors=np.ascontiguousarray(desc, np.float32), scores=loc.scores,
                     lafs=loc.lafs[0].numpy().astype(np.float32), image_size=loc.gray.shape,
                     info={"image": loc.source, "model": label, "weights": weights, "detector": loc.detector,
                           "mr_size": loc.mr_size})
            for loc, desc in zip(located, descriptors)]


def weights_kind(model: str | os.PathLike | nn.Module) -> str:
    """What a model's weights are, for captions and feature files: ``trained``, ``untrained`` or ``hand-crafted``.

    A SPEC: the OpenCV baselines and registry models that cannot be trained are ``hand-crafted``; a bare
    registry name of a learned model or ``NAME:random`` is ``untrained`` (seed-0 initialisation); weight files,
    checkpoints, run directories and pretrained names are ``trained``. A module: its ``descnet_trained`` tag when
    it has one, ``hand-crafted`` for a registry model that cannot be trained, else ``unknown``.
    """
    from .models.registry import list_models, model_entry

    if isinstance(model, nn.Module):
        name = getattr(model, "descnet_name", None)
        if name in list_models() and not model_entry(name).trainable:
            return "hand-crafted"
        trained = getattr(model, "descnet_trained", None)
        return "unknown" if trained is None else ("trained" if trained else "untrained")
    text = str(model)
    if text in OPENCV_DESCRIPTORS:
        return "hand-crafted"
    name, sep, weights = text.partition(":")
    if name in list_models():
        if not model_entry(name).trainable:
            return "hand-crafted"
        if not sep or weights == "random":
            return "untrained"
    return "trained"
