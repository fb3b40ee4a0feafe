"""descnet: learning local patch descriptors for image matching.

Importing ``descnet`` is cheap; the heavy parts load on first use::

    import descnet
    model = descnet.create_model("hardnet-csa")            # descnet.models
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (PEP 562 lazy attributes)
_LAZY = {
    "create_model": "descnet.models",
    "list_models": "descnet.models",
    "load_weights": "descnet.models",
    "resolve_model": "descnet.models",
    # functions live in differently named modules so that importing the module never rebinds the name
    "describe": "descnet.features.description",
    "describe_images": "descnet.features.description",
    "match": "descnet.features.matching",
    "KeypointOptions": "descnet.features.options",
    "MatchOptions": "descnet.features.options",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'descnet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
