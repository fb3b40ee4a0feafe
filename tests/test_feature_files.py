"""The feature and match files follow hloc's layout: hloc's access pattern reads descnet's files, and
descnet reads files written the way hloc writes them.

The ``hloc_*`` helpers below follow hloc's readers (hloc/utils/io.py, hloc/utils/parsers.py,
hloc/match_features.py at commit c13273b) key for key: dataset names, shapes, dtypes, pair naming and lookup.
"""
from __future__ import annotations

import cv2
import h5py
import numpy as np
import pytest
import torch

from descnet.cli.main import main
from descnet.features.files import (Features, PairMatches, append_features, list_feature_names, list_match_pairs, names_to_pair, read_features, read_matches, write_features, write_matches)
from descnet.features.matching import match

# ---------------------------------------------------------------- hloc's access pattern


def hloc_list_h5_names(path):
    names = []
    with h5py.File(str(path), "r", libver="latest") as fd:
        def visit_fn(_, obj):
            if isinstance(obj, h5py.Dataset):
                names.append(obj.parent.name.strip("/"))
        fd.visititems(visit_fn)
    return list(set(names))


def hloc_get_keypoints(path, name):
    with h5py.File(str(path), "r", libver="latest") as hfile:
        return hfile[name]["keypoints"].__array__()


def hloc_names_to_pair(name0, name1, separator="/"):
    return separator.join((name0.replace("/", "-"), name1.replace("/", "-")))


def hloc_find_pair(hfile, name0, name1):
    for separator in ("/", "_"):
        if hloc_names_to_pair(name0, name1, separator) in hfile:
            return hloc_names_to_pair(name0, name1, separator), False
        if hloc_names_to_pair(name1, name0, separator) in hfile:
            return hloc_names_to_pair(name1, name0, separator), True
    raise ValueError(f"Could not find pair {(name0, name1)}")


def hloc_get_matches(path, name0, name1):
    with h5py.File(str(path), "r", libver="latest") as hfile:
        pair, reverse = hloc_find_pair(hfile, name0, name1)
        matches = hfile[pair]["matches0"].__array__()
        scores = hfile[pair]["matching_scores0"].__array__()
    idx = np.where(matches != -1)[0]
    matches = np.stack([idx, matches[idx]], -1)
    if reverse:
        matches = np.flip(matches, -1)
    return matches, scores[idx]


def hloc_pair_data(path, name0, name1):
    """What hloc's FeaturePairsDataset gives its matchers: every dataset of both groups as a float tensor."""
    data = {}
    with h5py.File(path, "r") as fd:
        for suffix, name in (("0", name0), ("1", name1)):
            grp = fd[name]
            for k, v in grp.items():
                data[k + suffix] = torch.from_numpy(v.__array__()).float()
            data["image" + suffix] = torch.empty((1,) + tuple(grp["image_size"])[::-1])
    return data


def hloc_mutual_nn(data):
    """hloc's nearest_neighbor matcher (mutual check): similarities of (B, D, N) descriptors."""
    sim = torch.einsum("bdn,bdm->bnm", data["descriptors0"][None], data["descriptors1"][None])[0]
    nn01, nn10 = sim.argmax(1), sim.argmax(0)
    matches0 = torch.where(nn10[nn01] == torch.arange(len(nn01)), nn01, torch.full_like(nn01, -1))
    return matches0.numpy(), sim.numpy()


# ---------------------------------------------------------------- descnet's files through hloc's readers

def texture(h=240, w=320, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.5)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


@pytest.fixture
def described(tmp_path):
    """Three images in a folder with a sub-folder, described, paired and matched with descnet's CLI."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    base = texture(seed=1)
    cv2.imwrite(str(root / "a.png"), base)
    cv2.imwrite(str(root / "b.png"), np.roll(base, (7, -11), axis=(0, 1)))
    cv2.imwrite(str(root / "sub" / "c.png"), np.roll(base, (-5, 9), axis=(0, 1))[:200])
    feats, pairs, matches = tmp_path / "features.h5", tmp_path / "pairs.txt", tmp_path / "matches.h5"
    assert main(["describe", str(root), "--model", "opencv-rootsift", "--max-keypoints", "400", "--out", str(feats),
                 "--quiet"]) == 0
    assert main(["pairs", str(feats), "--out", str(pairs)]) == 0
    assert main(["match", "--features", str(feats), "--pairs", str(pairs), "--matcher", "mnn", "--out", str(matches),
                 "--quiet"]) == 0  # hloc's mutual NN (RootSIFT would get Lowe's ratio test by default)
    return root, feats, pairs, matches


def test_hloc_reads_descnet_feature_files(described):
    root, path, _, _ = described
    assert sorted(hloc_list_h5_names(path)) == ["a.png", "b.png", "sub/c.png"] == list_feature_names(path)
    ours = read_features(path)
    for name, feats in ours.items():
        kp = hloc_get_keypoints(path, name)
        assert kp.dtype == np.float32 and kp.shape == (len(feats), 2)
        np.testing.assert_array_equal(kp, feats.keypoints[:, :2])
        image = cv2.imread(str(root / name), cv2.IMREAD_GRAYSCALE)
        data = hloc_pair_data(path, name, name)
        assert data["descriptors0"].shape == (128, len(feats))  # hloc's (D, N)
        assert data["image0"].shape == (1, *image.shape)  # image_size is (W, H)
        assert data["scores0"].shape == (len(feats),) and data["keypoints0"].shape == (len(feats), 2)
    # the top-left pixel's centre is (0, 0) in both: the strongest keypoint sits on its blob in pixel coordinates
    feats = ours["a.png"]
    x, y = np.rint(feats.keypoints[0, :2]).astype(int)
    assert 0 <= x < 320 and 0 <= y < 240


def test_hloc_matcher_on_descnet_features_equals_descnet_matches(described):
    _, features, pairs, matches = described
    ours = read_matches(matches)
    assert set(ours) == {("a.png", "b.png"), ("a.png", "sub/c.png"), ("b.png", "sub/c.png")}
    assert sorted(hloc_list_h5_names(matches)) == ["a.png/b.png", "a.png/sub-c.png", "b.png/sub-c.png"]
    for (name0, name1), pm in ours.items():
        m, scores = hloc_get_matches(matches, name0, name1)
        np.testing.assert_array_equal(m, pm.matches)
        # hloc's own mutual-NN matcher on descnet's (D, N) descriptors finds the same matches, and descnet's
        # matching_scores0 are its similarities
        matches0, sim = hloc_mutual_nn(hloc_pair_data(features, name0, name1))
        idx = np.flatnonzero(matches0 >= 0)
        np.testing.assert_array_equal(np.stack([idx, matches0[idx]], 1), pm.matches)
        np.testing.assert_allclose(scores, sim[pm.matches[:, 0], pm.matches[:, 1]], atol=1e-5)
        # and in the other order, as hloc's find_pair does
        back, _ = hloc_get_matches(matches, name1, name0)
        np.testing.assert_array_equal(back, pm.matches[:, ::-1])
    with h5py.File(matches) as f:
        group = f[names_to_pair("a.png", "sub/c.png")]
        assert group["matches0"].dtype == np.int32 and group["matching_scores0"].dtype == np.float32
        assert group.attrs["name1"] == "sub/c.png"


def test_descnet_matches_equal_match_on_the_stored_descriptors(described):
    _, features, _, matches = described
    feats = read_features(features)
    pm = read_matches(matches)[("a.png", "b.png")]
    m = match(feats["a.png"].descriptors, feats["b.png"].descriptors, "mnn")
    np.testing.assert_array_equal(pm.matches, m.indices)
    np.testing.assert_allclose(pm.distances, m.distances, rtol=1e-6)
    assert pm.settings == {"matcher": "mnn", "ratio": None, "geometry": "fundamental", "estimator": "magsac",
                           "threshold": 1.0}
    assert pm.geometry_matrix is not None and pm.inliers.sum() > 100  # a pure translation: most matches agree with F


# ---------------------------------------------------------------- hloc's files through descnet's readers

def write_like_hloc(tmp_path):
    """A feature file and a match file written as hloc's extract_features / match_features write them."""
    rng = np.random.default_rng(0)
    feats_path, matches_path = tmp_path / "feats-sift.h5", tmp_path / "matches.h5"
    data = {}
    with h5py.File(feats_path, "a", libver="latest") as fd:
        for name, n in (("db/a.jpg", 50), ("db/b.jpg", 40)):
            kp = rng.uniform(0, 300, (n, 2)).astype(np.float32)
            desc = rng.random((128, n)).astype(np.float32)
            desc /= np.linalg.norm(desc, axis=0, keepdims=True)
            pred = {"keypoints": kp, "scales": rng.random(n).astype(np.float32), "oris": rng.random(n).astype(np.float32),
                    "scores": rng.random(n).astype(np.float32), "descriptors": desc,
                    "image_size": np.array([640, 480])}
            pred = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in pred.items()}  # as_half
            grp = fd.create_group(name)
            for k, v in pred.items():
                grp.create_dataset(k, data=v)
            grp["keypoints"].attrs["uncertainty"] = 1.0
            data[name] = pred
    matches0 = np.full(50, -1)
    matches0[[3, 7, 9]] = [5, 0, 39]
    with h5py.File(matches_path, "a", libver="latest") as fd:
        grp = fd.create_group(hloc_names_to_pair("db/a.jpg", "db/b.jpg"))
        grp.create_dataset("matches0", data=matches0.astype(np.int16))
        grp.create_dataset("matching_scores0", data=np.linspace(0, 1, 50).astype(np.float16))
    return feats_path, matches_path, data


def test_descnet_reads_hloc_files(tmp_path):
    feats_path, matches_path, data = write_like_hloc(tmp_path)
    assert list_feature_names(feats_path) == ["db/a.jpg", "db/b.jpg"]
    feats = read_features(feats_path)
    a = feats["db/a.jpg"]
    np.testing.assert_array_equal(a.keypoints[:, :2], data["db/a.jpg"]["keypoints"].astype(np.float32))
    assert np.isnan(a.keypoints[:, 2:]).all() and np.isnan(a.lafs).all()  # hloc records no OpenCV size/angle
    np.testing.assert_array_equal(a.descriptors, data["db/a.jpg"]["descriptors"].T.astype(np.float32))
    assert a.descriptors.shape == (50, 128) and a.descriptors.dtype == np.float32
    assert a.image_size == (480, 640)
    pm = read_matches(matches_path, [("db/a.jpg", "db/b.jpg")])[("db/a.jpg", "db/b.jpg")]
    np.testing.assert_array_equal(pm.matches, [[3, 5], [7, 0], [9, 39]])
    assert pm.geometry_matrix is None and np.isnan(pm.distances).all()
    back = read_matches(matches_path, [("db/b.jpg", "db/a.jpg")])[("db/b.jpg", "db/a.jpg")]
    np.testing.assert_array_equal(back.matches, [[0, 7], [5, 3], [39, 9]])
    assert list_match_pairs(matches_path) == [("db-a.jpg", "db-b.jpg")]  # hloc's names lose the "/"
    with pytest.raises(KeyError, match="no matches of the pair db/a.jpg db/c.jpg"):
        read_matches(matches_path, [("db/a.jpg", "db/c.jpg")])
    with pytest.raises(KeyError, match="no features of image 'db/c.jpg'"):
        read_features(feats_path, ["db/c.jpg"])


def test_descnet_matches_hloc_features_and_refuses_to_add_to_them(tmp_path):
    feats_path, _, data = write_like_hloc(tmp_path)
    out = tmp_path / "ours.h5"
    assert main(["match", "--features", str(feats_path), "--pairs", str(write_pair_file(tmp_path)), "--out", str(out),
                 "--quiet"]) == 0
    pm = read_matches(out)[("db/a.jpg", "db/b.jpg")]
    d0 = data["db/a.jpg"]["descriptors"].T.astype(np.float32)
    d1 = data["db/b.jpg"]["descriptors"].T.astype(np.float32)
    np.testing.assert_array_equal(pm.matches, match(d0, d1).indices)
    with pytest.raises(ValueError, match="not a descnet features file; descnet adds only to its own files"):
        with append_features(feats_path, {"model": "x"}):
            pass


def write_pair_file(tmp_path):
    (tmp_path / "pairs.txt").write_text("db/a.jpg db/b.jpg\n")
    return tmp_path / "pairs.txt"


# ---------------------------------------------------------------- the files themselves

def small_features(n, d=8, seed=0):
    rng = np.random.default_rng(seed)
    kp = np.c_[rng.uniform(0, 90, (n, 2)), rng.uniform(1, 5, n), rng.uniform(0, 360, n)].astype(np.float32)
    return Features(kp, rng.normal(size=(n, d)).astype(np.float32), rng.random(n).astype(np.float32),
                    rng.random((n, 2, 3)).astype(np.float32), (100, 90), {"image": "x.png"})


def test_version_1_feature_files_still_read(tmp_path):
    f = small_features(4)
    with h5py.File(tmp_path / "v1.h5", "w") as h:  # descnet 0.1's layout
        h.attrs["format"], h.attrs["version"] = "descnet-features", 1
        g = h.create_group("a.png")
        g.attrs["height"], g.attrs["width"], g.attrs["model"] = 100, 90, "tfeat"
        for key in ("keypoints", "descriptors", "scores", "lafs"):
            g.create_dataset(key, data=getattr(f, key))
    back = read_features(tmp_path / "v1.h5")["a.png"]
    np.testing.assert_array_equal(back.keypoints, f.keypoints)
    np.testing.assert_array_equal(back.descriptors, f.descriptors)
    assert back.image_size == (100, 90) and back.info == {"model": "tfeat"}


def test_adding_keeps_finished_groups_when_interrupted(tmp_path):
    path = tmp_path / "f.h5"
    settings = {"model": "m", "detector": "sift", "mr_size": 6.0}
    write_features(path, {"a.png": small_features(3)}, settings)
    with pytest.raises(KeyboardInterrupt):
        with append_features(path, settings) as add:
            assert "a.png" in add and "b.png" not in add
            add("b.png", small_features(2, seed=1))
            raise KeyboardInterrupt
    assert list_feature_names(path) == ["a.png", "b.png"]
    before = path.read_bytes()
    with pytest.raises(RuntimeError):  # nothing added: the file is left exactly as it was
        with append_features(path, settings):
            raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]  # no temporary files left


def test_match_file_needs_one_match_per_keypoint_of_image_0(tmp_path):
    pm = PairMatches(np.array([[0, 1], [0, 2]]), np.zeros(2, np.float32), np.zeros(2, bool), None, {},
                     num_keypoints=(3, 3))
    with pytest.raises(ValueError, match="a keypoint of a.png is matched twice"):
        write_matches(tmp_path / "m.h5", {("a.png", "b.png"): pm})
    assert not (tmp_path / "m.h5").exists()
