"""descnet.match, geometric verification, match_pair on real pairs, matches.h5 and the match CLI."""
from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
import torch

from descnet.cli.main import main
from descnet.features.files import read_features, read_matches, write_matches
from descnet.features.matching import draw_matches, match, match_pair, nearest_two, verify
from descnet.features.options import KeypointOptions, MatchOptions
from descnet.io import MANIFEST, result_set
from tests.conftest import fail_at_rename, shared_file


def texture(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.5)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


HOMOGRAPHY = np.array([[0.9, 0.15, 12.0], [-0.1, 0.95, 8.0], [2e-4, 1e-4, 1.0]])


def corner_error(estimated: np.ndarray, truth: np.ndarray, w: int, h: int) -> float:
    corners = np.array([[[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]], np.float64)
    return float(np.linalg.norm(cv2.perspectiveTransform(corners, estimated)
                                - cv2.perspectiveTransform(corners, truth), axis=2).mean())


# ---------------------------------------------------------------- matchers against brute force

def brute_force(d1: np.ndarray, d2: np.ndarray, method: str, ratio: float) -> set[tuple[int, int]]:
    dist = np.sqrt(((d1[:, None].astype(np.float64) - d2[None].astype(np.float64)) ** 2).sum(-1))
    out = set()
    for i in range(len(d1)):
        j = int(dist[i].argmin())
        first, second = np.sort(dist[i])[:2]
        back = np.sort(dist[:, j])[:2]
        mutual = int(dist[:, j].argmin()) == i
        if method == "mnn" and mutual:
            out.add((i, j))
        elif method == "snn" and first / second <= ratio:
            out.add((i, j))
        elif method == "smnn" and mutual and first / second <= ratio and back[0] / back[1] <= ratio:
            out.add((i, j))
    return out


@pytest.mark.parametrize("method, ratio", [("mnn", None), ("snn", 0.8), ("snn", 0.95), ("smnn", 0.9)])
@pytest.mark.parametrize("n1, n2", [(60, 70), (90, 50)])
def test_matchers_agree_with_brute_force(method, ratio, n1, n2):
    rng = np.random.default_rng(1)
    d1 = rng.normal(size=(n1, 16)).astype(np.float32)
    d2 = np.vstack([d1[:40] + 0.3 * rng.normal(size=(40, 16)), rng.normal(size=(n2 - 40, 16))]).astype(np.float32)
    d1 = d1[rng.permutation(n1)]
    m = match(d1, d2, method, ratio)
    got = {tuple(r) for r in m.indices.tolist()}
    assert got == brute_force(d1, d2, method, ratio or 0.8)
    assert len(got) > 10
    np.testing.assert_allclose(m.distances, np.linalg.norm(d1[m.indices[:, 0]] - d2[m.indices[:, 1]], axis=1),
                               rtol=1e-4)
    assert np.all(np.diff(m.indices[:, 0]) > 0)


def test_match_bad_and_empty_input():
    with pytest.raises(ValueError, match=r"descriptor sizes differ: desc1 is \(3, 8\), desc2 is \(4, 16\)"):
        match(np.ones((3, 8)), np.ones((4, 16)))
    with pytest.raises(ValueError, match="matcher 'knn': unknown"):
        match(np.ones((3, 8)), np.ones((4, 8)), "knn")
    with pytest.raises(ValueError, match="ratio applies"):
        match(np.ones((3, 8)), np.ones((4, 8)), "mnn", 0.8)
    with pytest.raises(ValueError, match="non-finite"):
        match(np.full((3, 8), np.nan), np.ones((4, 8)))
    empty = match(np.zeros((0, 8)), np.ones((4, 8)), "snn")
    assert empty.indices.shape == (0, 2) and empty.distances.shape == (0,)


# ---------------------------------------------------------------- verification

def test_verify_homography_recovers_the_model_and_flags_outliers():
    rng = np.random.default_rng(2)
    p1 = rng.uniform(0, 400, size=(200, 2))
    p2 = cv2.perspectiveTransform(p1[None], HOMOGRAPHY)[0] + rng.normal(0, 0.3, size=(200, 2))
    outliers = np.arange(200) % 4 == 0
    p2[outliers] = rng.uniform(0, 400, size=(outliers.sum(), 2))
    v = verify(p1, p2, "homography")
    assert corner_error(v.geometry_matrix, HOMOGRAPHY, 400, 400) < 1.0
    np.testing.assert_array_equal(v.inliers, ~outliers)
    few = verify(p1[:3], p2[:3])
    assert few.geometry_matrix is None and not few.inliers.any()


def test_verify_fundamental_matrix_satisfies_the_epipolar_constraint():
    rng = np.random.default_rng(3)
    pts = np.column_stack([rng.uniform(-2, 2, 150), rng.uniform(-2, 2, 150), rng.uniform(4, 8, 150)])
    k = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    rvec, t = np.array([0.0, 0.2, 0.05]), np.array([1.0, 0.1, 0.2])

    def project(r, tr):
        x, _ = cv2.projectPoints(pts, r, tr, k, None)
        return x[:, 0]
    p1, p2 = project(np.zeros(3), np.zeros(3)), project(rvec, t)
    p2[:30] += rng.uniform(20, 60, size=(30, 2))  # outliers
    v = verify(p1, p2, "fundamental", threshold=1.0)
    h1, h2 = np.column_stack([p1, np.ones(150)]), np.column_stack([p2, np.ones(150)])
    lines = h1 @ v.geometry_matrix.T  # epipolar lines in image 2
    dist = np.abs((h2 * lines).sum(1)) / np.linalg.norm(lines[:, :2], axis=1)
    assert np.all(dist[30:] < 1.0)
    assert v.inliers[30:].mean() > 0.95 and v.inliers[:30].mean() < 0.2
    with pytest.raises(ValueError, match="estimator 'best': unknown"):
        verify(p1, p2, estimator="best")


# ---------------------------------------------------------------- real pairs

@pytest.mark.parametrize("sequence, first, second, hfile", [
    ("oxford-affine/graf", "img1.png", "img2.png", "H1to2p"),
    ("hpatches/sequences/v_churchill", "1.ppm", "2.ppm", "H_1_2"),
])
def test_sift_keypoints_and_rootsift_give_the_true_homography(shared_data, sequence, first, second, hfile):
    img1 = shared_file(shared_data, f"{sequence}/{first}")
    img2 = shared_file(shared_data, f"{sequence}/{second}")
    truth = np.loadtxt(shared_file(shared_data, f"{sequence}/{hfile}"))
    timings: dict[str, float] = {}
    result = match_pair(img1, img2, model="opencv-rootsift", keypoint_options=KeypointOptions(max_keypoints=1500),
                        timings=timings)
    h, w = result.features1.image_size
    assert result.geometry_matrix is not None and result.inliers.sum() > 100
    assert corner_error(result.geometry_matrix, truth, w, h) < 5.0
    assert set(timings) == {"load_model", "detect", "extract", "describe", "match", "verify"}


def test_tfeat_on_graf_gives_the_true_homography(shared_data):
    weights = shared_file(shared_data, "weights/tfeat/tfeat-liberty.params")
    img1 = shared_file(shared_data, "oxford-affine/graf/img1.png")
    img2 = shared_file(shared_data, "oxford-affine/graf/img2.png")
    truth = np.loadtxt(shared_file(shared_data, "oxford-affine/graf/H1to2p"))
    result = match_pair(img1, img2, model=f"tfeat:{weights}", keypoint_options=KeypointOptions(max_keypoints=1000),
                        match_options=MatchOptions("snn"))
    assert corner_error(result.geometry_matrix, truth, 800, 640) < 5.0
    assert result.features1.info["model"] == "tfeat-liberty"


# ---------------------------------------------------------------- matches.h5 and drawing

def synthetic_pair(tmp_path):
    img1 = texture(seed=4)
    img2 = cv2.warpPerspective(img1, HOMOGRAPHY, (320, 240), borderMode=cv2.BORDER_REFLECT)
    cv2.imwrite(str(tmp_path / "a.png"), img1)
    cv2.imwrite(str(tmp_path / "b.png"), img2)
    return tmp_path / "a.png", tmp_path / "b.png"


def test_matches_file_round_trips(tmp_path):
    a, b = synthetic_pair(tmp_path)
    result = match_pair(a, b, model="opencv-sift", match_options=MatchOptions("smnn"))
    assert result.geometry_matrix is not None and result.num_keypoints == (len(result.features1), len(result.features2))
    write_matches(tmp_path / "m.h5", {("a.png", "b.png"): result})
    back = read_matches(tmp_path / "m.h5")[("a.png", "b.png")]
    for key in ("matches", "distances", "inliers", "geometry_matrix"):
        np.testing.assert_array_equal(getattr(back, key), getattr(result, key))
    assert back.settings == result.settings and back.settings["ratio"] == 0.95
    assert back.num_keypoints == result.num_keypoints and back.features1 is None
    with pytest.raises(ValueError, match="read without the features of image 1"):
        back.points1
    # asked for in the other order: matches swapped (sorted by image b), the homography inverted
    swapped = read_matches(tmp_path / "m.h5", [("b.png", "a.png")])[("b.png", "a.png")]
    order = np.argsort(result.matches[:, 1], kind="stable")
    np.testing.assert_array_equal(swapped.matches, result.matches[order][:, ::-1])
    np.testing.assert_array_equal(swapped.inliers, result.inliers[order])
    np.testing.assert_allclose(swapped.geometry_matrix @ result.geometry_matrix, np.eye(3), atol=1e-9)
    none = type(result)(result.matches[:0], result.distances[:0], result.inliers[:0], None, {"ratio": None},
                        num_keypoints=(5, 7))
    write_matches(tmp_path / "n.h5", {("a.png", "b.png"): none})
    back = read_matches(tmp_path / "n.h5")[("a.png", "b.png")]
    assert back.geometry_matrix is None and back.settings["ratio"] is None and back.matches.shape == (0, 2)
    assert back.num_keypoints == (5, 7)


def test_draw_matches_puts_lines_between_the_points():
    a, b = np.zeros((50, 60), np.uint8), np.zeros((40, 30, 3), np.uint8)
    pic = draw_matches(a, b, [[10, 20]], [[20, 20]], [True], caption="1 match")
    assert pic.shape == (50 + 34, 90, 3) and pic.dtype == np.uint8
    mid = pic[20, 45]  # on the line from (10, 20) to (60 + 20, 20), green
    assert mid[1] > 150 and mid[0] < 100
    assert pic[30, 45].max() == 0
    hidden = draw_matches(a, b, [[10, 20]], [[20, 20]], [False])
    assert hidden[20, 45].max() == 0  # outliers are not drawn by default
    red = draw_matches(a, b, [[10, 20]], [[20, 20]], [False], draw_outliers=True)
    assert red[20, 45, 0] > 150 and red[20, 45, 1] < 100


def test_match_picture_stays_readable_with_2000_matches():
    rng = np.random.default_rng(0)
    grey = np.full((480, 640), 128, np.uint8)
    p1 = rng.uniform(0, [640, 480], (2000, 2))
    p2 = np.clip(p1 + rng.normal(0, 20, (2000, 2)), 0, [639, 479])
    inliers = np.arange(2000) % 4 != 0

    def covered(pic):  # share of the two images hidden under strong line pixels
        return float((np.abs(pic[:480].astype(int) - 128).max(axis=2) > 60).mean())

    default = draw_matches(grey, grey, p1, p2, inliers, caption="model (trained)")
    everything = draw_matches(grey, grey, p1, p2, inliers, caption="model (trained)", max_lines=None)
    assert covered(default) < 0.35 < 0.6 < covered(everything)
    assert default.shape == (480 + 12 + 22 * 2, 1280, 3)  # caption + "showing 300 of 1500 inliers (random subset)"
    assert everything.shape == (480 + 12 + 22, 1280, 3)
    again = draw_matches(grey, grey, p1, p2, inliers, caption="model (trained)")
    assert np.array_equal(default, again)  # the subset is seeded
    red = draw_matches(grey, grey, p1, p2, inliers, draw_outliers=True, max_lines=None)
    reddish = (red[:480, :, 0].astype(int) - red[:480, :, 1]) > 60
    greenish = (red[:480, :, 1].astype(int) - red[:480, :, 0]) > 60
    assert reddish.mean() > 0.02 and greenish.mean() > reddish.mean()  # outliers drawn, under the inliers


# ---------------------------------------------------------------- CLI

def test_cli_match_writes_four_files(tmp_path, capsys):
    a, b = synthetic_pair(tmp_path)
    out = tmp_path / "out"
    assert main(["match", str(a), str(b), "--model", "pixels", "--max-keypoints", "300", "--max-lines", "100",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".descnet-manifest.json", "features.h5", "matches.h5",
                                                     "matches.png", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["keypoints"] == [300, 300] and summary["model_found"] and summary["names"] == ["a.png", "b.png"]
    assert summary["inliers"] > 50 and summary["matches"] >= summary["inliers"]
    assert summary["weights"] == "hand-crafted" and summary["caption"].startswith("pixels (hand-crafted) |")
    assert {"load_model", "detect", "extract", "describe", "match", "verify", "total"} <= set(summary["seconds"])
    result = read_matches(out / "matches.h5")[("a.png", "b.png")]
    assert corner_error(result.geometry_matrix, HOMOGRAPHY, 320, 240) < 2.0
    assert int(result.inliers.sum()) == summary["inliers"]
    feats = read_features(out / "features.h5")
    assert list(feats) == ["a.png", "b.png"] and len(feats["a.png"]) == 300
    png = cv2.imread(str(out / "matches.png"))
    assert summary["inliers"] > 100 and png.shape[:2] == (240 + 34 + 22, 640)  # caption + "showing 100 of N inliers"


def test_cli_match_failing_at_any_rename_leaves_the_old_or_the_new_four_files(tmp_path, monkeypatch):
    a, b = synthetic_pair(tmp_path)
    out = tmp_path / "out"

    def run(n: int) -> int:
        return main(["match", str(a), str(b), "--model", "pixels", "--max-keypoints", str(n), "--out", str(out)])

    def consistent() -> int:
        names = sorted(p.name for p in out.iterdir())
        assert names == [".descnet-manifest.json", "features.h5", "matches.h5", "matches.png", "summary.json"], names
        n = json.loads((out / "summary.json").read_text())["keypoints"][0]
        assert len(read_features(out / "features.h5")["a.png"]) == n
        result = read_matches(out / "matches.h5")[("a.png", "b.png")]
        assert int(result.inliers.sum()) == json.loads((out / "summary.json").read_text())["inliers"]
        return n

    assert run(200) == 0
    seen = set()
    for k in range(1, 20):
        calls = fail_at_rename(monkeypatch, k)
        code = run(200 + 10 * k)
        monkeypatch.undo()
        n = consistent()
        seen.add("new" if n == 200 + 10 * k else "old")
        assert (code == 0) == (n == 200 + 10 * k)
        if calls["n"] < k:
            break
    assert seen == {"old", "new"}


@pytest.mark.parametrize("case, message", [
    ("truncated", r"a.png: not a readable image"),
    ("blank", r"b.png: no keypoints to match \(the sift detector found none\)"),
    ("columns", r"k.txt, line 2: expected 4 columns"),
    ("outside", r"k.txt: 1 of 2 keypoints lie outside the 320x240 image"),
    ("ratio", r"--ratio applies to the snn and smnn matchers, not mnn"),
    ("model", r"model SPEC 'nonsense'"),
])
def test_cli_match_bad_input_fails_cleanly_and_keeps_old_results(tmp_path, capsys, case, message):
    a, b = synthetic_pair(tmp_path)
    out = tmp_path / "out"
    with result_set(out) as old:  # an earlier run's result (descnet's manifest lists it)
        old.path("summary.json").write_text("old")
    args = ["match", str(a), str(b), "--model", "opencv-sift", "--out", str(out)]
    if case == "truncated":
        a.write_bytes(a.read_bytes()[:300])
    elif case == "blank":
        cv2.imwrite(str(b), np.full((240, 320), 7, np.uint8))
    elif case in ("columns", "outside"):
        (tmp_path / "k.txt").write_text("10 10 3 0\n" + ("10 10 3\n" if case == "columns" else "999 10 3 0\n"))
        args += ["--keypoints1", str(tmp_path / "k.txt")]
    elif case == "ratio":
        args += ["--matcher", "mnn", "--ratio", "0.8"]  # a ratio alone goes with the recommended matcher
    elif case == "model":
        args[4] = "nonsense"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "summary.json"]
    assert (out / "summary.json").read_text() == "old"


@pytest.mark.parametrize("unit", [True, False])
def test_nearest_two_in_blocks_agrees_with_float64_brute_force(unit):
    rng = np.random.default_rng(3)
    d1 = rng.normal(size=(70, 8))
    d2 = np.vstack([d1[:30] + 0.2 * rng.normal(size=(30, 8)), rng.normal(size=(45, 8))])
    if unit:  # one length: the selection runs on similarities
        d1 /= np.linalg.norm(d1, axis=1, keepdims=True)
        d2 /= np.linalg.norm(d2, axis=1, keepdims=True)
    dist = np.linalg.norm(d1[:, None] - d2[None], axis=2)
    t1, t2 = torch.from_numpy(d1).float(), torch.from_numpy(d2).float()
    row_dist, row_idx, col_dist, col_idx = nearest_two(t1, t2, block_rows=16)  # 5 blocks, the last one short
    np.testing.assert_array_equal(row_idx.numpy(), np.argsort(dist, axis=1)[:, :2])
    np.testing.assert_array_equal(col_idx.numpy(), np.argsort(dist, axis=0)[:2])
    np.testing.assert_allclose(row_dist.numpy(), np.sort(dist, axis=1)[:, :2], rtol=1e-5)
    np.testing.assert_allclose(col_dist.numpy(), np.sort(dist, axis=0)[:2], rtol=1e-5)
    # one column, one row: k = 1
    assert nearest_two(t1, t2[:1])[1].shape == (70, 1) and nearest_two(t1[:1], t2)[3].shape == (1, 75)
