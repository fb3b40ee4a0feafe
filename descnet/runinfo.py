"""What ran where: machine, library versions and code version, recorded in every result file; and the
names of a training run directory (``descnet train --out RUN``), owned here so the trainer, the checkpoint
reader, the model SPEC resolver and the tools spell them once (``docs/file-layouts.md``).

A run directory holds::

    RUN/config.yaml        RUN_CONFIG       the config as run (descnet.training.config.dump_config)
    RUN/environment.json   RUN_ENVIRONMENT  {"sessions": [...]}: one entry per start or resume (argv, precision,
                                            environment_info())
    RUN/metrics.jsonl      RUN_METRICS      one JSON row per line: kind "step" (loss, lr, pairs/s) and kind
                                            "epoch" (the validation figures)
    RUN/last.pt            LAST_CHECKPOINT  the latest checkpoint (descnet.training.checkpoint)
    RUN/best.pt            BEST_CHECKPOINT  the checkpoint with the best validation figure so far
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["environment_info", "cpu_model", "code_version", "RUN_CONFIG", "RUN_ENVIRONMENT", "RUN_METRICS", "LAST_CHECKPOINT",
           "BEST_CHECKPOINT", "RUN_CHECKPOINTS", "run_checkpoint", "read_metrics"]

RUN_CONFIG = "config.yaml"
RUN_ENVIRONMENT = "environment.json"
RUN_METRICS = "metrics.jsonl"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
#: the checkpoints a model SPEC naming a run directory may use, in order of preference
RUN_CHECKPOINTS = (BEST_CHECKPOINT, LAST_CHECKPOINT)

_PACKAGES = ("descnet", "torch", "kornia", "numpy", "opencv-python-headless", "opencv-python", "h5py", "onnxruntime",
             "pycolmap")


def code_version(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Git commit of the descnet checkout (and whether it has uncommitted changes), when there is one."""
    here = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                    capture_output=True, text=True, timeout=5, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def run_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint a run directory stands for as a model: ``best.pt``, else ``last.pt``; ``None`` when it
    holds neither."""
    run_dir = Path(run_dir)
    return next((run_dir / name for name in RUN_CHECKPOINTS if (run_dir / name).is_file()), None)


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run directory's ``metrics.jsonl`` (``[]`` when it has none yet)."""
    path = Path(run_dir) / RUN_METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor name elsewhere)."""
    return _cpu_name()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_info(device: str | None = None) -> dict[str, Any]:
    """Machine, CPU, thread count, accelerator and package versions, as a JSON-ready dict."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.node(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
        "code": code_version(),
    }
    if "torch" in sys.modules:
        import torch

        from descnet.precision import cpu_kind

        info["torch_threads"] = torch.get_num_threads()
        info["cpu_kind"] = cpu_kind()  # AVX2 / AVX512 / AVX512_BF16 / AMX: every speed figure depends on it
        if torch.cuda.is_available():
            info["cuda"] = {"device": torch.cuda.get_device_name(), "version": torch.version.cuda}
    if device:
        info["device"] = device
    return info
