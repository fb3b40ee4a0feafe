"""Lazy package attributes (PEP 562): a package names its public API, and each name is imported from its
module on first use, so importing the package stays cheap (``descnet --help`` loads neither torch nor OpenCV).

    _LAZY = {"create_model": ".registry", ...}            # name -> module (relative to the package, or absolute)
    __getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package`` for ``{name: module}``."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
