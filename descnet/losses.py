"""The hardest-in-batch triplet margin loss of HardNet, with the mining kept apart from the loss.

Given a batch of n matching pairs ``(a_i, p_i)`` of n distinct 3D points:

* :func:`distance_matrix` -- ``D[i, j] = ||a_i - p_j||``;
* :func:`mine_hardest_negatives` -- positive ``D[i, i]`` and the hardest negative: the row minimum and, with
  anchor swap, the column minimum, over off-diagonal entries not closer than ``duplicate_threshold``
  (near-duplicate patches of other points are not negatives);
* :func:`triplet_margin` -- ``mean(max(0, margin + pos - neg))``;
* :func:`hardest_in_batch_triplet` -- the three together.
"""
from __future__ import annotations

import torch

__all__ = ["distance_matrix", "mine_hardest_negatives", "triplet_margin", "hardest_in_batch_triplet"]

DUPLICATE_THRESHOLD = 0.008


def _check_pairs(anchors: torch.Tensor, positives: torch.Tensor) -> None:
    if anchors.ndim != 2 or positives.ndim != 2 or anchors.shape != positives.shape:
        raise ValueError(f"anchors and positives must both be (n, D), got {tuple(anchors.shape)} "
                         f"and {tuple(positives.shape)}")
    if anchors.shape[0] < 2:
        raise ValueError("the hardest-in-batch loss needs at least 2 pairs in a batch")
    if not anchors.is_floating_point() or not positives.is_floating_point():
        raise TypeError(f"descriptors must be floating point, got {anchors.dtype} and {positives.dtype}")


def distance_matrix(anchors: torch.Tensor, positives: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Pairwise L2 distances ``(n, D), (m, D) -> (n, m)``, ``sqrt(max(d^2, 0) + eps)`` as in HardNet."""
    sq = (anchors.pow(2).sum(1, keepdim=True) + positives.pow(2).sum(1).unsqueeze(0)
          - 2.0 * anchors @ positives.t())
    return torch.sqrt(sq.clamp_min(0.0) + eps)


def mine_hardest_negatives(distances: torch.Tensor, anchor_swap: bool = True,
                           duplicate_threshold: float = DUPLICATE_THRESHOLD) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, n)`` distances -> ``(pos, neg)``, each ``(n,)``: ``D[i, i]`` and the hardest valid negative."""
    n = distances.shape[0]
    pos = torch.diagonal(distances)
    eye = torch.eye(n, dtype=torch.bool, device=distances.device)
    excluded = eye | (distances < duplicate_threshold)
    masked = distances.masked_fill(excluded, float("inf"))
    neg = masked.min(dim=1).values
    if anchor_swap:
        neg = torch.minimum(neg, masked.min(dim=0).values)
    return pos, neg


def triplet_margin(pos: torch.Tensor, neg: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """``mean(max(0, margin + pos - neg))``; an infinite ``neg`` (no valid negative) contributes 0."""
    return torch.clamp(margin + pos - neg, min=0.0).mean()


def hardest_in_batch_triplet(anchors: torch.Tensor, positives: torch.Tensor, margin: float = 1.0,
                             anchor_swap: bool = True, duplicate_threshold: float = DUPLICATE_THRESHOLD,
                             return_distances: bool = False):
    """HardNet loss of ``(n, D)`` anchors and their ``(n, D)`` positives.

    Returns the mean loss, or ``(loss, pos, neg)`` with the ``(n,)`` positive and hardest negative
    distances (detached) when ``return_distances`` is true.
    """
    _check_pairs(anchors, positives)
    pos, neg = mine_hardest_negatives(distance_matrix(anchors, positives), anchor_swap, duplicate_threshold)
    loss = triplet_margin(pos, neg, margin)
    if return_distances:
        return loss, pos.detach(), neg.detach()
    return loss
