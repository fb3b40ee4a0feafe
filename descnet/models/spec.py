"""One resolver for the model SPEC of every command.

A SPEC is one of:

* a registry name: ``hardnet-csa``, ``rootsift`` (untrained for learned models: initialised from seed 0, the
  same network in every process, so evaluating an untrained baseline is reproducible);
* a name with a weight file: ``tfeat:path/to/tfeat-liberty.params``;
* a descnet checkpoint file (it records the model name and options);
* a descnet run directory (``best.pt`` is used, else ``last.pt``).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .registry import create_model, list_models
from .weights import WeightsError, checkpoint_model_info, extract_state_dict, load_weights, read_weights_file

__all__ = ["resolve_model", "spec_label", "RUN_CHECKPOINTS", "UNTRAINED_SEED"]

RUN_CHECKPOINTS = ("best.pt", "last.pt")
#: the initialisation seed of an untrained registry model (a bare name as SPEC)
UNTRAINED_SEED = 0


def _checkpoint_in_run_dir(path: Path) -> Path:
    for name in RUN_CHECKPOINTS:
        if (path / name).is_file():
            return path / name
    raise WeightsError(f"{path}: a run directory needs one of {', '.join(RUN_CHECKPOINTS)}")


def resolve_model(spec: str | os.PathLike) -> nn.Module:
    """Turn a model SPEC into a model in eval mode on the CPU (see the module docstring)."""
    text = str(spec)
    names = list_models()
    if text in names:
        with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
            torch.manual_seed(UNTRAINED_SEED)
            return create_model(text).eval()
    name, sep, weights = text.partition(":")
    if sep and name in names:
        if not weights:
            raise ValueError(f"model SPEC {text!r}: give a weight file after the colon")
        return load_weights(create_model(name), weights).eval()
    path = Path(text)
    if path.is_dir():
        path = _checkpoint_in_run_dir(path)
    if path.is_file():
        obj = read_weights_file(path)
        info = checkpoint_model_info(obj)
        if info is None:
            raise WeightsError(f"{path}: not a descnet checkpoint (it records no model name); "
                               f"use NAME:{path} with one of: {', '.join(names)}")
        model = create_model(info[0], **info[1])
        model.load_state_dict(extract_state_dict(obj, str(path)))
        return model.eval()
    raise ValueError(f"model SPEC {text!r} is neither a model name ({', '.join(names)}), NAME:WEIGHTS, "
                     f"a checkpoint file nor a run directory")


def spec_label(spec: str | os.PathLike) -> str:
    """A short name for tables and file names: ``tfeat:x/tfeat-liberty.params`` -> ``tfeat-liberty``."""
    text = str(spec).rstrip("/")
    name, sep, weights = text.partition(":")
    if sep and weights:
        stem = Path(weights).stem
        return stem if stem.startswith(name) else f"{name}-{stem}"
    path = Path(text)
    if path.suffix in (".pt", ".pth", ".ckpt"):
        return f"{path.parent.name}-{path.stem}" if path.parent.name else path.stem
    return path.name or text
