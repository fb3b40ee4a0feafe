"""Training patches from a 3D reconstruction: tracks read from a COLMAP model, triangulation with known
cameras, the filters, and the Brown / HPatches-style layouts read back by the existing readers.

The scene is tests/test_sfm.py's textured box, rendered exactly by 6 cameras of known pose.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pycolmap = pytest.importorskip("pycolmap", reason="pycolmap is not installed (pip install 'descnet[sfm]')")

from descnet.cli.main import main  # noqa: E402
from descnet.data.hpatches import HPatches  # noqa: E402
from descnet.data.phototour import PhotoTour  # noqa: E402
from descnet.features.files import read_features  # noqa: E402
from descnet.features.options import KeypointOptions, MatchOptions  # noqa: E402
from descnet.features.pairs import exhaustive_pairs  # noqa: E402
from descnet.features.pipeline import describe_to_file, image_sources, match_to_file  # noqa: E402
from descnet.geometry.tracks import (TrackFilter, filter_tracks, read_tracks, reconstruction_patches,  # noqa: E402
                                     view_angle_spread)
from descnet.geometry.cameras import Camera  # noqa: E402
from descnet.geometry.triangulate import triangulate_known_cameras  # noqa: E402
from tests.test_data_patchify import ncc_rows  # noqa: E402
from tests.test_sfm import FACES, H, K, W, _look_at, render_box  # noqa: E402

VIEWS = 6


def _cameras() -> dict[str, Camera]:
    """render_box's cameras (same formula)."""
    out = {}
    for i in range(VIEWS):
        s = -1.0 + 2.0 * i / (VIEWS - 1)
        centre = np.array([1.6 * s, 0.3 * np.sin(3 * s), 0.8 * (1 - s * s)])
        rot = _look_at(centre, np.array([0.0, 0.3, 6.0]))
        out[f"view{i}.png"] = Camera(K, rot, centre, W, H)
    return out


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The box seen by 6 cameras, RootSIFT features, all pairs matched, triangulated with the known cameras."""
    root = tmp_path_factory.mktemp("box3d")
    centres = render_box(root / "images", views=VIEWS)
    images = image_sources([root / "images"])
    describe_to_file(images, root / "features.h5", model="opencv-rootsift", options=KeypointOptions(max_keypoints=1200))
    match_to_file(root / "features.h5", exhaustive_pairs(list(images)), root / "matches.h5",
                  options=MatchOptions("smnn", 0.8, "fundamental"))
    model = triangulate_known_cameras(root / "images", root / "features.h5", root / "matches.h5", _cameras(),
                                      root / "sfm")
    return root, centres, model


def test_triangulated_points_lie_on_the_box(scene):
    root, _, model = scene
    assert sorted(p.name for p in (root / "sfm").iterdir()) == ["database.db", "model"]
    xyz = np.array([p.xyz for p in model.points3D.values()])
    assert len(xyz) > 500 and model.num_reg_images() == VIEWS
    planes = []  # (normal, offset) of each face
    for corner, u, v in FACES:
        n = np.cross(u, v).astype(float)
        n /= np.linalg.norm(n)
        planes.append((n, n @ np.asarray(corner, float)))
    distance = np.min([np.abs(xyz @ n - d) for n, d in planes], axis=0)
    assert np.median(distance) < 0.005 and np.mean(distance < 0.05) > 0.97  # metres; the box is 6 x 4 x 6


def test_tracks_are_the_models_observations_in_descnets_convention(scene):
    root, centres, model = scene
    tracks = read_tracks(root / "sfm" / "model")
    assert tracks.names == [f"view{i}.png" for i in range(VIEWS)]
    assert len(tracks) == model.compute_num_observations() and tracks.num_points == model.num_points3D()
    assert np.all(np.diff(tracks.point_id) >= 0)
    feats = read_features(root / "features.h5")
    for i, name in enumerate(tracks.names):  # 2D point j = keypoint j of the features file, pixel centres at 0
        rows = tracks.image == i
        np.testing.assert_allclose(tracks.xy[rows], feats[name].keypoints[tracks.point2D[rows], :2], atol=1e-4)
        ray = tracks.xyz[rows] - centres[name]
        np.testing.assert_allclose(tracks.direction[rows], ray / np.linalg.norm(ray, axis=1, keepdims=True),
                                   atol=1e-9)
    assert tracks.depth.min() > 0 and np.median(tracks.reprojection_error) < 0.3
    # the same errors as COLMAP's per-point mean
    first = {pid: tracks.reprojection_error[tracks.point_id == pid].mean() for pid in list(model.points3D)[:50]}
    for pid, err in first.items():
        assert err == pytest.approx(model.points3D[pid].error, abs=1e-3)


def test_view_angle_spread_is_the_largest_pairwise_angle():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(7, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    ids = np.array([1, 1, 1, 5, 5, 9, 9])
    spread = view_angle_spread(ids, d)
    for pid in (1, 5, 9):
        group = d[ids == pid]
        brute = max(np.degrees(np.arccos(np.clip(a @ b, -1, 1))) for a in group for b in group)
        assert np.allclose(spread[ids == pid], brute)


def test_filters_do_what_they_say(scene):
    root, _, _ = scene
    tracks = read_tracks(root / "sfm" / "model")
    loose = filter_tracks(tracks, TrackFilter(max_reprojection_error=100, min_track_length=2, min_view_angle=0))
    assert loose.all()
    long = filter_tracks(tracks, TrackFilter(max_reprojection_error=100, min_track_length=5, min_view_angle=0))
    _, inverse, counts = np.unique(tracks.point_id, return_inverse=True, return_counts=True)
    assert np.array_equal(long, counts[inverse] >= 5)
    tight = filter_tracks(tracks, TrackFilter(max_reprojection_error=0.05, min_track_length=2, min_view_angle=0))
    assert not tight[tracks.reprojection_error > 0.05].any()
    wide = filter_tracks(tracks, TrackFilter(100, 2, min_view_angle=20))
    assert 0 < wide.sum() < len(tracks)
    assert (view_angle_spread(tracks.point_id[wide], tracks.direction[wide]) >= 20).all()
    with pytest.raises(ValueError, match="min_track_length must be at least 2"):
        TrackFilter(min_track_length=1)


def _ncc_split(subset: PhotoTour) -> tuple[float, float]:
    pairs = subset.matches
    ncc = ncc_rows(subset.patches[pairs[:, 0]], subset.patches[pairs[:, 1]])
    return float(np.median(ncc[pairs[:, 2] == 1])), float(np.median(ncc[pairs[:, 2] == 0]))


@pytest.mark.slow
def test_data_patches_from_a_reconstruction_reads_back_and_evaluates(scene, tmp_path, capsys):
    root, _, model = scene
    out = tmp_path / "patches"
    assert main(["data", "patches", "--reconstruction", str(root / "sfm" / "model"), "--images", str(root / "images"),
                 "--features", str(root / "features.h5"), "--out", str(out), "--brown-pairs", "2000",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "wrote Brown layout" in printed and "HPatches-style sequences" in printed
    summary = json.loads((out / "patchify.json").read_text())
    assert summary["source"] == "reconstruction" and summary["mr_size"] == 6.0
    # Brown: info.txt = the model's 3D point ids, patches of a point consecutive, each point at least twice
    subset = PhotoTour(out, "points", cache=False, pairs_file="m50_2000_2000_0.txt", progress=False)
    labels = subset.labels
    assert set(labels.tolist()) <= set(model.points3D) and np.all(np.diff(labels) >= 0)
    assert np.unique(labels, return_counts=True)[1].min() >= 2
    assert summary["brown"]["patches"] == len(subset) and summary["brown"]["points"] == len(np.unique(labels))
    interest = subset.read_interest()
    assert interest.shape == (len(subset), 5) and set(np.unique(interest[:, 0])) <= set(range(VIEWS))
    positive, negative = _ncc_split(subset)
    assert positive > 0.8 and negative < 0.2  # the patches of one 3D point look alike, of two points not
    # HPatches-style: 6 images see every row; ref and the e1 (easy jitter) patches of a row look alike
    data = HPatches(out / "hpatches-release")
    assert len(data.sequences) >= 1 and summary["rows"]
    name = data.sequences[0]
    stacks = data.load_sequence(name)
    assert len(stacks["ref"]) == summary["rows"][name] >= 20
    assert np.median(ncc_rows(stacks["ref"], stacks["e1"])) > 0.6
    # eval brown takes it unchanged
    assert main(["eval", "brown", "--root", str(out), "--subset", "points", "--pairs", "m50_2000_2000_0.txt",
                 "--model", "pixels", "--model", "rootsift", "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    result = json.loads((tmp_path / "eval" / "brown_points.json").read_text())
    assert set(result["models"]) >= {"pixels"}
    # and training's data sources
    from descnet.training.data import load_training_data

    points, _, _ = load_training_data({"source": "phototour", "root": str(out), "name": "points"}, 32)
    assert len(points.labels) == len(subset)
    points, _, _ = load_training_data({"source": "patchset", "root": str(out), "holdout": 0, "types": None,
                                       "split": "full"}, 32)
    assert len(points.labels) == 16 * sum(summary["rows"].values())


@pytest.mark.slow
def test_without_features_a_fixed_scale_from_depth(scene, tmp_path):
    root, _, _ = scene
    out = tmp_path / "fixed"
    from descnet.data.point_patches import PointPatchOptions
    from descnet.geometry.tracks import ReconstructionPatchOptions

    summary = reconstruction_patches(root / "sfm" / "model", root / "images", out,
                                     options=ReconstructionPatchOptions(patches=PointPatchOptions(pairs=2000,
                                                                                                  hpatches=False)))
    assert summary["frames"].startswith("fixed scale")
    subset = PhotoTour(out, "points", cache=False, pairs_file="m50_2000_2000_0.txt", progress=False)
    positive, negative = _ncc_split(subset)
    assert positive > 0.6 and negative < 0.2
    interest = subset.read_interest()  # log2 half-side: 16 px at the point's median depth, so around 4
    assert abs(np.median(interest[:, 4]) - 4) < 0.3


def test_bad_input_is_one_clear_line(scene, tmp_path, capsys):
    root, _, _ = scene
    model = str(root / "sfm" / "model")
    assert main(["data", "patches", "--reconstruction", model, "--out", str(tmp_path / "a")]) == 2
    assert "--reconstruction needs --images DIR" in capsys.readouterr().err
    assert main(["data", "patches", "--reconstruction", str(tmp_path), "--images", str(root / "images"),
                 "--out", str(tmp_path / "b")]) == 2
    assert "not a COLMAP model folder" in capsys.readouterr().err
    other = tmp_path / "other.h5"  # other keypoints: refused, nothing written
    describe_to_file(image_sources([root / "images"]), other, model="opencv-rootsift",
                     options=KeypointOptions(max_keypoints=300))
    assert main(["data", "patches", "--reconstruction", model, "--images", str(root / "images"), "--features",
                 str(other), "--out", str(tmp_path / "c")]) == 2
    assert "not the features the reconstruction was made from" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_point_sequences_group_six_images_and_use_each_point_once():
    from descnet.data.point_patches import point_sequences

    # points 0..29 seen by images 0..5; points 30..49 by images 1..6; point 50 by images 0 and 1 only
    obs = [(p, i) for p in range(30) for i in range(6)] + [(p, i) for p in range(30, 50) for i in range(1, 7)] + \
        [(50, 0), (50, 1)]
    point_id, image = (np.array(c) for c in zip(*sorted(obs)))
    groups = point_sequences(point_id, image, min_rows=10)
    assert len(groups) == 2
    (images_a, points_a), (images_b, points_b) = groups
    assert sorted(images_a) == [0, 1, 2, 3, 4, 5] and points_a.tolist() == list(range(30))
    assert sorted(images_b) == [1, 2, 3, 4, 5, 6] and points_b.tolist() == list(range(30, 50))
    assert point_sequences(point_id, image, min_rows=31) == []
