"""Training checkpoints: one format, written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict (the model SPEC resolver of :mod:`descnet.models` reads ``model`` and
``state_dict``; ``descnet train --resume`` reads the rest)::

    {'descnet': 1,
     'model': {'name': 'hardnet-csa', 'options': {...}},  # create_model(name, **options) rebuilds it
     'state_dict': {...},                                  # the bare model (no DDP 'module.' prefix)
     'optimizer': {...}, 'scheduler': {...}, 'scaler': {...} or None,
     'epoch': int,             # epochs completed before this point
     'step': int,              # optimiser steps done in all (global)
     'batch': int,             # batches of `epoch` already done (0 at an epoch boundary)
     'rng': {'seed': int},     # every random draw is a function of (seed, epoch, step): nothing else to keep
     'config': dict,           # the full config of the run
     'metrics': dict,          # the latest validation figures
     'best': {'metric': str, 'value': float, 'epoch': int} or None}

Run directories hold ``last.pt`` (latest) and ``best.pt`` (best validation figure so far); the names are
:mod:`descnet.runinfo`'s.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from descnet.io import atomic_path
from descnet.models.weights import non_finite_tensors
from descnet.runinfo import LAST_CHECKPOINT

__all__ = ["FORMAT_VERSION", "save_checkpoint", "load_checkpoint", "find_checkpoint",
           "export_weights", "non_finite_tensors", "NonFiniteWeightsError"]

FORMAT_VERSION = 1
_REQUIRED = ("model", "state_dict", "optimizer", "scheduler", "epoch", "step", "batch", "config")


class NonFiniteWeightsError(ValueError):
    """A checkpoint's ``state_dict`` holds NaN or infinite values; it was not written."""


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, rename): an interrupted write
    leaves the previous checkpoint intact. A ``state_dict`` with non-finite values is never written
    (:class:`NonFiniteWeightsError`; the previous file stays)."""
    path = Path(path)
    bad = non_finite_tensors(payload.get("state_dict") or {})
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise NonFiniteWeightsError(f"{path}: not written: non-finite weights in {', '.join(bad[:3])}{more}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(dict(payload), f)
            f.flush()
            os.fsync(f.fileno())
    return path


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A run directory -> its ``last.pt``; a file -> itself. Clear errors otherwise."""
    path = Path(path)
    if path.is_dir():
        if (path / LAST_CHECKPOINT).is_file():
            return path / LAST_CHECKPOINT
        raise FileNotFoundError(f"{path}: no {LAST_CHECKPOINT} in this run directory (nothing to resume)")
    if path.is_file():
        return path
    raise FileNotFoundError(f"{path}: no such run directory or checkpoint")


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint (``weights_only=True``) and check it has what a resume needs."""
    path = find_checkpoint(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged or foreign file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path}: not a readable descnet checkpoint ({first})") from None
    if not isinstance(obj, dict) or obj.get("descnet") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a descnet training checkpoint (format {FORMAT_VERSION})")
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise ValueError(f"{path}: the checkpoint lacks {', '.join(missing)}: it holds weights only and cannot "
                         f"be resumed (use it as model.init to start a new run from it)")
    return obj


def is_better(value: float, best: Mapping[str, Any] | None, higher_is_better: bool = False) -> bool:
    """Whether ``value`` beats ``best['value']`` (lower is better for FPR95); NaN never does."""
    if value is None or math.isnan(value):
        return False
    if best is None or best.get("value") is None:
        return True
    return value > best["value"] if higher_is_better else value < best["value"]


def export_weights(checkpoint: str | os.PathLike, out: str | os.PathLike, half: bool = True,
                   info: Mapping[str, Any] | None = None) -> Path:
    """The weights of a training checkpoint (or run directory: its ``last.pt``) as a small file to ship.

    Writes ``{'descnet': 1, 'model': {...}, 'state_dict': {...}, 'info': {...}}`` atomically: floating
    tensors in float16 when ``half`` (a few MB; the resolver loads them into a float32 model), no optimiser
    state. ``info`` (JSON-ready: step, config, provenance) goes along. Non-finite weights (also values that
    overflow float16) are refused by :func:`save_checkpoint` (:class:`NonFiniteWeightsError`).
    """
    obj = load_checkpoint(checkpoint)
    state = {key: (tensor.half() if half and tensor.is_floating_point() else tensor).clone()
             for key, tensor in obj["state_dict"].items()}
    payload = {"descnet": FORMAT_VERSION, "model": dict(obj["model"]), "state_dict": state,
               "info": {"step": obj["step"], "epoch": obj["epoch"], "config": obj["config"], **dict(info or {})}}
    return save_checkpoint(out, payload)
