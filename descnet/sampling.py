"""Training pairs for the hardest-in-batch loss: the pair sampler, batch assembly and "+" augmentation.

The data reduce to ``labels`` ``(N,)``: the 3D point of every patch (Brown's ``info.txt`` column 0, or the
``(sequence, row)`` of an HPatches-layout patch set flattened to one integer). Then

* :class:`PairSampler` draws, for every epoch, ``num_batches`` global batches of ``batch_size``
  (anchor, positive) patch index pairs; the pairs of one batch come from **distinct** 3D points (so every
  off-diagonal entry of the loss's distance matrix is a true negative), and the two patches of a pair are
  distinct patches of the same point. Each pair also gets a random transform code (see below). An epoch
  is a pure function of ``(seed, epoch)``: nothing to save for an exact resume, and every DDP rank
  computes the same global batches and keeps its own slice (:meth:`PairSampler.batches`).
* :class:`BatchAssembler` turns index pairs into float patches ``(b, 1, P, P)`` in [0, 1] and applies the
  HardNet "+" augmentation: the same flip / 90-degree rotation on both patches of a pair.

Everything is vectorised with NumPy/PyTorch: no Python loop over samples (HardNet's reference sampler
loops over 5M pairs in Python every epoch).

Transform codes ``t`` in ``0..7`` index the 8 symmetries of the square: ``flip = t & 1`` (mirror left-right
first), ``k = t >> 1`` (then rotate by ``k`` * 90 degrees counter-clockwise, as ``torch.rot90``). The
sampler always draws them, so enabling augmentation does not change which pairs are drawn.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

__all__ = ["PairSampler", "EpochPairs", "BatchAssembler", "transform_patches", "make_validation_pairs",
           "group_by_point"]


def _check_labels(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty (N,) array of 3D point ids, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers (3D point ids), got {labels.dtype}")
    return labels


def group_by_point(labels: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Group patch indices by 3D point (CSR layout): ``(N,) -> (offsets (P + 1,), members (N,))``.

    The patches of point ``p`` (``p`` in ``0..P-1``, points in increasing label order) are
    ``members[offsets[p]:offsets[p + 1]]``, in increasing index order.
    """
    labels = _check_labels(labels)
    members = np.argsort(labels, kind="stable")
    sorted_labels = labels[members]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    offsets = np.r_[starts, labels.size].astype(np.int64)
    return offsets, members.astype(np.int64)


@dataclass(frozen=True)
class EpochPairs:
    """One epoch of pairs: ``pairs`` ``(num_batches, batch, 2)`` int64 patch indices (anchor, positive),
    ``transforms`` ``(num_batches, batch)`` uint8 codes in ``0..7``, ``points`` ``(num_batches, batch)``
    int64 point ids (the label of both patches)."""

    pairs: np.ndarray
    transforms: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return self.pairs.shape[0]


class PairSampler:
    """Per-epoch (anchor, positive) pairs, distinct 3D points in every global batch, shardable by rank.

    Args:
        labels: ``(N,)`` integer 3D point id of every patch.
        pairs_per_epoch: pairs per epoch, rounded down to a whole number of global batches (at least one).
        batch_size: the global batch (all ranks together); divisible by ``world_size``.
        seed: the epoch ``e`` is drawn from ``numpy.random.SeedSequence([seed, e])``.
        rank, world_size: this process's slice of every global batch (DDP); rank ``r`` keeps pairs
            ``r * b : (r + 1) * b`` of each global batch, ``b = batch_size // world_size``.

    How a batch gets distinct points: the points with at least two patches are laid out in a fresh random
    permutation, which is cut into ``P // batch_size`` batches; the left-over ``P % batch_size`` points
    of that permutation are skipped and the next batch starts a new permutation. Every point is equally
    likely in every batch. Within a point, the anchor and positive are two distinct patches drawn uniformly.
    """

    def __init__(self, labels: np.ndarray | torch.Tensor, pairs_per_epoch: int, batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (the loss needs negatives), got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..world_size-1, got rank {rank}, world_size {world_size}")
        if batch_size % world_size:
            raise ValueError(f"batch_size ({batch_size}) must be divisible by the number of processes "
                             f"({world_size})")
        if pairs_per_epoch < batch_size:
            raise ValueError(f"pairs_per_epoch ({pairs_per_epoch}) must be at least batch_size ({batch_size})")
        offsets, members = group_by_point(labels)
        counts = np.diff(offsets)
        usable = np.flatnonzero(counts >= 2)
        if usable.size < batch_size:
            raise ValueError(f"batch_size ({batch_size}) exceeds the number of 3D points with at least two "
                             f"patches ({usable.size} of {counts.size} points): use a smaller batch or more data")
        self._offsets, self._members, self._counts = offsets, members, counts
        self._usable = usable
        self._point_ids = np.unique(_check_labels(labels))
        self.num_patches = int(members.size)
        self.num_points = int(usable.size)
        self.batch_size = int(batch_size)
        self.num_batches = int(pairs_per_epoch) // self.batch_size
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.local_batch_size = self.batch_size // self.world_size

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        return self.num_batches

    @property
    def pairs_per_epoch(self) -> int:
        return self.num_batches * self.batch_size

    def epoch(self, epoch: int) -> EpochPairs:
        """All global batches of ``epoch``: pairs ``(num_batches, batch_size, 2)``, codes, point ids."""
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, int(epoch)])))
        per_perm = self.num_points // self.batch_size
        num_perms = -(-self.num_batches // per_perm)
        # each row a fresh permutation of the usable points; its first per_perm * batch entries are used
        perms = rng.permuted(np.broadcast_to(self._usable, (num_perms, self.num_points)), axis=1)
        points = perms[:, :per_perm * self.batch_size].reshape(-1, self.batch_size)[:self.num_batches]
        counts = self._counts[points]
        u = rng.random((2,) + points.shape)
        first = (u[0] * counts).astype(np.int64)
        second = (u[1] * (counts - 1)).astype(np.int64)
        second += second >= first  # a distinct second patch, uniform over the other counts - 1
        base = self._offsets[points]
        pairs = np.stack([self._members[base + first], self._members[base + second]], axis=-1)
        transforms = rng.integers(0, 8, size=points.shape, dtype=np.uint8)
        return EpochPairs(pairs, transforms, self._point_ids[points])

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """This rank's batches of ``epoch`` from batch ``start`` on: ``(pairs (b, 2), transforms (b,))``."""
        drawn = self.epoch(epoch)
        lo, hi = self.rank * self.local_batch_size, (self.rank + 1) * self.local_batch_size
        for i in range(start, self.num_batches):
            yield drawn.pairs[i, lo:hi], drawn.transforms[i, lo:hi]


def transform_patches(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Apply transform code ``codes[i]`` (see the module docstring) to ``x[i]``.

    Shapes: ``x`` ``(B, ..., P, P)``, ``codes`` ``(B,)`` in ``0..7`` -> a new ``(B, ..., P, P)`` array.
    Vectorised per code (8 strided copies), not per sample. NumPy, single-threaded on purpose: it runs in
    the data thread next to the training step, and a second pool of OpenMP threads would fight the model's.
    """
    x, codes = np.asarray(x), np.asarray(codes)
    if x.ndim < 3 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"transform_patches expects square patches (B, ..., P, P), got {x.shape}")
    if codes.shape != (x.shape[0],) or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be ({x.shape[0]},) integers in 0..7, got {codes.dtype} {codes.shape}")
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(9))
    out = np.empty_like(x)
    for code in range(8):
        rows = order[bounds[code]:bounds[code + 1]]
        if rows.size:
            y = x[rows]
            y = y[..., ::-1] if code & 1 else y
            out[rows] = np.rot90(y, k=code >> 1, axes=(-2, -1))
    return out


class BatchAssembler:
    """Index pairs -> float patch batches, with the "+" augmentation applied identically to both patches.

    Args:
        patches: uint8 ``(N, P, P)`` array or tensor (all patches, already at the model's input size).
        flip: mirror a pair left-right when bit 0 of its code is set.
        rot90: rotate a pair by ``(code >> 1) * 90`` degrees.

    ``assembler(pairs (b, 2), codes (b,)) -> (anchors, positives)``, each a contiguous float32
    ``(b, 1, P, P)`` CPU tensor in [0, 1] (``uint8 / 255``, as :func:`descnet.features.inference.as_patch_tensor`). Pure NumPy, so it can run in a data thread while torch computes.
    """

    def __init__(self, patches: np.ndarray | torch.Tensor, flip: bool = False, rot90: bool = False) -> None:
        patches = patches.numpy() if isinstance(patches, torch.Tensor) else np.asarray(patches)
        if patches.ndim != 3 or patches.shape[1] != patches.shape[2] or patches.dtype != np.uint8:
            raise ValueError(f"patches must be a uint8 (N, P, P) array, got {patches.dtype} {patches.shape}")
        self.patches = patches
        self.flip, self.rot90 = bool(flip), bool(rot90)

    def __call__(self, pairs: np.ndarray, codes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.patches[np.asarray(pairs, dtype=np.int64)]  # (b, 2, P, P) uint8
        mask = (1 if self.flip else 0) | (6 if self.rot90 else 0)
        if mask:
            x = transform_patches(x, np.asarray(codes, dtype=np.int64) & mask)
        b, _, p, _ = x.shape
        out = np.empty((2, b, 1, p, p), dtype=np.float32)  # anchors and positives each contiguous
        np.divide(x.swapaxes(0, 1)[:, :, None], np.float32(255), out=out)
        out = torch.from_numpy(out)
        return out[0], out[1]


def make_validation_pairs(labels: np.ndarray | torch.Tensor, num_pairs: int, seed: int = 0) -> np.ndarray:
    """Fixed verification pairs for FPR95: ``(M, 3)`` int64 rows ``(patch1, patch2, is_match)``.

    Half positives (two distinct patches of a point with at least two patches, points uniform) and half
    negatives (two patches of different points, patches uniform), in shuffled order; ``M = num_pairs``
    rounded down to even. The same ``(labels, num_pairs, seed)`` always gives the same pairs.
    """
    labels = _check_labels(labels)
    offsets, members = group_by_point(labels)
    counts = np.diff(offsets)
    usable = np.flatnonzero(counts >= 2)
    if usable.size == 0 or counts.size < 2:
        raise ValueError("validation pairs need a point with at least two patches and at least two points")
    half = int(num_pairs) // 2
    if half < 1:
        raise ValueError(f"num_pairs must be at least 2, got {num_pairs}")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 0x7fa1])))
    points = usable[rng.integers(0, usable.size, half)]
    first = rng.integers(0, counts[points])
    second = rng.integers(0, counts[points] - 1)
    second += second >= first
    positives = np.stack([members[offsets[points] + first], members[offsets[points] + second]], axis=1)
    a = rng.integers(0, labels.size, 2 * half)
    b = rng.integers(0, labels.size, 2 * half)
    keep = np.flatnonzero(labels[a] != labels[b])
    while keep.size < half:  # few points: draw more until there are enough different-point pairs
        a2, b2 = rng.integers(0, labels.size, 2 * half), rng.integers(0, labels.size, 2 * half)
        a, b = np.r_[a, a2], np.r_[b, b2]
        keep = np.flatnonzero(labels[a] != labels[b])
    negatives = np.stack([a[keep[:half]], b[keep[:half]]], axis=1)
    rows = np.concatenate([np.c_[positives, np.ones(half, np.int64)], np.c_[negatives, np.zeros(half, np.int64)]])
    return rows[rng.permutation(rows.shape[0])].astype(np.int64)
