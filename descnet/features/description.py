"""Keypoints -> local affine frames -> patches -> descriptors: ``descnet.describe(image, model=SPEC)``.

>>> feats = descnet.describe("img1.png", model="tfeat:tfeat-liberty.params")   # SIFT keypoints
>>> feats.keypoints.shape, feats.descriptors.shape                             # (N, 4), (N, 128)

Keypoints and patches: :mod:`descnet.features.keypoints` (detectors and the OpenCV keypoint -> kornia LAF
convention) and :mod:`descnet.features.patches`; which keypoints: :class:`~descnet.features.options.KeypointOptions`.

A model is any SPEC or module of :mod:`descnet.models`. Patch models describe the cut patches; image models
(:class:`descnet.models.contract.ImageDescriptor`: ``opencv-sift``, ``opencv-rootsift``, OpenCV's own SIFT
descriptor by ``cv2.SIFT.compute`` on the same keypoints, what users compare against) describe the keypoints
on the whole grey image.
"""
from __future__ import annotations

import itertools
import os
import time
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from ..data.images import read_image, to_gray
from ..models import resolve_model
from ..models.contract import ImageDescriptor, model_label
from ..models.pretrained import DEFAULT_MODEL
from ..parallel import ordered_map
from .files import Features, read_keypoints
from .colmap_sift import detect_colmap_sift_parallel
from .inference import describe_patches
from .keypoints import check_keypoints, detect_keypoints, lafs_from_keypoints
from .options import COLMAP_SIFT_DETECTORS, KeypointOptions
from .patches import extract_patches

__all__ = ["describe", "describe_images", "describe_stream", "weights_kind"]


def describe(image: np.ndarray | str | os.PathLike, keypoints: Any = None, *,
             model: str | os.PathLike | nn.Module = DEFAULT_MODEL, options: KeypointOptions = KeypointOptions(),
             batch_size: int | None = None, device: str | torch.device = "cpu", progress: bool = False,
             timings: dict[str, float] | None = None) -> Features:
    """Keypoints and descriptors of one image.

    Args:
        image: a file path, or an ``(H, W)`` / ``(H, W, 3)`` RGB array, uint8, uint16 or float in [0, 1].
        keypoints: ``None`` to detect them (``options``); else ``(N, 4)`` rows ``x y size angle`` (OpenCV
            convention), a list of ``cv2.KeyPoint`` or the path of a keypoint text file.
        model: a model SPEC (trained name, ``name:weights``, checkpoint, run dir, ``opencv-sift``; default
            :data:`~descnet.models.pretrained.DEFAULT_MODEL`, descnet's shipped weights) or an ``nn.Module``.
            Resolve a SPEC once with :func:`descnet.models.resolve_model` and pass the module when describing
            many images.
        options: the detector, how many keypoints, the region size
            (:class:`~descnet.features.options.KeypointOptions`; ``max_keypoints`` is ignored for given
            keypoints, the region size still follows ``detector``/``mr_size``).
        batch_size, device, progress: passed to :func:`descnet.features.inference.describe_patches`
            (``batch_size=None``: its tuned default for the model, backend and device).
        timings: if given, filled with seconds per stage: ``detect``, ``extract``, ``describe``.

    Returns:
        :class:`descnet.features.files.Features`: ``(N, 4)`` keypoints, ``(N, D)`` descriptors, ``(N,)``
        scores, ``(N, 2, 3)`` LAFs; ``info`` names the image, the model (:func:`~descnet.models.model_label`),
        its weights (:func:`weights_kind`), the detector and ``mr_size``. An image without keypoints gives ``N = 0``.
    """
    return describe_images([image], [keypoints], model=model, options=options, batch_size=batch_size,
                           device=device, progress=progress, timings=timings)[0]


class _Located(NamedTuple):
    """An image's grey pixels and keypoints, ready to be described."""
    source: str
    gray: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    lafs: torch.Tensor
    detector: str  # the detector's name, or "given"
    mr_size: float


def _locate(image: Any, keypoints: Any, options: KeypointOptions, processes: int = 0) -> _Located:
    """Read the image, then detect or check its keypoints and turn them into LAFs. ``processes``: COLMAP's SIFT
    (which holds the GIL) detects in that many worker processes (:func:`detect_colmap_sift_parallel`)."""
    source = str(image) if isinstance(image, (str, os.PathLike)) else "image"
    pixels = read_image(image) if isinstance(image, (str, os.PathLike)) else image
    gray = to_gray(pixels, source)
    if keypoints is None and processes > 0 and options.detector in COLMAP_SIFT_DETECTORS:
        kps, scores = detect_colmap_sift_parallel(pixels, options.max_keypoints,
                                                  options.detector.endswith("-upright"), processes)
    elif keypoints is None:
        # the colour pixels: COLMAP's SIFT makes its own grey (detect_colmap_sift), OpenCV's detectors to_gray's
        kps, scores = detect_keypoints(pixels, options.detector, options.max_keypoints)
    else:
        where = "keypoints"
        if isinstance(keypoints, (str, os.PathLike)):
            where, keypoints = str(keypoints), read_keypoints(keypoints)
        kps = check_keypoints(keypoints, gray.shape, where)
        scores = np.zeros(len(kps), np.float32)
    mr = options.mr_size_or_default
    return _Located(source, gray, kps, scores, lafs_from_keypoints(kps, mr),
                    options.detector if keypoints is None else "given", mr)


def describe_images(images: Sequence[np.ndarray | str | os.PathLike], keypoints: Sequence[Any] | None = None, *,
                    model: str | os.PathLike | nn.Module = DEFAULT_MODEL,
                    options: KeypointOptions = KeypointOptions(), batch_size: int | None = None,
                    device: str | torch.device = "cpu", progress: bool = False,
                    timings: dict[str, float] | None = None) -> list[Features]:
    """:func:`describe` for several images at once -> one :class:`~descnet.features.files.Features` per image.

    Same arguments as :func:`describe`, with ``keypoints`` a list (one entry per image, ``None`` entries
    detect) or ``None``. Faster than describing the images one by one: images are read, their keypoints
    detected and their patches cut on ``torch.get_num_threads()`` threads at once (OpenCV and kornia release
    the GIL), and all patches go through the network in one :func:`~descnet.features.inference.describe_patches`
    call. All patches are held in memory together (4 KB per keypoint). An image model
    (:class:`~descnet.models.contract.ImageDescriptor`) describes each image's keypoints on its threads instead
    (no patches: ``extract`` takes 0 s). ``timings`` gets the wall-clock seconds of each stage for all images
    together.
    """
    images = list(images)
    keypoints = [None] * len(images) if keypoints is None else list(keypoints)
    if len(keypoints) != len(images):
        raise ValueError(f"keypoints: give one entry per image ({len(images)} images, {len(keypoints)} entries)")
    net = resolve_model(model)
    workers = min(len(images), max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    processes = workers if workers > 1 else 0  # one image: no worker process to start
    located = list(ordered_map(lambda args: _locate(*args, options, processes), zip(images, keypoints), workers))
    t1 = time.perf_counter()
    if isinstance(net, ImageDescriptor):
        descriptors = list(ordered_map(lambda loc: net.describe_image(loc.gray, loc.keypoints), located, workers))
        t2 = t1
    else:
        patch_size = int(getattr(net, "patch_size", 32))
        patches = list(ordered_map(lambda loc: extract_patches(loc.gray, loc.lafs, patch_size), located, workers))
        t2 = time.perf_counter()
        described = describe_patches(net, torch.cat(patches) if len(patches) > 1 else patches[0],
                                     batch_size=batch_size, device=device, progress=progress).numpy()
        descriptors = np.split(described, np.cumsum([len(p) for p in patches])[:-1])
    t3 = time.perf_counter()
    if timings is not None:
        timings.update(detect=t1 - t0, extract=t2 - t1, describe=t3 - t2)
    label, weights = model_label(net), weights_kind(net)
    return [_features(loc, desc, label, weights) for loc, desc in zip(located, descriptors)]


def _features(loc: _Located, descriptors: np.ndarray, label: str, weights: str) -> Features:
    return Features(keypoints=loc.keypoints, descriptors=np.ascontiguousarray(descriptors, np.float32),
                    scores=loc.scores, lafs=loc.lafs[0].numpy().astype(np.float32), image_size=loc.gray.shape,
                    info={"image": loc.source, "model": label, "weights": weights, "detector": loc.detector,
                          "mr_size": loc.mr_size})


def describe_stream(images: Iterable[np.ndarray | str | os.PathLike], keypoints: Iterable[Any] | None = None, *,
                    model: str | os.PathLike | nn.Module = DEFAULT_MODEL,
                    options: KeypointOptions = KeypointOptions(), batch_size: int | None = None,
                    device: str | torch.device = "cpu") -> Iterator[Features]:
    """:func:`describe` image after image, as a stream -> one :class:`~descnet.features.files.Features` per image,
    in order.

    Same arguments as :func:`describe_images` (``keypoints``: one entry per image, or ``None``). While the network
    describes one image's patches, the next images are read, their keypoints detected and their patches cut on
    ``torch.get_num_threads()`` threads (COLMAP's SIFT in as many worker processes: it holds the GIL), at most
    ``2 x threads`` images ahead: every core stays busy, and only those images are in memory at once, so a folder
    of any size streams. Each image's patches go through the network in one call.
    """
    net = resolve_model(model)
    workers = max(1, torch.get_num_threads())
    image_model = isinstance(net, ImageDescriptor)
    patch_size = int(getattr(net, "patch_size", 32))
    label, weights = model_label(net), weights_kind(net)

    def prepare(args: tuple[Any, Any]) -> tuple[_Located, Any]:
        loc = _locate(*args, options, workers)
        return loc, None if image_model else extract_patches(loc.gray, loc.lafs, patch_size)

    pairs = zip(images, keypoints if keypoints is not None else itertools.repeat(None))
    for loc, patches in ordered_map(prepare, pairs, workers):
        if image_model:
            descriptors = net.describe_image(loc.gray, loc.keypoints)
        else:
            descriptors = describe_patches(net, patches, batch_size=batch_size, device=device).numpy()
        yield _features(loc, descriptors, label, weights)


def weights_kind(model: str | os.PathLike | nn.Module) -> str:
    """What a model's weights are, for captions and feature files: ``trained``, ``untrained`` or ``hand-crafted``.

    A SPEC: registry models that cannot be trained (the OpenCV descriptors among them) are ``hand-crafted``; a bare
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
    name, sep, weights = str(model).partition(":")
    if name in list_models():
        if not model_entry(name).trainable:
            return "hand-crafted"
        if not sep or weights == "random":
            return "untrained"
    return "trained"
