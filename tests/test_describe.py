"""descnet.describe: images, keypoints, the OpenCV -> LAF convention, patches, features files, the CLI."""
from __future__ import annotations

import json
import math
import re

import cv2
import h5py
import numpy as np
import pytest
import torch

import descnet
from descnet.cli.main import main
from descnet.data.images import encode_image, read_image, to_gray, write_image
from descnet.features.description import describe, describe_images
from descnet.features.files import Features, parse_keypoints, read_features, write_features
from descnet.features.keypoints import (DETECTORS, check_keypoints, detect_keypoints, keypoints_from_opencv,
                                        lafs_from_keypoints)
from descnet.features.options import DEFAULT_MR_SIZE, KeypointOptions
from descnet.features.patches import extract_patches
from descnet.models import create_model, list_models, model_entry, resolve_model
from tests.conftest import shared_file


def texture(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    """A uint8 blob texture on which SIFT finds hundreds of keypoints."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.5)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def ncc(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Zero-mean normalised cross-correlation of matching patches ``(N, 1, P, P)`` -> ``(N,)``, float64."""
    a = a.double().flatten(1)
    b = b.double().flatten(1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-12)).numpy()


def patches_at(gray: np.ndarray, keypoints: np.ndarray, mr_size: float = 6.0) -> torch.Tensor:
    return extract_patches(to_gray(gray), lafs_from_keypoints(keypoints, mr_size), 32)


def affine_of_homography(h: np.ndarray, x: float, y: float) -> np.ndarray:
    """``(2, 2)`` Jacobian of the homography ``h`` at pixel ``(x, y)`` (its local affine approximation)."""
    p = h @ np.array([x, y, 1.0])
    return (h[:2, :2] * p[2] - np.outer(p[:2], h[2, :2])) / p[2] ** 2


# ---------------------------------------------------------------- the convention itself

def test_lafs_follow_the_documented_opencv_convention():
    kp = np.array([[50.0, 40.0, 2.0, 30.0], [10.0, 20.0, 4.0, -1.0]], np.float32)
    lafs = lafs_from_keypoints(kp, mr_size=6.0)[0].double()
    t = math.radians(-30.0)  # kornia orientation = -OpenCV angle
    expected = 12.0 * np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    np.testing.assert_allclose(lafs[0, :, :2].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(lafs[0, :, 2].numpy(), [50.0, 40.0])
    np.testing.assert_allclose(lafs[1, :, :2].numpy(), 24.0 * np.eye(2), atol=1e-5)  # angle -1 = upright
    # the patch covers c + A [-1, 1]^2: side 2 * mr_size * size pixels
    img = np.zeros((101, 101), np.float32)
    img[50, 50 + 23] = 1.0  # 23 px right of the centre: inside a half-side of 24
    img[50, 50 + 26] = 0.5  # 26 px right: outside
    patch = extract_patches(img, lafs_from_keypoints(np.array([[50, 50, 4, -1]], np.float32), 6.0), 48)[0, 0]
    assert patch[:, -2:].max() > 0.1 and patch.max() < 1.0  # the bright pixel sits at the right edge


def test_opencv_angle_grows_clockwise_on_screen(shared_data):
    """OpenCV's own SIFT angles on an image rotated counter-clockwise by 30 degrees drop by 30 degrees."""
    img = cv2.cvtColor(read_image(shared_file(shared_data, "oxford-affine/graf/img1.png")), cv2.COLOR_RGB2GRAY)
    h, w = img.shape
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 30.0, 1.0)  # positive = counter-clockwise on screen
    img2 = cv2.warpAffine(img, rot, (w, h))
    k1, _ = detect_keypoints(img, "sift", 800)
    k2, _ = detect_keypoints(img2, "sift", 800)
    mapped = k1[:, :2] @ rot[:, :2].T + rot[:, 2]
    dist = np.linalg.norm(mapped[:, None] - k2[None, :, :2], axis=2)
    j = dist.argmin(1)
    ok = (dist.min(1) < 1.0) & (np.abs(k2[j, 2] / k1[:, 2] - 1) < 0.1)
    assert ok.sum() > 100
    diff = (k2[j[ok], 3] - k1[ok, 3] + 180.0) % 360.0 - 180.0
    assert abs(np.median(diff) + 30.0) < 2.0


def test_patch_of_rotated_image_with_rotated_keypoint_angle_matches(shared_data):
    """Real SIFT detections of an image and of its rotation give the same patches; the other sign does not."""
    img = cv2.cvtColor(read_image(shared_file(shared_data, "oxford-affine/graf/img1.png")), cv2.COLOR_RGB2GRAY)
    h, w = img.shape
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 40.0, 1.0)
    img2 = cv2.warpAffine(img, rot, (w, h), flags=cv2.INTER_CUBIC)
    k1, _ = detect_keypoints(img, "sift", 1000)
    k2, _ = detect_keypoints(img2, "sift", 1000)
    mapped = k1[:, :2] @ rot[:, :2].T + rot[:, 2]
    dist = np.linalg.norm(mapped[:, None] - k2[None, :, :2], axis=2)
    j = dist.argmin(1)
    diff = (k2[j, 3] - k1[:, 3] + 40.0 + 180.0) % 360.0 - 180.0  # OpenCV's orientation agrees with the rotation
    inside = (np.abs(mapped - [w / 2, h / 2]) < [w / 2 - 80, h / 2 - 80]).all(1)
    ok = (dist.min(1) < 1.0) & (np.abs(k2[j, 2] / k1[:, 2] - 1) < 0.1) & (np.abs(diff) < 5) & inside
    assert ok.sum() > 50
    a, b = k1[ok], k2[j[ok]]
    good = np.median(ncc(patches_at(img, a), patches_at(img2, b)))
    flip = np.array([1, 1, 1, -1], np.float32)  # the classic mistake: OpenCV's angle used as kornia's orientation
    bad = np.median(ncc(patches_at(img, a * flip), patches_at(img2, b * flip)))
    assert good > 0.9, good
    assert bad < 0.6, bad


@pytest.mark.parametrize("sequence, first, second, hfile, rotated", [
    ("oxford-affine/graf", "img1.png", "img2.png", "H1to2p", True),         # viewpoint, about -18 degrees
    ("oxford-affine/boat", "img1.pgm", "img2.pgm", "H1to2p", True),         # zoom and rotation, about -14 degrees
    ("hpatches/sequences/v_churchill", "1.ppm", "3.ppm", "H_1_3", False),   # viewpoint, little rotation
])
def test_patch_around_projected_keypoint_with_homography_adapted_frame_looks_alike(shared_data, sequence, first,
                                                                                   second, hfile, rotated):
    gray1 = to_gray(read_image(shared_file(shared_data, f"{sequence}/{first}")))
    gray2 = to_gray(read_image(shared_file(shared_data, f"{sequence}/{second}")))
    hom = np.loadtxt(shared_file(shared_data, f"{sequence}/{hfile}"))
    kps, _ = detect_keypoints(gray1, "sift", 400)
    kps = kps[(kps[:, 2] > 3) & (kps[:, 2] < 20)]
    lafs1 = lafs_from_keypoints(kps, 6.0)[0].double().numpy()
    proj = cv2.perspectiveTransform(kps[None, :, :2].astype(np.float64), hom)[0]
    lafs2 = np.zeros_like(lafs1)  # frame in image k: [J A | H(x)], J the Jacobian of H at x
    for i, (x, y) in enumerate(kps[:, :2]):
        lafs2[i, :, :2] = affine_of_homography(hom, x, y) @ lafs1[i, :, :2]
        lafs2[i, :, 2] = proj[i]
    h2, w2 = gray2.shape
    half = np.abs(lafs2[:, :, :2]).sum(2).max(1)  # the whole region must lie inside image k
    inside = ((proj[:, 0] - half > 0) & (proj[:, 0] + half < w2 - 1) & (proj[:, 1] - half > 0)
              & (proj[:, 1] + half < h2 - 1))
    assert inside.sum() > 100
    p1 = extract_patches(gray1, torch.from_numpy(lafs1[inside]).float(), 32)
    p2 = extract_patches(gray2, torch.from_numpy(lafs2[inside]).float(), 32)
    assert np.median(ncc(p1, p2)) > 0.9
    assert np.median(ncc(p1, p2.roll(7, 0))) < 0.3  # other points do not look alike
    if rotated:  # the projected OpenCV keypoint (similarity part of J) through describe's convention
        scale = np.sqrt(np.linalg.det(lafs2[:, :, :2]) / np.linalg.det(lafs1[:, :, :2]))
        ori2 = np.degrees(np.arctan2(-lafs2[:, 1, 0], lafs2[:, 0, 0]))  # kornia: first column (cos, -sin)
        kp2 = np.column_stack([proj, kps[:, 2] * scale, -ori2]).astype(np.float32)[inside]  # OpenCV angle = -ori
        flip = np.array([1, 1, 1, -1], np.float32)  # the mistake: OpenCV's angle taken as kornia's orientation
        right = np.median(ncc(p1, patches_at(gray2, kp2)))
        wrong = np.median(ncc(patches_at(gray1, kps[inside] * flip), patches_at(gray2, kp2 * flip)))
        assert right > 0.75 and wrong < right - 0.3, (right, wrong)


# ---------------------------------------------------------------- images

def test_to_gray_accepts_grey_rgb_8_and_16_bit():
    g8 = texture()
    rgb8 = np.repeat(g8[..., None], 3, axis=2)
    g16 = g8.astype(np.uint16) * 257
    expected = g8.astype(np.float32) / 255
    for img in (g8, rgb8, g16, np.repeat(g16[..., None], 3, axis=2), expected, g8[..., None]):
        np.testing.assert_allclose(to_gray(img), expected, atol=1e-6)
    weighted = to_gray(np.dstack([np.full((2, 2), 255, np.uint8), np.zeros((2, 2), np.uint8),
                                  np.zeros((2, 2), np.uint8)]))
    np.testing.assert_allclose(weighted, 0.299, atol=1e-3)  # RGB order: red weighs 0.299
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_gray(expected * 255)
    with pytest.raises(TypeError, match="uint8, uint16"):
        to_gray(g8.astype(np.int32))
    with pytest.raises(ValueError, match="shape"):
        to_gray(np.zeros((4, 4, 2), np.uint8))


def test_read_image_keeps_16_bit_and_rejects_bad_files(tmp_path):
    g16 = texture().astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "a.png"), g16)
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint16 and np.array_equal(out, g16)
    rgb = np.dstack([texture(seed=1), texture(seed=2), texture(seed=3)])
    cv2.imwrite(str(tmp_path / "c.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert np.array_equal(read_image(tmp_path / "c.png"), rgb)  # RGB order
    for ext in (".png", ".jpg", ".ppm"):
        ok, buf = cv2.imencode(ext, rgb)
        (tmp_path / f"t{ext}").write_bytes(buf.tobytes()[: len(buf) // 2])
        with pytest.raises(ValueError, match=f"t{ext}"):
            read_image(tmp_path / f"t{ext}")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_write_image_round_trips_through_read_image(tmp_path, monkeypatch):
    grey, rgb, g16 = texture(seed=1), np.dstack([texture(seed=s) for s in (1, 2, 3)]), texture().astype(np.uint16) * 257
    for name, image in (("g.png", grey), ("g.bmp", grey), ("c.png", rgb), ("c.ppm", rgb), ("w.png", g16)):
        assert write_image(tmp_path / name, image) == tmp_path / name
        np.testing.assert_array_equal(read_image(tmp_path / name), image)  # RGB order and depth kept
    write_image(tmp_path / "g.ppm", grey)  # PPM is colour-only: grey is stored as three equal channels
    np.testing.assert_array_equal(read_image(tmp_path / "g.ppm"), np.repeat(grey[..., None], 3, axis=2))
    assert encode_image(grey, ".png") == (tmp_path / "g.png").read_bytes()
    with pytest.raises(ValueError, match=r"bad.png: expected a uint8 or uint16"):
        write_image(tmp_path / "bad.png", grey.astype(np.float32))
    with pytest.raises(ValueError, match=r"x.nope: OpenCV cannot encode uint8 images as .nope"):
        write_image(tmp_path / "x.nope", grey)
    # atomic: a failed write leaves the earlier file as it was
    monkeypatch.setattr("pathlib.Path.write_bytes", lambda self, data: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_image(tmp_path / "g.png", rgb)
    monkeypatch.undo()
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), grey)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "c.ppm", "g.bmp", "g.png", "g.ppm", "w.png"]


# ---------------------------------------------------------------- keypoints

def test_detect_keypoints_sorted_and_capped():
    kps, scores = detect_keypoints(texture(), "sift", 50)
    assert kps.shape == (50, 4) and kps.dtype == np.float32
    assert np.all(np.diff(scores) <= 0)
    orb, _ = detect_keypoints(texture(), "orb", 30)
    assert 0 < len(orb) <= 30
    with pytest.raises(ValueError, match="detector 'surf': unknown"):
        detect_keypoints(texture(), "surf")
    assert {"sift", "orb"} <= set(DETECTORS) and DEFAULT_MR_SIZE["sift"] == 6.0
    assert KeypointOptions("ORB").mr_size_or_default == 0.5 and KeypointOptions(mr_size=4).mr_size_or_default == 4.0


def test_check_keypoints_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"2 of 3 keypoints lie outside the 320x240 image \(first: #1 at x=400"):
        check_keypoints(np.array([[5, 5, 2, 0], [400, 5, 2, 0], [5, -3, 2, 0]]), (240, 320), "kp.txt")
    with pytest.raises(ValueError, match="size <= 0"):
        check_keypoints(np.array([[5, 5, 0, 0]]), (240, 320))
    with pytest.raises(ValueError, match=r"expected \(N, 4\)"):
        check_keypoints(np.ones((3, 2)), (240, 320))
    with pytest.raises(ValueError, match="non-finite"):
        check_keypoints(np.array([[np.nan, 5, 2, 0]]), (240, 320))
    edge = check_keypoints(np.array([[-0.5, 239.5, 1, 0]]), (240, 320))  # pixel borders are on the image
    assert edge.shape == (1, 4)
    cv_kps = [cv2.KeyPoint(10.0, 20.0, 3.0, 45.0)]
    np.testing.assert_allclose(check_keypoints(cv_kps, (240, 320)), [[10, 20, 3, 45]])


def test_parse_keypoints_file_format():
    text = "# x y size angle\n1 2 3 4\n\n5.5,6,7,-1\n"
    np.testing.assert_allclose(parse_keypoints(text), [[1, 2, 3, 4], [5.5, 6, 7, -1]])
    with pytest.raises(ValueError, match=r"kp.txt, line 2: expected 4 columns .* got 3"):
        parse_keypoints("1 2 3 4\n1 2 3\n", "kp.txt")
    with pytest.raises(ValueError, match="line 1: not a number"):
        parse_keypoints("1 2 x 4\n")
    assert parse_keypoints("# nothing\n").shape == (0, 4)


# ---------------------------------------------------------------- describe

def test_opencv_sift_models_on_given_keypoints_equal_detect_and_compute():
    """The registry's opencv-sift / opencv-rootsift describe like cv2.SIFT.compute (+ RootSIFT)."""
    img = texture(seed=4)
    sift = cv2.SIFT_create(300)
    found, expected = sift.detectAndCompute(img, None)
    kps, _ = keypoints_from_opencv(found)  # octave dropped: rebuilt from the size
    gray = to_gray(img)
    got = create_model("opencv-sift").describe_image(gray, kps)
    expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    root = create_model("opencv-rootsift").describe_image(gray, kps)
    l1 = expected / expected.sum(1, keepdims=True)
    np.testing.assert_allclose(root, np.sqrt(l1) / np.linalg.norm(np.sqrt(l1), axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(root, axis=1), 1.0, atol=1e-5)
    # describe_images asks the model how it describes: the same descriptors, no patches cut
    timings: dict[str, float] = {}
    feats = describe(img, kps, model="opencv-rootsift", timings=timings)
    np.testing.assert_array_equal(feats.descriptors, root)
    assert timings["extract"] == 0.0
    assert feats.info["model"] == "opencv-rootsift" and feats.info["weights"] == "hand-crafted"


def test_opencv_sift_models_are_registry_entries(capsys):
    for name in ("opencv-sift", "opencv-rootsift"):
        assert name in list_models() and not model_entry(name).trainable
        model = resolve_model(name)
        assert model.descnet_spec == name and model.descriptor_dim == 128
        with pytest.raises(ValueError, match=rf"model {name}: describes keypoints on whole images"):
            model(torch.zeros(2, 1, 32, 32))  # patch protocols stop with an error naming the model
    capsys.readouterr()
    assert main(["models", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)["architectures"]}
    assert listed["opencv-sift"]["spec"] == "opencv-sift" and listed["opencv-rootsift"]["dim"] == 128


def test_describe_gives_unit_descriptors_for_grey_rgb_and_16_bit():
    g8 = texture(seed=5)
    ref = describe(g8, model="pixels", options=KeypointOptions(max_keypoints=100))
    assert ref.keypoints.shape == (100, 4) and ref.descriptors.shape == (100, 1024)
    assert ref.lafs.shape == (100, 2, 3) and ref.image_size == (240, 320)
    np.testing.assert_allclose(np.linalg.norm(ref.descriptors, axis=1), 1.0, atol=1e-5)
    assert ref.info["detector"] == "sift" and ref.info["mr_size"] == 6.0
    for img in (np.repeat(g8[..., None], 3, axis=2), g8.astype(np.uint16) * 257):
        other = describe(img, model="pixels", options=KeypointOptions(max_keypoints=100))
        np.testing.assert_allclose(other.keypoints, ref.keypoints)
        np.testing.assert_allclose(other.descriptors, ref.descriptors, atol=1e-5)
    given = describe(g8, ref.keypoints[:7], model="opencv-rootsift")
    assert given.descriptors.shape == (7, 128) and given.info["detector"] == "given"
    assert not given.scores.any()


def test_describe_patch_matches_manual_extraction():
    """describe == kornia extraction at the model's patch size + describe_patches, with the timings filled."""
    from descnet.features.inference import describe_patches

    img = texture(seed=6)
    model = create_model("pixels")
    kps = np.array([[100.0, 120.0, 5.0, 33.0], [200.0, 60.0, 3.0, 300.0]], np.float32)
    timings: dict[str, float] = {}
    feats = describe(img, kps, model=model, options=KeypointOptions(mr_size=4.0), timings=timings)
    patches = extract_patches(to_gray(img), lafs_from_keypoints(kps, 4.0), 32)
    np.testing.assert_allclose(feats.descriptors, describe_patches(model, patches).numpy(), atol=1e-6)
    assert set(timings) == {"detect", "extract", "describe"}


def test_describe_images_equals_describing_each_image(tmp_path):
    """Several images at once (threads, one describe_patches call) == one describe() per image."""
    torch.manual_seed(0)
    model = create_model("hardnet")
    a, b = texture(seed=7), texture(seed=8)
    path = tmp_path / "b.png"
    cv2.imwrite(str(path), b)
    given = np.array([[50.0, 60.0, 4.0, 10.0], [150.0, 100.0, 2.5, -1.0]], np.float32)
    timings: dict[str, float] = {}
    options = KeypointOptions(max_keypoints=150)
    together = describe_images([a, path, a], [None, None, given], model=model, options=options, timings=timings)
    alone = [describe(a, model=model, options=options), describe(path, model=model, options=options),
             describe(a, given, model=model)]
    assert [len(f) for f in together] == [150, 150, 2]
    for t, s in zip(together, alone):
        np.testing.assert_array_equal(t.keypoints, s.keypoints)
        np.testing.assert_allclose(t.descriptors, s.descriptors, atol=1e-5)
        assert t.info == s.info
    assert together[1].info["image"] == str(path) and together[2].info["detector"] == "given"
    assert set(timings) == {"detect", "extract", "describe"}
    with pytest.raises(ValueError, match="one entry per image"):
        describe_images([a, b], [None], model=model)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing.png"))):
        describe_images([a, tmp_path / "missing.png"], model=model)


def test_describe_blank_image_gives_no_keypoints():
    feats = describe(np.full((64, 64), 128, np.uint8), model="pixels")
    assert len(feats) == 0 and feats.descriptors.shape == (0, 1024)


def test_describe_is_the_function_even_after_importing_the_module():
    import descnet.features.description  # noqa: F401
    import descnet.features.matching  # noqa: F401

    assert callable(descnet.describe) and descnet.describe.__name__ == "describe"
    assert callable(descnet.match) and descnet.match.__name__ == "match"


# ---------------------------------------------------------------- features file and CLI

def test_features_file_round_trips(tmp_path):
    feats = describe(texture(seed=7), model="pixels", options=KeypointOptions(max_keypoints=20))
    feats2 = Features(np.zeros((0, 4), np.float32), np.zeros((0, 8), np.float32), np.zeros(0, np.float32),
                      np.zeros((0, 2, 3), np.float32), (5, 6), {"image": "b.png", "mr_size": None})
    write_features(tmp_path / "f.h5", {"a.png": feats, "b.png": feats2})
    back = read_features(tmp_path / "f.h5")
    assert list(back) == ["a.png", "b.png"]
    for key in ("keypoints", "descriptors", "scores", "lafs"):
        np.testing.assert_array_equal(getattr(back["a.png"], key), getattr(feats, key))
    assert back["a.png"].image_size == feats.image_size and back["a.png"].info == feats.info
    assert feats.info["weights"] == "hand-crafted"
    assert back["b.png"].info == {"image": "b.png", "mr_size": None} and back["b.png"].descriptors.shape == (0, 8)
    with h5py.File(tmp_path / "f.h5") as f:  # the published layout: hloc's, plus descnet's extras
        assert f.attrs["format"] == "descnet-features" and f.attrs["version"] == 2
        assert f["a.png/keypoints"].shape == (20, 2) and f["a.png/keypoints"].dtype == np.float32
        assert f["a.png/descriptors"].shape == (1024, 20)
        assert f["a.png/image_size"][()].tolist() == [320, 240]
        np.testing.assert_array_equal(f["a.png/sizes"][()], feats.keypoints[:, 2])
    with pytest.raises(ValueError, match="not a feature file"):
        h5py.File(tmp_path / "other.h5", "w").close()
        read_features(tmp_path / "other.h5")


def test_cli_describe_writes_one_group_per_image(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "a.png"), texture(seed=8))
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "a.png"), texture(seed=9))
    (tmp_path / "a.kp").write_text("10 20 3 0\n30 40 4 90\n")
    (tmp_path / "b.kp").write_text("11 21 3 0\n")
    out = tmp_path / "f.h5"
    rc = main(["describe", str(tmp_path / "a.png"), str(tmp_path / "sub" / "a.png"), "--keypoints",
               str(tmp_path / "a.kp"), str(tmp_path / "b.kp"), "--model", "opencv-sift", "--out", str(out)])
    assert rc == 0
    feats = read_features(out)
    assert list(feats) == ["a.png", "a.png~2"]
    np.testing.assert_allclose(feats["a.png"].keypoints, [[10, 20, 3, 0], [30, 40, 4, 90]])
    assert feats["a.png~2"].info["image"] == str(tmp_path / "sub" / "a.png")
    assert feats["a.png"].info["model"] == "opencv-sift"


@pytest.mark.parametrize("case, message", [
    ("columns", r"b.kp, line 1: expected 4 columns"),
    ("outside", r"lie outside the 320x240 image"),
    ("truncated", r"bad.png: not a readable image"),
    ("count", r"--keypoints: give one file per image"),
    ("model", r"holds features made with other settings: model 'opencv-sift' \(this run: 'opencv-rootsift'\)"),
])
def test_cli_describe_bad_input_fails_cleanly_and_keeps_old_output(tmp_path, capsys, case, message):
    cv2.imwrite(str(tmp_path / "prev.png"), texture(seed=3))
    out = tmp_path / "f.h5"
    assert main(["describe", str(tmp_path / "prev.png"), "--model", "opencv-sift", "--out", str(out), "--quiet"]) == 0
    before = out.read_bytes()
    good = tmp_path / "a.png"
    cv2.imwrite(str(good), texture())
    args = ["describe", str(good), "--model", "opencv-sift", "--out", str(out)]
    if case == "columns":
        (tmp_path / "b.kp").write_text("1 2 3\n")
        args += ["--keypoints", str(tmp_path / "b.kp")]
    elif case == "outside":
        (tmp_path / "b.kp").write_text("1000 2 3 0\n")
        args += ["--keypoints", str(tmp_path / "b.kp")]
    elif case == "truncated":
        ok, buf = cv2.imencode(".png", texture())
        (tmp_path / "bad.png").write_bytes(buf.tobytes()[:500])
        args[1] = str(tmp_path / "bad.png")
    elif case == "count":
        args += ["--keypoints", str(good), str(good)]
    elif case == "model":
        args[3] = "opencv-rootsift"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_cli_describe_stores_an_image_without_keypoints_and_warns(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "blank.png"), np.zeros((50, 60), np.uint8))
    cv2.imwrite(str(tmp_path / "a.png"), texture())
    out = tmp_path / "f.h5"
    assert main(["describe", str(tmp_path / "blank.png"), str(tmp_path / "a.png"), "--model", "opencv-sift",
                 "--out", str(out), "--quiet"]) == 0
    assert "warning: no keypoints in 1 image(s), stored empty: blank.png" in capsys.readouterr().out
    feats = read_features(out)
    assert len(feats["blank.png"]) == 0 and feats["blank.png"].descriptors.shape == (0, 128)
    assert feats["blank.png"].image_size == (50, 60) and len(feats["a.png"]) > 100
