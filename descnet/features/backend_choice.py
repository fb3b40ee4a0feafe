"""Which inference backend is fastest *here*: measured once, remembered per machine, model and versions.

``describe_patches(..., backend="auto")`` (:mod:`descnet.features.inference`) asks :func:`choose_backend`: the
answer is read from the cache file when an entry for exactly this situation is there, else the candidates are
timed (a short measurement, a few batches each, :func:`descnet.features.inference.measure_backends`), the fastest
is chosen and stored. A fixed rule (by CPU kind) is the answer when nothing can be measured.

The situation is the *key* (:func:`backend_key`): the CPU model and kind, torch's thread count, the model's
signature (its architecture and patch size: weights do not change the speed) and the versions of torch and ONNX
Runtime. The cache file (``<cache>/backend-choice.json``, :func:`descnet.io.user_cache_dir`) holds one entry per key
digest; an entry is used only when its stored key equals the key (not only its digest), its backend is one of the
candidates and is the fastest of its stored timings (finite, positive): a damaged, foreign or hand-edited file is
ignored and replaced (written atomically). ``DESCNET_AUTO_BACKEND=rule`` turns the measurement off (the rule
decides: repeatable runs, tests).

File layout::

    {"format": 1, "entries": {"<sha256 of the key>": {"key": {...}, "backend": "onnxruntime",
                                                      "seconds": {"fused": 0.52, "onnxruntime": 0.41},
                                                      "measured": "2026-12-07T04:30:00+00:00"}}}
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..io import read_json, user_cache_dir, write_json

__all__ = ["backend_key", "choose_backend", "read_choice", "cache_file", "CACHE_NAME", "CACHE_FORMAT",
           "AUTO_BACKEND_ENV"]

CACHE_NAME = "backend-choice.json"
CACHE_FORMAT = 1
#: environment variable: ``rule`` makes ``auto`` follow the rule without measuring
AUTO_BACKEND_ENV = "DESCNET_AUTO_BACKEND"


def cache_file() -> Path:
    """The cache file: ``<descnet cache folder>/backend-choice.json``."""
    return user_cache_dir() / CACHE_NAME


def backend_key(cpu: str, cpu_kind: str, threads: int, model_signature: str, versions: Mapping[str, str],
                precision: str = "float32") -> dict[str, Any]:
    """The situation a measured choice holds for (module docstring), as a JSON-ready dict."""
    return {"format": CACHE_FORMAT, "cpu": str(cpu), "cpu_kind": str(cpu_kind), "threads": int(threads),
            "model": str(model_signature), "precision": str(precision),
            "versions": {str(k): str(v) for k, v in sorted(versions.items())}}


def _digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _valid_seconds(seconds: Any, candidates: Sequence[str]) -> bool:
    return (isinstance(seconds, dict) and bool(seconds) and all(name in candidates for name in seconds)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                    for v in seconds.values()))


def read_choice(key: Mapping[str, Any], candidates: Sequence[str], path: Path | None = None) -> str | None:
    """The stored backend for ``key``, or ``None`` when the file or the entry is absent or not trustworthy."""
    try:
        data = read_json(path or cache_file())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("entries"), dict):
        return None
    entry = data["entries"].get(_digest(key))
    if not isinstance(entry, dict) or entry.get("key") != dict(key):
        return None
    backend, seconds = entry.get("backend"), entry.get("seconds")
    if backend not in candidates or not _valid_seconds(seconds, candidates) or backend not in seconds:
        return None
    return backend if seconds[backend] == min(seconds.values()) else None


def _write_choice(key: Mapping[str, Any], backend: str, seconds: Mapping[str, float], path: Path) -> None:
    try:
        data = read_json(path)
    except (OSError, ValueError):
        data = None
    entries = data["entries"] if (isinstance(data, dict) and data.get("format") == CACHE_FORMAT
                                  and isinstance(data.get("entries"), dict)) else {}
    entries[_digest(key)] = {"key": dict(key), "backend": backend, "seconds": dict(seconds),
                             "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        write_json(path, {"format": CACHE_FORMAT, "entries": entries})
    except OSError:  # a read-only cache folder: the choice holds for this process only
        pass


def choose_backend(key: Mapping[str, Any], candidates: Sequence[str], measure: Callable[[], Mapping[str, float]],
                   rule: str, path: Path | None = None) -> str:
    """The fastest of ``candidates`` for ``key``: from the cache file, else ``measure()`` (-> seconds per backend
    it could time) and stored; ``rule`` when the measurement gives nothing or :data:`AUTO_BACKEND_ENV` is ``rule``."""
    if os.environ.get(AUTO_BACKEND_ENV, "").lower() == "rule" or len(candidates) < 2:
        return rule
    path = path or cache_file()
    cached = read_choice(key, candidates, path)
    if cached is not None:
        return cached
    try:
        seconds = {name: float(value) for name, value in dict(measure()).items()}
    except Exception:  # noqa: BLE001 -- a failed measurement means: the rule decides
        return rule
    if not _valid_seconds(seconds, candidates):
        return rule
    best = min(seconds, key=seconds.get)
    _write_choice(key, best, seconds, path)
    return best
