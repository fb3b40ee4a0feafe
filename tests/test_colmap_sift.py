"""COLMAP's SIFT detection (``colmap-sift``): the keypoints COLMAP's own extraction finds, in descnet's convention."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from descnet.data.images import read_image
from descnet.features.description import describe
from descnet.features.keypoints import detect_colmap_sift, detect_keypoints, keypoints_from_colmap
from descnet.features.options import KeypointOptions
from tests.conftest import shared_file


def blob(x0: float, y0: float, sigma: float, h: int = 96, w: int = 128) -> np.ndarray:
    """A dark image with one bright Gaussian blob centred at ``(x0, y0)``, pixel centres at integers."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return (20 + 200 * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma ** 2))).astype(np.float32) / 255.0


def texture(seed: int = 0, h: int = 240, w: int = 320) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = sum(s * cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), s) for s in (2.0, 4.0))
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def backends() -> list[str]:
    try:
        import pycolmap  # noqa: F401
    except ImportError:
        return ["opencv"]
    return ["pycolmap", "opencv"]


def test_colmap_keypoints_convert_to_the_pixel_centre_convention():
    # x, y: COLMAP's origin is the pixel corner; scale: sigma (OpenCV size = 2 sigma); orientation: radians, same sense
    got = keypoints_from_colmap(np.array([[10.5, 20.5, 3.0, np.pi / 2], [0.5, 0.5, 1.0, -np.pi / 4]]))
    np.testing.assert_allclose(got, [[10, 20, 6, 90], [0, 0, 2, 315]], atol=1e-5)
    assert got.dtype == np.float32


@pytest.mark.parametrize("backend", backends())
def test_a_blob_is_found_at_its_centre_with_its_size(backend):
    x0, y0, sigma = 60.3, 41.7, 4.0
    kp, scores = detect_colmap_sift(blob(x0, y0, sigma), backend=backend)
    assert len(kp) >= 1 and scores.shape == (len(kp),)
    nearest = kp[np.argmin(np.hypot(kp[:, 0] - x0, kp[:, 1] - y0))]
    assert np.hypot(nearest[0] - x0, nearest[1] - y0) < 0.1  # centre convention (a 0.5 px slip fails)
    assert abs(nearest[2] / (2 * sigma) - 1) < 0.2  # OpenCV's size: twice the blob's sigma


def test_orientations_agree_with_opencv_sift():
    """The same keypoints found by COLMAP's code and by OpenCV have the same angle (the sign convention)."""
    if "pycolmap" not in backends():
        pytest.skip("pycolmap is not installed")
    image = texture()
    colmap, _ = detect_colmap_sift(image, backend="pycolmap")
    opencv, _ = detect_colmap_sift(image, backend="opencv")
    diffs = []
    for x, y, size, angle in colmap:
        near = opencv[(np.hypot(opencv[:, 0] - x, opencv[:, 1] - y) < 0.3) & (np.abs(opencv[:, 2] / size - 1) < 0.15)]
        if len(near):
            diffs.append(np.min(np.abs((near[:, 3] - angle + 180) % 360 - 180)))
    assert len(diffs) >= 20
    assert np.median(diffs) < 5  # the opposite sense gives tens of degrees


@pytest.mark.parametrize("backend", backends())
def test_upright_gives_one_keypoint_per_location_without_orientation(backend):
    kp, _ = detect_colmap_sift(texture(1), upright=True, backend=backend)
    oriented, _ = detect_colmap_sift(texture(1), backend=backend)
    assert len(kp) > 50 and (kp[:, 3] == 0).all()
    assert len(np.unique(kp[:, :2], axis=0)) == len(kp)
    assert len(np.unique(oriented[:, :2], axis=0)) < len(oriented)  # several orientations at some locations


def test_without_pycolmap_opencv_detects(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycolmap", None)  # import pycolmap -> ImportError
    kp, scores = detect_keypoints(texture(2), "colmap-sift", 8192)
    opencv, responses = detect_colmap_sift(texture(2), backend="opencv")
    np.testing.assert_array_equal(kp, opencv)
    assert (scores > 0).all()


def test_describe_on_colmap_sift_keypoints_records_the_detector():
    f = describe(texture(3), model="opencv-rootsift", options=KeypointOptions("colmap-sift", 8192))
    assert len(f) > 50 and f.info["detector"] == "colmap-sift" and f.info["mr_size"] == 6.0
    with pytest.raises(ValueError, match="max_keypoints"):
        detect_colmap_sift(texture(3), max_keypoints=0)


@pytest.mark.slow
def test_the_keypoints_of_colmaps_own_extraction(shared_data):
    """On two Sacre Coeur photos: exactly the keypoints ``pycolmap.extract_features`` stores (count, position)."""
    pycolmap = pytest.importorskip("pycolmap", reason="pycolmap is not installed")
    folder = shared_file(shared_data, "sfm/sacre_coeur")
    names = sorted(p.name for p in folder.iterdir())[:2]
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "database.db"
        options = pycolmap.FeatureExtractionOptions()
        options.sift.max_num_features = 8192
        options.num_threads = 2
        pycolmap.extract_features(database, folder, image_names=names, extraction_options=options,
                                  device=pycolmap.Device.cpu)
        with pycolmap.Database.open(database) as db:
            ids = {image.name: image.image_id for image in db.read_all_images()}
            reference = {name: db.read_keypoints(ids[name]) for name in names}
    for name in names:
        kp, _ = detect_keypoints(read_image(folder / name), "colmap-sift", 8192)
        ref = reference[name]
        assert len(kp) == len(ref) > 8192 * 0.8, name
        np.testing.assert_allclose(kp[:, :2], ref[:, :2] - 0.5, atol=1e-3)
        scale = np.hypot(ref[:, 2], ref[:, 4])  # COLMAP stores the affine shape a11 a12 a21 a22
        np.testing.assert_allclose(kp[:, 2], 2 * scale, rtol=1e-4)
