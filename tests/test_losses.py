"""The hardest-in-batch triplet loss against a brute-force double loop."""
from __future__ import annotations

import math

import pytest
import torch

from descnet.losses import distance_matrix, hardest_in_batch_triplet


def brute_force(a: torch.Tensor, p: torch.Tensor, margin: float, anchor_swap: bool, thr: float = 0.008):
    a, p = a.double(), p.double()
    n = len(a)
    d = [[math.sqrt(float(((a[i] - p[j]) ** 2).sum()) + 1e-6) for j in range(n)] for i in range(n)]
    losses, negs = [], []
    for i in range(n):
        candidates = [d[i][j] for j in range(n) if j != i and d[i][j] >= thr]
        if anchor_swap:
            candidates += [d[j][i] for j in range(n) if j != i and d[j][i] >= thr]
        neg = min(candidates) if candidates else math.inf
        negs.append(neg)
        losses.append(max(0.0, margin + d[i][i] - neg))
    return sum(losses) / n, [d[i][i] for i in range(n)], negs


@pytest.mark.parametrize("anchor_swap", [True, False])
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_loss_matches_brute_force(anchor_swap, margin):
    torch.manual_seed(7)
    a = torch.nn.functional.normalize(torch.randn(12, 8), dim=1)
    p = torch.nn.functional.normalize(a + 0.4 * torch.randn(12, 8), dim=1)
    loss, pos, neg = hardest_in_batch_triplet(a, p, margin=margin, anchor_swap=anchor_swap, return_distances=True)
    ref_loss, ref_pos, ref_neg = brute_force(a, p, margin, anchor_swap)
    assert loss.item() == pytest.approx(ref_loss, abs=1e-5)
    torch.testing.assert_close(pos.double(), torch.tensor(ref_pos, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(neg.double(), torch.tensor(ref_neg, dtype=torch.float64), atol=1e-5, rtol=0)


def test_anchor_swap_takes_the_column_minimum():
    # p_0 is the hardest negative of a_2 only through the column of anchor 0 (anchor swap)
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    p = torch.tensor([[0.9, 0.1], [0.0, 1.0], [-0.7, -0.7]])
    _, _, neg_swap = hardest_in_batch_triplet(a, p, anchor_swap=True, return_distances=True)
    _, _, neg_plain = hardest_in_batch_triplet(a, p, anchor_swap=False, return_distances=True)
    d = distance_matrix(a, p)
    assert neg_plain[0] == pytest.approx(min(d[0, 1], d[0, 2]).item())
    assert neg_swap[0] == pytest.approx(min(d[0, 1], d[0, 2], d[1, 0], d[2, 0]).item())
    assert (neg_swap <= neg_plain + 1e-7).all()


def test_near_duplicates_are_not_negatives():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(6, 16), dim=1)
    p = a.clone()
    p[3] = a[3] + 0.1  # keep pair 3 apart from its anchor
    a[1] = p[0] + 1e-4  # anchor 1 is a near-duplicate of positive 0: distance < 0.008 must be skipped
    loss, pos, neg = hardest_in_batch_triplet(a, p, return_distances=True)
    ref_loss, _, ref_neg = brute_force(a, p, 1.0, True)
    assert loss.item() == pytest.approx(ref_loss, abs=1e-5)
    assert neg[1].item() > 0.008 and neg[0].item() > 0.008
    torch.testing.assert_close(neg.double(), torch.tensor(ref_neg, dtype=torch.float64), atol=1e-5, rtol=0)


def test_loss_gradients_and_bad_input():
    a = torch.randn(8, 4, requires_grad=True)
    p = torch.randn(8, 4, requires_grad=True)
    hardest_in_batch_triplet(a, p).backward()
    assert a.grad.abs().sum() > 0 and p.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(n, D\)"):
        hardest_in_batch_triplet(torch.randn(8, 4), torch.randn(7, 4))
    with pytest.raises(ValueError, match="at least 2"):
        hardest_in_batch_triplet(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(TypeError, match="floating"):
        hardest_in_batch_triplet(torch.ones(3, 4, dtype=torch.long), torch.ones(3, 4, dtype=torch.long))
