"""Rendered 3D scenes: exact correspondences from depth and cameras, occlusions flagged, seeded determinism,
the files on disk and the HPatches-style patches training reads."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from descnet.data.scene3d import (Scene3DOptions, Surface, _surface_homography, correspond, read_scene,
                                  render_scene_sequence, render_view)
from tests.test_data_patchify import ncc_rows

SMALL = Scene3DOptions(size=(320, 240), max_points=300)


@pytest.fixture(scope="module")
def clean_scene():
    """A random scene without photometric change, blur or noise: intensities must agree where geometry does."""
    return render_scene_sequence(SMALL, np.random.default_rng(5), photometric=False)


def test_correspondences_are_the_planes_homographies_and_intensities_agree(clean_scene):
    scene = clean_scene
    rng = np.random.default_rng(0)
    points = np.round(rng.uniform([0, 0], [319, 239], (4000, 2)))  # pixel centres: depth read exactly there
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32) for im in scene["images"]]
    for j in (1, 5):
        mapped, visible = correspond(points, 0, j, scene)
        assert 0.2 < visible.mean() < 1.0  # the camera moved: some points leave or hide, most stay
        surface = scene["surface"][0][points[:, 1].astype(int), points[:, 0].astype(int)]
        for s in np.unique(surface[visible]).tolist():  # = the homography of each point's own plane (float64)
            on = visible & (surface == s)
            h = _surface_homography(scene, s, 0, j)
            p = np.c_[points[on], np.ones(on.sum())] @ h.T
            np.testing.assert_allclose(mapped[on], p[:, :2] / p[:, 2:], atol=1e-6)
        values = cv2.remap(grey[j], mapped[visible, 0].astype(np.float32)[None],
                           mapped[visible, 1].astype(np.float32)[None], cv2.INTER_LINEAR)[0]
        diff = np.abs(grey[0][points[visible, 1].astype(int), points[visible, 0].astype(int)] - values)
        assert np.median(diff) < 1.0 and np.percentile(diff, 90) < 4.0  # grey levels: interpolation only
        hidden = ~visible & np.isfinite(mapped[:, 0]) & (mapped[:, 0] > 0) & (mapped[:, 0] < 319) & \
            (mapped[:, 1] > 0) & (mapped[:, 1] < 239)
        hidden_values = cv2.remap(grey[j], mapped[hidden, 0].astype(np.float32)[None],
                                  mapped[hidden, 1].astype(np.float32)[None], cv2.INTER_LINEAR)[0]
        hidden_diff = np.abs(grey[0][points[hidden, 1].astype(int), points[hidden, 0].astype(int)] - hidden_values)
        assert hidden.sum() > 50 and np.median(hidden_diff) > 10 * np.median(diff)  # occluded: another surface


def test_a_point_behind_an_occluder_is_flagged():
    wall = Surface(np.array([-10.0, -10, 10]), np.array([20.0, 0, 0]), np.array([0, 20.0, 0]),
                   np.full((64, 64, 3), 100, np.uint8))
    card = Surface(np.array([-0.5, -0.5, 5]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
                   np.full((16, 16, 3), 200, np.uint8))
    options = Scene3DOptions(size=(200, 200), focal=1.0)
    K = options.K
    R = np.stack([np.eye(3), np.eye(3)])
    t = np.array([[0.0, 0, 0], [-1.0, 0, 0]])  # the second camera moves 1 unit right
    views = [render_view([wall, card], K, R[k], t[k], options.size) for k in range(2)]
    scene = {"K": K, "R": R, "t": t, "depth": np.stack([v[1] for v in views]), "surface": np.stack([v[2] for v in views])}
    assert scene["depth"][0][100, 100] == pytest.approx(5.0) and scene["surface"][0][100, 100] == 1
    # f = 200 px, principal point 99.5; camera 2 sits at X = 1. The card (|X| <= 0.5 at z = 5) hides, for
    # camera 2, the wall (z = 10) between X = -2 and 0; camera 1 sees the wall at X = -1.5 (x = 69.5)
    hidden_point = np.array([[99.5 + 200 * -1.5 / 10, 99.5]])
    mapped, visible = correspond(hidden_point, 0, 1, scene)
    assert mapped[0] == pytest.approx([99.5 + 200 * -2.5 / 10, 99.5]) and not visible[0]
    free_point = np.array([[99.5 + 200 * 4.0 / 10, 99.5]])  # the wall at X = 4: seen by both
    mapped, visible = correspond(free_point, 0, 1, scene)
    assert mapped[0] == pytest.approx([99.5 + 200 * 3.0 / 10, 99.5]) and visible[0]
    card_point = np.array([[99.5, 99.5]])  # the card's centre, X = -1 for camera 2 at 5 units
    mapped, visible = correspond(card_point, 0, 1, scene)
    assert mapped[0] == pytest.approx([99.5 - 200 / 5, 99.5]) and visible[0]


def test_seeded_determinism():
    a = render_scene_sequence(SMALL, np.random.default_rng([7, 0, 3]))
    b = render_scene_sequence(SMALL, np.random.default_rng([7, 0, 3]))
    c = render_scene_sequence(SMALL, np.random.default_rng([8, 0, 3]))
    assert all(np.array_equal(x, y) for x, y in zip(a["images"], b["images"]))
    assert np.array_equal(a["depth"], b["depth"]) and np.array_equal(a["R"], b["R"])
    assert not np.array_equal(a["images"][0], c["images"][0])


@pytest.mark.slow
def test_written_scenes_read_back_and_train(tmp_path, capsys):
    from descnet.cli.main import main
    from descnet.data.hpatches import HPatches
    from descnet.training.data import load_training_data

    out = tmp_path / "s3d"
    assert main(["data", "synth", "--kind", "scene3d", "--sequences", "2", "--size", "320x240", "--seed", "4",
                 "--out", str(out), "--quiet"]) == 0
    assert "3D scene sequences" in capsys.readouterr().out
    summary = json.loads((out / "synth.json").read_text())
    assert summary["kind"] == "scene3d" and summary["scenes"] == ["s3d000", "s3d001"]
    scene = read_scene(out / "scenes" / "s3d000")
    again = render_scene_sequence(Scene3DOptions(size=(320, 240)), np.random.default_rng([4, 0, 3]))
    assert np.array_equal(scene["depth"], again["depth"]) and np.array_equal(scene["images"][3], again["images"][3])
    data = HPatches(out / "hpatches-release")
    assert sorted(data.sequences) == sorted(summary["rows"]) and summary["rows"]
    name = data.sequences[0]
    stacks = data.load_sequence(name)
    assert len(stacks["ref"]) == summary["rows"][name] >= 10
    assert np.median(ncc_rows(stacks["ref"], stacks["e1"])) > 0.5  # the same surface point, easy jitter
    points, _, _ = load_training_data({"source": "patchset", "root": str(out), "holdout": 0, "types": None,
                                       "split": "full"}, 32)
    assert len(points.labels) == 16 * sum(summary["rows"].values())
    assert main(["data", "synth", "--kind", "scene3d", "--sequences", "1", "--size", "320x240",
                 "--out", str(out), "--quiet"]) == 2  # an earlier output: only with --overwrite
    assert "--overwrite" in capsys.readouterr().err
