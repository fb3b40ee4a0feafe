"""The HPatches-style patch builder: geometry, sampling, orientation, layout on disk, bad input."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from descnet.cli.main import main
from descnet.data.hpatches import TYPES, HPatches, png_size
from descnet.data.patchify import (JITTER_LEVELS, BrownOptions, Jitter, PatchDatasetOptions, PatchifyOptions,
                                   Pyramid, circle_overlap, dominant_orientations, frames_inside, merge_overlapping,
                                   parse_jitter, reference_frames, sequence_patches, target_frames,
                                   write_patch_dataset)
from descnet.data.sequences import ImageSequences, read_sequence, write_sequence
from descnet.data.synth import SynthOptions, synthetic_sequence, write_synthetic_sequences
from tests.conftest import shared_file


def ncc_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row normalised cross-correlation of two patch stacks ``(N, P, P)`` -> ``(N,)``."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    a -= a.mean(1, keepdims=True)
    b -= b.mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-12)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    """Two small synthetic sequences (one v_, one i_) on disk."""
    root = tmp_path_factory.mktemp("synth") / "seqs"
    write_synthetic_sequences(root, count=2, seed=3, options=SynthOptions(size=(320, 240)))
    return root


# ------------------------------------------------------------------------------------------ geometry

def _raster_iou(jitters: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """IoU of the unit disc and its images under affine ``jitters`` ``(n, 3, 3)``, by rasterisation."""
    inside0 = (grid ** 2).sum(0) <= 1
    back = np.linalg.inv(jitters[:, :2, :2]) @ (grid[None] - jitters[:, :2, 2:])   # (n, 2, G)
    inside1 = (back ** 2).sum(1) <= 1
    return (inside0 & inside1).sum(1) / (inside0 | inside1).sum(1)


def test_default_jitter_levels_have_the_documented_overlap():
    g = np.linspace(-2.5, 2.5, 161)
    grid = np.stack([a.ravel() for a in np.meshgrid(g, g)])
    rng = np.random.default_rng(0)
    medians = {}
    for level, expected in (("e", 0.85), ("h", 0.72), ("t", 0.62)):
        medians[level] = np.median(_raster_iou(JITTER_LEVELS[level].sample(400, rng), grid))
        assert medians[level] == pytest.approx(expected, abs=0.03), medians
    assert medians["e"] > medians["h"] > medians["t"]
    np.testing.assert_allclose(Jitter().sample(3, rng), np.tile(np.eye(3), (3, 1, 1)), atol=1e-12)
    j = Jitter(rotation=20).sample(500, rng)
    angles = np.degrees(np.arctan2(j[:, 1, 0], j[:, 0, 0]))
    assert np.abs(angles).max() <= 20 and np.abs(angles).max() > 18
    np.testing.assert_allclose(np.linalg.det(j[:, :2, :2]), 1)


def test_circle_overlap_matches_rasterisation():
    rng = np.random.default_rng(1)
    g = np.linspace(-6, 6, 601)
    xx, yy = np.meshgrid(g, g)
    for _ in range(20):
        c1, c2 = rng.uniform(-1.5, 1.5, (2, 2))
        r1, r2 = rng.uniform(0.5, 2.5, 2)
        a = (xx - c1[0]) ** 2 + (yy - c1[1]) ** 2 <= r1 ** 2
        b = (xx - c2[0]) ** 2 + (yy - c2[1]) ** 2 <= r2 ** 2
        assert circle_overlap(c1, r1, c2, r2) == pytest.approx((a & b).sum() / (a | b).sum(), abs=0.01)
    assert circle_overlap([0, 0], 1, [5, 0], 1) == 0
    assert circle_overlap([0, 0], 1, [0, 0], 2) == pytest.approx(0.25)


def test_merge_overlapping_equals_brute_force_greedy():
    rng = np.random.default_rng(2)
    centres = rng.uniform(0, 200, (400, 2))
    radii = np.exp(rng.uniform(np.log(3), np.log(40), 400))
    for threshold in (0.5, 0.2):
        expected = []
        for i in range(len(radii)):
            if not expected or (circle_overlap(centres[i], radii[i], centres[expected], radii[expected])
                                <= threshold).all():
                expected.append(i)
        kept = merge_overlapping(centres, radii, threshold)
        assert kept.tolist() == expected
        assert 0 < len(kept) < len(radii)


def test_frames_inside_and_targets():
    ref = reference_frames(np.array([[50.0, 50.0], [10.0, 50.0]]), np.array([20.0, 20.0]), np.array([0.3, 0.0]))
    # the first square rotated by 0.3 rad reaches 50 +- 20 * (cos + sin) = 50 +- 25.0
    assert frames_inside(ref, (100, 100)).tolist() == [True, False]
    assert frames_inside(ref, (75, 100)).tolist() == [False, False]
    h = np.array([[1.1, 0.05, 7.0], [0.02, 0.9, -3.0], [1e-4, 2e-4, 1.0]])
    frames = target_frames(ref, {2: h, 3: np.eye(3)}, {"e": Jitter(rotation=30)}, np.random.default_rng(0))
    assert list(frames) == ["ref", "e1", "e2"]
    centre = h @ np.array([50.0, 50.0, 1.0])
    np.testing.assert_allclose(frames["e1"][0, :2, 2] / frames["e1"][0, 2, 2], centre[:2] / centre[2])
    # rotation jitter only: the region keeps its size in image 3 (identity)
    np.testing.assert_allclose(np.linalg.det(frames["e2"][:, :2, :2]), 400.0)


# ------------------------------------------------------------------------------------------ sampling

def test_sampling_at_unit_scale_is_a_crop():
    image = np.random.default_rng(0).integers(0, 256, (120, 140)).astype(np.uint8)
    frame = reference_frames(np.array([[70.0, 60.0]]), np.array([32.0]), np.array([0.0]))
    patch = Pyramid(image).sample(frame, 65)[0]
    np.testing.assert_allclose(patch, image[28:93, 38:103], atol=1e-3)
    # a quarter turn (kornia convention: +pi/2 is counter-clockwise on screen) rotates the content
    turned = Pyramid(image).sample(reference_frames(np.array([[70.0, 60.0]]), np.array([32.0]),
                                                    np.array([np.pi / 2])), 65)[0]
    np.testing.assert_allclose(turned, np.rot90(image[28:93, 38:103], k=-1), atol=1e-3)


def test_sampling_is_anti_aliased():
    stripes = np.tile(np.array([0, 255], np.uint8), (512, 256))     # period 2 px: must average to grey
    frame = reference_frames(np.array([[256.0, 256.0]]), np.array([128.0]), np.array([0.0]))  # 4 px per sample
    patch = Pyramid(stripes).sample(frame, 65)[0]
    assert abs(patch.mean() - 127.5) < 3 and patch.std() < 3
    naive = cv2.warpAffine(stripes.astype(np.float32), np.array([[4.0, 0, 128], [0, 4.0, 128]]), (65, 65),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    assert abs(naive.mean() - 127.5) > 100                           # what aliasing looks like: all black


def test_orientation_follows_the_image_rotation():
    image = cv2.cvtColor(synthetic_sequence("viewpoint", np.random.default_rng(0),
                                            SynthOptions.clean(size=(240, 240), num_images=2))[0][0],
                         cv2.COLOR_RGB2GRAY)
    turned = np.ascontiguousarray(np.rot90(image))                    # counter-clockwise on screen
    rng = np.random.default_rng(1)
    xy = rng.uniform(60, 180, (60, 2))
    sigma = np.full(60, 6.0)
    xy_turned = np.stack([xy[:, 1], 239 - xy[:, 0]], 1)              # where rot90 moves (x, y)
    a = dominant_orientations(Pyramid(image), xy, sigma)
    b = dominant_orientations(Pyramid(turned), xy_turned, sigma)
    diff = np.angle(np.exp(1j * (b - a - np.pi / 2)))
    assert np.mean(np.abs(diff) < np.deg2rad(10)) > 0.8
    # and so the oriented patches agree
    p = Pyramid(image).sample(reference_frames(xy, 5 * sigma, a), 65)
    q = Pyramid(turned).sample(reference_frames(xy_turned, 5 * sigma, b), 65)
    assert np.median(ncc_rows(p, q)) > 0.9


@pytest.mark.parametrize("degrees", [0, 70, 160, 250])
def test_patches_show_the_dominant_gradient_pointing_right(degrees):
    t = np.deg2rad(degrees)
    yy, xx = np.mgrid[0:200, 0:200].astype(np.float32)
    ramp = 128 + 0.5 * ((xx - 100) * np.cos(t) + (yy - 100) * np.sin(t))  # brighter along (cos t, sin t)
    pyramid = Pyramid(ramp)
    angle = dominant_orientations(pyramid, np.array([[100.0, 100.0]]), np.array([8.0]))
    patch = pyramid.sample(reference_frames(np.array([[100.0, 100.0]]), np.array([40.0]), angle), 65)[0]
    gy, gx = np.gradient(patch.astype(np.float64))
    assert gx.mean() > 0.45 * 40 / 32 and abs(gy.mean()) < 0.05 * gx.mean()


# ------------------------------------------------------------------------------------------ sequences

def test_without_jitter_targets_are_the_reference_seen_through_h(synth_root):
    seq = ImageSequences(synth_root)["v_synth000"]
    options = PatchifyOptions(max_points=60, jitter={"e": Jitter()})
    patches, frames = sequence_patches(seq, options, return_frames=True)
    assert list(patches) == ["ref", "e1", "e2", "e3", "e4", "e5"]
    assert 20 <= len(patches["ref"]) <= 60
    assert all(p.shape == patches["ref"].shape and p.dtype == np.uint8 for p in patches.values())
    for kind in ("e1", "e3"):
        k = int(kind[1]) + 1
        np.testing.assert_allclose(frames[kind], seq.homographies[k] @ frames["ref"])
        assert np.median(ncc_rows(patches["ref"], patches[kind])) > 0.9
    # deterministic
    again = sequence_patches(seq, options)
    assert all(np.array_equal(again[t], patches[t]) for t in patches)


def test_real_sequence_rows_agree_across_images(shared_data):
    seq = read_sequence(shared_file(shared_data, "hpatches/sequences/v_churchill"))
    options = PatchifyOptions(max_points=150, image_scale=0.5)
    patches, frames = sequence_patches(seq, options, return_frames=True)
    n = len(patches["ref"])
    assert n >= 100 and list(patches) == list(TYPES)
    same = ncc_rows(patches["ref"], patches["e1"])
    other = ncc_rows(patches["ref"], np.roll(patches["e1"], n // 2, axis=0))
    assert np.median(same) > 0.7 and np.median(other) < 0.3
    assert np.median(same) > np.median(ncc_rows(patches["ref"], patches["t1"])) > np.median(other)
    # every region lies inside its (half-size) image
    assert frames_inside(frames["t5"], (384, 512)).all() and frames_inside(frames["ref"], (384, 512)).all()


def test_hessian_and_harris_detectors(synth_root):
    seq = ImageSequences(synth_root)["i_synth001"]
    for detectors in (("hessian",), ("harris",), ("dog", "hessian", "harris")):
        patches = sequence_patches(seq, PatchifyOptions(detectors=detectors, max_points=80))
        assert len(patches["ref"]) == 80
        assert np.median(ncc_rows(patches["ref"], patches["e2"])) > 0.6


def test_patch_dataset_options_are_checked_when_made():
    assert parse_jitter("10,0.1,0.2,0.3") == Jitter(10, 0.1, 0.2, 0.3)
    assert parse_jitter("translation=0.3", JITTER_LEVELS["h"]) == Jitter(20.0, 0.32, 0.32, 0.3)
    assert parse_jitter(" None ") == Jitter()
    for text in ("10,0.1", "spin=3", "1,2,3,x"):
        with pytest.raises(ValueError, match="--jitter-easy must be 4 numbers ROTATION,SCALE,ANISOTROPY,TRANSLATION"):
            parse_jitter(text, name="--jitter-easy")
    for kwargs, message in (({"name": "a/b"}, "--brown NAME must be a plain folder name"),
                            ({"name": "hpatches-release"}, "--brown NAME must be a plain folder name"),
                            ({"name": "b", "pairs": 1}, "--brown-pairs must be at least 2"),
                            ({"name": "b", "per_point": 1}, "--brown-per-point must be at least 2")):
        with pytest.raises(ValueError, match=message):
            BrownOptions(**kwargs)
    with pytest.raises(ValueError, match="not both"):
        PatchDatasetOptions(test_sequences=("a",), test_fraction=0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        PatchDatasetOptions(test_fraction=0.0)


def test_brown_types_must_be_jitter_levels(tmp_path):
    options = PatchDatasetOptions(brown=BrownOptions("b", types=("ref", "x")))
    with pytest.raises(ValueError, match=r"--brown-types must name 'ref' and/or jitter levels \(e, h, t\), got ref, x"):
        write_patch_dataset(tmp_path / "nowhere", tmp_path / "out", options)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ on disk

def test_hpatches_release_layout_and_brown(synth_root, tmp_path):
    out = tmp_path / "patches"
    options = PatchDatasetOptions(PatchifyOptions(max_points=40), brown=BrownOptions("synthetic", pairs=200))
    summary = write_patch_dataset(synth_root, out, options)
    folders = sorted(p.name for p in (out / "hpatches-release").iterdir())
    assert folders == ["i_synth001", "v_synth000"]
    for name in folders:
        files = sorted(p.name for p in (out / "hpatches-release" / name).iterdir())
        assert files == sorted(f"{t}.png" for t in TYPES)
        sizes = {png_size(out / "hpatches-release" / name / f) for f in files}
        assert len(sizes) == 1
        (width, height), = sizes
        assert width == 65 and height % 65 == 0 and height // 65 == summary["rows"][name]
    data = HPatches(out / "hpatches-release")
    assert data.check() == summary["rows"]
    stacks = data["v_synth000"]
    assert np.median(ncc_rows(stacks["ref"], stacks["e1"])) > 0.6
    info = json.loads((out / "patchify.json").read_text())
    assert info["options"]["jitter"]["h"] == {"rotation": 20.0, "scale": 0.32, "anisotropy": 0.32,
                                              "translation": 0.2}
    assert info["brown"]["points"] == sum(summary["rows"].values())

    from descnet.data.phototour import PhotoTour

    brown = PhotoTour(out, "synthetic", pairs_file="m50_200_200_0.txt")
    labels = np.asarray(brown.labels)
    assert len(brown) == 4 * info["brown"]["points"] and np.bincount(labels).min() == 4
    matches = np.asarray(brown.matches)
    assert len(matches) == 200 and matches[:, 2].sum() == 100
    assert np.array_equal(labels[matches[:, 0]] == labels[matches[:, 1]], matches[:, 2] == 1)
    assert not (matches[:, 0] == matches[:, 1]).any()


def test_cli_patches_and_bad_input(synth_root, tmp_path, capsys):
    out = tmp_path / "p"
    args = ["data", "patches", "--sequences", str(synth_root), "--out", str(out), "--max-points", "20",
            "--image-scale", "0.75", "--quiet"]
    assert main(args + ["--jitter-hard", "translation=0.3", "--jitter-tough", "none"]) == 0
    info = json.loads((out / "patchify.json").read_text())
    assert info["options"]["magnification"] == 5.0  # default --mr-size 2.5: 2.5 x keypoint size = 5 sigma
    assert info["options"]["jitter"]["h"]["translation"] == 0.3 and info["options"]["jitter"]["h"]["rotation"] == 20
    assert info["options"]["jitter"]["t"] == {"rotation": 0, "scale": 0, "anisotropy": 0, "translation": 0}
    before = (out / "patchify.json").read_bytes()
    capsys.readouterr()

    assert main(args) == 2                                            # exists: needs --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--jitter-easy", "10,0.1"]) == 2
    assert "--jitter-easy must be 4 numbers" in capsys.readouterr().err
    assert main(args + ["--detectors", "dog,fast", "--overwrite"]) == 2
    assert "detectors must be" in capsys.readouterr().err

    broken = tmp_path / "broken"
    images, homs = synthetic_sequence("viewpoint", np.random.default_rng(0), SynthOptions.clean(size=(160, 128)))
    write_sequence(broken / "v_a", images, homs)
    (broken / "v_a" / "H_1_5").unlink()
    assert main(["data", "patches", "--sequences", str(broken), "--out", str(out), "--overwrite", "--quiet"]) == 2
    assert "v_a/H_1_5: missing homography" in capsys.readouterr().err
    write_sequence(broken / "v_a", images, homs)
    (broken / "v_a" / "6.ppm").unlink()
    assert main(["data", "patches", "--sequences", str(broken), "--out", str(out), "--overwrite", "--quiet"]) == 2
    assert "v_a/6.ppm: missing image 6" in capsys.readouterr().err
    assert main(["data", "patches", "--sequences", str(tmp_path / "nowhere"), "--out", str(tmp_path / "q")]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    # nothing half-written, the earlier result intact, no temporary folders left
    assert (out / "patchify.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "p"]
    # --overwrite replaces what descnet wrote and keeps the user's files
    (out / "notes.txt").write_text("mine")
    assert main(args + ["--overwrite", "--seed", "3"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "patchify.json").read_bytes() != before
    assert sorted(p.name for p in out.iterdir()) == [".descnet-manifest.json", "hpatches-release", "notes.txt",
                                                     "patchify.json", "tasks"]


def test_cli_region_size_in_the_describe_unit(synth_root, tmp_path, capsys):
    """--mr-size is describe's unit (half-side per keypoint size = 2 sigma); the old --magnification is sigmas."""
    args = ["data", "patches", "--sequences", str(synth_root), "--max-points", "20", "--image-scale", "0.75", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "a"), "--mr-size", "3"]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--magnification", "6"]) == 0
    info = json.loads((tmp_path / "a" / "patchify.json").read_text())
    assert info["options"]["magnification"] == 6.0
    for png in sorted((tmp_path / "a" / "hpatches-release").rglob("*.png"))[:6]:
        other = tmp_path / "b" / png.relative_to(tmp_path / "a")
        assert png.read_bytes() == other.read_bytes()
    assert main(args + ["--out", str(tmp_path / "c"), "--mr-size", "0"]) == 2
    assert "--mr-size must be positive" in capsys.readouterr().err


def test_oxford_layout_is_written_with_a_v_prefix_and_needs_six_images(tmp_path):
    from descnet.data.sequences import write_homography

    images, homs = synthetic_sequence("viewpoint", np.random.default_rng(2), SynthOptions.clean(size=(200, 160)))
    folder = tmp_path / "seqs" / "graflike"
    folder.mkdir(parents=True)
    for k, image in enumerate(images, start=1):
        cv2.imwrite(str(folder / f"img{k}.png"), image[..., ::-1])
    for k, hk in homs.items():
        write_homography(folder / f"H1to{k}p", hk)
    summary = write_patch_dataset(tmp_path / "seqs", tmp_path / "out", PatchDatasetOptions(PatchifyOptions(max_points=10)))
    assert summary["renamed"] == {"graflike": "v_graflike"}
    assert HPatches(tmp_path / "out" / "hpatches-release").check() == {"v_graflike": summary["rows"]["v_graflike"]}
    for k in (5, 6):
        (folder / f"img{k}.png").unlink()
        (folder / f"H1to{k}p").unlink()
    assert len(sequence_patches(read_sequence(folder), PatchifyOptions(max_points=10))) == 1 + 3 * 3
    with pytest.raises(ValueError, match="graflike: has 4 images; the hpatches-release layout needs 6"):
        write_patch_dataset(tmp_path / "seqs", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
