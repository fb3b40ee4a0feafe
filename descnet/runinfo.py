"""What ran where: machine, library versions and code version, recorded in every result file."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["environment_info", "code_version"]

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
