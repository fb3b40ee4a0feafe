"""The training-patch cache of image sequences: reused exactly when the sequence files, every patchify
parameter, the seed and the input size are the same; rebuilt when any of them changes."""
from __future__ import annotations

import numpy as np
import pytest

import descnet.data.patchify as patchify
from descnet.data.synth import SynthOptions, write_synthetic_sequences
from descnet.training.data import load_training_data


@pytest.fixture
def sequences(tmp_path):
    root = tmp_path / "seqs"
    write_synthetic_sequences(root, count=2, seed=5, options=SynthOptions(size=(240, 180)))
    return root


@pytest.fixture
def cuts(monkeypatch, tmp_path):
    """Counts the sequences actually cut (cache misses); the cache lives in tmp_path/cache."""
    monkeypatch.setenv("DESCNET_CACHE", str(tmp_path / "cache"))
    calls: list[str] = []
    original = patchify.sequence_patches

    def counting(sequence, *args, **kwargs):
        calls.append(sequence.name)
        return original(sequence, *args, **kwargs)

    monkeypatch.setattr(patchify, "sequence_patches", counting)
    return calls


def _load(root, size=32, seed=0, **patchify_options):
    cfg = {"source": "sequences", "root": str(root), "holdout": 0, "types": None, "sequences": None,
           "patchify": {"max_points": 60, **patchify_options}}
    points, _, _ = load_training_data(cfg, size, seed=seed)
    return points


def test_second_load_comes_from_the_cache(sequences, cuts, tmp_path):
    first = _load(sequences)
    assert sorted(cuts) == sorted(p.name for p in sequences.iterdir() if p.is_dir())
    entries = sorted((tmp_path / "cache" / "patches").glob("*.npz"))
    assert len(entries) == 2 and all(e.with_suffix(".json").is_file() for e in entries)
    cuts.clear()
    second = _load(sequences)
    assert cuts == []  # nothing cut again
    assert np.array_equal(first.patches, second.patches) and np.array_equal(first.labels, second.labels)
    assert first.patches.shape[1:] == (32, 32)


def test_a_changed_parameter_seed_or_size_rebuilds(sequences, cuts):
    _load(sequences)
    for change in ({"max_points": 50}, {"magnification": 6.0}, {"seed": 1}, {"size": 24}):
        cuts.clear()
        kwargs = dict(change)
        size, seed = kwargs.pop("size", 32), kwargs.pop("seed", 0)
        _load(sequences, size=size, seed=seed, **kwargs)
        assert len(cuts) == 2, change


def test_a_changed_file_rebuilds_only_its_sequence(sequences, cuts):
    _load(sequences)
    target = sorted(p for p in sequences.iterdir() if p.is_dir())[0]
    image = sorted(target.glob("3.*"))[0]
    data = bytearray(image.read_bytes())
    data[-1] ^= 0xFF  # one pixel value changes
    image.write_bytes(bytes(data))
    cuts.clear()
    _load(sequences)
    assert cuts == [target.name]


def test_an_unreadable_entry_is_cut_again(sequences, cuts, tmp_path):
    _load(sequences)
    for entry in (tmp_path / "cache" / "patches").glob("*.npz"):
        entry.write_bytes(b"broken")
    cuts.clear()
    _load(sequences)
    assert len(cuts) == 2
