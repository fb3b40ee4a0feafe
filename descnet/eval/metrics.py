"""Ranking metrics exactly as the official HPatches python benchmark computes them.

``hpatches-benchmark/python/utils/metrics.py`` defines both metrics through one ranking:

* rank the items by score, descending, with a **stable** sort (ties keep their input order);
* items scored ``-inf`` are never retrieved (the ranked list stops at the last finite score);
* ``numpos`` larger than the positives present counts the missing positives as never retrieved;
* tp and fp counts are prefixed with 0, so the curves start at (recall 0, precision 1) and (0, 0);
* precision = ``max(tp, 1e-10) / max(tp + fp, 1e-10)``, recall = ``tp / P``; tpr = ``tp / P``,
  fpr = ``fp / N``;
* average precision (AP) = trapezoid integral of precision over recall; ROC AUC = trapezoid integral of
  tpr over fpr.

Distances are ranked ascending, which is the same stable order as scores ``-distance`` ranked descending,
so every function here takes **distances** (smaller = more similar; ``+inf`` = never retrieved).
Shapes: ``distances`` float ``(N,)``, ``labels`` bool/0-1 ``(N,)``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ranked_counts", "precision_recall", "average_precision", "roc", "roc_auc", "SMALL",
           "degenerate_warning", "DEGENERATE_SAMPLE", "DISTINCT_SHARE"]

#: a descriptor set with fewer distinct descriptors than this share of its patches is reported as degenerate
DISTINCT_SHARE = 0.1

#: The guard the official code puts in every denominator.
SMALL = 1e-10
# np.trapz was renamed np.trapezoid in NumPy 2.0 (and removed later): same trapezoid rule
_trapezoid = getattr(np, "trapezoid", None) or np.trapz


def _check(distances: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if d.shape != y.shape:
        raise ValueError(f"distances and labels differ in length: {d.shape[0]} vs {y.shape[0]}")
    if np.isnan(d).any() or (d == -np.inf).any():
        raise ValueError("distances contain NaN or -inf")
    if y.dtype != np.bool_:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be 0/1 or boolean")
        y = y.astype(bool)
    return d, y


def ranked_counts(distances: np.ndarray, labels: np.ndarray, numpos: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Cumulative true and false positives along the ranking: ``(tp, fp, P, N)``.

    ``tp`` and ``fp`` are int64 ``(K + 1,)`` with a leading 0, ``K`` = number of finite distances; ``P`` =
    ``numpos`` or the number of positives, ``N`` = number of negatives (official ``tpfp``).
    """
    d, y = _check(distances, labels)
    p = int(y.sum())
    n = len(y) - p
    if numpos is not None:
        if numpos < p:
            raise ValueError(f"numpos={numpos} is smaller than the {p} positives in labels")
        p = int(numpos)
    order = np.argsort(d, kind="stable")
    ranked = y[order[np.isfinite(d[order])]]  # +inf sorts last and is never retrieved
    tp = np.concatenate(([0], np.cumsum(ranked, dtype=np.int64)))
    fp = np.concatenate(([0], np.cumsum(~ranked, dtype=np.int64)))
    return tp, fp, p, n


def precision_recall(distances: np.ndarray, labels: np.ndarray, numpos: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall along the ranking, float64 ``(K + 1,)`` each (official ``pr`` curves)."""
    tp, fp, p, _ = ranked_counts(distances, labels, numpos)
    recall = tp / float(max(p, SMALL))
    precision = np.maximum(tp, SMALL) / np.maximum(tp + fp, SMALL)
    return precision, recall


def average_precision(distances: np.ndarray, labels: np.ndarray, numpos: int | None = None) -> float:
    """AP = trapezoid integral of precision over recall (official ``metrics.pr(...)[2]``)."""
    precision, recall = precision_recall(distances, labels, numpos)
    return float(_trapezoid(precision, recall))


def roc(distances: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates along the ranking, float64 ``(K + 1,)`` each (official ``roc``)."""
    tp, fp, p, n = ranked_counts(distances, labels)
    return fp / float(max(n, SMALL)), tp / float(max(p, SMALL))


def roc_auc(distances: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve, trapezoid integral of tpr over fpr (official ``metrics.roc(...)[2]``)."""
    fpr, tpr = roc(distances, labels)
    return float(_trapezoid(tpr, fpr))


#: descriptors :func:`degenerate_warning` looks at, at most
DEGENERATE_SAMPLE = 20000


def degenerate_warning(descriptors: np.ndarray, label: str, sample: int = DEGENERATE_SAMPLE,
                       seed: int = 0) -> str | None:
    """A warning when the ``(N, D)`` descriptors are degenerate, else ``None``: all the same (a collapsed
    model; HPatches retrieval then scores mAP 100% at every pool in the official code), or fewer distinct
    descriptors (rounded to 1e-4) than :data:`DISTINCT_SHARE` of the patches. At most ``sample`` rows
    (seeded) are compared. The figures are kept as computed; the warning says they mean nothing."""
    d = np.asarray(descriptors, dtype=np.float64).reshape(len(descriptors), -1)
    n = len(d)
    if n < 2:
        return None
    if n > sample:
        d = d[np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))]
    distinct = len(np.unique(np.round(d, 4), axis=0))
    if distinct == 1:
        return (f"WARNING: {label}: all descriptors are identical (a collapsed model?): its figures are "
                f"not meaningful (constant descriptors get retrieval mAP 100% in the official protocol)")
    if distinct < DISTINCT_SHARE * len(d):
        return (f"WARNING: {label}: only {distinct} distinct descriptors among {len(d)} patches (a nearly "
                f"collapsed model?): its figures are not meaningful")
    return None
