"""AP and ROC AUC (official HPatches semantics) and FPR95, against brute-force references and known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from descnet.eval import fpr95, fpr_at_recall
from descnet.eval.metrics import average_precision, precision_recall, roc, roc_auc


# ---------------------------------------------------------------------------- brute-force references
def brute_ranking(distances, labels):
    """Labels in the order of the official stable ranking: ascending distance, ties by input position;
    +inf never retrieved."""
    items = sorted(range(len(distances)), key=lambda i: (distances[i], i))
    return [bool(labels[i]) for i in items if distances[i] != math.inf]


def brute_ap(distances, labels, numpos=None):
    """Trapezoid of precision over recall, walking the ranking one item at a time."""
    p = numpos if numpos is not None else int(sum(labels))
    ranked = brute_ranking(distances, labels)
    tp = fp = 0
    prec_prev, rec_prev, area = 1.0, 0.0, 0.0  # the curve starts at (recall 0, precision 1)
    for positive in ranked:
        tp, fp = tp + positive, fp + (not positive)
        prec = max(tp, 1e-10) / max(tp + fp, 1e-10)
        rec = tp / max(p, 1e-10)
        area += (rec - rec_prev) * (prec + prec_prev) / 2
        prec_prev, rec_prev = prec, rec
    return area


def brute_auc(distances, labels):
    """Share of (positive, negative) pairs where the positive is ranked first (ties: input order)."""
    pos = [i for i in range(len(labels)) if labels[i]]
    neg = [i for i in range(len(labels)) if not labels[i]]
    before = sum((distances[p], p) < (distances[n], n) for p in pos for n in neg)
    return before / (len(pos) * len(neg))


def hardnet_error_rate_at_95_recall(labels, distances):
    """HardNet's ErrorRateAt95Recall (Mishchuk et al. code), on distances."""
    labels = labels[np.argsort(distances, kind="stable")]
    threshold_index = np.argmax(np.cumsum(labels) >= 0.95 * np.sum(labels))
    fp = np.sum(labels[:threshold_index] == 0)
    tn = np.sum(labels[threshold_index:] == 0)
    return fp / (fp + tn)


# ---------------------------------------------------------------------------------------------- AP, AUC
@pytest.mark.parametrize("seed", range(6))
def test_ap_and_auc_match_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    d = rng.integers(0, 6, n).astype(float)  # few distinct values: many ties
    y = rng.random(n) < 0.4
    y[0], y[1] = True, False
    assert average_precision(d, y) == pytest.approx(brute_ap(d, y), abs=1e-12)
    assert roc_auc(d, y) == pytest.approx(brute_auc(d, y), abs=1e-12)
    numpos = int(y.sum()) + int(rng.integers(0, 5))  # missing positives lower the recall
    assert average_precision(d, y, numpos=numpos) == pytest.approx(brute_ap(d, y, numpos), abs=1e-12)
    d[rng.random(n) < 0.2] = np.inf  # never retrieved
    assert average_precision(d, y) == pytest.approx(brute_ap(d, y), abs=1e-12)


def test_ap_known_answers():
    # correct, wrong, wrong, correct (ties keep input order), recall over 4: 1/4 + (1/4)(1/3 + 1/2)/2 = 17/48
    assert average_precision([0, 0, 0, 0], [1, 0, 0, 1], numpos=4) == pytest.approx(17 / 48, abs=1e-15)
    assert average_precision([0, 0, 0, 0], [1, 0, 0, 1]) == pytest.approx(1 / 2 + (1 / 3 + 1 / 2) / 4, abs=1e-15)
    # distances 1 (correct), 2 (wrong), 8 (correct), recall over 3: 1/3 + (1/3)(1/2 + 2/3)/2 = 19/36
    assert average_precision([8.0, 2.0, 1.0], [1, 0, 1], numpos=3) == pytest.approx(19 / 36, abs=1e-15)
    # a negative first: precision before the first positive is 1e-10 / 1, not 1
    assert average_precision([0.0, 1.0], [0, 1]) == pytest.approx((0.5 + 1e-10) / 2, abs=1e-18)
    assert average_precision([1.0, 2.0], [1, 1]) == 1.0
    precision, recall = precision_recall([1.0, 2.0, 3.0], [1, 0, 1])
    np.testing.assert_allclose(precision, [1, 1, 0.5, 2 / 3])
    np.testing.assert_allclose(recall, [0, 0.5, 0.5, 1])


def test_auc_known_answers():
    assert roc_auc([1, 2, 3, 4], [1, 1, 0, 0]) == 1.0
    assert roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 0.0
    assert roc_auc([1, 1], [0, 1]) == 0.0  # tie: the negative comes first in the input
    assert roc_auc([1, 1], [1, 0]) == 1.0
    fpr, tpr = roc([1.0, 2.0, 3.0], [1, 0, 1])
    np.testing.assert_allclose(fpr, [0, 0, 1, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1])


def test_metric_input_errors():
    with pytest.raises(ValueError, match="differ in length"):
        average_precision([1.0, 2.0], [1])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([np.nan, 1.0], [1, 0])
    with pytest.raises(ValueError, match="numpos"):
        average_precision([1.0, 2.0], [1, 1], numpos=1)
    with pytest.raises(ValueError, match="0/1"):
        average_precision([1.0, 2.0], [2, 0])


# --------------------------------------------------------------------------------------------- FPR95
def test_fpr95_exact_on_evenly_spaced_distributions():
    pos = (np.arange(1000) + 0.5) / 1000  # uniform on (0, 1)
    neg = 0.5 + (np.arange(1000) + 0.5) / 1000  # uniform on (0.5, 1.5)
    d = np.concatenate([neg, pos])
    y = np.concatenate([np.zeros(1000), np.ones(1000)])
    # threshold = 950th smallest positive = 0.9495; negatives <= it: 0.5005 .. 0.9495 -> 450
    assert fpr95(d, y) == pytest.approx(0.45, abs=1e-15)
    assert fpr_at_recall(d, y, 0.5) == 0.0
    assert fpr_at_recall(d, y, 1.0) == pytest.approx(0.5, abs=1e-15)


def test_fpr95_gaussians_match_the_analytic_value():
    rng = np.random.default_rng(0)
    n = 200_000
    d = np.concatenate([rng.normal(0, 1, n), rng.normal(2, 1, n)])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    z95 = 1.6448536269514722  # Phi^-1(0.95)
    expected = 0.5 * (1 + math.erf((z95 - 2) / math.sqrt(2)))  # P(neg <= t) = Phi(z95 - 2) = 0.3613
    assert fpr95(d, y) == pytest.approx(expected, abs=4e-3)


def test_fpr95_equals_hardnet_without_ties_and_counts_ties():
    rng = np.random.default_rng(1)
    for _ in range(5):
        d = rng.random(997)
        y = (rng.random(997) < 0.5).astype(int)
        assert fpr95(d, y) == pytest.approx(hardnet_error_rate_at_95_recall(y, d), abs=1e-15)
    assert fpr95(np.zeros(10), np.arange(10) % 2) == 1.0  # all tied: every negative is accepted
    # torch tensors work too
    assert fpr95(torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([1, 0, 1, 0])) == 0.5


def test_fpr95_errors():
    with pytest.raises(ValueError, match="matching and non-matching"):
        fpr95([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        fpr95([np.nan, 0.2], [1, 0])
    with pytest.raises(ValueError, match="recall"):
        fpr_at_recall([0.1, 0.2], [1, 0], 0.0)



def test_degenerate_descriptor_sets_are_recognised():
    from descnet.eval.metrics import degenerate_warning

    rng = np.random.default_rng(0)
    real = rng.normal(size=(500, 16)).astype(np.float32)
    assert degenerate_warning(real, "real") is None
    assert "all descriptors are identical" in degenerate_warning(np.zeros((500, 16), np.float32), "zero")
    few = real[rng.integers(0, 20, 500)]  # 20 distinct descriptors for 500 patches
    assert "only 20 distinct descriptors among 500 patches" in degenerate_warning(few, "few")
    big = np.repeat(real[:3], 20000, axis=0)  # sampled, still recognised
    assert "only 3 distinct descriptors among 20000 patches" in degenerate_warning(big, "big")
    assert degenerate_warning(real[:1], "one") is None
