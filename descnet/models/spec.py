"""One resolver for the model SPEC of every command.

A SPEC is one of:

* a trained model by name (:mod:`descnet.models.pretrained`): ``descnet-hardnet-csa`` (shipped, the default), ``descnet-hardnet``,
  ``hardnet-liberty``, ``sosnet-liberty``, ``tfeat-liberty``, ... (published, downloaded on first use);
* a hand-crafted baseline: ``sift``, ``rootsift``, ``pixels`` (patch models), ``opencv-sift``,
  ``opencv-rootsift`` (OpenCV's SIFT descriptor on the whole image, :mod:`descnet.models.opencv`);
* an architecture with a weight file: ``tfeat:path/to/tfeat-liberty.params``;
* an *untrained* network, always explicitly: ``hardnet:random`` (initialised from seed 0, the same network
  in every process, so an untrained baseline is reproducible). A bare architecture name (``hardnet``) is
  refused: it would silently describe with random weights;
* a descnet checkpoint file (it records the model name and options);
* a descnet run directory (``best.pt`` is used, else ``last.pt``: :func:`descnet.runinfo.run_checkpoint`).

Every model returned carries ``descnet_spec`` (the SPEC), ``descnet_trained`` (False only for ``:random``),
``descnet_resize`` (its input convention, see :data:`descnet.features.inference.RESIZE_METHODS`) and
``descnet_matching`` (its recommended matcher or ``None``: :func:`descnet.features.options.recommended_matcher`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from descnet.runinfo import RUN_CHECKPOINTS, run_checkpoint

from .pretrained import pretrained_entry
from .registry import create_model, list_models, model_entry
from .weights import (WeightsError, checkpoint_matching, checkpoint_model_info, extract_state_dict, load_state,
                      load_weights, pretrained_path, read_weights_file)

__all__ = ["resolve_model", "load_pretrained", "UNTRAINED_SEED", "RANDOM"]

#: the initialisation seed of an untrained network (``NAME:random``)
UNTRAINED_SEED = 0
#: the weight part of a SPEC that asks for an untrained network
RANDOM = "random"


def _tag(model: nn.Module, spec: str, trained: bool, resize: str = "antialias",
         matching: dict[str, Any] | None = None) -> nn.Module:
    model.descnet_spec = spec
    model.descnet_trained = trained
    model.descnet_resize = resize
    model.descnet_matching = matching
    return model.eval()


def load_pretrained(name: str, cache_dir: str | os.PathLike | None = None, progress: bool = True) -> nn.Module:
    """The network of a pretrained entry (:mod:`descnet.models.pretrained`) with its weights, in eval mode."""
    entry = pretrained_entry(name)
    if entry is None:
        raise KeyError(f"no pretrained weights named {name!r}")
    path = pretrained_path(entry, cache_dir, progress)
    model = create_model(entry.architecture, **entry.options)
    state = extract_state_dict(read_weights_file(path), str(path))
    state = {k: v for k, v in state.items() if not k.startswith(entry.drop_keys)} if entry.drop_keys else state
    return _tag(load_state(model, state, path), name, True, entry.resize, entry.matching)


def _checkpoint_in_run_dir(path: Path) -> Path:
    checkpoint = run_checkpoint(path)
    if checkpoint is not None:
        return checkpoint
    raise WeightsError(f"{path}: a run directory needs one of {', '.join(RUN_CHECKPOINTS)}")


def resolve_model(spec: str | os.PathLike | nn.Module) -> nn.Module:
    """Turn a model SPEC into a model in eval mode on the CPU (see the module docstring); a module is returned
    as it is, so functions that take a SPEC or a module resolve with this one call."""
    if isinstance(spec, nn.Module):
        return spec
    text = str(spec)
    names = list_models()
    if pretrained_entry(text) is not None:
        return load_pretrained(text)
    if text in names:
        if not model_entry(text).trainable:  # hand-crafted: nothing to train
            return _tag(create_model(text), text, True)
        raise ValueError(f"model SPEC {text!r} is an architecture without weights. Use a trained model "
                         f"(descnet-hardnet-csa, the default; `descnet models` lists them), {text}:WEIGHTS_FILE, "
                         f"a run directory, or {text}:{RANDOM} for the untrained network (seed {UNTRAINED_SEED})")
    name, sep, weights = text.partition(":")
    if sep and name in names:
        if not weights:
            raise ValueError(f"model SPEC {text!r}: give a weight file after the colon (or {name}:{RANDOM})")
        if weights == RANDOM and not Path(weights).exists():
            with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
                torch.manual_seed(UNTRAINED_SEED)
                return _tag(create_model(name), text, False)
        return _tag(load_weights(create_model(name), weights), text, True)
    path = Path(text)
    if path.is_dir():
        path = _checkpoint_in_run_dir(path)
    if path.is_file():
        obj = read_weights_file(path)
        info = checkpoint_model_info(obj)
        if info is None:
            raise WeightsError(f"{path}: not a descnet checkpoint (it records no model name); "
                               f"use NAME:{path} with one of: {', '.join(names)}")
        try:
            model = create_model(info[0], **info[1])
        except (KeyError, TypeError, ValueError) as err:
            raise WeightsError(f"{path}: the checkpoint's model {info[0]!r} with options {info[1]} cannot be built "
                               f"({err.args[0] if err.args else err})") from None
        return _tag(load_state(model, extract_state_dict(obj, str(path)), path), text, True,
                    matching=checkpoint_matching(obj))
    raise ValueError(f"model SPEC {text!r} is neither a trained model name, a baseline, NAME:WEIGHTS, "
                     f"NAME:{RANDOM}, a checkpoint file nor a run directory (`descnet models` lists the names)")

