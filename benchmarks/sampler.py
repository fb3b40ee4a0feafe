"""Pair sampler and batch assembly speed against HardNet's reference (a Python loop per pair / per sample).

1. Time to generate one epoch of 5M (anchor, positive) pairs over 450,092 patches (Liberty's size,
   ~100k 3D points of 2..7 patches, synthetic labels): ``descnet.sampling.PairSampler`` against
   HardNet's ``generate_triplets`` loop (copied from the HardNet repository's ``TripletPhotoTour``;
   timed on a fraction of the pairs and extrapolated linearly, because the full loop takes a minute).
2. Augmented batches: pairs/s of ``BatchAssembler`` (index + flip/rot90 "+" augmentation + float) for
   batches of 1024 pairs of 32x32 patches, against a HardNet-style per-sample loop (index, random
   transpose/flip per pair, stack).

    .venv/bin/python benchmarks/sampler.py [--pairs 5000000] [--loop-fraction 0.05]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import format_table, save_results

from descnet.sampling import BatchAssembler, PairSampler


def liberty_like_labels(num_patches: int = 450_092, seed: int = 0) -> np.ndarray:
    """Dense point ids 0..P-1 with 2..7 patches per point, consecutive (Brown's ``info.txt`` layout)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 8, num_patches // 2)
    counts = counts[:np.searchsorted(np.cumsum(counts), num_patches) + 1]
    counts[-1] -= counts.sum() - num_patches
    if counts[-1] < 2:
        counts[-2] += counts[-1]
        counts = counts[:-1]
    return np.repeat(np.arange(counts.size), counts).astype(np.int64)


def hardnet_generate_triplets(labels: np.ndarray, num_triplets: int, batch_size: int) -> np.ndarray:
    """HardNet's ``TripletPhotoTour.generate_triplets`` (DagnyT/hardnet), unchanged but for tqdm."""
    def create_indices(_labels):
        inds = dict()
        for idx, ind in enumerate(_labels):
            if ind not in inds:
                inds[ind] = []
            inds[ind].append(idx)
        return inds

    triplets = []
    indices = create_indices(labels)
    unique_labels = np.unique(labels)
    n_classes = unique_labels.shape[0]
    already_idxs = set()
    for _ in range(num_triplets):
        if len(already_idxs) >= batch_size:
            already_idxs = set()
        c1 = np.random.randint(0, n_classes)
        while c1 in already_idxs:
            c1 = np.random.randint(0, n_classes)
        already_idxs.add(c1)
        c2 = np.random.randint(0, n_classes)
        while c1 == c2:
            c2 = np.random.randint(0, n_classes)
        if len(indices[c1]) == 2:  # hack to speed up process
            n1, n2 = 0, 1
        else:
            n1 = np.random.randint(0, len(indices[c1]))
            n2 = np.random.randint(0, len(indices[c1]))
            while n1 == n2:
                n2 = np.random.randint(0, len(indices[c1]))
        n3 = np.random.randint(0, len(indices[c2]))
        triplets.append([indices[c1][n1], indices[c1][n2], indices[c2][n3]])
    return np.array(triplets)


def per_sample_batch(patches: torch.Tensor, pairs: np.ndarray, rng: np.random.Generator):
    """HardNet-style assembly: one pair at a time, random transpose and flip, then stack."""
    anchors, positives = [], []
    for i, j in pairs:
        a, p = patches[i].float().div(255).unsqueeze(0), patches[j].float().div(255).unsqueeze(0)
        if rng.random() > 0.5:
            a, p = a.permute(0, 2, 1), p.permute(0, 2, 1)
        if rng.random() > 0.5:
            a, p = torch.flip(a, dims=(2,)), torch.flip(p, dims=(2,))
        anchors.append(a)
        positives.append(p)
    return torch.stack(anchors), torch.stack(positives)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5_000_000)
    parser.add_argument("--patches", type=int, default=450_092)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--loop-fraction", type=float, default=0.05,
                        help="share of the pairs the HardNet loop generates (then extrapolated)")
    parser.add_argument("--batches", type=int, default=200, help="batches timed for the assembly")
    args = parser.parse_args()

    labels = liberty_like_labels(args.patches)
    sampler = PairSampler(labels, args.pairs, args.batch_size, seed=0)
    ours = best_of(lambda: sampler.epoch(0), 3)
    setup = best_of(lambda: PairSampler(labels, args.pairs, args.batch_size, seed=0), 1)

    loop_pairs = int(args.pairs * args.loop_fraction)
    np.random.seed(0)
    start = time.perf_counter()
    hardnet_generate_triplets(labels, loop_pairs, args.batch_size)
    loop_measured = time.perf_counter() - start
    loop_extrapolated = loop_measured / args.loop_fraction

    patches = torch.randint(0, 256, (labels.size, 32, 32), dtype=torch.uint8)
    drawn = sampler.epoch(0)
    assembler = BatchAssembler(patches, flip=True, rot90=True)
    n = min(args.batches, len(drawn))

    def assemble_all():
        for i in range(n):
            assembler(drawn.pairs[i], drawn.transforms[i])

    assemble = best_of(assemble_all, 2)
    ours_rate = n * args.batch_size / assemble
    loop_batches = max(1, n // 20)
    rng = np.random.default_rng(0)
    loop_assemble = best_of(lambda: [per_sample_batch(patches, drawn.pairs[i], rng) for i in range(loop_batches)], 1)
    loop_rate = loop_batches * args.batch_size / loop_assemble

    rows = [
        ["generate 5M pairs: descnet (s)", ours, "HardNet loop (s, extrapolated)", loop_extrapolated,
         loop_extrapolated / ours],
        ["augmented pairs/s: descnet", ours_rate, "per-sample loop", loop_rate, ours_rate / loop_rate],
    ]
    print(f"{labels.size:,} patches, {sampler.num_points:,} points, {sampler.pairs_per_epoch:,} pairs/epoch, "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(format_table(["measure", "descnet", "reference", "reference value", "speed-up"], rows))
    print(f"HardNet loop: {loop_pairs:,} pairs in {loop_measured:.2f} s, extrapolated x{1 / args.loop_fraction:g}; "
          f"sampler set-up (grouping labels, once per run) {setup:.3f} s")
    save_results("sampler", vars(args) | {"points": sampler.num_points, "pairs_per_epoch": sampler.pairs_per_epoch}, {
        "generate_seconds": ours,
        "setup_seconds": setup,
        "hardnet_loop_seconds_extrapolated": loop_extrapolated,
        "hardnet_loop_seconds_measured": loop_measured,
        "hardnet_loop_pairs_measured": loop_pairs,
        "generate_speedup": loop_extrapolated / ours,
        "assembly_pairs_per_second": ours_rate,
        "per_sample_loop_pairs_per_second": loop_rate,
        "assembly_speedup": ours_rate / loop_rate,
        "targets": {"generate_seconds_max": 5.0, "assembly_pairs_per_second_min": 20000},
        "note": "2-core machine shared with other engineers' jobs: absolute times are noisy, ratios are from the same run",
    })


if __name__ == "__main__":
    main()
