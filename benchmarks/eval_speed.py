"""Speed of the HPatches evaluation given descriptors, at the real size of the ``full`` split.

Synthetic 128-D descriptors for 116 sequences with the real HPatches patch counts (about 156,000 rows per
image type, 2.5M descriptors): the counts and the retrieval task files are taken from the official task
files in ../shared/data/hpatches/tasks when present (largest row any task file names, + 1); otherwise
sequences of 1,353 patches and random task files of the official sizes. Target descriptors are noisy
copies of crowded reference ones (more noise for hard and tough), so the mAPs are mid-range like real
descriptors' (the candidate sets the exact re-checks handle are realistic), not trivial.

Times each task of :mod:`descnet.eval.hpatches` (verification with 1e6 generated pairs per file,
matching, retrieval with all 7 pools), and, on a subset extrapolated linearly to the full size, a
straight port of the official per-pair / per-query loops (scipy's calls replaced by their numpy and
torch equivalents) as the reference; prints both and their ratio.

    .venv/bin/python benchmarks/eval_speed.py [--pairs 1000000] [--quick]
"""
from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np
import torch

from _common import format_table, save_results  # noqa: E402  (adds the repo to sys.path)

from descnet.data.hpatches import LEVELS, TYPES, PatchRefs, read_retrieval_task, read_splits  # noqa: E402
from descnet.eval.descriptors import HPatchesDescriptors  # noqa: E402
from descnet.eval.hpatches import (evaluate_matching, evaluate_retrieval, evaluate_verification,  # noqa: E402
                                   generate_verification_pairs)

TASKS_DIR = Path(os.environ.get("DESCNET_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) \
    / "hpatches" / "tasks"


def real_sizes() -> tuple[dict[str, int], tuple[PatchRefs, PatchRefs] | None, str]:
    """Sequence -> patch count (from the task files when available) and the full split's retrieval task."""
    if (TASKS_DIR / "splits" / "splits.json").is_file():
        sizes: dict[str, int] = {}
        for path in sorted(TASKS_DIR.glob("retr_*_split-*.csv")):
            with open(path, newline="") as f:
                for row in csv.DictReader(f):
                    sizes[row["s"]] = max(sizes.get(row["s"], 0), int(row["idx"]) + 1)
        full = read_splits(TASKS_DIR)["full"].test
        return {s: sizes[s] for s in full}, read_retrieval_task(TASKS_DIR, "full"), str(TASKS_DIR)
    names = [f"{'i' if k < 57 else 'v'}_seq{k:03d}" for k in range(116)]
    return {s: 1353 for s in names}, None, "synthetic (no task files found)"


def synthetic_descriptors(sizes: dict[str, int], dim: int = 128, latent: int = 8, centre: float = 0.75,
                          seed: int = 0) -> HPatchesDescriptors:
    """Crowded synthetic descriptors with mid-range mAPs, like real ones.

    Reference descriptors of a sequence = its centre (norm ``centre``) + a point of an 8-dimensional
    subspace (norm about 1), unit-normalised; target descriptors = ref + Gaussian noise of norm 0.8 / 1.0 /
    1.3 (easy / hard / tough), unit-normalised.
    """
    rng = torch.Generator().manual_seed(seed)
    total = sum(sizes.values())
    offsets = np.concatenate(([0], np.cumsum(list(sizes.values()))))
    basis = torch.randn(latent, dim, generator=rng) / (latent * dim) ** 0.5
    centres = centre * torch.randn(len(sizes), dim, generator=rng) / dim ** 0.5
    seq = torch.from_numpy(np.repeat(np.arange(len(sizes)), list(sizes.values())))
    ref = torch.nn.functional.normalize(torch.randn(total, latent, generator=rng) @ basis + centres[seq], dim=1)
    data = np.empty((len(TYPES), total, dim), np.float32)
    data[0] = ref.numpy()
    noise = {"e": 0.8, "h": 1.0, "t": 1.3}
    for k, kind in enumerate(TYPES[1:], 1):
        x = ref + noise[kind[0]] / dim ** 0.5 * torch.randn(total, dim, generator=rng)
        data[k] = torch.nn.functional.normalize(x, dim=1).numpy()
    return HPatchesDescriptors(list(sizes), offsets, data, types=TYPES, name="synthetic")


def random_retrieval(sizes: dict[str, int], seed: int = 0) -> tuple[PatchRefs, PatchRefs]:
    rng = np.random.default_rng(seed)
    names = np.asarray(list(sizes))
    out = []
    for n in (10_000, 20_000):
        s = rng.integers(0, len(names), n)
        idx = rng.integers(0, np.asarray(list(sizes.values()))[s])
        out.append(PatchRefs(names[s], idx, "random"))
    return out[0], out[1]


# ------------------------------------------------------------------ reference: the official loops, ported
def _pr_official(scores: np.ndarray, labels: np.ndarray, numpos: int | None = None) -> float:
    p = int(labels.sum())
    if numpos is not None:
        scores = np.hstack((scores, np.repeat(-np.inf, numpos - p)))
        labels = np.hstack((labels, np.repeat(1, numpos - p)))
        p = numpos
    perm = np.argsort(-scores, kind="mergesort")
    stop = np.max(np.where(scores[perm] > -np.inf))
    lab = labels[perm[:stop + 1]]
    tp = np.hstack((0, np.cumsum(lab == 1)))
    fp = np.hstack((0, np.cumsum(lab == 0)))
    return float(np.trapezoid(np.maximum(tp, 1e-10) / np.maximum(tp + fp, 1e-10), tp / max(p, 1e-10)))


def reference_matching(ds: HPatchesDescriptors, seqs: list[str]) -> None:
    for seq in seqs:
        d = ds[seq]
        ref = torch.from_numpy(d["ref"]).double()
        for level in LEVELS:
            for i in range(1, 6):  # scipy cdist: float64, direct differences
                dist = torch.cdist(ref, torch.from_numpy(d[f"{level}{i}"]).double(),
                                   compute_mode="donot_use_mm_for_euclid_dist").numpy()
                idx = dist.argmin(axis=1)
                m_l = idx == np.arange(len(idx))
                _pr_official(-dist[np.arange(len(idx)), idx], m_l, numpos=len(m_l))


def reference_retrieval(ds: HPatchesDescriptors, queries: PatchRefs, distractors: PatchRefs, n: int) -> None:
    ref = ds.arrays["ref"]
    qp = ds.rows(ds.positions(queries.sequence[:n]), queries.idx[:n])
    dp = ds.rows(ds.positions(distractors.sequence), distractors.idx)
    dq = torch.from_numpy(ref[qp]).double()
    dist = torch.cdist(dq, torch.from_numpy(ref[dp]).double(), compute_mode="donot_use_mm_for_euclid_dist").numpy()
    for i in range(n):
        keep = distractors.sequence != queries.sequence[i]
        for level in LEVELS:
            intra = np.array([np.linalg.norm(ref[qp[i]].astype(np.float64)
                                             - ds[queries.sequence[i]][f"{level}{k}"][queries.idx[i]])
                              for k in range(1, 6)])
            d_ = np.hstack((intra, dist[i][keep]))
            gt = np.hstack((np.ones(5), np.zeros(int(keep.sum()))))
            for k in (100, 500, 1000, 5000, 10000, 15000, 20000):
                _pr_official(-d_[:k], gt[:k])


def reference_verification(ds: HPatchesDescriptors, pairs, n: int) -> None:
    for kind in ("pos", "neg_intra", "neg_inter"):
        p = pairs[kind]
        for r in range(n):  # scipy.spatial.distance.euclidean per pair and level
            for level in LEVELS:
                a = ds[p.s1[r]]["ref" if p.t1[r] == 0 else f"{level}{p.t1[r]}"][p.idx1[r]]
                b = ds[p.s2[r]]["ref" if p.t2[r] == 0 else f"{level}{p.t2[r]}"][p.idx2[r]]
                np.linalg.norm(a - b)


CPU_SECONDS: dict[str, float] = {}


def timed(fn, *args, **kwargs):
    """(result, wall seconds); the process CPU seconds go to CPU_SECONDS[fn name]."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    CPU_SECONDS[fn.__name__] = time.process_time() - cpu
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000, help="verification pairs per file")
    parser.add_argument("--quick", action="store_true", help="smaller reference subsets")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    sizes, retrieval, source = real_sizes()
    ds, t_make = timed(synthetic_descriptors, sizes)
    if retrieval is None:
        retrieval = random_retrieval(sizes)
    pairs, t_gen = timed(generate_verification_pairs, ds.lengths, list(sizes), args.pairs)
    print(f"{len(sizes)} sequences, {ds.offsets[-1]} patches per type ({16 * ds.offsets[-1]:,} descriptors, "
          f"D={ds.dim}); sizes from {source}; {torch.get_num_threads()} threads")

    verif, t_verif = timed(evaluate_verification, ds, pairs)
    match, t_match = timed(evaluate_matching, ds, list(sizes))
    retr, t_retr = timed(evaluate_retrieval, ds, *retrieval)
    ours = {"verification": t_verif, "matching": t_match, "retrieval": t_retr}

    # the reference on subsets, extrapolated
    n_seq, n_q, n_pairs = (2, 20, 2000) if args.quick else (4, 100, 10000)
    seqs = sorted(sizes, key=sizes.get)[:n_seq]  # the smallest sequences; scaled by sum of N^2 below
    _, t = timed(reference_matching, ds, seqs)
    ref_match = t * sum(ds.lengths[s] ** 2 for s in sizes) / sum(ds.lengths[s] ** 2 for s in seqs)
    _, t = timed(reference_retrieval, ds, *retrieval, n_q)
    ref_retr = t * len(retrieval[0]) / n_q
    _, t = timed(reference_verification, ds, pairs, n_pairs)
    ref_verif = t * args.pairs / n_pairs
    reference = {"verification": ref_verif, "matching": ref_match, "retrieval": ref_retr}

    cpu = {task: CPU_SECONDS[f"evaluate_{task}"] for task in ours}
    rows = [[task, ours[task], cpu[task], reference[task], reference[task] / ours[task]] for task in ours]
    total = sum(ours.values())
    rows.append(["total", total, sum(cpu.values()), sum(reference.values()), sum(reference.values()) / total])
    print(format_table(["task", "descnet wall s", "descnet CPU s", "official loops wall s (extrapolated)",
                        "speed-up x"], rows, ".1f"))
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"headline (synthetic): verification {verif['mAP']:.4f}, matching {match['mean']:.4f}, "
          f"retrieval@20000 {retr['mean']['20000']:.4f}")
    save_results("eval_speed", {
        "sequences": len(sizes), "patches_per_type": int(ds.offsets[-1]), "dim": ds.dim, "sizes_from": source,
        "verification_pairs_per_file": args.pairs, "threads": torch.get_num_threads(),
        "reference_subset": {"matching_sequences": n_seq, "retrieval_queries": n_q, "verification_pairs": n_pairs},
        "note": "the machine may be shared; compare the ratio, measured in the same run",
        "load_average_1min_at_end": os.getloadavg()[0],
    }, {"descnet_seconds": ours, "descnet_total_seconds": total, "descnet_cpu_seconds": cpu,
        "reference_seconds_extrapolated": reference,
        "speedup": {k: reference[k] / ours[k] for k in ours}, "setup_seconds": {"descriptors": t_make,
                                                                               "pairs": t_gen},
        "headline": {"verification": verif["mAP"], "matching": match["mean"],
                     "retrieval_20000": retr["mean"]["20000"]}})


if __name__ == "__main__":
    main()
