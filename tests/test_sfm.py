"""Structure from motion through pycolmap: the keypoint convention, a reconstruction with known cameras,
the reconstruct and eval sfm commands.

The scene: the inside of a textured box rendered exactly (one homography per face) by cameras with known
poses and focal length, so a reconstruction can be checked against the truth.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

pycolmap = pytest.importorskip("pycolmap", reason="pycolmap is not installed (pip install 'descnet[sfm]')")

from descnet.cli.main import main  # noqa: E402
from descnet.geometry.colmap import create_database, first_at_position, merge_repeated_positions, reconstruct  # noqa: E402
from descnet.features.files import PairMatches, read_features, write_matches  # noqa: E402
from descnet.features.options import KeypointOptions, MatchOptions  # noqa: E402
from descnet.features.pairs import exhaustive_pairs  # noqa: E402
from descnet.features.pipeline import describe_to_file, image_sources, match_to_file  # noqa: E402
from descnet.eval.sfm import folder_name  # noqa: E402

W, H, FOCAL = 640, 480, 768.0  # COLMAP's prior for an image without EXIF: 1.2 x the longer side
K = np.array([[FOCAL, 0, (W - 1) / 2], [0, FOCAL, (H - 1) / 2], [0, 0, 1.0]])  # pixel centres at integers
FACES = [  # corner, u edge, v edge (metres): back wall, floor, ceiling, left and right walls
    ((-3, -2, 6), (6, 0, 0), (0, 4, 0)), ((-3, 2, 0), (6, 0, 0), (0, 0, 6)), ((-3, -2, 0), (6, 0, 0), (0, 0, 6)),
    ((-3, -2, 0), (0, 0, 6), (0, 4, 0)), ((3, -2, 0), (0, 0, 6), (0, 4, 0)),
]


def _texture(seed: int, size: int = 1024) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = sum(sigma * cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), sigma)
              for sigma in (2.0, 5.0, 12.0))
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def _look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World -> camera rotation of a camera at ``centre`` looking at ``target`` (x right, y down, z forward)."""
    z = (target - centre) / np.linalg.norm(target - centre)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def render_box(folder, views: int = 5) -> dict[str, np.ndarray]:
    """Write ``view<i>.png`` of the box into ``folder`` -> ``{name: camera centre}``."""
    folder.mkdir(parents=True, exist_ok=True)
    textures = [_texture(10 + i) for i in range(len(FACES))]
    centres = {}
    for i in range(views):
        s = -1.0 + 2.0 * i / (views - 1)
        centre = np.array([1.6 * s, 0.3 * np.sin(3 * s), 0.8 * (1 - s * s)])
        rot = _look_at(centre, np.array([0.0, 0.3, 6.0]))
        image = np.zeros((H, W), np.uint8)
        for (corner, u, v), tex in zip(FACES, textures):
            step = 1.0 / tex.shape[0]  # texture pixel -> metres along the edges
            homography = K @ np.column_stack([rot @ np.multiply(u, step), rot @ np.multiply(v, step),
                                              rot @ (np.asarray(corner, float) - centre)])
            face = cv2.warpPerspective(tex, homography, (W, H), flags=cv2.INTER_LINEAR)
            inside = cv2.warpPerspective(np.full(tex.shape, 255, np.uint8), homography, (W, H),
                                         flags=cv2.INTER_NEAREST) > 0
            image[inside] = face[inside]  # seen from inside, the faces of a box never overlap
        cv2.imwrite(str(folder / f"view{i}.png"), image)
        centres[f"view{i}.png"] = centre
    return centres


def similarity_residuals(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Distances after the least-squares similarity (Umeyama) mapping ``(N, 3)`` source onto target."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    a, b = source - mu_s, target - mu_t
    u, d, vt = np.linalg.svd(b.T @ a / len(a))
    e = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ e @ vt
    scale = np.trace(np.diag(d) @ e) / a.var(0).sum()
    return np.linalg.norm(b - scale * a @ rot.T, axis=1)


def _listing(folder) -> list[str]:
    """The visible files of a result folder (not descnet's manifest)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """The rendered box, described with OpenCV RootSIFT and matched (all pairs, mutual NN + ratio 0.8)."""
    root = tmp_path_factory.mktemp("box")
    centres = render_box(root / "images")
    images = image_sources([root / "images"])
    describe_to_file(images, root / "features.h5", model="opencv-rootsift", options=KeypointOptions(max_keypoints=1500))
    match_to_file(root / "features.h5", exhaustive_pairs(list(images)), root / "matches.h5",
                  options=MatchOptions("smnn", 0.8, "fundamental"))
    return root, centres


def test_repeated_keypoint_positions_become_one_2d_point():
    # OpenCV's SIFT repeats a keypoint per orientation at one position: twins 0/1 in image 0, 1/2 in image 1
    first0 = first_at_position(np.array([[0, 0, 3, 10], [0, 0, 3, 200], [5, 5, 2, 0], [7, 7, 2, 0]], np.float32))
    first1 = first_at_position(np.array([[1, 1], [2, 2], [2, 2], [3, 3]], np.float32))
    assert first0.tolist() == [0, 0, 2, 3] and first1.tolist() == [0, 1, 1, 3]
    matches = np.array([[0, 0], [1, 1], [2, 2], [3, 3]])
    # closest first: (0, 1) d 0.1 and (3, 3) d 0.2 stay; (2, 1) reuses image-1 point 1, (0, 0) image-0 point 0
    merged = merge_repeated_positions(matches, first0, first1, np.array([0.5, 0.1, 0.3, 0.2]))
    assert merged.tolist() == [[0, 1], [3, 3]]
    assert merge_repeated_positions(matches, first0, first1).tolist() == [[0, 0], [2, 1], [3, 3]]  # file order
    assert merge_repeated_positions(matches[:0], first0, first1).shape == (0, 2)


def test_keypoints_enter_colmap_half_a_pixel_later(box, tmp_path):
    root, _ = box
    info = create_database(tmp_path / "database.db", root / "images", root / "features.h5", root / "matches.h5")
    assert info["images"] == [f"view{i}.png" for i in range(5)] and len(info["pairs"]) == 10
    feats = read_features(root / "features.h5")
    with pycolmap.Database.open(tmp_path / "database.db") as db:
        for image in db.read_all_images():
            xy = np.asarray(db.read_keypoints(image.image_id))[:, :2]
            np.testing.assert_array_equal(xy, (feats[image.name].keypoints[:, :2] + np.float32(0.5)))
            camera = db.read_camera(image.camera_id)
            assert (camera.width, camera.height) == (W, H)
        assert db.num_matches() == info["matches"] > 1000 and info["merged"] >= 0


def test_reconstruct_recovers_the_cameras_of_the_box(box, capsys):
    root, centres = box
    out = root / "sfm"
    # one camera took every view: with a focal length per image (COLMAP's auto mode for images without EXIF)
    # depth and focal length trade off on this shallow scene
    assert main(["reconstruct", str(root / "images"), "--features", str(root / "features.h5"), "--matches",
                 str(root / "matches.h5"), "--camera-mode", "single", "--out", str(out), "--quiet"]) == 0
    assert _listing(out) == ["database.db", "model", "summary.json", "summary.md"]
    printed = capsys.readouterr().out
    assert "| descriptor | registered | 3D points |" in printed and "| 5 / 5 |" in printed
    summary = json.loads((out / "summary.json").read_text())
    model = pycolmap.Reconstruction(out / "model")
    assert summary["registered"] == model.num_reg_images() == 5 and summary["images"] == 5
    assert summary["points3D"] == model.num_points3D() > 500
    assert summary["observations"] == model.compute_num_observations()
    assert summary["mean_track_length"] == pytest.approx(model.compute_mean_track_length())
    assert summary["mean_reprojection_error"] < 0.3  # rendered exactly: sub-pixel keypoints
    assert summary["verified_pairs"] == summary["pairs"] == 10
    # the truth: camera centres up to a similarity, the focal length
    names = sorted(centres)
    images = {image.name: image for image in model.images.values()}
    estimated = np.array([images[n].projection_center() for n in names])
    truth = np.array([centres[n] for n in names])
    spread = np.linalg.norm(truth - truth.mean(0), axis=1).max()
    assert similarity_residuals(estimated, truth).max() < 0.01 * spread
    assert len(model.cameras) == 1 and model.cameras[1].params[0] == pytest.approx(FOCAL, rel=0.01)
    # the model's 2D points are descnet's keypoints in COLMAP's convention
    feats = read_features(root / "features.h5")
    for name, image in images.items():
        xy = np.array([p.xy for p in image.points2D])
        np.testing.assert_allclose(xy, feats[name].keypoints[:, :2] + 0.5, atol=1e-4)


def test_reconstruct_refuses_a_resized_image_and_keeps_other_files(box, tmp_path, capsys):
    root, _ = box
    images = tmp_path / "images"
    images.mkdir()
    for p in (root / "images").iterdir():
        (images / p.name).write_bytes(p.read_bytes())
    small = cv2.resize(cv2.imread(str(images / "view2.png")), (320, 240))
    cv2.imwrite(str(images / "view2.png"), small)
    out = tmp_path / "sfm"
    args = ["reconstruct", str(images), "--features", str(root / "features.h5"), "--matches", str(root / "matches.h5"),
            "--out", str(out), "--quiet"]
    assert main(args) == 2
    assert "view2.png: COLMAP reads a 320x240 image but its features were computed on 640x480" in \
        capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    (images / "view2.png").unlink()
    assert main(args) == 2
    assert "view2.png: no such image" in capsys.readouterr().err
    (out / "model").mkdir(parents=True)
    (out / "model" / "notes.txt").write_text("mine")
    assert main([args[0], str(root / "images")] + args[2:]) == 2
    assert "holds files that are not a COLMAP model (notes.txt)" in capsys.readouterr().err
    assert (out / "model" / "notes.txt").read_text() == "mine"


def test_missing_pycolmap_is_one_clear_line(box, tmp_path, capsys, monkeypatch):
    root, _ = box
    monkeypatch.setitem(sys.modules, "pycolmap", None)
    assert main(["reconstruct", str(root / "images"), "--features", str(root / "features.h5"), "--matches",
                 str(root / "matches.h5"), "--out", str(tmp_path / "sfm")]) == 2
    assert "needs pycolmap, which is not installed: pip install 'descnet[sfm]'" in capsys.readouterr().err


def test_eval_sfm_compares_descriptors_on_the_same_keypoints(box, tmp_path, capsys):
    root, _ = box
    out = tmp_path / "eval"
    assert main(["eval", "sfm", str(root / "images"), "--model", "opencv-sift", "--max-keypoints", "1000",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    labels = ["SIFT (OpenCV)", "RootSIFT (OpenCV)", "COLMAP SIFT (pycolmap)"]
    assert [line.split(" | ")[0].strip("| ") for line in printed.splitlines()[2:5]] == labels
    payload = json.loads((out / "sfm.json").read_text())
    assert list(payload["rows"]) == labels and payload["settings"]["matcher"] is None  # not given: per model
    for label in labels[:2]:  # OpenCV SIFT and RootSIFT: Lowe's ratio test as COLMAP applies it
        matching = payload["settings"]["matching"][label]
        assert (matching["matcher"], matching["ratio"]) == ("smnn", 0.8) and "Lowe" in matching["origin"]
    assert "- RootSIFT (OpenCV): smnn 0.8 (Lowe's ratio test" in printed
    assert all(row["registered"] == 5 for row in payload["rows"].values())
    sift = read_features(out / "SIFT-OpenCV" / "features.h5")
    root_sift = read_features(out / "RootSIFT-OpenCV" / "features.h5")
    for name in sift:  # the same keypoints, other descriptors
        np.testing.assert_array_equal(sift[name].keypoints, root_sift[name].keypoints)
        assert not np.array_equal(sift[name].descriptors, root_sift[name].descriptors)
    for folder in ("SIFT-OpenCV/colmap", "RootSIFT-OpenCV/colmap", "colmap-sift"):
        assert (out / folder / "model" / "points3D.bin").is_file()
    assert (out / "sfm.md").read_text().count("| 5 / 5 |") == 3


def test_reconstruct_without_matches_writes_no_model(box, tmp_path, capsys):
    root, _ = box
    feats = read_features(root / "features.h5")
    empty = {(a, b): PairMatches(np.zeros((0, 2), np.int64), np.zeros(0, np.float32), np.zeros(0, bool), None,
                                 num_keypoints=(len(feats[a]), len(feats[b])))
             for a, b in exhaustive_pairs(sorted(feats))}
    write_matches(tmp_path / "none.h5", empty, {"matcher": "mnn"})
    out = tmp_path / "sfm"
    assert main(["reconstruct", str(root / "images"), "--features", str(root / "features.h5"), "--matches",
                 str(tmp_path / "none.h5"), "--out", str(out), "--quiet"]) == 1
    printed = capsys.readouterr().out
    assert "COLMAP made no model (0 of 10 pairs verified): COLMAP's geometric verification kept none of the 10 " \
           "pairs: each needs at least 15 inlier matches" in printed
    assert _listing(out) == ["database.db", "summary.json", "summary.md"]
    summary = reconstruct(root / "images", root / "features.h5", tmp_path / "none.h5", out)
    assert (summary.registered, summary.points3D, summary.matches, summary.models) == (0, 0, 0, 0)


# ---------------------------------------------------------------- issue 24: reconstruct as a unit, provenance

def test_reconstruct_refuses_matches_of_other_features_and_pairs_naming_absent_images(box, tmp_path, capsys):
    root, _ = box
    images = image_sources([root / "images"])
    describe_to_file(images, tmp_path / "fewer.h5", model="opencv-rootsift", options=KeypointOptions(max_keypoints=300))
    out = tmp_path / "sfm"
    base = ["reconstruct", str(root / "images"), "--matches", str(root / "matches.h5"), "--out", str(out), "--quiet"]
    assert main(base + ["--features", str(tmp_path / "fewer.h5")]) == 2
    err = capsys.readouterr().err
    assert "matches.h5: the matches of view0.png view1.png were computed from other features of view0.png" in err
    assert "Traceback" not in err and (not out.exists() or not any(out.iterdir()))
    (tmp_path / "pairs.txt").write_text("view0.png view1.png\nview0.png nowhere.png\n")
    assert main(base + ["--features", str(root / "features.h5"), "--pairs", str(tmp_path / "pairs.txt")]) == 2
    assert ("the pairs name the image nowhere.png, which is neither an image of " in capsys.readouterr().err)


def _reconstruction_state(out) -> int:
    """The number of pairs of a complete reconstruction folder (summary, database and model agree), checked."""
    assert _listing(out) == ["database.db", "model", "summary.json", "summary.md"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".descnet-manifest.json"]
    summary = json.loads((out / "summary.json").read_text())
    with pycolmap.Database.open(out / "database.db") as db:
        assert db.num_matched_image_pairs() == summary["pairs"]
    assert pycolmap.Reconstruction(out / "model").num_points3D() == summary["points3D"]
    return summary["pairs"]


def test_reconstruct_failing_at_every_rename_leaves_the_old_or_the_new_set(box, tmp_path, monkeypatch):
    import shutil

    from tests.conftest import fail_at_rename

    root, _ = box
    old = tmp_path / "old"
    reconstruct(root / "images", root / "features.h5", root / "matches.h5", old)
    assert _reconstruction_state(old) == 10
    pairs = exhaustive_pairs([f"view{i}.png" for i in range(4)])  # the new set: 6 pairs
    seen = set()
    for k in range(1, 40):
        out = tmp_path / f"out{k}"
        shutil.copytree(old, out)
        calls = fail_at_rename(monkeypatch, k)
        try:
            reconstruct(root / "images", root / "features.h5", root / "matches.h5", out, pairs=pairs)
        except OSError as err:
            assert "injected" in str(err)
        finally:
            monkeypatch.undo()
        seen.add(_reconstruction_state(out))
        if calls["n"] < k:
            break
    assert seen == {10, 6} and k > 5


_KILL_RECONSTRUCT = textwrap.dedent("""
    import os, sys
    k, images, features, matches, out = int(sys.argv[1]), *sys.argv[2:6]
    real, calls = os.replace, [0]
    def replace(src, dst):
        calls[0] += 1
        if calls[0] == k:
            os._exit(9)  # as SIGKILL: no clean-up runs
        return real(src, dst)
    os.replace = replace
    from descnet.features.pairs import exhaustive_pairs
    from descnet.geometry.colmap import reconstruct
    reconstruct(images, features, matches, out, pairs=exhaustive_pairs([f"view{i}.png" for i in range(4)]))
    sys.exit(3)
""")


@pytest.mark.slow
def test_reconstruct_killed_at_every_rename_leaves_the_old_or_the_new_set(box, tmp_path):
    import shutil

    from descnet.io import recover_result_sets

    root, _ = box
    old = tmp_path / "old"
    reconstruct(root / "images", root / "features.h5", root / "matches.h5", old)
    seen = set()
    for k in range(1, 40):
        out = tmp_path / f"out{k}"
        shutil.copytree(old, out)
        proc = subprocess.run([sys.executable, "-c", _KILL_RECONSTRUCT, str(k), str(root / "images"),
                               str(root / "features.h5"), str(root / "matches.h5"), str(out)],
                              cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
        assert proc.returncode in (9, 3), proc.stderr
        recover_result_sets(out)  # what the next command writing into `out` does first
        seen.add(_reconstruction_state(out))
        if proc.returncode == 3:
            break
    assert seen == {10, 6} and k > 5


def _sfm_state(out) -> list[str]:
    """The rows of a consistent eval sfm folder: sfm.json and sfm.md agree, each row's colmap/ is complete."""
    payload = json.loads((out / "sfm.json").read_text())
    table = (out / "sfm.md").read_text().split("\n\n")[0]  # the table; the rows' matchers follow it
    rows = list(payload["rows"])
    assert [line.split(" | ")[0].strip("| ") for line in table.splitlines()[2:]] == rows
    for label in rows:
        assert _reconstruction_state(out / folder_name(label) / "colmap") == payload["rows"][label]["pairs"]
    assert not [p for p in out.rglob(".descnet-staging-*")] and not [p for p in out.rglob("*.tmp")]
    return rows


@pytest.mark.slow
def test_eval_sfm_reruns_add_rows_and_a_failure_at_every_rename_leaves_a_consistent_folder(box, tmp_path,
                                                                                          monkeypatch):
    import shutil

    from descnet.eval.sfm import compare_sfm
    from tests.conftest import fail_at_rename

    root, _ = box
    few = KeypointOptions(max_keypoints=500)
    old = tmp_path / "old"
    compare_sfm(root / "images", {"RootSIFT": "opencv-rootsift"}, old, colmap_sift=False, keypoint_options=few)
    assert _sfm_state(old) == ["RootSIFT"]
    seen = set()
    for k in range(1, 60):
        out = tmp_path / f"out{k}"
        shutil.copytree(old, out)
        calls = fail_at_rename(monkeypatch, k)
        try:
            compare_sfm(root / "images", {"SIFT": "opencv-sift"}, out, colmap_sift=False, keypoint_options=few)
        except OSError as err:
            assert "injected" in str(err)
        finally:
            monkeypatch.undo()
        seen.add(tuple(_sfm_state(out)))
        if calls["n"] < k:
            break
    assert seen == {("RootSIFT",), ("RootSIFT", "SIFT")}  # the earlier row is never dropped
    # a rerun with other settings is refused before any work; other weights of one label are refused too
    with pytest.raises(ValueError, match=r"sfm.json: holds rows of other settings \(max_keypoints differ\)"):
        compare_sfm(root / "images", {"RootSIFT": "opencv-rootsift"}, out, colmap_sift=False,
                    keypoint_options=KeypointOptions(max_keypoints=300))
    with pytest.raises(ValueError, match=r"RootSIFT/features.h5: holds features made with other settings: model "
                                         r"'opencv-rootsift' \(this run: 'opencv-sift'\), model_digest"):
        compare_sfm(root / "images", {"RootSIFT": "opencv-sift"}, out, colmap_sift=False, keypoint_options=few)
    assert _sfm_state(out) == ["RootSIFT", "SIFT"]
def write_strecha_cameras(folder, names) -> None:
    """The box's true cameras as Strecha ``.camera`` files in ``folder/gt_dense_cameras`` (R camera-to-world)."""
    cams = folder / "gt_dense_cameras"
    cams.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        s = -1.0 + 2.0 * i / (len(names) - 1)
        centre = np.array([1.6 * s, 0.3 * np.sin(3 * s), 0.8 * (1 - s * s)])  # as render_box
        rot = _look_at(centre, np.array([0.0, 0.3, 6.0]))
        rows = [" ".join(f"{v:.17g}" for v in row) for row in (*K, (0, 0, 0), *rot.T, centre, (W, H))]
        (cams / f"{name}.camera").write_text("\n".join(rows) + "\n")


def test_reconstruct_with_ground_truth_reports_camera_errors(box, tmp_path, capsys):
    from descnet.geometry.alignment import camera_errors
    from descnet.geometry.cameras import read_ground_truth

    root, centres = box
    write_strecha_cameras(tmp_path / "gt", sorted(centres))
    out = tmp_path / "sfm"
    assert main(["reconstruct", str(root / "images"), "--features", str(root / "features.h5"), "--matches",
                 str(root / "matches.h5"), "--camera-mode", "single", "--ground-truth", str(tmp_path / "gt"),
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.index("camera errors against") < printed.index("| descriptor | registered | 3D points |")
    cameras = json.loads((out / "summary.json").read_text())["cameras"]
    assert (cameras["images"], cameras["registered"], cameras["alignment_inliers"]) == (5, 5, 5)
    assert cameras["rotation_median"] < 0.2 and cameras["centre_median"] < 0.005 * cameras["extent"]
    assert cameras["accuracy"]["1deg/1%"] == 1.0 and cameras["maa"] > 0.9
    assert "| 5 / 5 |" in (out / "summary.md").read_text().split("\n\n")[0]  # the camera table first
    # a COLMAP model as ground truth: the model against itself is exact
    own = read_ground_truth(out)
    errors = camera_errors(own, own)
    assert errors.rotation_mean < 1e-6 and errors.centre_mean < 1e-9 and errors.maa == 1.0


def test_eval_sfm_finds_the_strecha_ground_truth_beside_the_images(box, tmp_path, capsys):
    import shutil

    root, centres = box
    scene = tmp_path / "scene"
    shutil.copytree(root / "images", scene / "images")
    write_strecha_cameras(scene, sorted(centres))
    out = tmp_path / "eval"
    assert main(["eval", "sfm", str(scene / "images"), "--model", "opencv-rootsift", "--no-baselines", "--no-colmap",
                 "--max-keypoints", "1000", "--camera-mode", "single", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"ground truth: {scene / 'gt_dense_cameras'}")
    assert printed.index("| descriptor | registered / GT |") < printed.index("| descriptor | registered | 3D points |")
    payload = json.loads((out / "sfm.json").read_text())
    cameras = payload["rows"]["RootSIFT (OpenCV)"]["cameras"]
    assert cameras["registered"] == 5 and cameras["rotation_median"] < 0.2
    assert payload["settings"]["ground_truth"] == str(scene / "gt_dense_cameras")
    assert (out / "sfm.md").read_text().startswith("| descriptor | registered / GT |")
    # ground truth that names none of the images is refused before any work
    (tmp_path / "other" / "gt_dense_cameras").mkdir(parents=True)
    shutil.copy(scene / "gt_dense_cameras" / "view0.png.camera", tmp_path / "other" / "gt_dense_cameras" / "x.camera")
    assert main(["eval", "sfm", str(scene / "images"), "--model", "opencv-rootsift", "--no-baselines", "--no-colmap",
                 "--ground-truth", str(tmp_path / "other"), "--out", str(tmp_path / "eval2"), "--quiet"]) == 2
    assert "holds no camera of the images" in capsys.readouterr().err and not (tmp_path / "eval2").exists()


def test_eval_pose_with_ground_truth_from_a_colmap_model(box, tmp_path, capsys):
    root, centres = box
    sfm = tmp_path / "sfm"
    assert main(["reconstruct", str(root / "images"), "--features", str(root / "features.h5"), "--matches",
                 str(root / "matches.h5"), "--camera-mode", "single", "--out", str(sfm), "--quiet"]) == 0
    from descnet.geometry.cameras import cameras_from_colmap

    cameras = cameras_from_colmap(sfm / "model")
    assert sorted(cameras) == sorted(centres)
    # the principal point in descnet's convention (pixel centres at integers), like the renderer's K
    assert cameras["view0.png"].K[0, 2] == pytest.approx(K[0, 2], abs=1e-6)
    out = tmp_path / "pose"
    assert main(["eval", "pose", "--cameras", str(sfm / "model"), "--images", str(root / "images"), "--model",
                 "opencv-rootsift", "--no-baselines", "--scale", "1", "--max-gap", "2", "--out", str(out),
                 "--quiet"]) == 0
    summary = json.loads((out / "pose.json").read_text())["models"]["RootSIFT (OpenCV)"]
    assert summary["pairs"] == 7 and summary["failed"] == 0 and summary["precision"] > 90
