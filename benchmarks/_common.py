"""Helpers shared by the benchmark scripts: results JSON with machine and versions, and plain tables.

Every ``benchmarks/NAME.py`` prints a table and writes ``results/benchmarks/NAME.json`` with
``{"benchmark", "created", "environment", "settings", "results"}``.
"""
from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from descnet.io import write_json  # noqa: E402
from descnet.runinfo import environment_info  # noqa: E402

RESULTS_DIR = REPO / "results" / "benchmarks"


def save_results(name: str, settings: dict[str, Any], results: Any, out_dir: Path | None = None,
                 device: str | None = None) -> Path:
    """Write ``results/benchmarks/NAME.json`` atomically and return its path."""
    payload = {
        "benchmark": name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment_info(device),
        "settings": settings,
        "results": results,
    }
    path = write_json((out_dir or RESULTS_DIR) / f"{name}.json", payload)
    print(f"wrote {path}")
    return path


def machine_line() -> str:
    """``machine: AMD EPYC, CPU kind AVX512_BF16, 2 threads, torch 2.13.0``: every table starts with it."""
    info = environment_info()
    return (f"machine: {info['cpu']}, CPU kind {info.get('cpu_kind', '?')}, {info.get('torch_threads', '?')} "
            f"threads, torch {info['versions'].get('torch', '?')}"
            + (f", GPU {info['cuda']['device']}" if info.get("cuda") else ""))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], floatfmt: str = ".3g",
                 machine: bool = True) -> str:
    """A plain aligned text table (first column left-aligned, the rest right-aligned), headed by
    :func:`machine_line` (speed figures mean nothing without the CPU they were measured on)."""
    def cell(v: Any) -> str:
        return format(v, floatfmt) if isinstance(v, float) else str(v)
    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in body)) if body else len(str(h)) for i, h in enumerate(headers)]
    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))
    table = [line([str(h) for h in headers]), line(["-" * w for w in widths])] + [line(r) for r in body]
    return "\n".join(([machine_line()] if machine else []) + table)
