"""The model contract's checks and names: what every describing path refuses and how it names a model.

A model maps ``(B, 1, P, P)`` patches to ``(B, D)`` unit descriptors; descriptors that are not finite mean
broken weights and are refused before anything is written or scored (:func:`check_finite_descriptors`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["NonFiniteDescriptorsError", "check_finite_descriptors", "model_name"]


class NonFiniteDescriptorsError(ValueError):
    """A model produced NaN or infinite descriptors (broken weights): nothing is written or scored."""


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
