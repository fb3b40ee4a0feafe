"""The three HPatches patch tasks, with the numbers of the official python benchmark, fast.

Reference: ``hpatches-benchmark/python/utils/tasks.py`` (commit e0c993c). Every function takes
descriptors (an :class:`~descnet.eval.descriptors.HPatchesDescriptors` or a ``{sequence: {type: (N, D)}}``
dict); the patch -> descriptor step is :func:`describe_hpatches` (which calls
:func:`descnet.features.inference.describe_patches`). Results are fractions in [0, 1].

How each number is computed (as the official code does; see docs/protocols.md):

* **Verification** (:func:`evaluate_verification`): pairs ``(s1, t1, idx1, s2, t2, idx2)`` of the
  ``verif_pos``, ``verif_neg_intra`` and ``verif_neg_inter`` files, type 0 = ref, k = image k of the level;
  each pair is scored at the three levels. Distance = L2 **in float32 arithmetic**, as the official
  ``scipy.spatial.distance.euclidean`` on the float32 descriptors its loader produces. Per level and
  negative kind: balanced = ROC AUC over [negatives; positives]; imbalanced = AP over the first
  ``N_pos + int(0.2 N_pos)`` rows of that stack. Headline: mean imbalanced AP over levels x kinds.
* **Matching** (:func:`evaluate_matching`): per test sequence, level and target image k = 1..5, the
  nearest neighbour (L2, first index on ties) of every ref descriptor among image k's; correct when it is the
  same row; AP of the correct matches ranked by NN distance with recall over all N ref patches. mAP per
  level = mean over sequences x images; headline = mean of the three levels.
* **Retrieval** (:func:`evaluate_retrieval`): each query is ``ref[idx]`` of its sequence; its 5 positives
  (rows idx of the level's images 1..5) come first, then the distractors in file order without those of
  the query's sequence; AP over the first ``k`` entries for every pool size ``k``. mAP = mean over queries
  per level and pool size; headline = mean over levels at the largest pool (20,000).

Matching and retrieval distances are float64 (the official scipy ``cdist``). They are found fast with a
float32 matrix product, then every decision that float32 rounding could change (a nearest neighbour
within the proven error bound of the runner-up, a distractor within the bound of a positive's distance) is
re-decided with the exact float64 distance, summed in the same order as scipy. Ties are broken as the
official stable sorts break them.

Validation during training, on patches held in memory (``{sequence: {type: uint8 (N, 65, 65)}}``)::

    descs = describe_hpatches(model, patches, device="cuda")   # through describe_patches
    score = matching_map(descs)                                 # mean of easy / hard / tough mAP
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from descnet.data.hpatches import LEVELS, TYPES, PatchRefs, Split, VerificationPairs
from descnet.eval.descriptors import HPatchesDescriptors
from descnet.eval.metrics import SMALL, average_precision

if TYPE_CHECKING:
    import torch

__all__ = [
    "TASKS", "POOL_SIZES", "describe_hpatches", "evaluate_matching", "matching_map", "evaluate_retrieval",
    "evaluate_verification", "generate_verification_pairs", "evaluate_hpatches", "headline",
]

TASKS = ("verification", "matching", "retrieval")
#: Retrieval pool sizes of the official code (5 positives + k - 5 distractors).
POOL_SIZES = (100, 500, 1000, 5000, 10000, 15000, 20000)
_U32 = 2.0 ** -24  # unit roundoff of float32


def _as_set(descs: Any, sequences: Sequence[str] | None = None, name: str = "descriptors") -> HPatchesDescriptors:
    if isinstance(descs, HPatchesDescriptors) and (sequences is None or all(s in descs for s in sequences)):
        return descs
    return HPatchesDescriptors.from_mapping(descs, sequences, name=name)


# ---------------------------------------------------------------------------------------- description
def describe_hpatches(model: torch.nn.Module, patches: Mapping[str, Mapping[str, np.ndarray]],
                      sequences: Sequence[str] | None = None, types: Sequence[str] = TYPES,
                      batch_size: int | None = None, device: str | torch.device = "cpu", progress: bool = False,
                      name: str = "descriptors") -> HPatchesDescriptors:
    """Describe HPatches patches sequence by sequence with :func:`descnet.features.inference.describe_patches`.

    Args:
        patches: ``{sequence: {type: uint8 (N, 65, 65)}}``, e.g. a :class:`descnet.data.hpatches.HPatches`
            (which loads each sequence from disk when asked) or an in-memory dict.
        sequences: which sequences (default all of ``patches``).

    Returns:
        float32 ``(N, D)`` descriptors per sequence and type.
    """
    from tqdm.auto import tqdm

    from descnet.features.inference import describe_patches

    names = list(patches) if sequences is None else list(sequences)
    per_type: dict[str, list[np.ndarray]] = {t: [] for t in types}
    lengths = []
    for seq in tqdm(names, desc=f"describe {name}", unit="seq", disable=not progress, leave=False):
        stacks = patches[seq]
        missing = [t for t in types if t not in stacks]
        if missing:
            raise ValueError(f"sequence {seq}: no patches of type(s) {', '.join(missing)}")
        counts = {t: len(stacks[t]) for t in types}
        if len(set(counts.values())) > 1:
            raise ValueError(f"sequence {seq}: the image types have different numbers of patches "
                             f"({', '.join(f'{k}={v}' for k, v in counts.items())})")
        n = counts[types[0]]
        desc = describe_patches(model, np.concatenate([np.asarray(stacks[t]) for t in types]),
                                batch_size=batch_size, device=device).numpy()
        for i, t in enumerate(types):
            per_type[t].append(desc[i * n:(i + 1) * n])
        lengths.append(n)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    data = np.stack([np.concatenate(per_type[t]) for t in types])
    return HPatchesDescriptors(names, offsets, data, types=types, name=name)


# ------------------------------------------------------------------------------------------ distances
def exact_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise L2 distances ``(K, D), (K, D) -> (K,)`` in float64, summed sequentially like scipy's cdist."""
    diff = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).T.copy()  # (D, K)
    acc = np.zeros(diff.shape[1])
    for row in diff:  # d_0^2 + d_1^2 + ... in this order
        acc += row * row
    return np.sqrt(acc)


def _squared_distance_minus_norm(a: np.ndarray, b: np.ndarray, norm2_b: np.ndarray) -> np.ndarray:
    """float32 ``(N, M)`` matrix ``|b_j|^2 - 2 a_i . b_j`` (= squared distance - ``|a_i|^2``), one BLAS sgemm."""
    s = np.matmul(a, (b * np.float32(-2.0)).T)  # scaling by -2 is exact
    s += norm2_b.astype(np.float32)[None, :]
    return s


def _margin(norm_a: np.ndarray, max_norm_b: float, dim: int) -> np.ndarray:
    """A bound (x2 for safety) on the float32 error of ``|b|^2 - 2 a.b`` between two columns of a row.

    The float32 dot product of length D errs by at most ~D u |a| |b| (any summation order, so any BLAS),
    the float32 ``|b|^2`` by u |b|^2, the scaling and the addition by u (|b|^2 + 2 |a| |b|); two entries
    compared -> x2.
    """
    return 4.0 * (2 * dim + 4) * _U32 * (norm_a * max_norm_b + max_norm_b ** 2)


def nearest_neighbours(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact L2 nearest neighbour in ``b (M, D)`` of every row of ``a (N, D)`` (both float32).

    Returns ``(idx int64 (N,), dist float64 (N,))``; on exact ties the smallest index wins (``np.argmin``
    on scipy's float64 ``cdist``, as the official matching task does).
    """
    nb = np.square(b, dtype=np.float64).sum(axis=1)
    margin = _margin(np.sqrt(np.square(a, dtype=np.float64).sum(axis=1)), float(np.sqrt(nb.max())),
                     a.shape[1]).astype(np.float32)
    s = _squared_distance_minus_norm(a, b, nb)
    rows = np.arange(len(s))
    idx = s.argmin(axis=1)  # numpy: first minimum, and much faster than torch's min(dim) on the CPU
    smin = s[rows, idx].copy()
    s[rows, idx] = np.inf
    ambiguous = np.flatnonzero(s.min(axis=1) <= smin + margin)
    if len(ambiguous):
        s[ambiguous, idx[ambiguous]] = smin[ambiguous]
        rows, cols = np.nonzero(s[ambiguous] <= (smin[ambiguous] + margin[ambiguous])[:, None])
        rows = ambiguous[rows]
        d = exact_distances(a[rows], b[cols])
        order = np.lexsort((cols, d, rows))  # by row, then distance, then column
        rows, cols = rows[order], cols[order]
        first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        idx[rows[first]] = cols[first]
    return idx, exact_distances(a, b[idx])


# ------------------------------------------------------------------------------------------- matching
def evaluate_matching(descs: Any, sequences: Sequence[str] | None = None, progress: bool = False
                      ) -> dict[str, Any]:
    """The matching task on ``sequences`` (default: all sequences of ``descs``).

    Returns ``{"mAP": {"e", "h", "t"}, "mean", "by_sequence_type": {"illum"|"view": {"e", "h", "t"}},
    "per_sequence": {seq: {level: {"ap": [5], "success_rate": [5]}}}}``.
    """
    from tqdm.auto import tqdm

    ds = _as_set(descs, sequences)
    names = list(ds.sequences if sequences is None else sequences)
    ds.check_types(["ref"] + [f"{lv}{i}" for lv in LEVELS for i in range(1, 6)])
    per_sequence: dict[str, Any] = {}
    for seq in tqdm(names, desc="matching", unit="seq", disable=not progress, leave=False):
        d = ds[seq]
        ref = d["ref"]
        truth = np.arange(len(ref))
        per_sequence[seq] = {}
        for level in LEVELS:
            aps, rates = [], []
            for i in range(1, 6):
                idx, dist = nearest_neighbours(ref, d[f"{level}{i}"])
                correct = idx == truth
                rates.append(float(np.count_nonzero(correct)) / len(correct))
                aps.append(average_precision(dist, correct, numpos=len(correct)))
            per_sequence[seq][level] = {"ap": aps, "success_rate": rates}
    m_ap = {lv: float(np.mean([per_sequence[s][lv]["ap"] for s in names])) for lv in LEVELS}
    by_type = {}
    for kind, prefix in (("illum", "i_"), ("view", "v_")):
        chosen = [s for s in names if s.startswith(prefix)]
        if chosen:
            by_type[kind] = {lv: float(np.mean([per_sequence[s][lv]["ap"] for s in chosen])) for lv in LEVELS}
    return {"mAP": m_ap, "mean": float(np.mean(list(m_ap.values()))), "by_sequence_type": by_type,
            "sequences": len(names), "per_sequence": per_sequence}


def matching_map(descs: Any, sequences: Sequence[str] | None = None) -> float:
    """Headline matching mAP (mean of easy, hard, tough), e.g. for validation during training."""
    return evaluate_matching(descs, sequences)["mean"]


# ------------------------------------------------------------------------------------------ retrieval
def _ap_from_ranks(ranks: np.ndarray, numpos: int) -> np.ndarray:
    """AP of ranked lists from the 1-based ranks ``(..., P)`` (ascending) of their P positives.

    The official trapezoid: recall steps by 1/numpos at each positive; the step from rank r-1 to r adds
    ``(prec(r-1) + prec(r)) / 2 / numpos`` with prec(r) = k / r and prec(r-1) = max(k-1, 1e-10) /
    max(r-1, 1e-10) for the k-th positive.
    """
    k = np.arange(1, ranks.shape[-1] + 1, dtype=np.float64)
    r = ranks.astype(np.float64)
    prec = k / r
    prev = np.maximum(k - 1, SMALL) / np.maximum(r - 1, SMALL)
    step = k / max(numpos, SMALL) - (k - 1) / max(numpos, SMALL)
    return (step * (prec + prev) / 2.0).sum(axis=-1)


def evaluate_retrieval(descs: Any, queries: PatchRefs, distractors: PatchRefs,
                       pool_sizes: Sequence[int] = POOL_SIZES, chunk: int = 256, progress: bool = False
                       ) -> dict[str, Any]:
    """The retrieval task: ``queries`` and ``distractors`` are (sequence, row) refs of ref patches.

    Returns ``{"mAP": {level: {pool: value}}, "mean": {pool: value}, "pool_sizes", "queries",
    "distractors"}`` (pool keys are strings, for JSON).
    """
    from tqdm.auto import tqdm

    pools = np.asarray(sorted(int(p) for p in pool_sizes), dtype=np.int64)
    if len(pools) == 0 or pools[0] <= 5:
        raise ValueError(f"retrieval pool sizes must exceed the 5 positives, got {list(pool_sizes)}")
    ds = _as_set(descs)
    ds.check_types(["ref"] + [f"{lv}{i}" for lv in LEVELS for i in range(1, 6)])
    if len(queries) == 0 or len(distractors) == 0:
        raise ValueError("retrieval needs queries and distractors")
    q_pos = ds.positions(queries.sequence, queries.source)
    q_rows = ds.rows(q_pos, queries.idx, queries.source)
    d_pos = ds.positions(distractors.sequence, distractors.source)
    d_rows = ds.rows(d_pos, distractors.idx, distractors.source)
    ref = ds.arrays["ref"]
    q, dd = ref[q_rows], ref[d_rows]
    nq, n_pools = len(q), len(pools)

    # exact distances of every query to its 5 positives per level, sorted: thresholds (nq, 3, 5)
    thresholds = np.stack([np.stack([exact_distances(q, ds.arrays[f"{lv}{i}"][q_rows]) for i in range(1, 6)], 1)
                           for lv in LEVELS], 1)
    thresholds.sort(axis=-1)

    # which pools a distractor belongs to, for queries of each sequence: the smallest pool index whose
    # k - 5 distractors (after dropping the query's sequence) include it; n_pools = none / own sequence
    q_seqs, q_seq_row = np.unique(q_pos, return_inverse=True)
    pool_of = np.empty((len(q_seqs), len(dd)), np.int64)
    for r, s in enumerate(q_seqs):
        keep = d_pos != s
        pool_of[r] = np.searchsorted(pools - 5, np.cumsum(keep), side="left")
        pool_of[r, ~keep] = n_pools

    nb = np.square(dd, dtype=np.float64).sum(axis=1)
    na = np.square(q, dtype=np.float64).sum(axis=1)
    margin = _margin(np.sqrt(na), float(np.sqrt(nb.max())), q.shape[1])
    n_bins = 3 * (n_pools + 1) * 6
    hist = np.zeros(nq * n_bins, np.int64)
    starts = range(0, nq, chunk)
    for start in tqdm(starts, desc="retrieval", unit="chunk", disable=not progress, leave=False):
        sl = slice(start, min(start + chunk, nq))
        s = _squared_distance_minus_norm(q[sl], dd, nb)  # the query's own sequence: pool_of = n_pools below
        # thresholds in the same units: t^2 - |q|^2
        thr = thresholds[sl] ** 2 - na[sl, None, None]
        m = margin[sl]
        upper = (thr[:, :, 4] + m[:, None]).astype(np.float32)  # (chunk, 3): beyond it, no positive is farther
        q_all, j_all = np.nonzero(s < upper.max(axis=1)[:, None])  # one pass for the three levels
        s_all = s[q_all, j_all]
        for li in range(3):
            keep = s_all < upper[q_all, li]
            qi, j = q_all[keep], j_all[keep]
            if len(qi) == 0:
                continue
            sv = s_all[keep].astype(np.float64)
            t_c = thr[qi, li]
            code = (sv[:, None] >= t_c).sum(axis=1)  # how many positives are at least as close
            unsure = np.flatnonzero((np.abs(sv[:, None] - t_c) <= m[qi, None]).any(axis=1))
            if len(unsure):
                qa = qi[unsure] + start
                exact = exact_distances(q[qa], dd[j[unsure]])
                code[unsure] = (exact[:, None] >= thresholds[qa, li]).sum(axis=1)
            pool = pool_of[q_seq_row[qi + start], j]
            flat = ((qi * 3 + li) * (n_pools + 1) + pool) * 6 + code
            hist[start * n_bins:sl.stop * n_bins] += np.bincount(flat, minlength=(sl.stop - start) * n_bins)
    hist = hist.reshape(nq, 3, n_pools + 1, 6)[:, :, :n_pools, :5]
    # distractors ranked before the k-th positive in pool p: distance < t_k <=> code <= k - 1
    before = hist.cumsum(axis=2).cumsum(axis=3)  # (nq, 3, pools, 5)
    ranks = np.arange(1, 6) + before
    ap = _ap_from_ranks(ranks, 5)  # (nq, 3, pools)
    m_ap = ap.mean(axis=0)
    result = {lv: {str(int(p)): float(m_ap[li, pi]) for pi, p in enumerate(pools)} for li, lv in enumerate(LEVELS)}
    mean = {str(int(p)): float(m_ap[:, pi].mean()) for pi, p in enumerate(pools)}
    over_pools = {lv: float(m_ap[li].mean()) for li, lv in enumerate(LEVELS)}  # the official figure's bars
    return {"mAP": result, "mean": mean, "mean_over_pools": over_pools,
            "pool_sizes": [int(p) for p in pools], "queries": int(nq), "distractors": int(len(dd))}


# --------------------------------------------------------------------------------------- verification
def generate_verification_pairs(lengths: Mapping[str, int], sequences: Sequence[str],
                                n_pairs: int = 1_000_000, seed: int = 42) -> dict[str, VerificationPairs]:
    """Verification pairs drawn like the official ``gen_verif`` (for when its files are unavailable).

    With ``rng = numpy.random.default_rng(seed)``, for each of ``n_pairs`` rows: a sequence s uniformly from
    ``sequences``; two distinct rows idx1 != idx2 of s; two distinct image types t1 != t2 from 0..4 (0 = ref;
    the official generator never uses image 5). Then ``pos = (s, t1, idx1, s, t2, idx1)``,
    ``neg_intra = (s, t1, idx1, s, t2, idx2)`` and ``neg_inter = (s, t1, idx1, s', t2, idx')`` with s' drawn
    uniformly from ``sequences`` (it may equal s, as in the official code) and idx' uniformly from its rows.
    The same definition as the official generator, not its random stream: the official files differ.
    """
    names = np.asarray(list(sequences), dtype=str)
    n = int(n_pairs)
    if n <= 0 or len(names) == 0:
        raise ValueError("need at least one pair and one sequence")
    sizes = np.asarray([int(lengths[s]) for s in names.tolist()], dtype=np.int64)
    if (sizes < 2).any():
        raise ValueError(f"sequence {names[np.argmax(sizes < 2)]} has fewer than 2 patches")
    rng = np.random.default_rng(seed)
    s = rng.integers(0, len(names), n)
    idx1 = rng.integers(0, sizes[s])
    idx2 = (idx1 + 1 + rng.integers(0, sizes[s] - 1)) % sizes[s]
    t1 = rng.integers(0, 5, n)
    t2 = (t1 + 1 + rng.integers(0, 4, n)) % 5
    s_inter = rng.integers(0, len(names), n)
    idx_inter = rng.integers(0, sizes[s_inter])
    src = f"generated (descnet, seed {seed})"
    return {"pos": VerificationPairs(names[s], t1, idx1, names[s], t2, idx1.copy(), src),
            "neg_intra": VerificationPairs(names[s], t1, idx1, names[s], t2, idx2, src),
            "neg_inter": VerificationPairs(names[s], t1, idx1, names[s_inter], t2, idx_inter, src)}


def _pair_distances(ds: HPatchesDescriptors, pairs: Mapping[str, VerificationPairs], chunk: int = 1 << 16,
                    progress: bool = False) -> dict[str, np.ndarray]:
    """kind -> float32 ``(3, M)``: the distance of every pair at each level, in float32 arithmetic.

    The official code scores a pair with ``scipy.spatial.distance.euclidean`` on float32 vectors: the
    difference, the sum of squares and the root are float32 (BLAS), so are the distances here; they may
    differ from the official ones in the last bit, as the official ones differ between BLAS libraries.
    """
    n_total = ds.offsets[-1]
    flat = ds.data.reshape(-1, ds.dim)  # row of (type k, patch r) = k * n_total + r
    luts = [np.asarray([ds.type_index("ref")] + [ds.type_index(f"{lv}{k}") for k in range(1, 6)]) * n_total
            for lv in LEVELS]
    sides = {}
    for kind, p in pairs.items():
        r1 = ds.rows(ds.positions(p.s1, p.source), p.idx1, p.source)
        r2 = ds.rows(ds.positions(p.s2, p.source), p.idx2, p.source)
        sides[kind] = (p.t1, r1, p.t2, r2)
    kinds = list(pairs)
    first = sides[kinds[0]]
    # the official files share the first patch of a row across the three kinds: gather it once
    shared = all(len(sides[k][1]) == len(first[1]) and np.array_equal(sides[k][0], first[0])
                 and np.array_equal(sides[k][1], first[1]) for k in kinds)
    out = {kind: np.empty((3, len(sides[kind][1])), np.float32) for kind in kinds}

    def gather(t: np.ndarray, r: np.ndarray, lut: np.ndarray, sl: slice) -> np.ndarray:
        return flat[lut[t[sl]] + r[sl]]

    def work(job: tuple[int, str | None]) -> None:
        start, only = job
        for li, lut in enumerate(luts):
            common = None
            for kind in ([only] if only else kinds):
                t1, r1, t2, r2 = sides[kind]
                sl = slice(start, min(start + chunk, len(r1)))
                if shared and common is None:
                    common = gather(t1, r1, lut, sl)
                diff = common.copy() if shared else gather(t1, r1, lut, sl)
                diff -= gather(t2, r2, lut, sl)  # float32, as u - v in scipy
                out[kind][li, sl] = np.sqrt(np.einsum("ij,ij->i", diff, diff))

    if shared:
        jobs = [(start, None) for start in range(0, len(first[1]), chunk)]
    else:
        jobs = [(start, kind) for kind in kinds for start in range(0, len(sides[kind][1]), chunk)]
    import torch
    from tqdm.auto import tqdm

    # numpy's gathers release the GIL: chunks run in parallel on torch's thread count
    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        list(tqdm(pool.map(work, jobs), total=len(jobs), desc="verification", unit="chunk", disable=not progress,
                  leave=False))
    return out


def _roc_auc_and_ap(d_neg: np.ndarray, d_pos: np.ndarray) -> tuple[float, float]:
    """Balanced ROC AUC over ``[neg; pos]`` and imbalanced AP over its first ``N_pos + int(0.2 N_pos)`` rows.

    Equal to the official trapezoids on the stable ranking of that stack, without sorting it: there a
    negative tied with a positive comes first (it is earlier in the stack), so the ROC area is the share of
    (positive, negative) pairs with ``d_pos < d_neg``, and the k-th positive (ascending) is at rank
    ``k + #{negatives with d <= d_pos(k)}``.
    """
    neg = np.sort(d_neg)
    pos = np.sort(d_pos)
    n, p = len(neg), len(pos)
    below = np.searchsorted(pos, neg, side="left")  # positives ranked before each negative
    auc = float(below.sum(dtype=np.float64) / max(p, SMALL) / max(n, SMALL))
    n_imb = p + int(p * 0.2)
    neg_imb = neg if n <= n_imb else np.sort(d_neg[:n_imb])
    pos_imb = np.sort(d_pos[:max(0, n_imb - n)])
    if len(pos_imb) == 0:
        return auc, 0.0
    ranks = np.arange(1, len(pos_imb) + 1) + np.searchsorted(neg_imb, pos_imb, side="right")
    return auc, float(_ap_from_ranks(ranks, len(pos_imb)))


def evaluate_verification(descs: Any, pairs: Mapping[str, VerificationPairs], progress: bool = False
                          ) -> dict[str, Any]:
    """The verification task on the three pair sets ``pos``, ``neg_intra``, ``neg_inter``.

    Returns ``{level: {"inter"|"intra": {"balanced_auc", "imbalanced_ap"}}, "mAP": mean imbalanced AP,
    "mean_auc": mean balanced AUC, "pairs": {kind: count}}``.
    """
    ds = _as_set(descs)
    ds.check_types(["ref"] + [f"{lv}{i}" for lv in LEVELS for i in range(1, 6)])
    missing = [k for k in ("pos", "neg_intra", "neg_inter") if k not in pairs]
    if missing:
        raise ValueError(f"verification needs the pair sets pos, neg_intra, neg_inter; missing {missing}")
    dist = _pair_distances(ds, {kind: pairs[kind] for kind in ("pos", "neg_intra", "neg_inter")},
                           progress=progress)
    out: dict[str, Any] = {}
    aps, aucs = [], []
    for li, level in enumerate(LEVELS):
        out[level] = {}
        for neg in ("inter", "intra"):
            auc, ap = _roc_auc_and_ap(dist[f"neg_{neg}"][li], dist["pos"][li])
            out[level][neg] = {"balanced_auc": auc, "imbalanced_ap": ap}
            aps.append(ap)
            aucs.append(auc)
    out["mAP"] = float(np.mean(aps))
    out["mean_auc"] = float(np.mean(aucs))
    out["pairs"] = {kind: len(pairs[kind]) for kind in ("pos", "neg_intra", "neg_inter")}
    return out


# --------------------------------------------------------------------------------------------- driver
def evaluate_hpatches(descs: Any, split: Split, tasks: Sequence[str] = TASKS,
                      retrieval: tuple[PatchRefs, PatchRefs] | None = None,
                      verification: Mapping[str, VerificationPairs] | None = None,
                      pool_sizes: Sequence[int] = POOL_SIZES, progress: bool = False) -> dict[str, Any]:
    """Run ``tasks`` on the test sequences of ``split``; returns ``{task: result, "headline": {...}}``."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown HPatches task(s) {unknown}; tasks are {', '.join(TASKS)}")
    ds = _as_set(descs)
    missing = [s for s in split.test if s not in ds]
    if missing:
        raise ValueError(f"{ds.name}: no descriptors for {len(missing)} test sequence(s) of split {split.name} "
                         f"({', '.join(missing[:5])})")
    results: dict[str, Any] = {}
    if "verification" in tasks:
        if verification is None:
            raise ValueError("the verification task needs pairs (official files or generate_verification_pairs)")
        results["verification"] = evaluate_verification(ds, verification, progress)
    if "matching" in tasks:
        results["matching"] = evaluate_matching(ds, split.test, progress)
    if "retrieval" in tasks:
        if retrieval is None:
            raise ValueError("the retrieval task needs the queries and distractors files")
        results["retrieval"] = evaluate_retrieval(ds, *retrieval, pool_sizes=pool_sizes, progress=progress)
    results["headline"] = headline(results)
    return results


def headline(results: Mapping[str, Any]) -> dict[str, float]:
    """The three numbers of the HardNet and HPatches papers' tables (fractions).

    verification = mean imbalanced AP over easy/hard/tough x inter/intra; matching = mean mAP over
    easy/hard/tough; retrieval = mean mAP over easy/hard/tough with the largest pool (all 20,000 distractors).
    """
    out = {}
    if "verification" in results:
        out["verification"] = results["verification"]["mAP"]
    if "matching" in results:
        out["matching"] = results["matching"]["mean"]
    if "retrieval" in results:
        r = results["retrieval"]
        out["retrieval"] = r["mean"][str(r["pool_sizes"][-1])]
    return out
