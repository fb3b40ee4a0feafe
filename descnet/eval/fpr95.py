"""FPR95: the false positive rate at 95% recall, the Brown (UBC Phototour) patch-pair metric.

Sort the pairs by descriptor distance and accept every pair up to the distance at which 95% of the
matching pairs are accepted; FPR95 is the fraction of non-matching pairs accepted at that threshold (a true
false positive rate; some early papers reported the false discovery rate instead).

Threshold: ``t`` = the ``k``-th smallest distance of a matching pair, ``k`` the least integer with
``k >= recall * P`` (``P`` matching pairs), the same ``k`` as HardNet's ``ErrorRateAt95Recall``. Ties: a
non-matching pair at exactly ``t`` counts as accepted (the threshold test is ``d <= t``), so the result
never depends on the input order; without ties it equals HardNet's value.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["fpr95", "fpr_at_recall"]


def _as_numpy(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x).ravel()


def fpr_at_recall(distances: Any, labels: Any, recall: float = 0.95) -> float:
    """False positive rate at the smallest threshold that accepts ``recall`` of the positives.

    Args:
        distances: float ``(M,)`` descriptor distances of the pairs (numpy or torch; smaller = more alike).
        labels: bool or 0/1 ``(M,)``, 1 for matching pairs.
        recall: the true positive rate to reach, in (0, 1].

    Returns:
        The fraction (0..1) of non-matching pairs with distance ``<=`` the threshold.
    """
    d = _as_numpy(distances, "distances").astype(np.float64, copy=False)
    y = _as_numpy(labels, "labels")
    if d.shape != y.shape:
        raise ValueError(f"distances and labels differ in length: {d.shape[0]} vs {y.shape[0]}")
    if not 0.0 < recall <= 1.0:
        raise ValueError(f"recall must be in (0, 1], got {recall}")
    if np.isnan(d).any():
        raise ValueError("distances contain NaN (non-finite descriptors?)")
    if y.dtype != np.bool_:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be 0/1 or boolean")
        y = y.astype(bool)
    positives = np.sort(d[y])
    negatives = d[~y]
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError(f"need matching and non-matching pairs, got {len(positives)} and {len(negatives)}")
    k = max(1, math.ceil(recall * len(positives)))
    threshold = positives[k - 1]
    return float(np.count_nonzero(negatives <= threshold)) / len(negatives)


def fpr95(distances: Any, labels: Any) -> float:
    """FPR at 95% recall (a fraction; papers print it in percent): ``fpr_at_recall(distances, labels, 0.95)``.

    >>> fpr95([0.1, 0.2, 0.3, 0.4], [1, 0, 1, 0])  # threshold 0.3 accepts the negative at 0.2
    0.5
    """
    return fpr_at_recall(distances, labels, 0.95)
