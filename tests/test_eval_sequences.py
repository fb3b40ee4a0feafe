"""descnet.eval.sequences: MMA, correct matches, corner error, the sequence loop, summaries and the CLI."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from descnet.cli.main import main
from descnet.data.sequences import ImageSequences, write_sequence
from descnet.eval.sequences import (CORRECT_THRESHOLDS, MMA_THRESHOLDS, PairResult, benchmark_sequences, corner_error,
                                    correct_matches, evaluate_sequences, format_summary, label_models,
                                    matching_accuracy, table_label, pair_rows, plot_mma, reprojection_errors,
                                    summarize)
from descnet.features.options import KeypointOptions, MatchOptions

H2 = np.array([[0.92, 0.12, 14.0], [-0.09, 0.96, 6.0], [1.5e-4, 5e-5, 1.0]])
H3 = np.array([[1.05, -0.05, -8.0], [0.06, 1.02, -5.0], [-1e-4, 1e-4, 1.0]])


def texture(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.5)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


@pytest.fixture(scope="module")
def sequence_root(tmp_path_factory):
    """Two 3-image sequences in the HPatches layout: ``i_synth`` (brightness, H = I), ``v_synth`` (warps)."""
    root = tmp_path_factory.mktemp("sequences")
    base = texture(seed=11)
    bright = [base, np.clip(base * 0.7 + 40, 0, 255).astype(np.uint8), np.clip(base * 1.2, 0, 255).astype(np.uint8)]
    write_sequence(root / "i_synth", bright, {2: np.eye(3), 3: np.eye(3)})
    other = texture(seed=12)
    warped = [other] + [cv2.warpPerspective(other, h, (320, 240), borderMode=cv2.BORDER_REFLECT) for h in (H2, H3)]
    write_sequence(root / "v_synth", warped, {2: H2, 3: H3})
    return root


def test_reprojection_errors_and_accuracy_known_answers():
    p1 = np.array([[10.0, 20.0], [100.0, 50.0]])
    p2 = cv2.perspectiveTransform(p1[None], H2)[0] + [[3.0, 4.0], [0.0, 0.0]]
    np.testing.assert_allclose(reprojection_errors(p1, p2, H2), [5.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(matching_accuracy([0.5, 1.5, 3.0, 20.0], (1, 2, 5)), [0.25, 0.5, 0.75])
    np.testing.assert_array_equal(matching_accuracy([], MMA_THRESHOLDS), np.zeros(10))  # no match scores 0
    assert reprojection_errors(np.zeros((0, 2)), np.zeros((0, 2)), H2).shape == (0,)


def test_correct_matches_hand_worked_example():
    """Four matches displaced from their true position by 0.5, 2, 4 and 7 px (along different directions)."""
    p1 = np.array([[10.0, 20.0], [100.0, 50.0], [200.0, 150.0], [60.0, 220.0]])
    offsets = np.array([[0.5, 0.0], [0.0, -2.0], [2.4, 3.2], [-4.2, 5.6]])   # lengths 0.5, 2, 4, 7
    p2 = cv2.perspectiveTransform(p1[None], H2)[0] + offsets
    errors = reprojection_errors(p1, p2, H2)
    np.testing.assert_allclose(errors, [0.5, 2.0, 4.0, 7.0], atol=1e-9)
    assert CORRECT_THRESHOLDS == (1, 3, 5)
    assert correct_matches(errors).tolist() == [1, 2, 3]                      # at 1, 3 and 5 px
    assert correct_matches([0.5, 2.0, 3.0, 7.0], (3, 7)).tolist() == [3, 4]   # a match at exactly t counts
    assert matching_accuracy(errors, (3,)).tolist() == [0.5]
    np.testing.assert_allclose(matching_accuracy(errors, CORRECT_THRESHOLDS) * len(errors), [1, 2, 3])
    assert correct_matches([]).tolist() == [0, 0, 0]


def test_corner_error_known_answers():
    shift = np.array([[1.0, 0, 3.0], [0, 1.0, 4.0], [0, 0, 1.0]])
    assert corner_error(shift @ H2, H2, (240, 320)) == pytest.approx(5.0)
    assert corner_error(H2, H2, (240, 320)) == pytest.approx(0.0, abs=1e-9)
    assert corner_error(None, H2, (240, 320)) == math.inf
    # only the corner at (W-1, H-1) moves: the mean over 4 corners is a quarter of its displacement
    bend = np.eye(3)
    corners = np.array([[0, 0], [319, 0], [319, 239], [0, 239]], np.float64)
    target = corners.copy()
    target[2] += [8.0, 0.0]
    bend = cv2.getPerspectiveTransform(corners.astype(np.float32), target.astype(np.float32))
    assert corner_error(bend, np.eye(3), (240, 320)) == pytest.approx(2.0, abs=1e-4)


def test_summarize_counts_pairs_and_splits():
    def pair(kind, mma, err, matches):
        return PairResult("s", kind, 2, (10, 10), matches, matches // 2, tuple([mma] * 10), (0, 0, 0), err)
    results = {"A": [pair("illumination", 0.5, 0.5, 10), pair("viewpoint", 1.0, 2.0, 20),
                     pair("viewpoint", 0.0, math.inf, 0)]}
    s = summarize(results)["A"]
    assert set(s) == {"all", "illumination", "viewpoint"}
    assert s["all"]["pairs"] == 3 and s["viewpoint"]["pairs"] == 2
    assert s["all"]["mma"][0] == pytest.approx(0.5)
    assert s["viewpoint"]["homography_accuracy"] == {"1": 0.0, "3": 0.5, "5": 0.5}
    assert s["all"]["homography_accuracy"]["1"] == pytest.approx(1 / 3)
    assert s["all"]["mean_corner_error"] == pytest.approx(1.25)  # failures are excluded from the mean
    assert s["all"]["matches"] == pytest.approx(10.0)
    table = format_summary(summarize(results))
    assert "illumination" in table and "MMA@3" in table


def _pair(kind: str, correct: tuple[int, int, int], matches: int) -> PairResult:
    mma = tuple(correct[CORRECT_THRESHOLDS.index(t)] / matches if t in CORRECT_THRESHOLDS else 0.0
                for t in MMA_THRESHOLDS)
    return PairResult("s", kind, 2, (50, 60), matches, 0, mma, correct, 2.0)


def test_summarize_averages_correct_matches_over_pairs():
    results = {"A": [_pair("illumination", (2, 4, 6), 10), _pair("viewpoint", (5, 9, 10), 20),
                     _pair("viewpoint", (1, 2, 4), 8)]}
    s = summarize(results)["A"]
    assert s["all"]["correct"] == {"1": pytest.approx(8 / 3), "3": pytest.approx(5.0), "5": pytest.approx(20 / 3)}
    assert s["viewpoint"]["correct"] == {"1": 3.0, "3": 5.5, "5": 7.0}
    assert s["illumination"]["correct"] == {"1": 2.0, "3": 4.0, "5": 6.0}
    # fewer, safer matches win on MMA@3 but lose on correct@3
    few = summarize({"few": [_pair("viewpoint", (4, 5, 5), 5)], "many": [_pair("viewpoint", (30, 60, 70), 100)]})
    assert few["few"]["all"]["mma"][2] == 1.0 and few["many"]["all"]["mma"][2] == 0.6
    assert few["few"]["all"]["correct"]["3"] == 5.0 and few["many"]["all"]["correct"]["3"] == 60.0


def test_correct_matches_in_table_and_json_rows():
    results = {"A": [_pair("illumination", (2, 4, 6), 10), _pair("viewpoint", (5, 9, 10), 20)]}
    rows = pair_rows(results)["A"]
    assert [r["correct"] for r in rows] == [(2, 4, 6), (5, 9, 10)]
    assert json.loads(json.dumps(rows))[1]["correct"] == [5, 9, 10]
    table = format_summary(summarize(results)).splitlines()
    header = table[0].split()
    assert header[3:11] == ["MMA@1", "MMA@3", "MMA@5", "MMA@10", "correct@1", "correct@3", "correct@5", "H@1"]
    all_row = next(line.split() for line in table[2:] if line.split()[1] == "all")
    assert all_row[7:10] == ["3.5", "6.5", "8.0"]
    # a summary written before correct@t existed still prints, with "-"
    old = {"A": {"all": {k: v for k, v in summarize(results)["A"]["all"].items() if k != "correct"}}}
    assert format_summary(old).splitlines()[2].split()[7:10] == ["-", "-", "-"]


def test_evaluate_sequences_on_exact_synthetic_sequences(sequence_root, tmp_path):
    sequences = ImageSequences(sequence_root)
    models = {table_label("opencv-sift"): "opencv-sift", "pixels": "pixels"}
    results = evaluate_sequences(sequences, models, keypoint_options=KeypointOptions(max_keypoints=300))
    assert list(results) == ["SIFT (OpenCV)", "pixels"]
    sift = results["SIFT (OpenCV)"]
    assert [(p.sequence, p.kind, p.target) for p in sift] == [
        ("i_synth", "illumination", 2), ("i_synth", "illumination", 3), ("v_synth", "viewpoint", 2),
        ("v_synth", "viewpoint", 3)]
    for p in sift:
        assert p.matches > 50 and p.mma[2] > 0.8 and p.corner_error < 3.0
        assert all(a <= b for a, b in zip(p.mma, p.mma[1:]))
        assert p.correct == tuple(round(p.mma[t - 1] * p.matches) for t in CORRECT_THRESHOLDS)
    summary = summarize(results)
    assert summary["pixels"]["all"]["pairs"] == 4
    assert summary["SIFT (OpenCV)"]["viewpoint"]["correct"]["3"] == pytest.approx(
        np.mean([p.correct[1] for p in sift[2:]]))
    plot_mma(summary, tmp_path / "mma.png")
    assert cv2.imread(str(tmp_path / "mma.png")).shape[2] == 3


def test_cli_eval_sequences_writes_json_and_plot(sequence_root, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["eval", "sequences", "--root", str(sequence_root), "--model", "pixels", "--max-keypoints", "200",
               "--sequence", "v_synth", "--out", str(out)])
    assert rc == 0
    payload = json.loads((out / "sequences.json").read_text())
    assert list(payload["summary"]) == ["SIFT (OpenCV)", "RootSIFT (OpenCV)", "pixels"]
    assert payload["settings"]["sequences"] == ["v_synth"]
    assert len(payload["pairs"]["pixels"]) == 2
    assert payload["summary"]["SIFT (OpenCV)"]["viewpoint"]["homography_accuracy"]["3"] == 1.0
    assert set(payload["summary"]["pixels"]["viewpoint"]["correct"]) == {"1", "3", "5"}
    assert all(len(row["correct"]) == 3 for row in payload["pairs"]["pixels"])
    assert (out / "mma.png").is_file()
    printed = capsys.readouterr().out
    assert "RootSIFT (OpenCV)" in printed and "correct@3" in printed


def test_cli_eval_sequences_reruns_add_models(sequence_root, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["eval", "sequences", "--root", str(sequence_root), "--max-keypoints", "200", "--sequence", "v_synth",
            "--out", str(out), "--no-baselines"]
    assert main(base + ["--model", "pixels"]) == 0
    first = json.loads((out / "sequences.json").read_text())
    assert main(base + ["--model", "opencv-sift"]) == 0
    assert "kept the earlier results of pixels" in capsys.readouterr().out
    both = json.loads((out / "sequences.json").read_text())
    assert list(both["summary"]) == ["pixels", "SIFT (OpenCV)"]
    assert both["summary"]["pixels"] == first["summary"]["pixels"]
    assert list(both["pairs"]) == ["pixels", "SIFT (OpenCV)"]
    assert set(both["settings"]["models"]) == set(both["summary"])
    assert main(base + ["--model", "pixels", "--max-keypoints", "100"]) == 2
    assert "sequences.json: holds results of other settings (max_keypoints differ)" in capsys.readouterr().err
    assert json.loads((out / "sequences.json").read_text()) == both
    assert main(base + ["--model", "pixels", "--max-keypoints", "100", "--overwrite"]) == 0
    assert list(json.loads((out / "sequences.json").read_text())["summary"]) == ["pixels"]


@pytest.mark.parametrize("extra, message", [
    (["--sequence", "v_nothing"], "error: sequence v_nothing: not found under"),
    (["--model", "pixels", "--kind", "viewpoint", "--sequence", "i_synth"],
     "error: sequence i_synth: not found under"),
    (["--model", "pixels", "--matcher", "mnn", "--ratio", "0.9"], "ratio applies to the snn and smnn matchers"),
])
def test_cli_eval_sequences_bad_arguments(sequence_root, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["eval", "sequences", "--root", str(sequence_root), "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_eval_sequences_detector_choices_come_from_the_library(sequence_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "sequences", "--root", str(sequence_root), "--out", str(tmp_path / "out"), "--detector", "surf"])
    assert exit_.value.code == 2
    assert "argument --detector: invalid choice: 'surf'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_benchmark_sequences_from_python_equals_the_cli(sequence_root, tmp_path, capsys):
    options = ["--max-keypoints", "200", "--sequence", "v_synth", "--matcher", "snn", "--estimator", "ransac"]
    assert main(["eval", "sequences", "--root", str(sequence_root), "--model", "pixels", "--no-baselines",
                 "--out", str(tmp_path / "cli"), *options]) == 0
    cli = json.loads((tmp_path / "cli" / "sequences.json").read_text())
    run = benchmark_sequences([sequence_root], tmp_path / "lib", models=["pixels"], baselines=False,
                              names=["v_synth"], keypoint_options=KeypointOptions(max_keypoints=200),
                              match_options=MatchOptions(matcher="snn", estimator="ransac"))
    assert run.written == [tmp_path / "lib" / "mma.png", tmp_path / "lib" / "sequences.json"] and run.kept == []
    lib = json.loads(run.path.read_text())
    assert lib["summary"] == run.payload["summary"] == cli["summary"] and lib["pairs"] == cli["pairs"]
    assert {k: v for k, v in lib["settings"].items() if k != "roots"} == \
        {k: v for k, v in cli["settings"].items() if k != "roots"}
    assert cli["settings"]["matcher"] == "snn" and cli["settings"]["estimator"] == "ransac"
    with pytest.raises(ValueError, match="geometry must be homography"):
        evaluate_sequences([], {}, match_options=MatchOptions(geometry="fundamental"))
    with pytest.raises(ValueError, match="model pixels: two models share the table name 'pixels'"):
        label_models(["pixels", "pixels"])


def test_cli_eval_sequences_defaults_to_the_shipped_model(sequence_root, tmp_path):
    from descnet.models.pretrained import DEFAULT_MODEL

    out = tmp_path / "out"
    assert main(["eval", "sequences", "--root", str(sequence_root), "--out", str(out), "--no-baselines",
                 "--max-keypoints", "50", "--kind", "viewpoint"]) == 0
    assert list(json.loads((out / "sequences.json").read_text())["summary"]) == [DEFAULT_MODEL]


def test_cli_eval_sequences_missing_root(tmp_path, capsys):
    assert main(["eval", "sequences", "--root", str(tmp_path / "none"), "--model", "pixels"]) == 2
    assert "none" in capsys.readouterr().err
