"""The model contract: how a model describes, what every describing path refuses, and how a model is named.

A *patch* model maps ``(B, 1, P, P)`` patches to ``(B, D)`` unit descriptors (``forward``). An *image*
model (:class:`ImageDescriptor`, e.g. OpenCV's SIFT descriptor, :mod:`descnet.models.opencv`) describes
keypoints on the whole image instead; :func:`descnet.features.description.describe_images` asks which one a
model is. Descriptors that are not finite mean broken weights and are refused before anything is written or
scored (:func:`check_finite_descriptors`).

Names: :func:`model_label` is *the* label of a model SPEC or module (tables, file names, feature files);
:func:`model_name` is how errors name a model (the SPEC as typed). Identity: :func:`model_digest` is what the
descriptors of a module depend on, by content (architecture options and every weight), so two files of the
same name with other weights never pass for one another.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["NonFiniteDescriptorsError", "ImageDescriptor", "check_finite_descriptors", "model_label", "model_name",
           "model_digest"]


class NonFiniteDescriptorsError(ValueError):
    """A model produced NaN or infinite descriptors (broken weights): nothing is written or scored."""


class ImageDescriptor(nn.Module):
    """A model that describes keypoints on the whole grey image rather than cut patches.

    Subclasses implement :meth:`describe_image`; ``forward`` refuses patches, so a patch-based protocol
    (Brown, HPatches, training) given such a model stops with an error naming it.
    """

    descriptor_dim: int

    def describe_image(self, image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """``(H, W)`` float32 grey image in [0, 1] and ``(N, 4)`` keypoints ``x y size angle`` (OpenCV's
        convention) -> ``(N, D)`` float32 unit-L2 descriptors, in the keypoints' order."""
        raise NotImplementedError

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        raise ValueError(f"model {model_name(self)}: describes keypoints on whole images (descnet describe, match, "
                         f"eval sequences, eval sfm), not patches")


def model_label(model: str | os.PathLike | nn.Module) -> str:
    """The label of a model SPEC or module, for tables, file names and feature files.

    A SPEC: ``tfeat:x/tfeat-liberty.params`` -> ``tfeat-liberty``, ``hardnet:random`` -> ``hardnet-random`` (so an
    untrained network says so), ``runs/csa/best.pt`` -> ``csa-best``, ``runs/csa`` -> ``csa``, a name stays
    itself. A module: the label of the SPEC it was resolved from (``descnet_spec``), else its registry name,
    else its class name.
    """
    if isinstance(model, nn.Module):
        spec = getattr(model, "descnet_spec", None)
        if spec is None:
            return str(getattr(model, "descnet_name", None) or type(model).__name__)
        model = spec
    text = str(model).rstrip("/")
    name, sep, weights = text.partition(":")
    if sep and weights:
        stem = Path(weights).stem
        return stem if stem.startswith(name) else f"{name}-{stem}"
    path = Path(text)
    if path.suffix in (".pt", ".pth", ".ckpt"):
        return f"{path.parent.name}-{path.stem}" if path.parent.name else path.stem
    return path.name or text


def model_digest(model: nn.Module) -> str:
    """sha256 of what a module's descriptors depend on: its class, its registry name and options
    (``descnet_name``, ``descnet_options``), every parameter and buffer (name, dtype, shape, values) and, for
    the models that describe with OpenCV (:class:`ImageDescriptor`), OpenCV's version. Two checkpoints with the
    same file name and other weights differ; the same weights loaded twice agree."""
    import hashlib
    import json

    h = hashlib.sha256()
    options = getattr(model, "descnet_options", None)
    head = {"class": f"{type(model).__module__}.{type(model).__qualname__}",
            "name": getattr(model, "descnet_name", None), "options": options}
    if isinstance(model, ImageDescriptor):
        import cv2

        head["opencv"] = cv2.__version__
        head["attributes"] = {k: v for k, v in vars(model).items() if not k.startswith("_") and k != "training"
                              and isinstance(v, (bool, int, float, str, type(None)))}
    h.update(json.dumps(head, sort_keys=True, default=repr).encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_name(model: Any) -> str:
    """How errors name a model: the SPEC it was resolved from, else its registry name, else its class."""
    return str(getattr(model, "descnet_spec", None) or getattr(model, "descnet_name", None) or type(model).__name__)


def check_finite_descriptors(descriptors: torch.Tensor | np.ndarray, name: str) -> None:
    """Raise :class:`NonFiniteDescriptorsError` naming the model ``name`` when any of the ``(N, D)``
    descriptors holds NaN or inf."""
    finite = torch.isfinite(torch.as_tensor(descriptors)).all(dim=-1) if len(descriptors) else None
    if finite is None or bool(finite.all()):
        return
    bad = int((~finite).sum())
    raise NonFiniteDescriptorsError(
        f"model {name}: {bad} of {len(descriptors)} descriptors are not finite (NaN or inf): its weights are "
        f"broken (a diverged training run?); use another checkpoint or model")
