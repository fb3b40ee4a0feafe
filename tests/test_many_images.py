"""Many images: describing folders and image lists into one file that resumes, pair lists, matching a list."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch

import descnet.features.description
from descnet.cli.main import main
from descnet.features.files import list_feature_names, list_match_pairs, read_features, read_matches
from descnet.features.options import KeypointOptions, MatchOptions
from descnet.features.pairs import exhaustive_pairs, make_pairs, read_pairs, sequential_pairs, write_pairs
from descnet.features.pipeline import describe_to_file, image_sources, match_to_file


def texture(h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def image_folder(root, count):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(root / f"im{i:02d}.png"), texture(seed=i))
    return root


# ---------------------------------------------------------------- naming images

def test_image_sources_name_folder_images_by_relative_path(tmp_path):
    root = image_folder(tmp_path / "photos", 2)
    (root / "day2").mkdir()
    cv2.imwrite(str(root / "day2" / "x.JPG"), texture())
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"")
    assert list(image_sources([root])) == ["day2/x.JPG", "im00.png", "im01.png"]
    (tmp_path / "list.txt").write_text("# chosen\nim01.png\n\nday2/x.JPG\n")
    assert image_sources([root], tmp_path / "list.txt") == {"im01.png": root / "im01.png",
                                                            "day2/x.JPG": root / "day2" / "x.JPG"}
    assert list(image_sources([root / "im00.png", root / "day2" / "x.JPG", tmp_path / "im00.png"])) == \
        ["im00.png", "x.JPG", "im00.png~2"]
    (tmp_path / "bad.txt").write_text("im05.png\n")
    with pytest.raises(FileNotFoundError, match=r"bad.txt: im05.png is not a file under"):
        image_sources([root], tmp_path / "bad.txt")
    with pytest.raises(ValueError, match="give one image folder, or image files"):
        image_sources([root, root / "im00.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        image_sources([tmp_path / "empty"])


# ---------------------------------------------------------------- describe: resumable, growing

def test_describe_folder_adds_new_images_and_skips_those_in_the_file(tmp_path, capsys):
    root = image_folder(tmp_path / "photos", 3)
    (tmp_path / "first.txt").write_text("im00.png\nim02.png\n")
    out = tmp_path / "f.h5"
    assert main(["describe", str(root), "--image-list", str(tmp_path / "first.txt"), "--model", "opencv-rootsift",
                 "--out", str(out)]) == 0
    text = capsys.readouterr()
    assert list_feature_names(out) == ["im00.png", "im02.png"]
    assert re.search(r"im00.png: \d+ keypoints, 128-D descriptors -> /im00.png", text.out)
    assert re.search(r"described 2 image\(s\), \d+ keypoints, in [\d.]+ s \([\d.]+ images/s\)", text.out)
    assert "2/2" in text.err and "image/s" in text.err  # the progress bar
    first = read_features(out)
    assert main(["describe", str(root), "--model", "opencv-rootsift", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr()
    assert "skipped 2 image(s) already in" in text.out and "described 1 image(s)" in text.out and text.err == ""
    again = read_features(out)
    assert list(again) == ["im00.png", "im01.png", "im02.png"]
    np.testing.assert_array_equal(again["im00.png"].descriptors, first["im00.png"].descriptors)  # kept as it was
    assert again["im01.png"].info["image"] == str(root / "im01.png") and again["im01.png"].info["weights"] == \
        "hand-crafted"
    assert main(["describe", str(root), "--model", "opencv-rootsift", "--out", str(out), "--quiet"]) == 0
    assert "already held every image; nothing to do" in capsys.readouterr().out
    other = image_folder(tmp_path / "other", 1)  # another folder with an image of the same name: skipped, flagged
    assert main(["describe", str(other), "--model", "opencv-rootsift", "--out", str(out), "--quiet"]) == 0
    assert "warning: 1 skipped image name(s) were described from another file: im00.png" in capsys.readouterr().out
    # another model cannot be mixed into the file; --overwrite starts a new one
    assert main(["describe", str(root), "--model", "opencv-sift", "--out", str(out), "--quiet"]) == 2
    assert "holds features made with other settings: model 'opencv-rootsift'" in capsys.readouterr().err
    assert main(["describe", str(root / "im01.png"), "--model", "opencv-sift", "--out", str(out), "--overwrite",
                 "--quiet"]) == 0
    assert list_feature_names(out) == ["im01.png"]


def test_interrupted_describe_keeps_finished_images_and_resumes(tmp_path, monkeypatch):
    per_call = 3  # images described before the interruption
    root = image_folder(tmp_path / "photos", per_call + 2)
    images = image_sources([root])
    out = tmp_path / "f.h5"
    real = descnet.features.description.describe_stream

    def interrupted(*args, **kwargs):
        for k, features in enumerate(real(*args, **kwargs)):
            if k == per_call:
                raise KeyboardInterrupt
            yield features

    monkeypatch.setattr(descnet.features.description, "describe_stream", interrupted)
    with pytest.raises(KeyboardInterrupt):
        describe_to_file(images, out, model="opencv-sift")
    assert list_feature_names(out) == sorted(images)[:per_call]  # the images described before were kept
    monkeypatch.setattr(descnet.features.description, "describe_stream", real)
    report = describe_to_file(images, out, model="opencv-sift")
    assert report.skipped == sorted(images)[:per_call] and report.described == sorted(images)[per_call:]
    assert list_feature_names(out) == sorted(images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5", "photos"]


def test_describe_stops_at_an_unreadable_image_keeping_the_others(tmp_path, capsys):
    per_call = 2 * max(1, torch.get_num_threads())
    root = image_folder(tmp_path / "photos", per_call)
    (root / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "f.h5"
    assert main(["describe", str(root), "--model", "opencv-sift", "--out", str(out), "--quiet"]) == 2
    assert re.search(r"zz.png: not a readable image", capsys.readouterr().err)
    assert len(list_feature_names(out)) == per_call
    cv2.imwrite(str(root / "zz.png"), texture(seed=99))
    assert main(["describe", str(root), "--model", "opencv-sift", "--out", str(out), "--quiet"]) == 0
    assert f"skipped {per_call} image(s)" in capsys.readouterr().out and "zz.png" in list_feature_names(out)


def test_describe_refuses_a_folder_as_out_and_keypoints_for_a_folder(tmp_path, capsys):
    root = image_folder(tmp_path / "photos", 2)
    assert main(["describe", str(root), "--model", "opencv-sift", "--out", str(tmp_path)]) == 2
    assert "is a folder; this command writes one file, e.g." in capsys.readouterr().err
    (tmp_path / "k.txt").write_text("1 1 2 0\n")
    assert main(["describe", str(root), "--keypoints", str(tmp_path / "k.txt"), "--model", "opencv-sift",
                 "--out", str(tmp_path / "f.h5")]) == 2
    assert "--keypoints: give image files one by one" in capsys.readouterr().err


# ---------------------------------------------------------------- pair lists

def test_pair_lists_known_answers():
    names = ["a", "b", "c", "d"]
    assert exhaustive_pairs(names) == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]
    assert sequential_pairs(names, 1) == [("a", "b"), ("b", "c"), ("c", "d")]
    assert sequential_pairs(names, 2) == [("a", "b"), ("a", "c"), ("b", "c"), ("b", "d"), ("c", "d")]
    assert sequential_pairs(names, 10) == exhaustive_pairs(names)
    assert len(exhaustive_pairs([str(i) for i in range(10)])) == 45
    with pytest.raises(ValueError, match="sequential pairs need a window"):
        make_pairs(names, "sequential")
    with pytest.raises(ValueError, match="a window applies to sequential pairs"):
        make_pairs(names, "exhaustive", 3)


def test_pair_file_round_trip_and_errors(tmp_path):
    path = write_pairs(tmp_path / "p.txt", [("a.jpg", "sub/b.jpg"), ("b.jpg", "c.jpg")])
    assert path.read_text() == "a.jpg sub/b.jpg\nb.jpg c.jpg\n"
    (tmp_path / "q.txt").write_text("# hloc pairs\na b\n\nb a\nc d\n")
    assert read_pairs(tmp_path / "q.txt") == [("a", "b"), ("c", "d")]  # a pair in both orders counts once
    (tmp_path / "bad.txt").write_text("a b\nc\n")
    with pytest.raises(ValueError, match=r"bad.txt, line 2: expected two image names"):
        read_pairs(tmp_path / "bad.txt")
    (tmp_path / "self.txt").write_text("a a\n")
    with pytest.raises(ValueError, match="pairs an image with itself: a"):
        read_pairs(tmp_path / "self.txt")
    with pytest.raises(ValueError, match="cannot hold names with white space"):
        write_pairs(tmp_path / "w.txt", [("a b.jpg", "c.jpg")])


def test_cli_pairs_from_features_file_and_folder(tmp_path, capsys):
    root = image_folder(tmp_path / "photos", 4)
    assert main(["pairs", str(root), "--mode", "sequential", "--window", "2", "--out", str(tmp_path / "s.txt")]) == 0
    assert read_pairs(tmp_path / "s.txt") == sequential_pairs([f"im{i:02d}.png" for i in range(4)], 2)
    assert "wrote 5 sequential pairs of 4 images" in capsys.readouterr().out
    out = tmp_path / "f.h5"
    assert main(["describe", str(root / "im01.png"), str(root / "im03.png"), "--model", "opencv-sift", "--out",
                 str(out), "--quiet"]) == 0
    assert main(["pairs", str(out), "--out", str(tmp_path / "e.txt")]) == 0
    assert (tmp_path / "e.txt").read_text() == "im01.png im03.png\n"
    assert main(["pairs", str(root), "--mode", "sequential", "--out", str(tmp_path / "x.txt")]) == 2
    assert "sequential pairs need a window" in capsys.readouterr().err


# ---------------------------------------------------------------- matching a pair list

def test_match_pair_list_adds_pairs_and_skips_those_in_the_file(tmp_path, capsys):
    root = image_folder(tmp_path / "photos", 3)
    feats = tmp_path / "f.h5"
    describe_to_file(image_sources([root]), feats, model="opencv-rootsift", options=KeypointOptions(max_keypoints=200))
    write_pairs(tmp_path / "p1.txt", [("im00.png", "im01.png")])
    out = tmp_path / "m.h5"
    assert main(["match", "--features", str(feats), "--pairs", str(tmp_path / "p1.txt"), "--out", str(out),
                 "--matcher", "smnn", "--ratio", "0.9"]) == 0
    assert re.search(r"matched 1 pair\(s\) in [\d.]+ s \([\d.]+ pairs/s\)", capsys.readouterr().out)
    assert list_match_pairs(out) == [("im00.png", "im01.png")]
    write_pairs(tmp_path / "all.txt", exhaustive_pairs(["im00.png", "im01.png", "im02.png"]))
    report = match_to_file(feats, read_pairs(tmp_path / "all.txt"), out,
                           options=MatchOptions("smnn", 0.9, "fundamental"))
    assert report.skipped == [("im00.png", "im01.png")] and len(report.matched) == 2
    assert sorted(read_matches(out)) == [("im00.png", "im01.png"), ("im00.png", "im02.png"), ("im01.png", "im02.png")]
    with pytest.raises(ValueError, match=r"holds matches made with other settings: ratio 0.9 \(this run: 0.8\)"):
        match_to_file(feats, read_pairs(tmp_path / "all.txt"), out, options=MatchOptions("smnn", 0.8, "fundamental"))
    write_pairs(tmp_path / "unknown.txt", [("im00.png", "nope.png")])
    assert main(["match", "--features", str(feats), "--pairs", str(tmp_path / "unknown.txt"), "--out",
                 str(tmp_path / "u.h5")]) == 2
    assert "nope.png is not an image of the features file" in capsys.readouterr().err
    assert not (tmp_path / "u.h5").exists()


def test_match_cli_needs_one_mode(tmp_path, capsys):
    assert main(["match", "--features", "f.h5", "--out", str(tmp_path / "m.h5")]) == 2
    assert "give both --features FEATURES.h5 and --pairs PAIRS.txt" in capsys.readouterr().err
    assert main(["match", "a.png", "--out", str(tmp_path / "o")]) == 2
    assert "give two images to match (got 1)" in capsys.readouterr().err
    assert main(["match", "a.png", "b.png", "--features", "f.h5", "--pairs", "p.txt", "--out", str(tmp_path / "m")]) == 2
    assert "give image files or --features/--pairs, not both" in capsys.readouterr().err
