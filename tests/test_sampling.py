"""The pair sampler, batch assembly and the "+" augmentation (descnet.sampling)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from descnet.sampling import (BatchAssembler, PairSampler, group_by_point, make_validation_pairs,
                              transform_patches)


def _labels(num_points: int = 300, seed: int = 0) -> np.ndarray:
    """Brown-like labels: 1..6 patches per point (some singletons that can never form a pair), shuffled."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 7, num_points)
    labels = np.repeat(rng.permutation(10 * num_points)[:num_points], counts)  # arbitrary, non-dense ids
    return labels[rng.permutation(labels.size)].astype(np.int64)


def test_group_by_point_is_a_partition():
    labels = _labels()
    offsets, members = group_by_point(labels)
    assert offsets[0] == 0 and offsets[-1] == labels.size
    assert np.array_equal(np.sort(members), np.arange(labels.size))
    ids = np.unique(labels)
    for p in range(0, ids.size, 17):
        group = members[offsets[p]:offsets[p + 1]]
        assert np.array_equal(group, np.flatnonzero(labels == ids[p]))


def test_pairs_are_two_distinct_patches_of_one_point_and_batches_have_distinct_points():
    labels = _labels()
    sampler = PairSampler(labels, pairs_per_epoch=5000, batch_size=64, seed=1)
    drawn = sampler.epoch(0)
    assert drawn.pairs.shape == (5000 // 64, 64, 2) and len(sampler) == 5000 // 64
    a, p = drawn.pairs[..., 0], drawn.pairs[..., 1]
    assert np.all(a != p)
    assert np.array_equal(labels[a], labels[p])
    assert np.array_equal(labels[a], drawn.points)
    for batch in labels[a]:
        assert np.unique(batch).size == batch.size  # distinct 3D points in every batch
    counts = np.bincount(np.unique(labels, return_inverse=True)[1])
    assert np.all(counts[np.unique(np.unique(labels, return_inverse=True)[1][a])] >= 2)
    assert drawn.transforms.dtype == np.uint8 and drawn.transforms.max() <= 7


def test_sampling_is_roughly_uniform_over_points_and_patches():
    # 200 points with 2 or 4 patches: every usable point should be drawn about equally often, and within
    # a 4-patch point every ordered (anchor, positive) pair of distinct patches 1/12 of the time.
    labels = np.repeat(np.arange(200), np.where(np.arange(200) % 2, 2, 4))
    sampler = PairSampler(labels, pairs_per_epoch=200_000, batch_size=100, seed=3)
    drawn = sampler.epoch(0)
    per_point = np.bincount(drawn.points.ravel(), minlength=200)
    assert per_point.min() > 0.85 * 1000 and per_point.max() < 1.15 * 1000
    offsets, _ = group_by_point(labels)
    four = drawn.points.ravel() % 2 == 0
    a = drawn.pairs[..., 0].ravel()[four] - offsets[drawn.points.ravel()[four]]
    p = drawn.pairs[..., 1].ravel()[four] - offsets[drawn.points.ravel()[four]]
    freq = np.bincount(a * 4 + p, minlength=16).reshape(4, 4) / a.size
    assert np.all(np.diag(freq) == 0)
    off = freq[~np.eye(4, dtype=bool)]
    assert np.allclose(off, 1 / 12, atol=0.01)


def test_determinism_by_seed_and_epoch():
    labels = _labels()
    first = PairSampler(labels, 3000, 50, seed=7).epoch(2)
    again = PairSampler(labels, 3000, 50, seed=7).epoch(2)
    assert np.array_equal(first.pairs, again.pairs) and np.array_equal(first.transforms, again.transforms)
    other_epoch = PairSampler(labels, 3000, 50, seed=7).epoch(3)
    other_seed = PairSampler(labels, 3000, 50, seed=8).epoch(2)
    assert not np.array_equal(first.pairs, other_epoch.pairs)
    assert not np.array_equal(first.pairs, other_seed.pairs)


def test_resuming_mid_epoch_gives_the_remaining_batches():
    sampler = PairSampler(_labels(), 3000, 50, seed=7)
    full = list(sampler.batches(1))
    tail = list(sampler.batches(1, start=25))
    assert len(tail) == len(full) - 25
    for (p1, t1), (p2, t2) in zip(full[25:], tail):
        assert np.array_equal(p1, p2) and np.array_equal(t1, t2)


@pytest.mark.parametrize("world_size", [2, 4])
def test_sharding_covers_the_global_batch_without_overlap(world_size):
    labels = _labels()
    single = list(PairSampler(labels, 2000, 64, seed=5).batches(0))
    shards = [list(PairSampler(labels, 2000, 64, seed=5, rank=r, world_size=world_size).batches(0))
              for r in range(world_size)]
    assert all(len(s) == len(single) for s in shards)
    for i, (pairs, codes) in enumerate(single):
        local = [s[i][0] for s in shards]
        assert all(x.shape == (64 // world_size, 2) for x in local)
        assert np.array_equal(np.concatenate(local), pairs)  # rank order = global order
        assert np.array_equal(np.concatenate([s[i][1] for s in shards]), codes)
        points = np.concatenate([labels[x[:, 0]] for x in local])
        assert np.unique(points).size == 64  # no point on two ranks


def test_sampler_rejects_bad_settings():
    labels = _labels(num_points=40)
    with pytest.raises(ValueError, match="divisible by the number of processes"):
        PairSampler(labels, 100, 10, world_size=3)
    with pytest.raises(ValueError, match="exceeds the number of 3D points with at least two patches"):
        PairSampler(labels, 1000, 100)
    with pytest.raises(ValueError, match="at least batch_size"):
        PairSampler(labels, 5, 10)
    with pytest.raises(TypeError, match="integers"):
        PairSampler(labels.astype(float), 100, 10)
    with pytest.raises(ValueError, match="rank"):
        PairSampler(labels, 100, 10, rank=2, world_size=2)


def test_transform_codes_are_the_eight_symmetries_of_the_square():
    x = torch.arange(2 * 5 * 5).reshape(2, 5, 5)
    for code in range(8):
        got = transform_patches(x.numpy()[None], np.array([code]))[0]
        expected = torch.rot90(torch.flip(x, dims=(-1,)) if code & 1 else x, k=code >> 1, dims=(-2, -1))
        assert np.array_equal(got, expected.numpy())
    images = {transform_patches(x.numpy()[:1], np.array([c])).tobytes() for c in range(8)}
    assert len(images) == 8  # all different
    mixed = transform_patches(np.stack([x.numpy()] * 8), np.arange(8)[::-1].copy())
    for i, code in enumerate(range(7, -1, -1)):
        assert np.array_equal(mixed[i], transform_patches(x.numpy()[None], np.array([code]))[0])


def test_augmentation_applies_the_same_transform_to_both_patches():
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, (10, 8, 8), dtype=np.uint8)
    pairs = np.array([[i, (i + 3) % 10] for i in range(10)] * 4)
    codes = np.arange(40, dtype=np.uint8) % 8
    plain_a, plain_p = BatchAssembler(patches)(pairs, codes)
    assert plain_a.shape == (40, 1, 8, 8) and plain_a.dtype == torch.float32
    assert torch.equal(plain_a[:, 0], torch.from_numpy(patches[pairs[:, 0]]).float() / 255)
    a, p = BatchAssembler(patches, flip=True, rot90=True)(pairs, codes)
    for i, code in enumerate(codes):
        for out, src in ((a, pairs[i, 0]), (p, pairs[i, 1])):
            img = torch.from_numpy(patches[src]).float() / 255
            img = torch.flip(img, dims=(-1,)) if code & 1 else img
            assert torch.equal(out[i, 0], torch.rot90(img, k=int(code) >> 1))
    # flip only: rotations are ignored; rot90 only: flips are ignored
    a_flip, _ = BatchAssembler(patches, flip=True)(pairs, codes)
    a_rot, _ = BatchAssembler(patches, rot90=True)(pairs, codes)
    for i, code in enumerate(codes):
        img = torch.from_numpy(patches[pairs[i, 0]]).float() / 255
        assert torch.equal(a_flip[i, 0], torch.flip(img, dims=(-1,)) if code & 1 else img)
        assert torch.equal(a_rot[i, 0], torch.rot90(img, k=int(code) >> 1))


def test_validation_pairs_are_balanced_and_correctly_labelled():
    labels = _labels()
    rows = make_validation_pairs(labels, 1001, seed=2)
    assert rows.shape == (1000, 3) and rows.dtype == np.int64
    assert rows[:, 2].sum() == 500
    same = labels[rows[:, 0]] == labels[rows[:, 1]]
    assert np.array_equal(same, rows[:, 2] == 1)
    assert np.all(rows[rows[:, 2] == 1, 0] != rows[rows[:, 2] == 1, 1])
    assert np.array_equal(rows, make_validation_pairs(labels, 1001, seed=2))
    assert not np.array_equal(rows, make_validation_pairs(labels, 1001, seed=3))
