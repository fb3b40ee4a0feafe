"""The hpatches-release reader and the official task files (descnet.data.hpatches)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from descnet.data.hpatches import (TYPES, HPatches, find_tasks_dir, png_size, read_patch_stack,
                                   read_retrieval_task, read_split, read_splits, read_verification_pairs,
                                   write_patch_stack, write_verification_pairs)
from descnet.eval.hpatches import generate_verification_pairs
from tests.conftest import shared_file


def make_release(root: Path, sizes: dict[str, int], seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Write an hpatches-release folder (16 PNG stacks per sequence) and return what was written."""
    rng = np.random.default_rng(seed)
    written = {}
    for name, n in sizes.items():
        written[name] = {}
        for kind in TYPES:
            patches = rng.integers(0, 256, (n, 65, 65), dtype=np.uint8)
            write_patch_stack(root / name / f"{kind}.png", patches)
            written[name][kind] = patches
    return written


def make_tasks(tasks: Path, test: list[str], train: list[str] = ()) -> None:
    (tasks / "splits").mkdir(parents=True, exist_ok=True)
    splits = {"a": {"name": "a", "train": list(train), "test": list(test)},
              "full": {"name": "full", "test": list(train) + list(test)}}
    (tasks / "splits" / "splits.json").write_text(json.dumps(splits))


def test_read_write_patch_stack_round_trip(tmp_path):
    patches = np.random.default_rng(1).integers(0, 256, (7, 65, 65), dtype=np.uint8)
    path = write_patch_stack(tmp_path / "ref.png", patches)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image.shape == (7 * 65, 65) and image.dtype == np.uint8  # the published layout: a vertical stack
    np.testing.assert_array_equal(image[65 * 3:65 * 4], patches[3])
    np.testing.assert_array_equal(read_patch_stack(path), patches)
    assert png_size(path) == (65, 455)


def test_stack_height_not_multiple_of_65(tmp_path):
    cv2.imwrite(str(tmp_path / "ref.png"), np.zeros((100, 65), np.uint8))
    with pytest.raises(ValueError, match=r"ref.png.*multiple of 65.*65x100"):
        read_patch_stack(tmp_path / "ref.png")
    cv2.imwrite(str(tmp_path / "wide.png"), np.zeros((130, 64), np.uint8))
    with pytest.raises(ValueError, match="65 pixels wide"):
        read_patch_stack(tmp_path / "wide.png")


def test_dataset_loads_sequences_and_labels(tmp_path):
    root = tmp_path / "hpatches-release"
    written = make_release(root, {"i_one": 3, "v_two": 5})
    (root / "README").write_text("not a sequence")
    make_tasks(tmp_path / "tasks", ["v_two"], ["i_one"])
    data = HPatches(root)
    assert data.sequences == ("i_one", "v_two") and len(data) == 2 and "v_two" in data
    assert data.tasks_dir == tmp_path / "tasks"  # <root>/../tasks by default
    seq = data["v_two"]
    assert list(seq) == list(TYPES)
    for kind in TYPES:
        np.testing.assert_array_equal(seq[kind], written["v_two"][kind])
    assert data.num_patches("i_one") == 3 and data.check() == {"i_one": 3, "v_two": 5}
    patches, labels = data.patches_and_labels(["v_two", "i_one"], types=["ref", "e1"])
    assert patches.shape == (2 * 5 + 2 * 3, 65, 65) and labels.dtype == np.int64
    # v_two ref rows, v_two e1 rows, i_one ref rows, i_one e1 rows
    np.testing.assert_array_equal(labels[:5], np.stack([np.zeros(5), np.arange(5), np.zeros(5)], 1))
    np.testing.assert_array_equal(labels[5:10, 2], 1)
    np.testing.assert_array_equal(patches[12], written["i_one"]["ref"][2])
    np.testing.assert_array_equal(labels[12], [1, 2, 0])
    assert data.split("a").test == ("v_two",) and data.split("a").train == ("i_one",)


def test_dataset_errors_name_the_file(tmp_path):
    root = tmp_path / "rel"
    make_release(root, {"v_a": 2, "v_b": 2})
    (root / "v_b" / "h3.png").unlink()
    data = HPatches(root)
    with pytest.raises(FileNotFoundError, match=r"v_b.h3\.png.*missing image type 'h3'"):
        data.load_sequence("v_b")
    with pytest.raises(FileNotFoundError, match=r"missing HPatches sequence 'v_zzz'"):
        data["v_zzz"]
    with pytest.raises(FileNotFoundError, match="v_zzz"):
        data.check(["v_a", "v_zzz"])
    write_patch_stack(root / "v_a" / "t5.png", np.zeros((3, 65, 65), np.uint8))
    with pytest.raises(ValueError, match=r"v_a: .*same number of patches.*t5=3"):
        data.load_sequence("v_a")
    with pytest.raises(ValueError, match=r"t5=3"):
        data.num_patches("v_a")  # from the PNG headers alone
    with pytest.raises(FileNotFoundError, match="no HPatches sequence folders"):
        HPatches(tmp_path)
    with pytest.raises(FileNotFoundError, match="no HPatches task folder next to .*hpatches-tasks"):
        data.splits()


def test_splits_and_task_files(tmp_path):
    tasks = tmp_path / "tasks"
    make_tasks(tasks, ["v_x", "i_y"], ["v_z"])
    assert set(read_splits(tasks)) == {"a", "full"}
    with pytest.raises(ValueError, match=r"unknown HPatches split 'q'.*splits.json defines: a, full"):
        read_split(tasks, "q")
    (tasks / "retr_queries_split-a.csv").write_text("s,idx\nv_x,3\ni_y,0\n")
    (tasks / "retr_distractors_split-a.csv").write_text("s,idx\ni_y,1\n")
    q, d = read_retrieval_task(tasks, "a")
    assert q.sequence.tolist() == ["v_x", "i_y"] and q.idx.tolist() == [3, 0] and len(d) == 1
    assert q.source.endswith("retr_queries_split-a.csv")
    assert read_verification_pairs(tasks, "a") is None  # absent: the caller generates pairs
    pairs = generate_verification_pairs({"v_x": 4, "i_y": 5}, ["v_x", "i_y"], 50, seed=3)
    paths = write_verification_pairs(tasks, "a", pairs)
    assert paths["pos"].read_text().splitlines()[0] == "s1,t1,idx1,s2,t2,idx2"
    back = read_verification_pairs(tasks, "a")
    for kind in ("pos", "neg_intra", "neg_inter"):
        for field in ("s1", "t1", "idx1", "s2", "t2", "idx2"):
            np.testing.assert_array_equal(getattr(back[kind], field), getattr(pairs[kind], field))
    paths["neg_inter"].unlink()
    with pytest.raises(FileNotFoundError, match="incomplete verification task files.*neg_inter"):
        read_verification_pairs(tasks, "a")


def test_task_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="descnet data download hpatches-tasks"):
        read_splits(tmp_path)
    (tmp_path / "retr_queries_split-a.csv").write_text("s;idx\nv_x;3\n")
    (tmp_path / "retr_distractors_split-a.csv").write_text("s,idx\nv_x,oops\n")
    with pytest.raises(ValueError, match=r"retr_queries_split-a.csv: the header must name the columns s,idx"):
        read_retrieval_task(tmp_path, "a")
    (tmp_path / "retr_queries_split-a.csv").write_text("s,idx\nv_x,3\n")
    with pytest.raises(ValueError, match=r"distractors_split-a.csv: column 'idx' must hold integers, found 'oops'"):
        read_retrieval_task(tmp_path, "a")
    (tmp_path / "retr_distractors_split-a.csv").write_text("s,idx\nv_x,1\nv_x,3,4\n")
    with pytest.raises(ValueError, match=r"distractors_split-a.csv: line 3 has 3 fields, the header has 2"):
        read_retrieval_task(tmp_path, "a")
    with pytest.raises(FileNotFoundError, match=r"retr_queries_split-b.csv: no such task file"):
        read_retrieval_task(tmp_path, "b")
    assert find_tasks_dir(tmp_path / "nothing") is None


def test_real_patch_stack(shared_data):
    path = shared_file(shared_data, "hpatches/patches_sample/ref.png")
    patches = read_patch_stack(path)
    assert patches.shape == (1123, 65, 65) and patches.dtype == np.uint8  # SOURCES.md: 1123 patches
    assert png_size(path) == (65, 1123 * 65)
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(patches[1000], image[65000:65065])


def test_real_task_files(shared_data):
    tasks = shared_file(shared_data, "hpatches/tasks")
    splits = read_splits(tasks)
    assert set(splits) == {"a", "b", "c", "illum", "view", "full"}
    for name in "abc":
        assert len(splits[name].train) == 76 and len(splits[name].test) == 40
        assert not set(splits[name].train) & set(splits[name].test)
    assert len(splits["full"].test) == 116 and len(splits["illum"].test) == 57 and len(splits["view"].test) == 59
    assert "v_churchill" in splits["b"].test and "v_churchill" in splits["a"].train  # as SOURCES.md says
    q, d = read_retrieval_task(tasks, "a")
    assert len(q) == 10_000 and len(d) == 20_000
    assert set(q.sequence.tolist()) <= set(splits["a"].test) and (q.idx >= 0).all()
