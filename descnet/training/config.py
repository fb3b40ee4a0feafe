"""Training configs: YAML files over the HardNet defaults, ``--set key=value`` overrides, checks.

A config is a nested dict; :data:`DEFAULTS` names every knob and its default (the HardNet recipe of
``docs/protocols.md``: SGD lr 10 decayed linearly to 0, momentum 0.9, dampening 0.9, weight decay 1e-4,
batch 1024, margin 1, anchor swap, 5M pairs per epoch, 10 epochs). A YAML file overrides any subset; it
may start from another config with ``base: other.yaml`` (a path relative to the file), which is merged
first. A config is a file path or the name of a config shipped in the package (``descnet/configs``, which
the repository's ``configs/`` links to): ``load_config("hardnet+")``. Unknown keys are errors that name the file and the key, so a typo never trains silently with a
default. ``runtime`` holds what may change when a run is resumed (device, threads, logging); everything
else defines the run.
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

__all__ = ["DEFAULTS", "load_config", "config_path", "shipped_configs", "CONFIG_DIR", "apply_overrides",
           "check_config", "merge", "dump_config", "RESUMABLE_PREFIXES"]

#: the configs shipped with the package (package data; the repository's ``configs/`` is a link to it)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

DEFAULTS: dict[str, Any] = {
    "model": {
        "name": "hardnet",        # a registry name (descnet models)
        "options": {},            # create_model(name, **options)
        "init": None,             # start from weights: a checkpoint, run dir or NAME:WEIGHTS SPEC
    },
    "data": {
        "source": "phototour",    # phototour | hpatches | patchset | sequences | synthetic
        "root": None,             # dataset folder(s) (phototour: holds liberty/; others: see training/data.py)
        "name": "liberty",        # phototour: the training subset
        "split": "a",             # hpatches: train on the split's train sequences
        "sequences": None,        # use only these sequence names (default: all; hpatches: the split's train list)
        "holdout": 0,             # sequences held out for validation pairs (a count drawn with the seed, or names)
        "types": None,            # HPatches layout: image types whose patches form a 3D point (default: all)
        "count": 20,              # synthetic: sequences generated
        "synth": {},              # synthetic: descnet.data.synth.SynthOptions fields
        "patchify": {},           # sequences/synthetic: descnet.data.patchify.PatchifyOptions fields
        "patchsets": [],          # all but phototour: more training folders, hpatches-release layout or Brown
                                  # subsets (`data synth --kind scene3d`, `data patches --reconstruction`)
    },
    "pairs_per_epoch": 5_000_000,
    "epochs": 10,
    "batch_size": 1024,           # the global batch (all processes together)
    "optimizer": {
        "name": "sgd",            # sgd | adam | adamw
        "lr": 10.0,
        "momentum": 0.9,
        "dampening": 0.9,
        "weight_decay": 1e-4,
        "betas": [0.9, 0.999],    # adam / adamw
    },
    "schedule": {
        "name": "linear",         # linear (to 0 at the last step) | cosine | constant
        "warmup_steps": 0,
    },
    "augmentation": {
        "flip": False,            # HardNet "+": the same random flip and 90-degree rotation on both patches
        "rot90": False,
    },
    "loss": {
        "margin": 1.0,
        "anchor_swap": True,
        "global_mining": True,    # with several processes, mine negatives over the whole global batch
    },
    "validation": {
        "pairs": [],              # Brown pair sets, e.g. [{name: notredame}, {name: yosemite}] (root: data.root)
        "num_pairs": 20000,       # pairs drawn from held-out sequences
        "max_pairs": None,        # use at most this many pairs of each set (None: all)
        "every": 1,               # validate every N epochs (and after the last)
        "matching": False,        # also the HPatches matching mAP of the held-out sequences (16 types needed)
        "metric": "fpr95",        # decides best.pt: fpr95 (mean over the pair sets, lower is better) or
                                  # matching_map (higher is better)
    },
    "seed": 0,
    "runtime": {
        "device": "auto",         # auto | cpu | cuda | cuda:N
        "amp": "auto",            # auto (bf16 where the CPU/GPU computes it natively, else float32 on the
                                  # CPU, fp16 on old GPUs) | none | bf16 | fp16 (CUDA only); descnet.precision
        "channels_last": True,    # NHWC activations: oneDNN's and cuDNN's fast layout (CPU: 1.2-1.5x for
                                  # hardnet, fp32 and bf16; hardnet-csa ~1.04x)
        "compile": False,         # torch.compile the model
        "threads": 0,             # torch CPU threads (0: torch's default)
        "prefetch": 4,            # batches assembled ahead by the data thread
        "log_every": 50,          # a metrics row every N steps
        "checkpoint_every": 500,  # last.pt every N steps (and at every epoch end); 0: epoch ends only
        "progress": True,
        "backend": "auto",        # DDP backend: auto (nccl on CUDA, gloo on CPU) | nccl | gloo
        "sync_bn": False,         # SyncBatchNorm under DDP (CUDA only)
        "validation_batch_size": 1024,
    },
}

#: config keys that may differ when a run is resumed (they do not change what is computed)
RESUMABLE_PREFIXES = ("runtime.",)

_CHOICES = {
    "data.source": ("phototour", "hpatches", "patchset", "sequences", "synthetic"),
    "optimizer.name": ("sgd", "adam", "adamw"),
    "schedule.name": ("linear", "cosine", "constant"),
    "runtime.amp": ("auto", "none", "bf16", "fp16"),
    "runtime.backend": ("auto", "nccl", "gloo"),
    "validation.metric": ("fpr95", "matching_map"),
}
# sections whose content is passed through to a library call and checked there
_FREE_SECTIONS = ("model.options", "data.synth", "data.patchify")


def merge(base: Mapping[str, Any], override: Mapping[str, Any], source: str = "config",
          _prefix: str = "") -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``; keys unknown to ``base`` are errors."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        path = f"{_prefix}{key}"
        if key not in out:
            known = ", ".join(sorted(f"{_prefix}{k}" for k in out))
            raise KeyError(f"{source}: unknown config key {path!r} (known here: {known})")
        if isinstance(out[key], dict):
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ValueError(f"{source}: {path} must be a mapping of keys, got {value!r}")
            if path in _FREE_SECTIONS:  # passed to a library call, which checks the names
                out[key] = {**out[key], **copy.deepcopy(dict(value))}
            else:
                out[key] = merge(out[key], value, source, f"{path}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, with YAML 1.2's number rule: ``1e-3`` and ``1.5e3`` are floats (YAML 1.1, and
    PyYAML, read an exponent without a dot or a sign as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such config file") from None
    try:
        content = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ValueError(f"{path}: a config is a mapping of keys, got {type(content).__name__}")
    return content


def _load_layers(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in seen:
        raise ValueError(f"{path}: 'base' configs form a cycle: {' -> '.join(str(p) for p in seen + (resolved,))}")
    content = _read_yaml(path)
    base = content.pop("base", None)
    if base is None:
        return merge(DEFAULTS, content, str(path))
    if not isinstance(base, str):
        raise ValueError(f"{path}: 'base' must be a config file name, got {base!r}")
    parent = _load_layers((path.parent / base), seen + (resolved,))
    return merge(parent, content, str(path))


def parse_override(item: str) -> tuple[str, Any]:
    """``"optimizer.lr=0.1"`` -> ``("optimizer.lr", 0.1)``; the value is parsed as YAML."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. optimizer.lr=0.1")
    try:
        value = yaml.load(text, Loader=_Loader) if text.strip() else None
    except yaml.YAMLError as err:
        raise ValueError(f"--set {item!r}: cannot parse the value ({err})") from None
    return key.strip(), value


def apply_overrides(config: Mapping[str, Any], items: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set KEY=VALUE`` items (dotted keys) to a copy of ``config``."""
    out = copy.deepcopy(dict(config))
    for item in items:
        key, value = parse_override(item)
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        out = merge(out, nested, f"--set {item}")
    return out


def shipped_configs() -> list[str]:
    """Names of the configs shipped with the package (``hardnet+``, ``hardnet-csa+``, ...)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def config_path(config: str | os.PathLike) -> Path:
    """A config file: ``config`` itself when it is a file, else the shipped config of that name (``hardnet+``
    or ``hardnet+.yaml``, see :data:`CONFIG_DIR`)."""
    path = Path(config)
    if path.is_file() or path.name != str(config):  # a file, or a path with folders: taken as given
        return path
    shipped = CONFIG_DIR / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    if shipped.is_file():
        return shipped
    raise FileNotFoundError(f"{config}: no such config file, nor a shipped config (shipped: "
                            f"{', '.join(shipped_configs())})")


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The full config: :data:`DEFAULTS` <- ``base`` chain <- the file <- ``overrides``; checked.

    ``path``: a YAML file or a shipped config's name (:func:`config_path`); ``None``: :data:`DEFAULTS`."""
    if path is None:
        return apply_and_check(copy.deepcopy(DEFAULTS), overrides, "config")
    path = config_path(path)
    return apply_and_check(_load_layers(path, ()), overrides, str(path))


def apply_and_check(config: Mapping[str, Any], overrides: Iterable[str], source: str) -> dict[str, Any]:
    """``config`` (read from ``source``) with the ``--set`` items applied, checked; an error names the
    ``--set`` item that gave a bad value, else ``source``."""
    overrides = list(overrides)
    config = apply_overrides(config, overrides)
    try:
        check_config(config, source)
    except (ValueError, TypeError) as err:
        raise _blame_override(err, source, overrides) from None
    return config


def _blame_override(err: Exception, source: str, overrides: list[str]) -> Exception:
    """The error of :func:`check_config` naming the ``--set`` item that gave the bad value instead of the
    config file (the last item setting the key, or a section holding it, wins)."""
    message = str(err)
    if not message.startswith(f"{source}: "):
        return err
    rest = message[len(source) + 2:]
    key = rest.split(" ", 1)[0]
    for item in reversed(overrides):
        name = item.partition("=")[0].strip()
        if name == key or key.startswith(f"{name}.") or re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", rest):
            return type(err)(f"--set {item}: {rest}")
    return err


def _get(config: Mapping[str, Any], key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = value[part]
    return value


def check_config(config: Mapping[str, Any], source: str = "config") -> None:
    """Raise ``ValueError``/``TypeError`` naming the key when a value is of the wrong kind or range."""
    merge(DEFAULTS, config, source)  # unknown keys
    for key, choices in _CHOICES.items():
        if _get(config, key) not in choices:
            raise ValueError(f"{source}: {key} must be one of {', '.join(choices)}, got {_get(config, key)!r}")

    def positive_int(key: str, minimum: int = 1) -> None:
        value = _get(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{source}: {key} must be an integer >= {minimum}, got {value!r}")

    def number(key: str, minimum: float = 0.0) -> None:
        value = _get(config, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise ValueError(f"{source}: {key} must be a number >= {minimum}, got {value!r}")

    for key in ("epochs", "runtime.log_every", "validation.every", "runtime.validation_batch_size"):
        positive_int(key)
    positive_int("batch_size", 2)
    positive_int("pairs_per_epoch", 2)
    for key in ("runtime.checkpoint_every", "runtime.threads", "runtime.prefetch", "schedule.warmup_steps",
                "seed", "data.count"):
        positive_int(key, 0)
    for key in ("optimizer.lr", "optimizer.momentum", "optimizer.dampening", "optimizer.weight_decay",
                "loss.margin"):
        number(key)
    if config["pairs_per_epoch"] < config["batch_size"]:
        raise ValueError(f"{source}: pairs_per_epoch ({config['pairs_per_epoch']}) must be at least "
                         f"batch_size ({config['batch_size']})")
    if not isinstance(config["model"]["name"], str):
        raise ValueError(f"{source}: model.name must be a registry name, got {config['model']['name']!r}")
    for key in _FREE_SECTIONS:
        if not isinstance(_get(config, key), Mapping):
            raise ValueError(f"{source}: {key} must be a mapping, got {_get(config, key)!r}")
    pairs = config["validation"]["pairs"]
    if not isinstance(pairs, list) or not all(isinstance(p, Mapping) for p in pairs):
        raise ValueError(f"{source}: validation.pairs must be a list of mappings "
                         f"(e.g. [{{name: notredame}}, {{name: yosemite}}]), got {pairs!r}")
    if config["validation"]["metric"] == "matching_map" and not config["validation"]["matching"]:
        raise ValueError(f"{source}: validation.metric=matching_map needs validation.matching=true")
    holdout = config["data"]["holdout"]
    if not (isinstance(holdout, int) and not isinstance(holdout, bool) and holdout >= 0) and not (
            isinstance(holdout, list) and all(isinstance(h, str) for h in holdout)):
        raise ValueError(f"{source}: data.holdout must be a number of sequences or a list of sequence names, "
                         f"got {holdout!r}")
    root = config["data"]["root"]
    if root is not None and not isinstance(root, str) and not (
            isinstance(root, list) and root and all(isinstance(r, str) for r in root)):
        raise ValueError(f"{source}: data.root must be a folder or a list of folders, got {root!r}")
    patchsets = config["data"]["patchsets"]
    if not (isinstance(patchsets, list) and all(isinstance(r, str) for r in patchsets)):
        raise ValueError(f"{source}: data.patchsets must be a list of folders, got {patchsets!r}")
    if patchsets and config["data"]["source"] == "phototour":
        raise ValueError(f"{source}: data.patchsets adds patch folders to sequence sources; data.source phototour "
                         f"takes none")
    for key in ("data.types", "data.sequences"):
        value = _get(config, key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"{source}: {key} must be a list of names, got {value!r}")
    for key in ("augmentation.flip", "augmentation.rot90", "loss.anchor_swap", "loss.global_mining",
                "runtime.channels_last", "runtime.progress", "runtime.sync_bn", "runtime.compile",
                "validation.matching"):
        if not isinstance(_get(config, key), bool):
            raise ValueError(f"{source}: {key} must be true or false, got {_get(config, key)!r}")


def dump_config(config: Mapping[str, Any]) -> str:
    """YAML text of a config (the ``config.yaml`` of a run directory)."""
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=None)


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], _prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b, path = old.get(key), new.get(key), f"{_prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping) and path not in _FREE_SECTIONS:
            out += changed_keys(a, b, f"{path}.")
        elif a != b:
            out.append(path)
    return out
