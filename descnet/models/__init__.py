"""Patch descriptor models: ``create_model``, ``list_models``, ``load_weights``, ``resolve_model``.

Every model maps float patches ``(B, 1, 32, 32)`` in [0, 1] to unit-L2 descriptors ``(B, D)``.
Attributes load on first use (PEP 562), so ``descnet.models.pretrained`` (names, provenance, the default
model) can be read without importing torch, e.g. by the command line's ``--help``.
"""
from __future__ import annotations

from ..lazy import lazy_attributes

_LAZY = {
    "CompressedSelfAttention": ".attention", "NonLocalAttention": ".attention",
    "L2Net": ".l2net", "check_patches": ".l2net", "standardize_patches": ".l2net",
    "create_model": ".registry", "list_models": ".registry", "model_entry": ".registry",
    "register_model": ".registry",
    "resolve_model": ".spec", "load_pretrained": ".spec", "model_label": ".contract", "model_digest": ".contract",
    "WeightsError": ".weights", "load_weights": ".weights",
    "DEFAULT_MODEL": ".pretrained", "list_pretrained": ".pretrained", "pretrained_entry": ".pretrained",
}
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
