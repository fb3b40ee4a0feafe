"""Patch descriptor models: ``create_model``, ``list_models``, ``load_weights``, ``resolve_model``.

Every model maps float patches ``(B, 1, 32, 32)`` in [0, 1] to unit-L2 descriptors ``(B, D)``.
"""
from .attention import CompressedSelfAttention, NonLocalAttention
from .l2net import L2Net, check_patches, standardize_patches
from .registry import create_model, list_models, model_entry, register_model
from .spec import resolve_model, spec_label
from .weights import WeightsError, load_weights

__all__ = [
    "CompressedSelfAttention", "NonLocalAttention", "L2Net", "check_patches", "standardize_patches",
    "create_model", "list_models", "model_entry", "register_model", "resolve_model", "spec_label",
    "WeightsError", "load_weights",
]
