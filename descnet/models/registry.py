"""Model registry: ``create_model(name, **overrides)`` and ``list_models()``, as in timm.

Every registered model maps float patches ``(B, 1, P, P)`` (pixels scaled to [0, 1]; ``P`` is the model's
``patch_size``, 32 for all learned models) to ``(B, D)`` unit-L2 descriptors, except the image models
(:class:`descnet.models.contract.ImageDescriptor`: ``opencv-sift``, ``opencv-rootsift``), which describe
keypoints on the whole image. ``create_model`` records
the name and options on the model (``descnet_name``, ``descnet_options``) so checkpoints can rebuild it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

__all__ = ["ModelEntry", "register_model", "create_model", "list_models", "model_entry"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    summary: str
    defaults: dict[str, Any] = field(default_factory=dict)
    trainable: bool = True


_REGISTRY: dict[str, ModelEntry] = {}
# modules whose import registers models; imported on first use, so `import descnet` stays light
_MODEL_MODULES = ("descnet.models.zoo", "descnet.models.handcrafted", "descnet.models.opencv")


def register_model(name: str, summary: str, trainable: bool = True, **defaults: Any):
    """Decorator: register ``factory(**options) -> nn.Module`` under ``name`` with default options."""
    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, factory, summary, dict(defaults), trainable)
        return factory
    return decorator


def _load_all() -> None:
    for module in _MODEL_MODULES:
        importlib.import_module(module)


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model with its default options updated by ``overrides``.

    >>> model = create_model("hardnet-csa", num_bases=16, placement=(32, 16))
    """
    entry = model_entry(name)
    options = {**entry.defaults, **overrides}
    try:
        model = entry.factory(**options)
    except TypeError as err:
        raise TypeError(f"bad options for model {name!r}: {err}") from err
    model.descnet_name = name
    model.descnet_options = options
    return model
