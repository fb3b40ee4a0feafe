"""descnet: learning local patch descriptors for image matching.

Importing ``descnet`` is cheap; the heavy parts load on first use::

    import descnet
    model = descnet.create_model("hardnet-csa")            # descnet.models
"""
from __future__ import annotations

from descnet.lazy import lazy_attributes

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


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
