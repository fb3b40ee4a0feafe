"""descnet eval pose: a rendered scene with known cameras in the Strecha layout and in SuperGlue's pairs format
(EXIF rotations), reruns that add models, refused inputs; the shared ScanNet pairs when present."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import shared_file
from descnet.cli.main import main
from descnet.geometry.cameras import read_strecha_scene, relative_pose

W, H, FOCAL = 640, 480, 700.0
K = np.array([[FOCAL, 0, (W - 1) / 2], [0, FOCAL, (H - 1) / 2], [0, 0, 1.0]])
FACES = [((-3, -2, 6), (6, 0, 0), (0, 4, 0)), ((-3, 2, 0), (6, 0, 0), (0, 0, 6)), ((-3, -2, 0), (6, 0, 0), (0, 0, 6)),
         ((-3, -2, 0), (0, 0, 6), (0, 4, 0)), ((3, -2, 0), (0, 0, 6), (0, 4, 0))]


def _look_at(centre, target):
    z = (target - centre) / np.linalg.norm(target - centre)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The inside of a textured box seen by 4 cameras, rendered exactly, in the Strecha layout."""
    root = tmp_path_factory.mktemp("pose") / "box"
    (root / "images").mkdir(parents=True)
    (root / "gt_dense_cameras").mkdir()
    rng = np.random.default_rng(0)
    textures = []
    for _ in FACES:
        noise = sum(s * cv2.GaussianBlur(rng.random((768, 768)).astype(np.float32), (0, 0), s) for s in (2.0, 5.0, 12.0))
        textures.append(cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8))
    for i in range(4):
        s = -1.0 + 2.0 * i / 3
        centre = np.array([1.4 * s, 0.3 * np.sin(3 * s), 0.8 * (1 - s * s)])
        rot = _look_at(centre, np.array([0.0, 0.3, 6.0]))
        image = np.zeros((H, W), np.uint8)
        for (corner, u, v), tex in zip(FACES, textures):
            step = 1.0 / tex.shape[0]
            h = K @ np.column_stack([rot @ np.multiply(u, step), rot @ np.multiply(v, step),
                                     rot @ (np.asarray(corner, float) - centre)])
            face = cv2.warpPerspective(tex, h, (W, H), flags=cv2.INTER_LINEAR)
            inside = cv2.warpPerspective(np.full(tex.shape, 255, np.uint8), h, (W, H), flags=cv2.INTER_NEAREST) > 0
            image[inside] = face[inside]
        cv2.imwrite(str(root / "images" / f"{i:04d}.png"), image)
        rows = [" ".join(f"{v:.17g}" for v in row) for row in (*K, (0, 0, 0), *rot.T, centre, (W, H))]
        (root / "gt_dense_cameras" / f"{i:04d}.png.camera").write_text("\n".join(rows) + "\n")
    return root


def _run(args, capsys):
    code = main(["eval", "pose", *args, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eval_pose_on_a_rendered_scene_and_reruns_that_add_models(scene, tmp_path, capsys):
    out = tmp_path / "pose"
    code, printed, _ = _run([str(scene), "--model", "opencv-sift", "--scale", "1", "--out", str(out)], capsys)
    assert code == 0
    assert "| descriptor | matcher | AUC@5 | AUC@10 | AUC@20 |" in printed and "pose evaluation (given matches" in printed
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["pose.json", "pose.md", "pose.png", "pose.tex"]
    payload = json.loads((out / "pose.json").read_text())
    assert list(payload["models"]) == ["SIFT (OpenCV)", "RootSIFT (OpenCV)"]  # the baselines, once each
    assert payload["setting"]["pairs_evaluated"] == [["0000.png", "0001.png"], ["0000.png", "0002.png"],
                                                     ["0000.png", "0003.png"], ["0001.png", "0002.png"],
                                                     ["0001.png", "0003.png"], ["0002.png", "0003.png"]]
    for label, summary in payload["models"].items():
        # no --matcher/--ratio: OpenCV's SIFT and RootSIFT keep Lowe's ratio test, and the row says so
        assert summary["matching"]["matcher"] == "smnn" and summary["matching"]["ratio"] == 0.8
        assert "Lowe" in summary["matching"]["origin"]
        # rendered exactly: poses within a few degrees, the AUCs high, almost every match correct
        assert summary["failed"] == 0 and summary["auc"]["20"] > 80 and summary["precision"] > 95, (label, summary)
        assert summary["auc"]["5"] <= summary["auc"]["10"] <= summary["auc"]["20"] <= 100
        # MAGSAC, the second column, is computed; on this box of planes it falls for a plane on some pairs
        assert 0 <= summary["auc_magsac"]["5"] <= summary["auc_magsac"]["20"] <= 100
    sift, rootsift = payload["pairs"]["SIFT (OpenCV)"], payload["pairs"]["RootSIFT (OpenCV)"]
    assert [r["keypoints"] for r in sift] == [r["keypoints"] for r in rootsift]  # the same keypoints
    assert sum(max(r["error_R"], r["error_t"]) < 2 for r in sift) >= 5  # errors against the true poses
    assert all(r["correct"] <= r["matches"] and "error_R_magsac" in r for r in sift)
    assert (out / "pose.md").read_text().count("| SIFT (OpenCV) |") == 1
    assert "\\begin{tabular}" in (out / "pose.tex").read_text()

    # a rerun adds its model; the earlier rows stay
    code, printed, _ = _run([str(scene), "--model", "pixels", "--no-baselines", "--scale", "1",
                             "--out", str(out)], capsys)
    assert code == 0 and "kept the earlier results of SIFT (OpenCV), RootSIFT (OpenCV)" in printed
    payload = json.loads((out / "pose.json").read_text())
    assert list(payload["models"]) == ["SIFT (OpenCV)", "RootSIFT (OpenCV)", "pixels"]
    # another setting cannot share the table: refused before any work
    before = (out / "pose.json").read_bytes()
    code, _, err = _run([str(scene), "--no-baselines", "--model", "opencv-sift", "--scale", "0.5", "--out", str(out)],
                        capsys)
    assert code == 2 and "holds results of another setting (setting differ)" in err
    assert (out / "pose.json").read_bytes() == before


def test_max_gap_and_refused_inputs(scene, tmp_path, capsys):
    out = tmp_path / "gap"
    code, printed, _ = _run([str(scene / "images"), "--max-gap", "1", "--model", "opencv-rootsift", "--no-baselines",
                             "--out", str(out)], capsys)
    assert code == 0
    assert json.loads((out / "pose.json").read_text())["setting"]["pairs_evaluated"] == [
        ["0000.png", "0001.png"], ["0001.png", "0002.png"], ["0002.png", "0003.png"]]
    code, _, err = _run(["--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "give one input" in err
    code, _, err = _run(["--pairs", str(tmp_path / "p.txt"), "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "--images DIR" in err
    code, _, err = _run([str(tmp_path), "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "not a Strecha scene folder" in err
    assert not (tmp_path / "x").exists()


def test_pairs_file_with_exif_rotations_as_superglue(scene, tmp_path, capsys):
    """The same pairs given in SuperGlue's format, upright (rot 0) and turned (rot 1 and 3): the images, intrinsics
    and poses turn together, so both give small errors (a missing turn of K or T would not)."""
    cams = read_strecha_scene(scene)
    names = sorted(cams)
    lines = {0: [], 1: []}
    for a, b in [(names[0], names[1]), (names[1], names[2]), (names[0], names[2])]:
        T = relative_pose(cams[a], cams[b])
        numbers = " ".join(f"{v:.17g}" for v in (*cams[a].K.ravel(), *cams[b].K.ravel(), *T.ravel()))
        lines[0].append(f"{a} {b} 0 0 {numbers}")
        lines[1].append(f"{a} {b} 1 3 {numbers}")
    results = {}
    for turned, rows in lines.items():
        pairs = tmp_path / f"pairs{turned}.txt"
        pairs.write_text("\n".join(rows) + "\n")
        out = tmp_path / f"out{turned}"
        code, _, err = _run(["--pairs", str(pairs), "--images", str(scene / "images"), "--model", "opencv-rootsift",
                             "--no-baselines", "--scale", "1", "--out", str(out)], capsys)
        assert code == 0, err
        results[turned] = json.loads((out / "pose.json").read_text())["pairs"]["RootSIFT (OpenCV)"]
    for upright, rotated in zip(results[0], results[1]):
        assert (rotated["rot0"], rotated["rot1"]) == (1, 3)
        assert max(upright["error_R"], upright["error_t"]) < 3 and max(rotated["error_R"], rotated["error_t"]) < 3
        assert rotated["precision"] > 0.95 and upright["precision"] > 0.95


def test_shared_scannet_pairs(shared_data, tmp_path, capsys):
    pairs = shared_file(shared_data, "scannet-sample/scannet_sample_pairs_with_gt.txt")
    out = tmp_path / "scannet"
    code, printed, err = _run(["--pairs", str(pairs), "--images", str(shared_data / "scannet-sample" / "images"),
                               "--model", "opencv-rootsift", "--no-baselines", "--scale", "0.25", "--out", str(out)],
                              capsys)
    assert code == 0, err
    summary = json.loads((out / "pose.json").read_text())["models"]["RootSIFT (OpenCV)"]
    assert summary["pairs"] == 15 and 0 <= summary["auc"]["10"] <= 100
    assert "| RootSIFT (OpenCV) |" in printed


def test_constant_descriptors_get_a_warning(scene, tmp_path, capsys, constant_weights):
    out = tmp_path / "flat"
    code, printed, err = _run([str(scene), "--max-gap", "1", "--model", str(constant_weights),
                               "--no-baselines", "--scale", "0.5", "--out", str(out)], capsys)
    assert code == 0, err
    assert "WARNING: w-flat: all descriptors are identical" in printed
    summary = json.loads((out / "pose.json").read_text())["models"]["w-flat"]
    assert "all descriptors are identical" in summary["warnings"][0]
    assert "WARNING: w-flat" in (out / "pose.md").read_text()
