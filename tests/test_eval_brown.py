"""The Brown benchmark (descnet.eval.brown, ``descnet eval brown``): FPR95 on Brown pair files written in the
original layout; the library, the command line and the Trainer's validation give the same figure."""
from __future__ import annotations

import json

import numpy as np
import pytest

from descnet.cli.main import main
from descnet.data.phototour import write_phototour
from descnet.eval.brown import evaluate_brown, pair_distances


def make_subset(root):
    """12 points: points 0..9 have two identical patches (matching pairs at distance 0); points 10 and 11
    have one patch each, and the two patches are identical (a non-matching pair at distance 0)."""
    rng = np.random.default_rng(0)
    singles = rng.integers(0, 256, (11, 64, 64), dtype=np.uint8)
    patches = np.concatenate([np.repeat(singles[:10], 2, axis=0), singles[10:11], singles[10:11]])
    labels = np.r_[np.repeat(np.arange(10), 2), 10, 11]
    positives = [(2 * i, 2 * i + 1) for i in range(10)]
    negatives = [(2 * i, 2 * ((i + 1) % 10) + 1) for i in range(10)] + [(20, 21)]
    pairs = np.array(positives + negatives)
    write_phototour(root, "toy", patches, labels, pairs, pairs_name="m50_21_21_0.txt")
    # a second pair file in the published format: patch1 point1 0 patch2 point2 0 0
    other = [(0, 1), (0, 3), (2, 5)]  # one match, two non-matches
    (root / "toy" / "m50_3_3_0.txt").write_text(
        "".join(f"{a} {labels[a]} 0 {b} {labels[b]} 0 0\n" for a, b in other))
    return patches, labels, pairs


def test_pair_distances_brute_force():
    rng = np.random.default_rng(1)
    desc = rng.normal(size=(30, 8)).astype(np.float32)
    pairs = rng.integers(0, 30, (50, 3))
    want = [np.linalg.norm(desc[a].astype(np.float64) - desc[b]) for a, b, _ in pairs]
    np.testing.assert_allclose(pair_distances(desc, pairs), want, rtol=1e-12)


def test_cli_fpr95_hand_made(tmp_path, capsys):
    make_subset(tmp_path)
    out = tmp_path / "out"
    assert main(["eval", "brown", "--root", str(tmp_path), "--subset", "toy", "--model", "pixels",
                 "--all-pairs", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "FPR95 %" in printed and "m50_21_21_0.txt" in printed
    res = json.loads((out / "brown_toy.json").read_text())
    files = res["models"]["pixels"]["pairs"]
    # threshold = 10th of 10 positive distances = 0; only the identical non-matching pair is accepted
    assert files["m50_21_21_0.txt"]["fpr95"] == pytest.approx(1 / 11, abs=1e-15)
    assert files["m50_21_21_0.txt"]["positives"] == 10 and files["m50_21_21_0.txt"]["pairs"] == 21
    assert files["m50_3_3_0.txt"]["fpr95"] == 0.0
    for suffix in (".png", ".pdf"):
        assert (out / f"brown_toy_roc{suffix}").stat().st_size > 1000
    assert not list(out.glob(".brown-*"))


def test_cli_errors_leave_results_alone(tmp_path, capsys):
    make_subset(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "brown_toy.json").write_text("old")
    assert main(["eval", "brown", "--root", str(tmp_path), "--subset", "toy", "--model", "pixels",
                 "--pairs", "m50_9_9_0.txt", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "m50_9_9_0.txt: no such pairs file" in err and "m50_21_21_0.txt" in err
    assert main(["eval", "brown", "--root", str(tmp_path), "--subset", "nowhere", "--model", "pixels",
                 "--out", str(out), "--quiet"]) == 2
    assert "no Brown subset 'nowhere'" in capsys.readouterr().err
    assert main(["eval", "brown", "--root", str(tmp_path), "--subset", "toy", "--model", "nosuchmodel",
                 "--out", str(out), "--quiet"]) == 2
    assert "nosuchmodel" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["brown_toy.json"]
    assert (out / "brown_toy.json").read_text() == "old"


def test_cli_reruns_add_models_and_warn_on_constant_descriptors(tmp_path, capsys, constant_weights):
    make_subset(tmp_path)
    out = tmp_path / "out"
    (out / ".brown-x1y2z3").mkdir(parents=True)  # the staging folder of a killed run of an older version
    (out / ".brown-x1y2z3" / "brown_toy.json").write_text("{}")
    base = ["eval", "brown", "--root", str(tmp_path), "--subset", "toy", "--out", str(out), "--quiet"]
    base_pairs = base + ["--pairs", "m50_21_21_0.txt"]
    assert main(base_pairs + ["--model", "pixels"]) == 0
    first = json.loads((out / "brown_toy.json").read_text())["models"]["pixels"]
    assert first["warnings"] == [] and len(first["roc"]["fpr"]) > 2
    assert main(base_pairs + ["--model", str(constant_weights)]) == 0
    printed = capsys.readouterr().out
    assert "WARNING: w-flat: all descriptors are identical" in printed
    assert "kept the earlier results of pixels" in printed
    res = json.loads((out / "brown_toy.json").read_text())["models"]
    assert list(res) == ["pixels", "w-flat"] and res["pixels"] == first
    assert "all descriptors are identical" in res["w-flat"]["warnings"][0]
    assert sorted(p.name for p in out.iterdir()) == [".descnet-manifest.json", "brown_toy.json", "brown_toy_roc.pdf",
                                                     "brown_toy_roc.png"]
    before = (out / "brown_toy.json").read_bytes()
    assert main(base + ["--model", "pixels", "--pairs", "m50_3_3_0.txt"]) == 2
    captured = capsys.readouterr()
    assert "brown_toy.json: holds results of another setting (pairs_files differ)" in captured.err
    assert "describing" not in captured.out  # refused before any work
    assert (out / "brown_toy.json").read_bytes() == before
    assert main(base + ["--model", "pixels", "--pairs", "m50_3_3_0.txt", "--overwrite"]) == 0
    assert list(json.loads((out / "brown_toy.json").read_text())["models"]) == ["pixels"]


def test_cli_an_unreadable_earlier_result_is_not_replaced_silently(tmp_path, capsys):
    make_subset(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "brown_toy.json").write_text("my own notes")
    base = ["eval", "brown", "--root", str(tmp_path), "--subset", "toy", "--out", str(out), "--quiet",
            "--pairs", "m50_21_21_0.txt", "--model", "pixels"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "brown_toy.json: exists and descnet did not write it" in err and "describing" not in err
    assert (out / "brown_toy.json").read_text() == "my own notes"
    assert sorted(p.name for p in out.iterdir()) == ["brown_toy.json"]
    assert main(base + ["--overwrite"]) == 2  # --overwrite replaces only what descnet wrote (issue 24)
    assert "brown_toy.json: exists and descnet did not write it" in capsys.readouterr().err
    assert (out / "brown_toy.json").read_text() == "my own notes"
    (out / "brown_toy.json").unlink()
    assert main(base) == 0
    assert "pixels" in json.loads((out / "brown_toy.json").read_text())["models"]


def _random_subset(root, seed=3):
    """60 random patches of 30 points and 200 random pairs (about half matching): FPR95 strictly between 0 and 1
    for an untrained network."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(30), 2)
    base = rng.integers(0, 256, (30, 64, 64)).astype(np.int16)
    patches = np.clip(np.repeat(base, 2, axis=0) + rng.integers(-250, 251, (60, 64, 64)), 0, 255).astype(np.uint8)
    pos = [(2 * i, 2 * i + 1) for i in rng.integers(0, 30, 100)]
    neg = [(a, b) for a, b in rng.integers(0, 60, (300, 2)) if labels[a] != labels[b]][:100]
    write_phototour(root, "rand", patches, labels, np.array(pos + neg), pairs_name="m50_200_200_0.txt")


def _saved_tfeat(path, seed=0):
    import torch

    from descnet.models import create_model

    torch.manual_seed(seed)
    model = create_model("tfeat")
    torch.save({"descnet": 1, "model": {"name": "tfeat", "options": dict(model.descnet_options)},
                "state_dict": model.state_dict()}, path)
    return path


def test_evaluate_brown_from_python_equals_the_cli(tmp_path, capsys):
    from descnet.data.phototour import PhotoTour
    from descnet.models import resolve_model

    _random_subset(tmp_path)
    weights = _saved_tfeat(tmp_path / "t.pt")
    out = tmp_path / "out"
    assert main(["eval", "brown", "--root", str(tmp_path), "--subset", "rand", "--model", str(weights),
                 "--pairs", "m50_200_200_0.txt", "--out", str(out), "--quiet"]) == 0
    (cli,) = json.loads((out / "brown_rand.json").read_text())["models"].values()
    data = PhotoTour(tmp_path, "rand")
    pairs = {"m50_200_200_0.txt": data.read_pairs("m50_200_200_0.txt")}
    lib = evaluate_brown(resolve_model(weights), data.patches, pairs, label="t")
    value = lib["pairs"]["m50_200_200_0.txt"]["fpr95"]
    assert 0.0 < value < 1.0
    assert value == cli["pairs"]["m50_200_200_0.txt"]["fpr95"]
    assert lib["roc"] == cli["roc"] and lib["dim"] == cli["dim"] == 128
    # only the patches the pairs use are described; indices past the patches are refused with the list's name
    with pytest.raises(ValueError, match="pairs bad: patch indices must be in"):
        evaluate_brown(resolve_model(weights), data.patches, {"bad": np.array([[0, 60, 1]])})



def test_benchmark_brown_refuses_two_models_of_one_name_before_any_work(tmp_path):
    from descnet.eval.brown import benchmark_brown

    with pytest.raises(ValueError, match="two model SPECs are both named sift"):
        benchmark_brown(tmp_path / "no-such-root", "liberty", ["sift", "sift"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
