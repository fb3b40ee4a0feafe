"""Brown (UBC Phototour) reader and writer: the original layout, torchvision's .pt cache, descnet's HDF5 cache,
the real notredame mosaics, and bad input."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from descnet.data import phototour
from descnet.data.phototour import (PIXEL_MEAN, PIXEL_STD, SUBSET_SIZES, PhotoTour, read_mosaic, read_pairs,
                                    write_phototour)

N = 600  # 3 mosaics, the last one holds 88 patches and is otherwise black
PAIRS_NAME = "m50_8_8_0.txt"


def _tiny_data(n: int = N, seed: int = 0):
    rng = np.random.default_rng(seed)
    patches = rng.integers(0, 256, (n, 64, 64), dtype=np.uint8)
    sizes = rng.integers(2, 5, n)  # consecutive patches of one point, 2..4 per point
    labels = np.repeat(np.arange(n) * 7 + 3, sizes)[:n].astype(np.int64)
    pairs = np.array([[0, 1], [0, 5], [10, 11], [n - 1, n - 2], [2, 300], [299, 300], [256, 257], [511, 512]])
    return patches, labels, pairs


def _make_brown_by_hand(folder: Path, patches, labels, pairs, pairs_name=PAIRS_NAME) -> None:
    """The published layout, written directly from its definition (independent of write_phototour)."""
    folder.mkdir(parents=True)
    n = len(patches)
    for f in range(math.ceil(n / 256)):
        mosaic = np.zeros((1024, 1024), np.uint8)
        for k in range(256):
            i = 256 * f + k
            if i >= n:
                break
            row, col = divmod(k, 16)
            mosaic[64 * row:64 * row + 64, 64 * col:64 * col + 64] = patches[i]
        assert cv2.imwrite(str(folder / f"patches{f:04d}.bmp"), mosaic)
    (folder / "info.txt").write_text("".join(f"{p} 0\n" for p in labels))
    (folder / "interest.txt").write_text("".join(f"{i % 5} 10.5 20.25 0.125 2\n" for i in range(n)))
    (folder / pairs_name).write_text("".join(
        f"{a} {labels[a]} 0 {b} {labels[b]} 0 0\n" for a, b in pairs))


def _expected_matches(labels, pairs):
    return np.array([[a, b, int(labels[a] == labels[b])] for a, b in pairs], dtype=np.int64)


@pytest.fixture
def tiny(tmp_path):
    patches, labels, pairs = _tiny_data()
    _make_brown_by_hand(tmp_path / "tiny", patches, labels, pairs)
    return tmp_path, patches, labels, pairs


# ------------------------------------------------------------------------------------- original layout
def test_reads_original_layout_exactly(tiny):
    root, patches, labels, pairs = tiny
    ds = PhotoTour(root, "tiny", pairs_file=PAIRS_NAME, progress=False)
    assert ds.source == "mosaics" and len(ds) == N
    assert ds.patches.dtype == np.uint8 and ds.patches.shape == (N, 64, 64)
    np.testing.assert_array_equal(ds.patches, patches)
    np.testing.assert_array_equal(ds[N - 1], patches[N - 1])
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.labels, labels)
    expected = _expected_matches(labels, pairs)
    assert expected[:, 2].sum() not in (0, len(pairs))  # the fixture has positives and negatives
    assert ds.matches.dtype == np.int64
    np.testing.assert_array_equal(ds.matches, expected)
    assert ds.available_pairs() == [PAIRS_NAME]
    interest = ds.read_interest()
    assert interest.shape == (N, 5) and interest[7, 0] == 2 and interest[0, 2] == 20.25
    assert (ds.mean, ds.std) == (None, None)  # not a published subset
    assert (root / "tiny.descnet.h5").is_file()


def test_no_cache_and_in_memory_give_the_same(tiny):
    root, patches, labels, _ = tiny
    plain = PhotoTour(root, "tiny", cache=False, pairs_file=PAIRS_NAME, progress=False)
    assert not (root / "tiny.descnet.h5").exists() and type(plain.patches) is np.ndarray
    loaded = PhotoTour(root, "tiny", in_memory=True, pairs_file=PAIRS_NAME, progress=False)
    assert type(loaded.patches) is np.ndarray
    for ds in (plain, loaded):
        np.testing.assert_array_equal(ds.patches, patches)
        np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_array_equal(plain.matches, loaded.matches)


def test_cache_is_reused_without_parsing_bmps(tiny, monkeypatch):
    root, patches, labels, pairs = tiny
    first = PhotoTour(root, "tiny", pairs_file=PAIRS_NAME, progress=False)
    first_matches = first.matches.copy()

    def no_bmp(path):
        raise AssertionError(f"parsed {path} although the cache is valid")

    monkeypatch.setattr(phototour, "read_mosaic", no_bmp)
    monkeypatch.setattr(phototour, "read_pairs", no_bmp)
    second = PhotoTour(root, "tiny", pairs_file=PAIRS_NAME, progress=False)
    assert second.source == "cache"
    np.testing.assert_array_equal(second.patches, first.patches)
    np.testing.assert_array_equal(second.labels, first.labels)
    np.testing.assert_array_equal(second.matches, first_matches)
    # the memory map is writable (torch.from_numpy needs that) but copy-on-write: the cache is not touched
    assert isinstance(second.patches, np.memmap) and second.patches.flags.writeable
    second.patches[0] = 0
    np.testing.assert_array_equal(PhotoTour(root, "tiny", progress=False).patches[0], patches[0])


def test_cache_is_rebuilt_when_the_source_changes(tiny):
    root, patches, labels, pairs = tiny
    PhotoTour(root, "tiny", progress=False)
    new_labels = labels + 1000
    (root / "tiny" / "info.txt").write_text("".join(f"{p} 0\n" for p in new_labels[:N - 10]))
    ds = PhotoTour(root, "tiny", progress=False)
    assert ds.source == "mosaics" and len(ds) == N - 10  # number of patches = lines of info.txt
    np.testing.assert_array_equal(ds.labels, new_labels[:N - 10])
    np.testing.assert_array_equal(ds.patches, patches[:N - 10])


def test_cache_is_rebuilt_when_a_middle_mosaic_changes(tiny):
    import os

    root, patches, labels, pairs = tiny
    PhotoTour(root, "tiny", progress=False)
    middle = root / "tiny" / "patches0001.bmp"
    stat = middle.stat()
    changed = patches.copy()
    changed[256:512] = 255 - changed[256:512]
    mosaic = np.zeros((1024, 1024), np.uint8)
    for k in range(256):
        row, col = divmod(k, 16)
        mosaic[64 * row:64 * row + 64, 64 * col:64 * col + 64] = changed[256 + k]
    assert cv2.imwrite(str(middle), mosaic)
    os.utime(middle, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # same size, newer
    ds = PhotoTour(root, "tiny", progress=False)
    np.testing.assert_array_equal(ds.patches, changed)


def test_cache_dir_and_no_source_left(tiny, tmp_path_factory):
    root, patches, labels, _ = tiny
    cache_dir = tmp_path_factory.mktemp("cache")
    PhotoTour(root, "tiny", cache_dir=cache_dir, progress=False)
    assert (cache_dir / "tiny.descnet.h5").is_file() and not (root / "tiny.descnet.h5").exists()
    # the cache alone is enough once the source is gone
    for f in (root / "tiny").iterdir():
        f.unlink()
    (root / "tiny").rmdir()
    ds = PhotoTour(root, "tiny", cache_dir=cache_dir, pairs_file=PAIRS_NAME, progress=False)
    np.testing.assert_array_equal(ds.patches, patches)
    np.testing.assert_array_equal(ds.matches[:, :2], _tiny_data()[2])


def test_other_pairs_file(tiny):
    root, patches, labels, _ = tiny
    other = np.array([[3, 4], [5, 100]])
    (root / "tiny" / "m50_2_2_0.txt").write_text("".join(
        f"{a} {labels[a]} 0 {b} {labels[b]} 0 0\n" for a, b in other))
    ds = PhotoTour(root, "tiny", pairs_file=PAIRS_NAME, progress=False)
    np.testing.assert_array_equal(ds.read_pairs("m50_2_2_0.txt"), _expected_matches(labels, other))
    assert ds.available_pairs() == ["m50_2_2_0.txt", PAIRS_NAME]


def test_read_mosaic_is_row_major(tiny):
    root, patches, *_ = tiny
    last = read_mosaic(root / "tiny" / "patches0002.bmp")
    assert last.shape == (256, 64, 64) and last.dtype == np.uint8
    np.testing.assert_array_equal(last[:N - 512], patches[512:])
    assert not last[N - 512:].any()  # the empty part of the last mosaic is black


# --------------------------------------------------------------------------------------------- writer
def test_writer_produces_the_published_layout(tiny, tmp_path_factory):
    root, patches, labels, pairs = tiny
    out = tmp_path_factory.mktemp("written")
    folder = write_phototour(out, "tiny", patches, labels, pairs, pairs_name=PAIRS_NAME)
    assert folder == out / "tiny"
    assert sorted(p.name for p in folder.iterdir()) == [
        "info.txt", "interest.txt", PAIRS_NAME, "patches0000.bmp", "patches0001.bmp", "patches0002.bmp"]
    for name in ("info.txt", PAIRS_NAME):
        assert (folder / name).read_text() == (root / "tiny" / name).read_text()
    for f in range(3):
        raw = (folder / f"patches{f:04d}.bmp").read_bytes()
        assert raw[:2] == b"BM" and int.from_bytes(raw[28:30], "little") == 8  # 8 bits per pixel
        np.testing.assert_array_equal(cv2.imread(str(folder / f"patches{f:04d}.bmp"), cv2.IMREAD_UNCHANGED),
                                      cv2.imread(str(root / "tiny" / f"patches{f:04d}.bmp"), cv2.IMREAD_UNCHANGED))
    assert (folder / "interest.txt").read_text().splitlines()[0] == "0 0 0 0 0"
    # the (M, 3) form of pairs and the default file name
    again = write_phototour(out, "again", patches, labels, _expected_matches(labels, pairs))
    assert (again / "m50_8_8_0.txt").read_text() == (folder / PAIRS_NAME).read_text()


def test_writer_rejects_bad_input(tmp_path):
    patches, labels, pairs = _tiny_data(40)
    with pytest.raises(ValueError, match="uint8"):
        write_phototour(tmp_path, "x", patches.astype(np.float32), labels, pairs[:3])
    with pytest.raises(ValueError, match="labels"):
        write_phototour(tmp_path, "x", patches, labels[:-1], pairs[:3])
    with pytest.raises(ValueError, match="outside"):
        write_phototour(tmp_path, "x", patches, labels, np.array([[0, 40]]))
    wrong = _expected_matches(labels, pairs[:3])
    wrong[:, 2] = 1 - wrong[:, 2]
    with pytest.raises(ValueError, match="disagrees"):
        write_phototour(tmp_path, "x", patches, labels, wrong)
    assert not (tmp_path / "x").exists()


# -------------------------------------------------------------------------------------- torchvision .pt
def test_torchvision_pt_cache(tmp_path):
    import torch

    patches, labels, pairs = _tiny_data(300)
    matches = _expected_matches(labels, pairs[:4])
    torch.save((torch.from_numpy(patches), torch.from_numpy(labels), torch.from_numpy(matches)),
               tmp_path / "tvset.pt")
    ds = PhotoTour(tmp_path, "tvset", progress=False)
    assert ds.source == "torchvision"
    np.testing.assert_array_equal(ds.patches, patches)
    np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_array_equal(ds.matches, matches)
    assert PhotoTour(tmp_path, "tvset", progress=False).source == "cache"
    with pytest.raises(FileNotFoundError, match="m50_5000_5000_0.txt"):
        ds.read_pairs("m50_5000_5000_0.txt")


def test_broken_torchvision_pt(tmp_path):
    import torch

    torch.save({"data": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt"):
        PhotoTour(tmp_path, "bad", progress=False)
    assert not (tmp_path / "bad.descnet.h5").exists()


# -------------------------------------------------------------------------------------------- real data
def test_real_notredame_mosaics(shared_data, tmp_path):
    folder = shared_data / "brown" / "notredame"
    if not (folder / "patches0031.bmp").is_file():
        pytest.skip(f"{folder}/patches0000..0031.bmp are not in the shared data")
    ds = PhotoTour(folder.parent, "notredame", cache_dir=tmp_path, progress=False)
    assert len(ds) == 32 * 256 and ds.labels is None and not ds.has_labels
    rng = np.random.default_rng(1)
    for i in [0, 17, 255, 256, 4097, 8191, *rng.integers(0, 8192, 10)]:
        f, k = divmod(int(i), 256)
        row, col = divmod(k, 16)
        image = cv2.imread(str(folder / f"patches{f:04d}.bmp"), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(ds[i], image[64 * row:64 * row + 64, 64 * col:64 * col + 64])
    pixels = np.asarray(ds.patches, dtype=np.float64) / 255
    assert pixels.mean() == pytest.approx(0.4244, abs=1e-4)  # SOURCES.md
    assert pixels.std() == pytest.approx(0.1639, abs=1e-4)
    assert (ds.mean, ds.std) == (0.4854, 0.1864)  # published, whole subset
    with pytest.raises(FileNotFoundError, match="only the patch mosaics"):
        ds.matches
    with pytest.raises(ValueError, match="no info.txt"):
        ds.require_labels()


def test_published_constants():
    assert SUBSET_SIZES == {"liberty": 450_092, "notredame": 468_159, "yosemite": 633_587}
    assert PIXEL_MEAN == {"liberty": 0.4437, "notredame": 0.4854, "yosemite": 0.4844}
    assert PIXEL_STD == {"liberty": 0.2019, "notredame": 0.1864, "yosemite": 0.1818}


# ------------------------------------------------------------------------------------------- bad input
def _no_leftovers(root: Path, name: str = "tiny") -> None:
    assert not (root / f"{name}.descnet.h5").exists()
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")], "a temporary file was left behind"


def test_truncated_bmp(tiny):
    root, *_ = tiny
    bmp = root / "tiny" / "patches0001.bmp"
    bmp.write_bytes(bmp.read_bytes()[:600_000])
    with pytest.raises(ValueError, match=r"patches0001\.bmp.*truncated"):
        PhotoTour(root, "tiny", progress=False)
    _no_leftovers(root)


def test_info_longer_than_mosaics(tiny):
    root, patches, labels, _ = tiny
    (root / "tiny" / "patches0002.bmp").unlink()
    with pytest.raises(ValueError, match=r"info\.txt lists 600 patches .* 2 mosaics"):
        PhotoTour(root, "tiny", progress=False)
    _no_leftovers(root)


def test_info_shorter_than_mosaics_is_fine_but_uncovered_mosaics_are_reported(tiny):
    root, patches, labels, _ = tiny
    (root / "tiny" / "info.txt").write_text("".join(f"{p} 0\n" for p in labels[:300]))
    with pytest.warns(UserWarning, match=r"info\.txt: labels 300 patches, but .*tiny holds 1 more mosaic\(s\) "
                                         r"\(patches0002\.bmp to patches0002\.bmp, up to 256 patches\) that no label "
                                         r"covers: they are ignored"):
        ds = PhotoTour(root, "tiny", pairs_file=PAIRS_NAME, progress=False)
    with pytest.warns(UserWarning, match=r"tiny holds 1 more mosaic\(s\)"):  # again from the cache
        again = PhotoTour(root, "tiny", pairs_file=PAIRS_NAME, progress=False)
    assert again.source == "cache" and len(again) == 300
    assert len(ds) == 300
    np.testing.assert_array_equal(ds.patches, patches[:300])
    with pytest.raises(ValueError, match=r"m50_8_8_0\.txt: pairs refer to patch"):  # its pairs go past 300
        ds.matches


def test_missing_mosaic_in_the_middle(tiny):
    root, *_ = tiny
    (root / "tiny" / "patches0001.bmp").unlink()
    with pytest.raises(FileNotFoundError, match=r"patches0001\.bmp: missing mosaic"):
        PhotoTour(root, "tiny", progress=False)


def test_missing_pairs_file(tiny):
    root, *_ = tiny
    ds = PhotoTour(root, "tiny", progress=False)  # default pairs_file: m50_100000_100000_0.txt
    with pytest.raises(FileNotFoundError, match=r"m50_100000_100000_0\.txt: no such pairs file \(available: "
                                                r"m50_8_8_0\.txt\)"):
        ds.matches


def test_malformed_text_files(tiny):
    root, *_ = tiny
    (root / "tiny" / "info.txt").write_text("12 0\nnot-a-number 0\n")
    with pytest.raises(ValueError, match=r"info\.txt: not a Brown info\.txt"):
        PhotoTour(root, "tiny", progress=False)
    (root / "tiny" / "bad.txt").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="at least 5 columns"):
        read_pairs(root / "tiny" / "bad.txt")
    _no_leftovers(root)


def test_nothing_there(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no Brown subset 'liberty'.*descnet data download brown"):
        PhotoTour(tmp_path, "liberty")
    (tmp_path / "liberty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no Brown mosaics"):
        PhotoTour(tmp_path, "liberty")


def test_mosaics_without_info_hold_256_each(tiny):
    root, patches, *_ = tiny
    (root / "tiny" / "info.txt").unlink()
    ds = PhotoTour(root, "tiny", progress=False)
    assert len(ds) == 3 * 256 and ds.labels is None
    np.testing.assert_array_equal(ds.patches[:N], patches)
    assert not ds.patches[N:].any()


def test_a_negative_pair_id_is_reported_as_itself(tiny):
    root, patches, labels, pairs = tiny
    (root / "tiny" / "m50_2_2_0.txt").write_text(f"0 {labels[0]} 0 1 {labels[1]} 0 0\n-4 3 0 1 {labels[1]} 0 0\n")
    ds = PhotoTour(root, "tiny", pairs_file="m50_2_2_0.txt", progress=False)
    with pytest.raises(ValueError, match=r"m50_2_2_0\.txt: pairs refer to patch -4 \(pair 2\) but 'tiny' has patches "
                                         r"0 to 599"):
        ds.matches
