"""Files that know where they came from (issue 24): features and matches files reused only when made from the
same model weights, settings, images and features; never a foreign file overwritten; one writer at a time;
caches keyed by content; clear errors for the unclear cases."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from descnet.cli.main import main
from descnet.features.files import (PairMatches, list_feature_names, read_feature_digests, read_features,
                                    read_matches, write_features, write_matches)
from descnet.features.options import KeypointOptions
from descnet.features.pairs import exhaustive_pairs
from descnet.features.pipeline import describe_to_file, image_sources, match_to_file
from descnet.io import ForeignFileError, OutputLockedError, output_lock, result_set

REPO = Path(__file__).resolve().parents[1]
FEW = KeypointOptions(max_keypoints=40)


def texture(h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def image_folder(root, count=3):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(root / f"im{i:02d}.png"), texture(seed=i))
    return root


def two_weights(tmp_path):
    """Two TFeat weight files of the same name (label ``tfeat-w``) with other values."""
    from descnet.models import create_model

    specs = []
    for folder, seed in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        torch.manual_seed(seed)
        torch.save(create_model("tfeat").state_dict(), tmp_path / folder / "w.pt")
        specs.append(f"tfeat:{tmp_path / folder / 'w.pt'}")
    return specs


# ---------------------------------------------------------------- silently wrong -> refused

def test_describe_refuses_a_file_made_with_other_weights_of_the_same_name(tmp_path):
    images = image_sources([image_folder(tmp_path / "photos", 2)])
    first, other = two_weights(tmp_path)
    out = tmp_path / "f.h5"
    describe_to_file(dict(list(images.items())[:1]), out, model=first, options=FEW)
    with h5py.File(out) as f:
        digest = f.attrs["model_digest"]
        assert len(digest) == 64 and f.attrs["max_keypoints"] == 40
        assert f["im00.png"].attrs["image_sha256"] and f["im00.png"].attrs["features_sha256"]
    with pytest.raises(ValueError, match=rf"f.h5: holds features made with other settings: model_digest "
                                         rf"{digest[:12]}\.\.\. \(this run: [0-9a-f]{{12}}\.\.\.\).*--overwrite"):
        describe_to_file(images, out, model=other, options=FEW)
    assert list_feature_names(out) == ["im00.png"]  # untouched
    report = describe_to_file(images, out, model=other, options=FEW, overwrite=True)  # the way to start afresh
    assert report.described == ["im00.png", "im01.png"]


def test_describe_refuses_other_keypoint_settings_and_changed_images(tmp_path):
    root = image_folder(tmp_path / "photos", 2)
    out = tmp_path / "f.h5"
    describe_to_file(image_sources([root]), out, model="opencv-rootsift", options=FEW)
    with pytest.raises(ValueError, match=r"max_keypoints 40 \(this run: 30\)"):  # eval sfm --max-keypoints 300 case
        describe_to_file(image_sources([root]), out, model="opencv-rootsift", options=KeypointOptions(max_keypoints=30))
    old = read_features(out)  # as an older descnet wrote it: settings without the model's digest and keypoint limit
    write_features(tmp_path / "old.h5", old, {"model": "opencv-rootsift", "detector": "sift", "mr_size": 6.0})
    with pytest.raises(ValueError, match=r"old.h5: holds features made with other settings: model_digest None \(this "
                                         r"run: [0-9a-f]{12}\.\.\.\), max_keypoints None \(this run: 40\) \(the file "
                                         r"does not record model_digest, max_keypoints: an older descnet made it"):
        describe_to_file(image_sources([root]), tmp_path / "old.h5", model="opencv-rootsift", options=FEW)
    cv2.imwrite(str(root / "im01.png"), texture(seed=9))  # same name, other content
    with pytest.raises(ValueError, match=r"f.h5: holds features of image 'im01.png' made from other content "
                                         r"\(image sha256 [0-9a-f]{12}\.\.\.; .*im01.png now has sha256"):
        describe_to_file(image_sources([root]), out, model="opencv-rootsift", options=FEW)


def test_match_refuses_a_matches_file_of_other_features(tmp_path):
    images = image_sources([image_folder(tmp_path / "photos", 3)])
    pairs = exhaustive_pairs(list(images))
    describe_to_file(images, tmp_path / "many.h5", model="opencv-rootsift", options=KeypointOptions(max_keypoints=60))
    describe_to_file(images, tmp_path / "few.h5", model="opencv-rootsift", options=KeypointOptions(max_keypoints=30))
    match_to_file(tmp_path / "many.h5", pairs, tmp_path / "m.h5")
    held = read_matches(tmp_path / "m.h5")[pairs[0]]
    assert held.feature_digests == tuple(read_feature_digests(tmp_path / "many.h5", pairs[0]).values())
    with pytest.raises(ValueError, match=r"m.h5: holds matches of im00.png im01.png computed from other features of "
                                         r"im00.png \(entry sha256 .* in .*few.h5 now\); .*--overwrite"):
        match_to_file(tmp_path / "few.h5", pairs, tmp_path / "m.h5")
    # a matches file without the record (an older descnet's): the keypoint counts still tell
    with h5py.File(tmp_path / "m.h5", "a") as f:
        for key in ("im00.png/im01.png", "im00.png/im02.png", "im01.png/im02.png"):
            del f[key].attrs["features0"], f[key].attrs["features1"]
    with pytest.raises(ValueError, match=r"computed from other features \(keypoints \(\d+, \d+\) there, \(30, 30\)"):
        match_to_file(tmp_path / "few.h5", pairs, tmp_path / "m.h5")
    assert match_to_file(tmp_path / "few.h5", pairs, tmp_path / "m.h5", overwrite=True).matched == pairs


def _hloc_file(path, shapes_and_layouts):
    """An hloc-style features file (no descnet format): ``{name: (N, D, "DN" | "ND")}``, descriptors = arange."""
    with h5py.File(path, "w") as f:
        for name, (n, d, layout) in shapes_and_layouts.items():
            g = f.create_group(name)
            g["keypoints"] = np.stack([np.arange(n), np.arange(n)], 1).astype(np.float32)
            desc = np.arange(n * d, dtype=np.float32).reshape(n, d) + 1.0  # (N, D): row i = keypoint i
            g["descriptors"] = desc.T.copy() if layout == "DN" else desc
            g["image_size"] = np.array([100, 80])
    return path


def test_square_hloc_descriptors_follow_the_layout_of_the_file_or_are_refused(tmp_path):
    want = np.arange(8 * 8, dtype=np.float32).reshape(8, 8) + 1.0
    for layout in ("DN", "ND"):  # another image of the file tells which axis is the descriptor's
        path = _hloc_file(tmp_path / f"{layout}.h5", {"a.png": (8, 8, layout), "b.png": (5, 8, layout)})
        feats = read_features(path)
        np.testing.assert_array_equal(feats["a.png"].descriptors, want)
        assert feats["b.png"].descriptors.shape == (5, 8)
    path = _hloc_file(tmp_path / "square.h5", {"a.png": (8, 8, "ND")})
    with pytest.raises(ValueError, match=r"square.h5:/a.png: 8 keypoints with 8-D descriptors: the file does not "
                                         r"say which axis"):
        read_features(path)
    with h5py.File(path, "a") as f:
        f.attrs["descriptor_layout"] = "ND"
    np.testing.assert_array_equal(read_features(path)["a.png"].descriptors, want)


def test_matches_are_checked_against_the_features_before_colmap(tmp_path):
    from descnet.geometry.colmap import check_matches_fit_features

    images = image_sources([image_folder(tmp_path / "photos", 2)])
    describe_to_file(images, tmp_path / "f.h5", model="opencv-rootsift", options=FEW)
    feats = read_features(tmp_path / "f.h5")
    n0, n1 = len(feats["im00.png"]), len(feats["im01.png"])
    bad = {("im00.png", "im01.png"): PairMatches(np.array([[0, n1 + 5]]), np.zeros(1, np.float32), np.ones(1, bool),
                                                 None)}  # as hloc's files: no counts, no digests
    with pytest.raises(ValueError, match=rf"m.h5: the matches of im00.png im01.png index keypoints beyond the {n0} "
                                         rf"and {n1} of .*f.h5; match again"):
        check_matches_fit_features(tmp_path / "f.h5", tmp_path / "m.h5", feats, bad)
    counted = {("im00.png", "im01.png"): PairMatches(np.array([[0, 1]]), np.zeros(1, np.float32), np.ones(1, bool),
                                                     None, num_keypoints=(n0 + 1, n1))}
    with pytest.raises(ValueError, match=rf"index {n0 + 1} and {n1} keypoints, but .*f.h5 holds {n0} and {n1}"):
        check_matches_fit_features(tmp_path / "f.h5", tmp_path / "m.h5", feats, counted)


# ---------------------------------------------------------------- data loss -> refused

def test_overwrite_replaces_only_descnets_own_files(tmp_path, capsys):
    root = image_folder(tmp_path / "photos", 2)
    victim = tmp_path / "victim.png"
    cv2.imwrite(str(victim), texture(seed=5))
    before = victim.read_bytes()
    assert main(["describe", str(root), "--model", "opencv-rootsift", "--out", str(victim), "--overwrite",
                 "--quiet"]) == 2
    assert "victim.png: not an HDF5 file; --overwrite replaces only descnet's own features files" in \
        capsys.readouterr().err
    assert victim.read_bytes() == before
    hloc = _hloc_file(tmp_path / "hloc.h5", {"a.png": (5, 8, "DN")})
    before = hloc.read_bytes()
    assert main(["describe", str(root), "--model", "opencv-rootsift", "--out", str(hloc), "--overwrite",
                 "--quiet"]) == 2
    assert "hloc.h5: an HDF5 file descnet did not write as a features file (format None)" in capsys.readouterr().err
    assert hloc.read_bytes() == before
    describe_to_file(image_sources([root]), tmp_path / "f.h5", model="opencv-rootsift", options=FEW)
    (tmp_path / "pairs.txt").write_text("im00.png im01.png\n")
    for target in (victim, tmp_path / "f.h5"):  # an image, or a features file where matches go
        before = target.read_bytes()
        assert main(["match", "--features", str(tmp_path / "f.h5"), "--pairs", str(tmp_path / "pairs.txt"),
                     "--out", str(target), "--overwrite", "--quiet"]) == 2
        assert "--overwrite replaces only descnet's own matches files" in capsys.readouterr().err
        assert target.read_bytes() == before


def test_pairs_out_replaces_only_a_pair_file(tmp_path, capsys):
    describe_to_file(image_sources([image_folder(tmp_path / "photos", 2)]), tmp_path / "f.h5", model="opencv-rootsift",
                     options=FEW)
    (tmp_path / "notes.txt").write_text("my notes, not pairs\n")
    assert main(["pairs", str(tmp_path / "f.h5"), "--out", str(tmp_path / "notes.txt")]) == 2
    assert "notes.txt: exists and is not a pair file" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "my notes, not pairs\n"
    (tmp_path / "pairs.txt").write_text("a.png b.png\n")
    assert main(["pairs", str(tmp_path / "f.h5"), "--out", str(tmp_path / "pairs.txt")]) == 0
    assert (tmp_path / "pairs.txt").read_text() == "im00.png im01.png\n"


def test_match_two_images_never_replaces_the_users_files(tmp_path, capsys):
    root = image_folder(tmp_path / "photos", 2)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "summary.json").write_text("my notes")
    (out / "matches.png").write_bytes(b"my picture")
    assert main(["match", str(root / "im00.png"), str(root / "im01.png"), "--model", "opencv-rootsift", "--out",
                 str(out)]) == 2
    assert "mine/matches.png: exists and descnet did not write it" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == "my notes" and (out / "matches.png").read_bytes() == b"my picture"
    assert sorted(p.name for p in out.iterdir()) == ["matches.png", "summary.json"]
    with pytest.raises(ForeignFileError, match=r"matches.png: exists and descnet did not write it"):
        with result_set(out) as rs:  # the rule is result_set's, whatever the command
            rs.path("matches.png").write_bytes(b"new")


_HOLDER = textwrap.dedent("""
    import sys, time
    from descnet.io import output_lock
    with output_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(30)
""")


def test_a_second_writer_of_one_output_is_refused_naming_the_first(tmp_path, capsys):
    images = image_sources([image_folder(tmp_path / "photos", 1)])
    out = tmp_path / "same.h5"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockedError, match=rf"--out .*same.h5: being written by process {holder.pid} on "
                                                    rf"host {os.uname().nodename}, since .*; wait until it ends"):
            describe_to_file(images, out, model="opencv-rootsift", options=FEW)
    finally:
        holder.kill()
        holder.wait()
    assert not out.exists()
    # the killed holder's lock file is left behind: the next writer takes it over and removes it
    assert (tmp_path / ".same.h5.descnet-lock").exists()
    describe_to_file(images, out, model="opencv-rootsift", options=FEW)
    assert list_feature_names(out) == ["im00.png"] and not (tmp_path / ".same.h5.descnet-lock").exists()
    # a result folder: the whole run of a second command is refused at its start (the run lock beside the folder)
    root = tmp_path / "photos"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "pair")], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["match", str(root / "im00.png"), str(root / "im00.png"), "--model", "opencv-rootsift", "--out",
                     str(tmp_path / "pair"), "--quiet"]) == 2
        assert f"--out {tmp_path / 'pair'}: being written by process {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "pair").exists()
    (tmp_path / "res").mkdir()
    with output_lock(tmp_path / "res", folder=True):  # result sets take the folder's lock
        with pytest.raises(OutputLockedError, match=rf"being written by process {os.getpid()}"):
            with result_set(tmp_path / "res"):
                pass


# ---------------------------------------------------------------- caches by content

def test_brown_cache_notices_a_same_size_edit_with_the_time_restored(tmp_path, monkeypatch):
    import descnet.data.download as download
    from descnet.data.phototour import PhotoTour, write_phototour

    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, (300, 64, 64), dtype=np.uint8)
    labels = np.repeat(np.arange(150), 2)
    write_phototour(tmp_path, "toy", patches, labels, np.array([[0, 1], [2, 5]]))
    assert PhotoTour(tmp_path, "toy", progress=False).source == "mosaics"
    assert PhotoTour(tmp_path, "toy", progress=False).source == "cache"
    mosaic = tmp_path / "toy" / "patches0000.bmp"
    st = mosaic.stat()
    edited = cv2.imread(str(mosaic), cv2.IMREAD_GRAYSCALE)
    edited[:64, :64] = 255 - edited[:64, :64]
    assert cv2.imwrite(str(mosaic), edited) and mosaic.stat().st_size == st.st_size
    os.utime(mosaic, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same size and modification time as before
    ds = PhotoTour(tmp_path, "toy", progress=False)
    assert ds.source == "mosaics"  # rebuilt: the content changed
    np.testing.assert_array_equal(ds.patches[0], 255 - patches[0])
    hashed = []
    real = download.file_digest
    monkeypatch.setattr(download, "file_digest", lambda path, *a: hashed.append(Path(path).name) or real(path, *a))
    assert PhotoTour(tmp_path, "toy", progress=False).source == "cache" and hashed == []  # unchanged: not hashed
    assert PhotoTour(tmp_path, "toy", progress=False, verify_cache=True).source == "cache"
    assert sorted(hashed) == ["info.txt", "m50_2_2_0.txt", "patches0000.bmp", "patches0001.bmp"]


# ---------------------------------------------------------------- unclear -> clear

def test_features_file_errors_name_what_is_wrong(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"other.h5: not a features file \(no group holds a 'keypoints' dataset\)"):
        list_feature_names(tmp_path / "other.h5")
    with h5py.File(tmp_path / "half.h5", "w") as f:
        f["a.png/keypoints"] = np.zeros((2, 2), np.float32)
        f["a.png/descriptors"] = np.ones((4, 2), np.float32)
        f["a.png/image_size"] = np.array([10, 10])
        f.create_group("b.png").create_dataset("descriptors", data=np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"half.h5:/b.png: this group has no 'keypoints' dataset, so it is not an "
                                         r"image of a features file"):
        read_features(tmp_path / "half.h5", ["b.png"])
    with pytest.raises(ValueError, match=r"half.h5:/b.png: this group has no 'keypoints' dataset"):
        match_to_file(tmp_path / "half.h5", [("a.png", "b.png")], tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"pairs of .*half.h5: c.png is not an image of the features file"):
        match_to_file(tmp_path / "half.h5", [("a.png", "c.png")], tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"other.h5: not a features file"):
        match_to_file(tmp_path / "other.h5", [("a.png", "c.png")], tmp_path / "m.h5")
    with h5py.File(tmp_path / "half.h5", "a") as f:
        f["a.png/descriptors"][1, 1] = np.nan
    with pytest.raises(ValueError, match=r"half.h5:/a.png: descriptors of 1 of 2 keypoints are not finite \(NaN or "
                                         r"inf; first: keypoint 1\)"):
        read_features(tmp_path / "half.h5", ["a.png"])


def test_pair_key_collisions_name_both_pairs(tmp_path):
    from descnet.features.files import check_pair_keys

    with pytest.raises(ValueError, match=r"pairs: the pairs a/x.png b.png and a-x.png b.png both give the hloc group "
                                         r"'a-x.png/b.png'"):
        check_pair_keys([("a/x.png", "b.png"), ("a-x.png", "b.png")])
    one = PairMatches(np.zeros((0, 2), np.int64), np.zeros(0, np.float32), np.zeros(0, bool), None,
                      num_keypoints=(3, 3))
    write_matches(tmp_path / "m.h5", {("a/x.png", "b.png"): one}, {"matcher": "mnn"})
    from descnet.features.files import append_matches

    with append_matches(tmp_path / "m.h5", {"matcher": "mnn"}) as add:
        assert ("a-x.png", "b.png") not in add  # not mistaken for the other pair (it would be skipped)
        with pytest.raises(ValueError, match=r"m.h5: the pair a-x.png b.png and the pair a/x.png b.png it holds both "
                                             r"give the hloc group 'a-x.png/b.png'"):
            add("a-x.png", "b.png", one)
    assert list(read_matches(tmp_path / "m.h5")) == [("a/x.png", "b.png")]


def test_mirror_accepts_a_plain_folder_and_says_what_else_it_takes(tmp_path, monkeypatch):
    from descnet.data.download import Resource, candidate_urls, download_resource

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("toy/info.txt", "1 0\n")
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "toy.zip").write_bytes(archive.getvalue())
    resource = Resource("brown", "toy", "toy.zip", "toy", ("http://127.0.0.1:9/toy.zip",))
    monkeypatch.setenv("DESCNET_MIRROR", str(tmp_path / "mirror"))
    assert candidate_urls(resource) == [(tmp_path / "mirror").resolve().as_uri() + "/toy.zip"]
    assert (download_resource(resource, tmp_path / "data", progress=False) / "info.txt").read_text() == "1 0\n"
    monkeypatch.setenv("DESCNET_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"DESCNET_MIRROR: '.*nowhere' is neither a URL \(http://, https://, "
                                         r"file://\) nor an existing folder"):
        candidate_urls(resource)


def test_a_zip_with_a_symlink_entry_is_refused_clearly(tmp_path):
    from descnet.data.download import unpack

    with zipfile.ZipFile(tmp_path / "links.zip", "w") as z:
        link = zipfile.ZipInfo("top/link")
        link.create_system = 3
        link.external_attr = (0o120777 << 16)
        z.writestr(link, "/etc")
        z.writestr("top/link/passwd", "x")
    with pytest.raises(ValueError, match=r"links.zip: the entry 'top/link' is a symbolic link; descnet unpacks only "
                                         r"files and folders"):
        unpack(tmp_path / "links.zip", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_descnet_cache_naming_a_file_is_one_clear_error(tmp_path, monkeypatch, capsys):
    from descnet.io import user_cache_dir

    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("DESCNET_CACHE", str(tmp_path / "file"))
    with pytest.raises(ValueError, match=r"DESCNET_CACHE: .*file is a file, not a folder"):
        user_cache_dir()
    monkeypatch.setenv("DESCNET_CACHE", str(tmp_path / "file" / "below"))
    with pytest.raises(ValueError, match=r"DESCNET_CACHE: .*file is a file, not a folder"):
        user_cache_dir()


def test_far_off_invertible_homographies_are_read_and_singular_ones_refused(tmp_path):
    from descnet.data.sequences import read_homography

    (tmp_path / "far").write_text("1 0 100000\n0 1 0\n0 0 1\n")
    np.testing.assert_array_equal(read_homography(tmp_path / "far"), [[1, 0, 1e5], [0, 1, 0], [0, 0, 1]])
    (tmp_path / "rank2").write_text("1 2 3\n4 5 6\n7 8 9\n")
    with pytest.raises(ValueError, match=r"rank2: homography is singular"):
        read_homography(tmp_path / "rank2")


def test_eval_sequences_warns_of_constant_descriptors(tmp_path, capsys):
    from descnet.data.sequences import write_sequence
    from descnet.eval.sequences import benchmark_sequences
    from descnet.models import create_model

    base = texture(240, 320, seed=3)
    write_sequence(tmp_path / "seqs" / "i_flat", [base, base], {2: np.eye(3)})
    constant = create_model("pixels")
    for p in constant.parameters():
        p.requires_grad_(False)
    original = constant.forward
    constant.forward = lambda x: torch.nn.functional.normalize(torch.ones_like(original(x)), dim=1)
    run = benchmark_sequences([tmp_path / "seqs"], tmp_path / "out", models=[constant], baselines=False)
    assert list(run.payload["warnings"].values()) == [
        "WARNING: pixels: all descriptors are identical (a collapsed model?): its figures are not meaningful "
        "(constant descriptors get retrieval mAP 100% in the official protocol)"]
    assert json.loads((tmp_path / "out" / "sequences.json").read_text())["warnings"] == run.payload["warnings"]
