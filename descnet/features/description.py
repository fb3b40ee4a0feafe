"""Keypoints -> local affine frames -> patches -> descriptors: ``descnet.describe(image, model=SPEC)``.

>>> feats = descnet.describe("img1.png", model="tfeat:tfeat-liberty.params")   # SIFT keypoints
>>> feats.keypoints.shape, feats.descriptors.shape                             # (N, 4), (N, 128)

Keypoints and patches: :mod:`descnet.features.keypoints` (detectors and the OpenCV keypoint -> kornia LAF
convention) and :mod:`descnet.features.patches`.

Besides any model SPEC, ``model`` takes ``"opencv-sift"`` and ``"opencv-rootsift"``: OpenCV's own SIFT
descriptor computed by ``cv2.SIFT.compute`` on the same keypoints (RootSIFT = square root of the
L1-normalised SIFT vector). This is what users compare against; the registry's ``sift``/``rootsift``
models are patch-based re-implementations.
"""
from __future__ import annotations

import os
import time
from typing import Any, NamedTuple, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from ..data.images import read_image, to_gray, to_uint8
from ..models import resolve_model, spec_label
from ..models.pretrained import DEFAULT_MODEL
from ..parallel import ordered_map
from .files import Features, read_keypoints
from ..models.contract import model_name
from .inference import describe_patches
from .keypoints import DETECTORS, check_keypoints, detect_keypoints, keypoints_to_opencv, lafs_from_keypoints
from .options import OPENCV_DESCRIPTORS
from .patches import extract_patches

__all__ = ["describe", "describe_images", "opencv_sift_descriptors", "weights_kind"]


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
    out_kps, desc = cv2.SIFT_create().compute(to_uint8(gray), cv_kps)
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
        batch_size, device, progress: passed to :func:`descnet.features.inference.describe_patches` (``batch_size=None``:
            its tuned default for the model, backend and device).
        timings: if given, filled with seconds per stage: ``detect``, ``extract``, ``describe``.

    Returns:
        :class:`descnet.features.files.Features`: ``(N, 4)`` keypoints, ``(N, D)`` descriptors, ``(N,)``
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
    """:func:`describe` for several images at once -> one :class:`~descnet.features.files.Features` per image.

    Same arguments as :func:`describe`, with ``keypoints`` a list (one entry per image, ``None`` entries
    detect) or ``None``. Faster than describing the images one by one: images are read, their keypoints
    detected and their patches cut on ``torch.get_num_threads()`` threads at once (OpenCV and kornia release
    the GIL), and all patches go through the network in one :func:`~descnet.features.inference.describe_patches`
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
    from ..models.registry import list_models, model_entry

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
