"""The cost of attention on a feature map: CSA vs the full non-local block vs none.

For each feature map (H x W x C: 32x32x32, 16x16x64, 8x8x128, 64x64x32 by default) and block -- ``none``
(the identity: no attention), ``conv3x3`` (one C -> C 3x3 conv, the body layer next to it, for scale),
``full`` (:class:`~descnet.models.NonLocalAttention`) and ``csa M/G`` (:class:`~descnet.models.
CompressedSelfAttention` with M bases per group and G groups) -- it measures, on one batch:

* forward time (``torch.no_grad``) and forward+backward time (loss = sum of squares, input requiring
  grad as inside a network): best of ``--repeats`` after a warm-up;
* peak memory of forward+backward above what the input and weights hold: on CUDA
  ``torch.cuda.max_memory_allocated``; on the CPU the peak resident set (``VmHWM``) of a fresh worker
  process run with ``MALLOC_MMAP_THRESHOLD_=65536``, so that freed buffers go back to the OS and the peak
  counts real allocations (Linux only);
* multiply-adds of the forward pass (``torch.utils.flop_counter``: convolutions and matrix products).

``gamma`` is set to 0.5 so the attention output is used. The batch (``--batch``, 256) is lowered for a
feature map when the full block would need more than ``--max-memory-gb`` (64x64: 16); every block of
that map then uses the same batch, and times and memory are also given per image. Targets at 32x32x32,
batch 256, forward+backward: CSA 32/2 at most 0.15x the time and 0.25x the peak memory of the full block.
Writes ``results/benchmarks/attention.json`` and ``attention.png``.

    .venv/bin/python benchmarks/attention.py [--device cpu|cuda] [--batch 256] [--repeats 3]
        [--shapes 32x32x32,16x16x64,8x8x128,64x64x32] [--csa 8/1,16/2,32/2,64/4]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import REPO, RESULTS_DIR, format_table, save_results  # first: puts the repository on sys.path
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from descnet.io import atomic_path
from descnet.models import CompressedSelfAttention, NonLocalAttention

DEFAULT_SHAPES = "32x32x32,16x16x64,8x8x128,64x64x32"
DEFAULT_CSA = "8/1,16/2,32/2,64/4"
TARGET = {"shape": "32x32x32", "csa": "csa 32/2", "time": 0.15, "memory": 0.25}


def make_block(name: str, channels: int) -> nn.Module:
    """``none``, ``conv3x3``, ``full`` or ``csa M/G`` for ``channels`` channels, gamma 0.5."""
    if name == "none":
        return nn.Identity()
    if name == "conv3x3":
        return nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    if name == "full":
        block = NonLocalAttention(channels)
    elif name.startswith("csa "):
        m, g = (int(v) for v in name[4:].split("/"))
        block = CompressedSelfAttention(channels, num_bases=m, groups=g)
    else:
        raise ValueError(f"unknown block {name!r}")
    with torch.no_grad():
        block.gamma.fill_(0.5)
    return block


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        h, w, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--shapes: {text!r} is not HxWxC (e.g. 32x32x32)") from None
    return h, w, c


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_backward(block: nn.Module, x: torch.Tensor) -> None:
    y = block(x)
    if y.requires_grad:
        y.square().sum().backward()


def time_block(block: nn.Module, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Best forward (no grad) and forward+backward seconds for the batch ``x``."""
    device = x.device
    fwd, both = [], []
    with torch.no_grad():
        block(x)
    forward_backward(block, x)
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            block(x)
        sync(device)
        t1 = time.perf_counter()
        x.grad = None
        block.zero_grad(set_to_none=True)
        forward_backward(block, x)
        sync(device)
        both.append(time.perf_counter() - t1)
        fwd.append(t1 - t0)
    return min(fwd), min(both)


def forward_macs(block: nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        block(x)
    return counter.get_total_flops() // 2


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def peak_memory_here(block: nn.Module, x: torch.Tensor) -> int | None:
    """Peak bytes of one forward+backward above the current use (CUDA stats, or VmHWM on Linux)."""
    forward_backward(block, x)  # warm-up: lazy initialisation is not counted
    x.grad = None
    block.zero_grad(set_to_none=True)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        forward_backward(block, x)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        base = _status_kib("VmRSS")
        forward_backward(block, x)
        return (_status_kib("VmHWM") - base) * 1024
    except OSError:
        return None


def peak_memory(name: str, shape: tuple[int, int, int], batch: int, device: torch.device) -> int | None:
    """Run :func:`peak_memory_here` in a fresh process (CPU) or here (CUDA)."""
    h, w, c = shape
    if device.type == "cuda":
        torch.manual_seed(0)
        block = make_block(name, c).to(device)
        x = torch.randn(batch, c, h, w, device=device, requires_grad=True)
        result = peak_memory_here(block, x)
        del block, x
        torch.cuda.empty_cache()
        return result
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    job = json.dumps({"block": name, "shape": list(shape), "batch": batch, "threads": torch.get_num_threads()})
    proc = subprocess.run([sys.executable, __file__, "--worker", job], capture_output=True, text=True, env=env,
                          cwd=REPO)
    if proc.returncode != 0:
        print(f"  memory worker for {name} failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"]


def worker(job: str) -> int:
    spec = json.loads(job)
    torch.set_num_threads(spec["threads"])
    h, w, c = spec["shape"]
    torch.manual_seed(0)
    block = make_block(spec["block"], c)
    x = torch.randn(spec["batch"], c, h, w, requires_grad=True)
    print(json.dumps({"peak_bytes": peak_memory_here(block, x)}))
    return 0


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = list(dict.fromkeys(r["shape"] for r in results))
    blocks = [b for b in dict.fromkeys(r["block"] for r in results) if b != "none"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(blocks)
    for i, block in enumerate(blocks):
        for ax, key in zip(axes, ("fwd_bwd_ms_per_image", "peak_mib_per_image")):
            values = [next((r[key] for r in results if r["shape"] == s and r["block"] == block), None) or 0
                      for s in shapes]
            ax.bar([j + i * width for j in range(len(shapes))], values, width, label=block)
    for ax, title in zip(axes, ("forward+backward time per image (ms)", "peak memory per image (MiB)")):
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shapes))], [s.replace("x", "\u00d7") for s in shapes])
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("feature map H\u00d7W\u00d7C")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma-separated HxWxC feature maps")
    parser.add_argument("--csa", default=DEFAULT_CSA, help="comma-separated M/G (bases per group / groups)")
    parser.add_argument("--max-memory-gb", type=float, default=6.0,
                        help="lower the batch of a feature map so the full block stays under this")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = [parse_shape(s) for s in args.shapes.split(",") if s.strip()]
    blocks = ["none", "conv3x3", "full"] + [f"csa {s.strip()}" for s in args.csa.split(",") if s.strip()]
    results = []
    for h, w, c in shapes:
        n = h * w
        full_bytes_per_image = 5 * n * n * 4  # logits, softmax, their gradients and the bmm: ~5 N^2 floats
        batch = max(1, min(args.batch, int(args.max_memory_gb * 2**30 // full_bytes_per_image)))
        label = f"{h}x{w}x{c}"
        print(f"{label}: batch {batch}", flush=True)
        for name in blocks:
            try:
                block = make_block(name, c).to(device)
            except ValueError as err:  # e.g. channels not divisible by groups
                print(f"  {name}: skipped ({err})")
                continue
            torch.manual_seed(0)
            x = torch.randn(batch, c, h, w, device=device, requires_grad=True)
            fwd, both = time_block(block, x, args.repeats)
            macs = forward_macs(block, x)
            del x
            peak = peak_memory(name, (h, w, c), batch, device)
            row = {"shape": label, "block": name, "batch": batch, "forward_s": fwd, "fwd_bwd_s": both,
                   "fwd_bwd_ms_per_image": 1e3 * both / batch, "forward_macs_per_image": macs / batch,
                   "peak_bytes": peak, "peak_mib_per_image": None if peak is None else peak / 2**20 / batch}
            results.append(row)
            print(f"  {name:10s} fwd {fwd:.3f}s  fwd+bwd {both:.3f}s  peak "
                  f"{'n/a' if peak is None else f'{peak / 2**20:.0f} MiB'}  MACs/img {macs / batch / 1e6:.2f}M",
                  flush=True)

    rows = []
    for r in results:
        full = next((f for f in results if f["shape"] == r["shape"] and f["block"] == "full"), None)
        r["time_vs_full"] = r["fwd_bwd_s"] / full["fwd_bwd_s"] if full else None
        r["memory_vs_full"] = (r["peak_bytes"] / full["peak_bytes"] if full and r["peak_bytes"] is not None
                               and full["peak_bytes"] else None)
        rows.append([r["shape"], r["block"], r["batch"], f"{1e3 * r['forward_s']:.1f}", f"{1e3 * r['fwd_bwd_s']:.1f}",
                     "n/a" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.1f}",
                     f"{r['forward_macs_per_image'] / 1e6:.2f}",
                     "" if r["time_vs_full"] is None else f"{r['time_vs_full']:.3f}",
                     "" if r["memory_vs_full"] is None else f"{r['memory_vs_full']:.3f}"])
    print(f"\n{device}, {torch.get_num_threads()} threads, best of {args.repeats}")
    print(format_table(["map HxWxC", "block", "batch", "fwd ms", "fwd+bwd ms", "peak MiB", "MMACs/img",
                        "time/full", "mem/full"], rows))
    target = next((r for r in results if r["shape"] == TARGET["shape"] and r["block"] == TARGET["csa"]), None)
    checks = {}
    if target and target["time_vs_full"] is not None:
        checks = {"time_vs_full": target["time_vs_full"], "memory_vs_full": target["memory_vs_full"],
                  "batch": target["batch"]}
        ok = target["time_vs_full"] <= TARGET["time"] and (target["memory_vs_full"] or 1) <= TARGET["memory"]
        mem = "n/a" if target["memory_vs_full"] is None else f"{target['memory_vs_full']:.3f}"
        print(f"target at {TARGET['shape']}, batch {target['batch']}: {TARGET['csa']} forward+backward "
              f"{target['time_vs_full']:.3f}x the full block's time (<= {TARGET['time']}) and {mem}x its peak "
              f"memory (<= {TARGET['memory']}): {'PASS' if ok else 'MISS'}")
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    settings = {"device": str(device), "batch": args.batch, "repeats": args.repeats, "shapes": args.shapes,
                "csa": args.csa, "threads": torch.get_num_threads(), "max_memory_gb": args.max_memory_gb,
                "memory": "CUDA max_memory_allocated" if device.type == "cuda" else
                "VmHWM of a fresh worker with MALLOC_MMAP_THRESHOLD_=65536"}
    save_results(f"attention{suffix}", settings, {"rows": results, "target": checks}, device=str(device))
    plot(results, RESULTS_DIR / f"attention{suffix}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
