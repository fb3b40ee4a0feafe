"""End-to-end training throughput: pairs/s of ``descnet.training.Trainer`` and the share of step time spent
waiting for data, for hardnet and hardnet-csa (target: data wait under 10% of the step time).

Each model trains for ``--steps`` optimiser steps on Liberty-sized in-memory data (uint8 32x32 random
patches, 2..7 per point; speed does not depend on the content): the sampler, the background batch thread
with the "+" augmentation, two forward passes, the loss, SGD. The reference in the same run is the bare
compute (forward, loss, backward, step on one pre-assembled batch, no data pipeline); the ratio
end-to-end / compute shows what the data path costs. The first step is a warm-up and is not timed.

How close training runs to the hardware: the floating-point work of one pair (two patches, forward and
backward, counted by ``torch.utils.flop_counter``) times pairs/s, as a share of the CPU's measured matrix-
product rate in the same precision (a 1024-wide GEMM on the same threads, best of several runs).

    .venv/bin/python benchmarks/train_throughput.py [--steps 6] [--batch-size 1024] [--amp auto|none|bf16]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from _common import format_table, save_results

from descnet.losses import hardest_in_batch_triplet
from descnet.precision import cpu_kind, resolve_amp
from descnet.training import PatchPoints, Trainer, load_config


def liberty_like(num_patches: int, seed: int = 0) -> PatchPoints:
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 8, num_patches // 2)
    counts = counts[:np.searchsorted(np.cumsum(counts), num_patches)]
    labels = np.repeat(np.arange(counts.size), counts).astype(np.int64)
    return PatchPoints(rng.integers(0, 256, (labels.size, 32, 32), dtype=np.uint8), labels)


def end_to_end(name: str, data: PatchPoints, args) -> dict:
    overrides = [f"model.name={name}", f"batch_size={args.batch_size}", f"pairs_per_epoch={args.batch_size * args.steps}",
                 "epochs=1", "augmentation.flip=true", "augmentation.rot90=true", "runtime.progress=false",
                 f"runtime.amp={args.amp}", f"runtime.device={args.device}", "runtime.checkpoint_every=0",
                 f"runtime.log_every={args.steps}", f"runtime.channels_last={str(not args.nchw).lower()}"]
    stamps: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(load_config(None, overrides), f"{run}/run", data=data,
                          callbacks=[lambda t, e: stamps.append((time.perf_counter(), t.data_wait_now()))
                                     if e == "step" else None])
        trainer.fit()
    (t0, w0), (t1, w1) = stamps[0], stamps[-1]
    steps = len(stamps) - 1
    return {"pairs_per_s": steps * args.batch_size / (t1 - t0), "step_s": (t1 - t0) / steps,
            "data_wait_share": (w1 - w0) / (t1 - t0), "steps_timed": steps}


def _device(args) -> torch.device:
    return torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                        ("cpu" if args.device == "auto" else args.device))


def gemm_rate(dtype: torch.dtype | None, device: torch.device, n: int = 1024, repeats: int = 5) -> float:
    """The measured matrix-product rate, FLOP/s: best of ``repeats`` (n x n) @ (n x n) in ``dtype``."""
    a = torch.rand(n, n, device=device, dtype=dtype or torch.float32)
    b = torch.rand(n, n, device=device, dtype=dtype or torch.float32)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for _ in range(4):
            c = a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        float(c[0, 0])
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * n ** 3 / best


def flops_per_pair(name: str, device: torch.device) -> float:
    """Floating-point operations of one training pair (two patches, forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    from descnet.models import create_model

    model = create_model(name).to(device).train()
    x = torch.rand(16, 1, 32, 32, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return 2 * counter.get_total_flops() / 16


def compute_only(name: str, args) -> dict:
    from descnet.models import create_model

    device = _device(args)
    torch.manual_seed(0)
    model = create_model(name).to(device).train()
    if not args.nchw:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.9, weight_decay=1e-4)
    a = torch.rand(args.batch_size, 1, 32, 32, device=device)
    p = (a + 0.05 * torch.randn_like(a)).clamp(0, 1)
    dtype = resolve_amp(args.amp, device).dtype
    amp = torch.autocast(device.type, dtype=dtype) if dtype is not None else None
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        if amp:
            with amp:
                da, dp = model(a), model(p)
        else:
            da, dp = model(a), model(p)
        loss = hardest_in_batch_triplet(da.float(), dp.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        times.append(time.perf_counter() - start)
    step = float(np.mean(times[1:]))
    return {"pairs_per_s": args.batch_size / step, "step_s": step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--patches", type=int, default=450_092)
    parser.add_argument("--amp", default="auto", choices=("auto", "none", "bf16", "fp16"),
                        help="autocast precision (default: auto, i.e. bf16 only where the CPU computes it natively)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--nchw", action="store_true", help="NCHW activations (default: channels-last, as training)")
    parser.add_argument("--models", default="hardnet,hardnet-csa")
    args = parser.parse_args()
    if args.steps < 3:
        parser.error("--steps must be at least 3 (the first is a warm-up)")

    data = liberty_like(args.patches)
    device = _device(args)
    chosen = resolve_amp(args.amp, device)
    peak = gemm_rate(chosen.dtype, device)
    rows, results = [], {}
    for name in args.models.split(","):
        e2e = end_to_end(name, data, args)
        bare = compute_only(name, args)
        work = flops_per_pair(name, device)
        share = e2e["pairs_per_s"] * work / peak
        results[name] = {"end_to_end": e2e, "compute_only": bare, "ratio": e2e["pairs_per_s"] / bare["pairs_per_s"],
                         "flops_per_pair": work, "share_of_gemm_rate": share}
        rows.append([name, e2e["pairs_per_s"], e2e["step_s"], f"{100 * e2e['data_wait_share']:.2f}%",
                     bare["pairs_per_s"], e2e["pairs_per_s"] / bare["pairs_per_s"], f"{work / 1e9:.3f}",
                     f"{100 * share:.0f}%"])
    print(f"batch {args.batch_size}, {args.steps} steps (first untimed), precision {chosen.amp} ({chosen.reason}), "
          f"device {device}, torch threads {torch.get_num_threads()}, {len(data.labels):,} patches; measured "
          f"GEMM rate {peak / 1e9:.0f} GFLOP/s")
    print(format_table(["model", "pairs/s", "step s", "data wait", "compute-only pairs/s", "ratio", "GFLOP/pair",
                        "of GEMM rate"], rows))
    save_results("train_throughput", vars(args), results | {
        "precision": chosen.as_dict(), "gemm_flops_per_s": peak, "cpu_kind": cpu_kind(),
        "target": "data wait under 10% of the step time",
        "note": "2-core CPU machine shared with other engineers' jobs: absolute rates are noisy; the ratio and "
                "the data-wait share are from the same run"}, device=args.device)


if __name__ == "__main__":
    main()
