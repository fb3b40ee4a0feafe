"""Each model's recommended matcher: the one resolution rule, the choice rule, the shipped weights' records, and
the commands that use it when no matcher is given."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from descnet.eval.matcher_choice import choose_matcher, matcher_candidates, matcher_curve
from descnet.features.files import Features
from descnet.features.options import LOWE_MATCHING, MatchOptions, recommended_match_options, recommended_matcher
from descnet.models.pretrained import PRETRAINED, SHIPPED_DIR

SHIPPED = [e.name for e in PRETRAINED.values() if e.shipped]


def test_explicit_options_win_then_the_recommendation_then_the_default():
    fallback = MatchOptions("smnn", 0.8, "fundamental", "ransac", 2.0)
    recommended = PRETRAINED["descnet-hardnet-csa"].matching
    options, origin = recommended_match_options("descnet-hardnet-csa", default=fallback)
    assert (options.matcher, options.ratio) == (recommended["matcher"], recommended["ratio"])
    assert "descnet-hardnet-csa's recommended matcher" in origin
    assert (options.geometry, options.estimator, options.threshold) == ("fundamental", "ransac", 2.0)
    options, origin = recommended_match_options("descnet-hardnet-csa", "mnn", default=fallback)
    assert (options.matcher, options.ratio, origin) == ("mnn", None, "given")
    options, origin = recommended_match_options("descnet-hardnet-csa", ratio=0.75, default=fallback)
    assert (options.matcher, options.ratio, origin) == ("smnn", 0.75, "given")  # a ratio alone: a ratio matcher
    options, origin = recommended_match_options("hardnet-liberty", default=fallback)  # published: none recorded
    assert (options, origin) == (fallback, "default")
    for name in ("opencv-sift", "opencv-rootsift", "sift", "rootsift"):  # Lowe's 0.8 for SIFT and RootSIFT
        options, origin = recommended_match_options(name)
        assert (options.matcher, options.ratio) == (LOWE_MATCHING["matcher"], LOWE_MATCHING["ratio"]), name
        assert "Lowe" in origin
    with pytest.raises(ValueError, match="ratio applies to the snn and smnn matchers, not mnn"):
        recommended_match_options("descnet-hardnet-csa", "mnn", 0.9)


def test_a_resolved_module_and_a_weights_file_carry_the_recommendation(tmp_path):
    from descnet.models import resolve_model

    model = resolve_model("descnet-hardnet-csa")
    assert model.descnet_matching == PRETRAINED["descnet-hardnet-csa"].matching
    assert recommended_matcher(model)["matcher"] == model.descnet_matching["matcher"]
    obj = torch.load(SHIPPED_DIR / "descnet-hardnet.pt", map_location="cpu", weights_only=True)
    obj["info"]["matching"] = {"matcher": "smnn", "ratio": 0.86}
    torch.save(obj, tmp_path / "mine.pt")
    assert recommended_matcher(str(tmp_path / "mine.pt"))["ratio"] == 0.86
    assert resolve_model(str(tmp_path / "mine.pt")).descnet_matching["ratio"] == 0.86
    del obj["info"]["matching"]
    torch.save(obj, tmp_path / "plain.pt")
    assert recommended_matcher(str(tmp_path / "plain.pt")) is None


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_record_their_matcher_in_file_registry_and_card(name):
    entry = PRETRAINED[name]
    obj = torch.load(SHIPPED_DIR / entry.file, map_location="cpu", weights_only=True)
    record = obj["info"]["matching"]
    assert entry.matching == {"matcher": record["matcher"], "ratio": record["ratio"]}
    # chosen by the rule on its own curve, never on an evaluation scene
    assert (record["matcher"], record["ratio"]) == tuple(choose_matcher(record["curve"])[k]
                                                         for k in ("matcher", "ratio"))
    assert not {"graf", "boat", "notredame", "fountain-P11", "entry-P10"} & set(record["sequences"])
    assert record["pairs"] >= 100
    card = (SHIPPED_DIR / f"{name}.md").read_text()
    setting = record["matcher"] + (f" ratio {record['ratio']:.2f}" if record["ratio"] is not None else "")
    assert "## Recommended matcher" in card and f"**{setting}**" in card


def test_choose_matcher_takes_the_largest_margin_of_correct_over_wrong():
    curve = [{"matcher": "smnn", "ratio": 0.8, "matches": 100, "correct": 95, "precision": 0.95},   # margin 90
             {"matcher": "smnn", "ratio": 0.9, "matches": 140, "correct": 120, "precision": 120 / 140},  # 100
             {"matcher": "mnn", "ratio": None, "matches": 300, "correct": 150, "precision": 0.5}]  # 0
    assert choose_matcher(curve)["ratio"] == 0.9
    curve[1]["correct"] = 115  # margin 90: a tie goes to the more precise row
    curve[1]["precision"] = 115 / 140
    assert choose_matcher(curve)["ratio"] == 0.8
    assert matcher_candidates()[-1] == ("mnn", None) and ("smnn", 0.8) in matcher_candidates()


def test_matcher_curve_counts_correct_matches_against_the_homography():
    rng = np.random.default_rng(0)
    n, d = 200, 16
    desc = rng.normal(size=(n, d)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    noisy = desc + 0.05 * rng.normal(size=(n, d)).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    xy = rng.uniform(0, 500, (n, 2)).astype(np.float32)
    shift = np.array([[1, 0, 10], [0, 1, -5], [0, 0, 1]], np.float64)
    moved = xy + np.float32([10, -5])
    moved[:50] += 20  # the first 50 true matches land 20 px away: wrong at 3 px

    def feats(descriptors, points):
        m = len(points)
        return Features(np.c_[points, np.ones((m, 2), np.float32)], descriptors, np.zeros(m, np.float32),
                        np.zeros((m, 2, 3), np.float32), (600, 600))

    rows = matcher_curve([(feats(desc, xy), feats(noisy, moved), shift)], [("mnn", None), ("smnn", 0.9)])
    assert rows[0]["matches"] == n and rows[0]["correct"] == n - 50 and rows[0]["precision"] == 0.75
    assert rows[1]["matches"] <= n and rows[1]["correct"] <= n - 50


def test_match_uses_the_recommendation_unless_told(tmp_path, capsys):
    from descnet.cli.main import main
    from tests.test_match import synthetic_pair

    a, b = synthetic_pair(tmp_path)
    recommended = PRETRAINED["descnet-hardnet-csa"].matching
    assert main(["match", str(a), str(b), "--max-keypoints", "300", "--out", str(tmp_path / "rec")]) == 0
    summary = json.loads((tmp_path / "rec" / "summary.json").read_text())
    assert (summary["matcher"], summary["ratio"]) == (recommended["matcher"], recommended["ratio"])
    assert "recommended matcher" in summary["matcher_origin"]
    assert "recommended matcher" in capsys.readouterr().out
    assert main(["match", str(a), str(b), "--max-keypoints", "300", "--matcher", "mnn",
                 "--out", str(tmp_path / "mnn")]) == 0
    summary = json.loads((tmp_path / "mnn" / "summary.json").read_text())
    assert (summary["matcher"], summary["ratio"], summary["matcher_origin"]) == ("mnn", None, "given")
    # a pair list: the recommendation of the model named in the features file
    pairs = tmp_path / "pairs.txt"
    names = summary["names"]
    pairs.write_text(f"{names[0]} {names[1]}\n")
    assert main(["match", "--features", str(tmp_path / "rec" / "features.h5"), "--pairs", str(pairs),
                 "--out", str(tmp_path / "list.h5"), "--quiet"]) == 0
    assert "descnet-hardnet-csa's recommended matcher" in capsys.readouterr().out
