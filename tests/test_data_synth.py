"""Synthetic sequences: exact homographies, SIFT-friendly textures, determinism, the CLI."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from descnet.cli.main import main
from descnet.data.sequences import ImageSequences
from descnet.data.synth import (SynthOptions, illumination_homography, procedural_image, synthetic_sequence,
                                write_synthetic_sequences)
from tests.test_data_sequences import warp_ncc

SMALL = (256, 192)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


@pytest.mark.parametrize("kind", ["viewpoint", "illumination"])
def test_homographies_are_exact_on_the_noise_free_variant(kind):
    images, homs = synthetic_sequence(kind, np.random.default_rng(5), SynthOptions.clean(size=SMALL))
    assert len(images) == 6 and sorted(homs) == [2, 3, 4, 5, 6]
    assert all(im.shape == (192, 256, 3) and im.dtype == np.uint8 for im in images)
    for k, hk in homs.items():
        assert hk[2, 2] == pytest.approx(1.0)
        assert warp_ncc(_gray(images[0]), _gray(images[k - 1]), hk) > 0.98
        # a 2-pixel error in H is clearly worse: the check can fail
        shifted = np.array([[1, 0, 2.0], [0, 1, 0], [0, 0, 1]]) @ hk
        assert warp_ncc(_gray(images[0]), _gray(images[k - 1]), shifted) < 0.95


def test_sift_matches_agree_with_h_under_photometric_change():
    options = SynthOptions(size=(320, 240))
    images, homs = synthetic_sequence("viewpoint", np.random.default_rng(1), options)
    sift = cv2.SIFT_create()
    kp1, d1 = sift.detectAndCompute(_gray(images[0]), None)
    for k in (2, 4):
        kp2, d2 = sift.detectAndCompute(_gray(images[k - 1]), None)
        pairs = cv2.BFMatcher().knnMatch(d1, d2, k=2)
        good = [m for m, n in pairs if m.distance < 0.8 * n.distance]
        p1 = np.array([kp1[m.queryIdx].pt for m in good])
        p2 = np.array([kp2[m.trainIdx].pt for m in good])
        proj = np.c_[p1, np.ones(len(p1))] @ homs[k].T
        err = np.linalg.norm(proj[:, :2] / proj[:, 2:] - p2, axis=1)
        assert len(good) >= 40, f"image {k}: only {len(good)} matches"
        assert np.mean(err < 3) > 0.8 and np.median(err) < 1.0, f"image {k}: median error {np.median(err):.2f}"


def test_procedural_texture_has_hundreds_of_sift_keypoints():
    image = procedural_image((640, 480), np.random.default_rng(0))
    assert image.shape == (480, 640, 3)
    assert len(cv2.SIFT_create().detect(_gray(image), None)) >= 300


def test_illumination_homographies_are_near_identity():
    h = illumination_homography(SMALL, 1.5, np.random.default_rng(0))
    corners = np.array([[0, 0, 1], [255, 0, 1], [255, 191, 1], [0, 191, 1]], float)
    moved = corners @ h.T
    shift = np.linalg.norm(moved[:, :2] / moved[:, 2:] - corners[:, :2], axis=1)
    assert shift.max() <= 1.5 * np.sqrt(2) + 1e-9
    _, homs = synthetic_sequence("viewpoint", np.random.default_rng(0), SynthOptions(size=SMALL))
    assert np.abs(homs[6] - np.eye(3)).max() > 0.05     # viewpoint ones are not


def test_deterministic_by_seed_and_independent_of_count(tmp_path):
    a = write_synthetic_sequences(tmp_path / "a", count=2, seed=7, options=SynthOptions(size=SMALL))
    b = write_synthetic_sequences(tmp_path / "b", count=1, seed=7, options=SynthOptions(size=SMALL))
    c = write_synthetic_sequences(tmp_path / "c", count=1, seed=8, options=SynthOptions(size=SMALL))
    assert [p.name for p in a] == ["v_synth000", "i_synth001"]
    for name in ["1.ppm", "4.ppm", "H_1_4"]:
        assert (a[0] / name).read_bytes() == (b[0] / name).read_bytes()
        assert (a[0] / name).read_bytes() != (c[0] / name).read_bytes()
    seqs = ImageSequences(tmp_path / "a")
    assert [s.kind for s in seqs] == ["illumination", "viewpoint"]        # sorted by name
    info = json.loads((tmp_path / "a" / "synth.json").read_text())
    assert info["seed"] == 7 and info["options"]["size"] == list(SMALL)
    assert info["sequences"] == ["v_synth000", "i_synth001"]


def test_user_images_are_the_scene(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    flat = np.full((300, 400, 3), (30, 200, 90), np.uint8)  # BGR on disk
    cv2.imwrite(str(photos / "my photo.png"), flat)
    out = write_synthetic_sequences(tmp_path / "out", count=1, images=photos, options=SynthOptions.clean(size=SMALL))
    assert out[0].name == "v_myphoto000"
    image1 = ImageSequences(tmp_path / "out")[0].image(1, gray=False)
    np.testing.assert_allclose(image1.reshape(-1, 3).mean(0), (90, 200, 30), atol=2)   # RGB


def test_cli_synth_and_refusals(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--sequences", "2", "--size", "160x128", "--quiet"]) == 0
    seqs = ImageSequences(out)
    assert seqs.names == ["i_synth001", "v_synth000"]
    assert seqs["v_synth000"].image(3).shape == (128, 160)
    before = (out / "v_synth000" / "2.ppm").read_bytes()
    # an existing output is kept unless --overwrite
    assert main(["data", "synth", "--out", str(out), "--sequences", "1", "--size", "160x128", "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "v_synth000" / "2.ppm").read_bytes() == before
    assert main(["data", "synth", "--out", str(out), "--sequences", "1", "--size", "160x128", "--seed", "1",
                 "--overwrite", "--quiet"]) == 0
    assert ImageSequences(out).names == ["v_synth000"]
    assert (out / "v_synth000" / "2.ppm").read_bytes() != before
    # --overwrite removes only what descnet wrote (the manifest), never the user's own files
    (out / "notes.txt").write_text("mine")
    (out / "brown").mkdir()
    (out / "brown" / "info.txt").write_text("0 0\n")
    assert main(["data", "synth", "--out", str(out), "--sequences", "2", "--size", "160x128", "--kind", "illumination",
                 "--overwrite", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".descnet-manifest.json", "brown", "i_synth000", "i_synth001",
                                                     "notes.txt", "synth.json"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "brown" / "info.txt").is_file()
    # an output of an older version (no manifest): its marker and listed sequences are descnet's
    (out / ".descnet-manifest.json").unlink()
    assert main(["data", "synth", "--out", str(out), "--sequences", "1", "--size", "160x128", "--overwrite",
                 "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".descnet-manifest.json", "brown", "notes.txt", "synth.json",
                                                     "v_synth000"]
    # a foreign non-empty folder is never replaced
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    assert main(["data", "synth", "--out", str(foreign), "--overwrite", "--quiet"]) == 2
    assert "no synth.json" in capsys.readouterr().err and (foreign / "thesis.tex").read_text() == "precious"
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--size", "640by480"]) == 2
    assert "--size must look like 640x480" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--images", str(tmp_path / "nope")]) == 2
    assert "nope: no such folder of images" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
