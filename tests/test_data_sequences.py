"""Image sequences with homographies: HPatches and Oxford layouts, real data, and bad input."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import shared_file
from descnet.data.images import read_image
from descnet.data.sequences import ImageSequences, read_homography, read_sequence, write_homography, write_sequence


def warp_ncc(image1: np.ndarray, image_k: np.ndarray, h: np.ndarray, scale: float = 1.0) -> float:
    """NCC between image 1 warped by ``h`` and image k over the (eroded) overlap; images are first shrunk
    by ``scale`` (homography adjusted), with a low-pass where ``h`` shrinks image 1."""
    s = np.diag([scale, scale, 1.0])
    small = [cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA).astype(np.float32)
             for im in (image1, image_k)]
    hs = s @ h @ np.linalg.inv(s)
    zoom = np.sqrt(abs(np.linalg.det(hs[:2, :2] / hs[2, 2])))
    src = cv2.GaussianBlur(small[0], (0, 0), 0.5 * np.sqrt(1 / zoom ** 2 - 1)) if zoom < 0.9 else small[0]
    size = small[1].shape[::-1]
    warped = cv2.warpPerspective(src, hs, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones_like(src), hs, size, flags=cv2.INTER_NEAREST)
    mask = cv2.erode(mask, np.ones((7, 7), np.uint8)) > 0.5
    a, b = warped[mask] - warped[mask].mean(), small[1][mask] - small[1][mask].mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((h // 4, w // 4)).astype(np.float32)
    return (cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def _warped_set(h: int = 90, w: int = 120, n: int = 4, seed: int = 0):
    """Image 1 = texture; image k = texture warped by a known small homography."""
    base = _texture(h, w, seed)
    homs, images = {}, [base]
    for k in range(2, n + 1):
        hk = np.array([[1 + 0.01 * k, 0.02, 1.5 * k], [-0.01, 1.0, -k], [1e-5 * k, 0, 1]])
        homs[k] = hk
        images.append(cv2.warpPerspective(base, hk, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return images, homs


def test_hpatches_layout_round_trip(tmp_path):
    images, homs = _warped_set()
    write_sequence(tmp_path / "v_fixture", images, homs)
    write_sequence(tmp_path / "i_other", [np.dstack([im] * 3) for im in images], {k: np.eye(3) for k in homs})
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "notes").mkdir()                    # not a sequence: ignored
    (tmp_path / "README.txt").write_text("hello")

    seqs = ImageSequences(tmp_path)
    assert seqs.names == ["i_other", "v_fixture"]
    seq = seqs["v_fixture"]
    assert (seq.kind, seq.layout, len(seq), seq.targets) == ("viewpoint", "hpatches", 4, [2, 3, 4])
    assert seqs["i_other"].kind == "illumination"
    assert sorted(seq.image_paths) == [1, 2, 3, 4] and seq.image_paths[3].name == "3.ppm"
    np.testing.assert_array_equal(seq.homographies[1], np.eye(3))
    for k, hk in homs.items():
        assert seq.homographies[k].dtype == np.float64
        np.testing.assert_array_equal(seq.homographies[k], hk)      # written with full precision
        np.testing.assert_array_equal(seq.image(k), images[k - 1])  # PPM is lossless
        assert warp_ncc(seq.image(1), seq.image(k), seq.homographies[k]) > 0.95
    rgb = seqs["i_other"].image(2, gray=False)
    assert rgb.shape == (90, 120, 3) and rgb.dtype == np.uint8
    assert len(ImageSequences(tmp_path, kind="viewpoint")) == 1
    # root may be one sequence folder
    assert ImageSequences(tmp_path / "v_fixture").names == ["v_fixture"]
    # composition: H_2_4 maps image-2 points to image-4 points
    p1 = np.array([30.0, 40.0, 1.0])
    p2, p4 = homs[2] @ p1, homs[4] @ p1
    q = seq.homography(2, 4) @ (p2 / p2[2])
    np.testing.assert_allclose(q[:2] / q[2], p4[:2] / p4[2], atol=1e-9)


def test_oxford_layout_with_pgm_comment_and_matlab_exponents(tmp_path):
    images, homs = _warped_set(n=3, seed=1)
    folder = tmp_path / "boatlike"
    folder.mkdir()
    for k, image in enumerate(images, start=1):   # binary PGM with a '#' comment line in the header
        header = f"P5\n# CREATOR: test\n{image.shape[1]} {image.shape[0]}\n255\n".encode()
        (folder / f"img{k}.pgm").write_bytes(header + image.tobytes())
    for k, hk in homs.items():                    # EF-style: 883.39e-003
        text = "\n".join("  ".join(f"{v * 1000:.15f}e-003" for v in row) for row in hk)
        (folder / f"H1to{k}p").write_text(text)
    seq = read_sequence(folder)
    assert (seq.layout, seq.kind, len(seq)) == ("oxford", None, 3)
    for k, hk in homs.items():
        np.testing.assert_allclose(seq.homographies[k], hk, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(seq.image(k), images[k - 1])
    assert ImageSequences(tmp_path).names == ["boatlike"]


def test_homography_text_round_trip(tmp_path):
    h = np.random.default_rng(0).normal(size=(3, 3))
    write_homography(tmp_path / "H", h)
    np.testing.assert_array_equal(read_homography(tmp_path / "H"), h)


def test_real_hpatches_sequence(shared_data):
    folder = shared_file(shared_data, "hpatches/sequences/v_churchill")
    seqs = ImageSequences(folder.parent)
    seq = seqs["v_churchill"]
    assert (seq.kind, len(seq)) == ("viewpoint", 6)
    np.testing.assert_allclose(seq.homographies[2][0], [2.3594, 0.0026252, -116.05])
    image1 = seq.image(1)
    assert image1.shape == (1024, 768) and seq.image(1, gray=False).shape == (1024, 768, 3)
    for k in (2, 4, 6):
        assert warp_ncc(image1, seq.image(k), seq.homographies[k], scale=0.25) > 0.8


def test_real_oxford_sequences(shared_data):
    graf = read_sequence(shared_file(shared_data, "oxford-affine/graf"))
    assert graf.layout == "oxford" and graf.image_paths[1].suffix == ".png"
    for k in (2, 3):
        assert warp_ncc(graf.image(1), graf.image(k), graf.homographies[k], scale=0.5) > 0.8
    boat = read_sequence(shared_file(shared_data, "oxford-affine/boat"))   # PGM with a '#' comment
    assert boat.image(1).shape == (680, 850) and boat.image(1, gray=False).shape == (680, 850, 3)
    ef = read_sequence(shared_file(shared_data, "ef/notredame"))          # MATLAB-style exponents
    np.testing.assert_allclose(ef.homographies[2][0], [0.883392404836646, -0.0675218642049985, 21.9535083569646])
    assert ef.homographies[2][2, 2] == pytest.approx(1.00336174941904)


def test_missing_homography_names_the_file(tmp_path):
    images, homs = _warped_set()
    write_sequence(tmp_path / "v_x", images, homs)
    (tmp_path / "v_x" / "H_1_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"v_x/H_1_3: missing homography"):
        ImageSequences(tmp_path)


def test_missing_image_names_the_file(tmp_path):
    images, homs = _warped_set()
    write_sequence(tmp_path / "v_x", images, homs)
    (tmp_path / "v_x" / "2.ppm").unlink()
    with pytest.raises(FileNotFoundError, match=r"v_x/2\.ppm: missing image 2"):
        read_sequence(tmp_path / "v_x")
    only_h = tmp_path / "only_h"
    only_h.mkdir()
    write_homography(only_h / "H1to2p", np.eye(3))
    with pytest.raises(FileNotFoundError, match=r"only_h/img1\.ppm: missing image 1"):
        read_sequence(only_h)


@pytest.mark.parametrize("text, message", [
    ("1 0 0\n0 1 0\n0 0", "expected 9 numbers"),
    ("1 0 0\n0 1 x\n0 0 1", "'x' is not a number"),
    ("1 0 0 0 1 0 0 0 nan", "non-finite"),
    ("1 2 3 2 4 6 0 0 1", "singular"),
    ("0 0 0 0 0 0 0 0 0", "singular"),  # 0/0 in a scale-free test must not pass
    ("1 0 0 0 1 0 0 0 inf", "non-finite"),
    ("1e308 1e308 0 1e308 1e308 0 0 0 1", "singular"),
])
def test_unparsable_homography_names_the_file(tmp_path, text, message):
    images, homs = _warped_set(n=2)
    write_sequence(tmp_path / "v_x", images, homs)
    (tmp_path / "v_x" / "H_1_2").write_text(text)
    with pytest.raises(ValueError, match=rf"v_x/H_1_2: .*{message}"):
        ImageSequences(tmp_path)


def test_bad_roots_and_images(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        ImageSequences(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image sequences found"):
        ImageSequences(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    write_sequence(mixed, *_warped_set(n=2))
    write_homography(mixed / "H1to2p", np.eye(3))
    with pytest.raises(ValueError, match="mixes the HPatches"):
        read_sequence(mixed)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        read_image(tmp_path / "broken.png")
    with pytest.raises(FileNotFoundError, match="nothere.ppm: no such image file"):
        read_image(tmp_path / "nothere.ppm")
    seq = read_sequence(_fresh(tmp_path))
    with pytest.raises(KeyError, match="no image 7"):
        seq.image(7)


def _fresh(tmp_path):
    folder = tmp_path / "v_fresh"
    write_sequence(folder, *_warped_set(n=2))
    return folder
