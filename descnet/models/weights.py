"""Loading weight files safely (``weights_only=True``) with errors that name the file and the keys.

Accepted layouts: a bare ``state_dict``; ``{'state_dict': ...}`` (HardNet reference code, descnet
checkpoints); ``{'model': state_dict}``; keys prefixed by ``module.`` (DDP) are unwrapped.
A descnet checkpoint also records how to rebuild its model (see :func:`checkpoint_model_info`)::

    {'descnet': 1, 'model': {'name': 'hardnet-csa', 'options': {...}}, 'state_dict': {...}, ...}
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

__all__ = ["WeightsError", "read_weights_file", "extract_state_dict", "load_weights", "checkpoint_model_info",
           "checkpoint_matching",
           "weights_cache_dir", "pretrained_path", "load_state", "non_finite_tensors"]


class WeightsError(ValueError):
    """A weight file cannot be read or does not fit the model."""


def read_weights_file(path: str | os.PathLike) -> Any:
    """``torch.load`` on the CPU with ``weights_only=True``; a clear :class:`WeightsError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weight file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError,
            AttributeError, TypeError, ImportError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f"{path}: not a readable PyTorch weight file ({first})") from err


def extract_state_dict(obj: Any, source: str = "weights") -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded weight file, with any ``module.`` prefix removed."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
        else:
            if isinstance(obj.get("model"), Mapping) and all(isinstance(v, torch.Tensor) for v in obj["model"].values()):
                obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{source}: holds no state_dict (a mapping of parameter names to tensors)")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def load_weights(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load a weight file into ``model`` (in place, returned). Errors list missing/unexpected keys."""
    return load_state(model, extract_state_dict(read_weights_file(path), str(path)), path, strict)


def load_state(model: nn.Module, state: Mapping[str, Any], path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load the tensors ``state`` read from ``path`` into ``model`` (in place, returned); a :class:`WeightsError`
    naming ``path`` and the keys when they do not fit (missing or unexpected keys, other shapes) or hold
    NaN or infinite values (a diverged training run: its descriptors would be NaN)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "") or "none"
        name = getattr(model, "descnet_name", type(model).__name__)
        raise WeightsError(f"{path}: weights do not fit model {name!r} (another architecture?). "
                           f"Missing keys: {show(missing)}. Unexpected keys: {show(unexpected)}.")
    bad = [f"{k} {tuple(getattr(state[k], 'shape', ()))} vs {tuple(own[k].shape)}"
           for k in set(state) & set(own) if getattr(state[k], "shape", None) != own[k].shape]
    if bad:
        raise WeightsError(f"{path}: tensor shapes do not fit the model: {'; '.join(sorted(bad)[:8])}")
    broken = sorted(non_finite_tensors(state))
    if broken:
        raise WeightsError(f"{path}: non-finite (NaN or inf) weights in {', '.join(broken[:5])}"
                           f"{' ...' if len(broken) > 5 else ''} (a diverged training run?); use an earlier checkpoint")
    model.load_state_dict(state, strict=strict)
    return model


def non_finite_tensors(state_dict: Mapping[str, Any]) -> list[str]:
    """Names of the floating tensors of ``state_dict`` holding NaN or infinite values (empty: all finite)."""
    return [key for key, value in state_dict.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())]


def checkpoint_model_info(obj: Any) -> tuple[str, dict[str, Any]] | None:
    """``(name, options)`` recorded in a descnet checkpoint, or ``None`` for other weight files."""
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        info = obj["model"]
        if isinstance(info.get("name"), str):
            return info["name"], dict(info.get("options") or {})
    return None


# ------------------------------------------------------------------------------ pretrained weight files

def checkpoint_matching(obj: Any) -> dict[str, Any] | None:
    """The recommended matcher a loaded descnet weights file records (``info["matching"]``, a dict), else
    ``None``."""
    info = obj.get("info") if isinstance(obj, dict) else None
    matching = info.get("matching") if isinstance(info, dict) else None
    return matching if isinstance(matching, dict) else None


def weights_cache_dir() -> Path:
    """Where published weights are downloaded: ``$DESCNET_CACHE/weights`` (default ``~/.cache/descnet/weights``)."""
    from descnet.io import user_cache_dir

    return user_cache_dir() / "weights"


def pretrained_path(entry, cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """The local file of a :class:`~descnet.models.pretrained.PretrainedWeights`, downloaded on first use.

    Shipped weights come from the package. Published ones are looked up in ``cache_dir`` (default
    :func:`weights_cache_dir`), else fetched from ``$DESCNET_MIRROR`` mirrors (``<mirror>/<file>``) and the
    entry's URLs in order: resumed from a ``.part`` file, checked against the known size and sha256, moved
    into place atomically. Raises :class:`WeightsError` naming the URL and the path for a hand download.
    """
    from descnet.data.download import (ChecksumError, DownloadError, Expected, IncompleteDownload, fetch_url,
                                       file_digest, mirror_urls)
    from descnet.models.pretrained import SHIPPED_DIR

    if entry.shipped:
        path = SHIPPED_DIR / entry.file
        if not path.is_file():
            raise WeightsError(f"{path}: descnet's weights {entry.name!r} are missing from this installation "
                               f"(reinstall descnet, or make them with tools/train_descnet_weights.sh)")
        return path
    path = Path(cache_dir) if cache_dir is not None else weights_cache_dir()
    path = path / entry.file
    expected = Expected(size=entry.size, sha256=entry.sha256)
    if path.is_file():
        if entry.sha256 is None or file_digest(path) == entry.sha256:
            return path
        raise WeightsError(f"{path}: does not have the sha256 of the published {entry.name} weights "
                           f"({entry.sha256}); remove it and run the command again to download it")
    urls = mirror_urls(entry.file) + list(entry.urls)
    if not urls:
        raise WeightsError(f"{entry.name}: no URL is known; put the file at {path}")
    failures = []
    for url in urls:
        try:
            return fetch_url(url, path, expected=expected, progress=progress)
        except (IncompleteDownload, ChecksumError) as err:
            raise WeightsError(f"weights {entry.name}: {err}") from err
        except DownloadError as err:
            failures.append(f"{url}: {err}")
    raise WeightsError(f"cannot download the weights {entry.name!r} ({'; '.join(failures)}). Without internet, "
                       f"download {entry.urls[0] if entry.urls else urls[0]} by hand and save it as {path}")

