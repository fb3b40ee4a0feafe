"""The three HPatches tasks: hand-worked fixtures, a brute-force port of the official code, file layouts,
the SIFT baselines and the ``descnet eval hpatches`` command."""
from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from descnet.cli.main import main
from descnet.data.hpatches import LEVELS, TYPES, PatchRefs, VerificationPairs, read_patch_stack, write_patch_stack
from descnet.eval.descriptors import (HPatchesDescriptors, read_descriptor_csvs, read_descriptor_h5,
                                      write_descriptor_csvs, write_descriptor_h5)
from descnet.eval.hpatches import (_ap_from_ranks, evaluate_hpatches, evaluate_matching, evaluate_retrieval,
                                   evaluate_verification, generate_verification_pairs, matching_map,
                                   nearest_neighbours)
from descnet.eval.metrics import average_precision
from tests.conftest import shared_file


# ------------------------------------------------------------------- brute-force port of the official code
def _official_ap(scores, labels, numpos=None):
    """hpatches-benchmark utils/metrics.py ``pr``: tpfp with a stable (merge) sort of -scores."""
    p = int(np.sum(labels))
    if numpos is not None:
        scores = np.hstack((scores, np.repeat(-np.inf, numpos - p)))
        labels = np.hstack((labels, np.repeat(1, numpos - p)))
        p = numpos
    perm = np.argsort(-scores, kind="mergesort")
    stop = np.max(np.where(scores[perm] > -np.inf))
    lab = labels[perm[:stop + 1]]
    tp = np.hstack((0, np.cumsum(lab == 1)))
    fp = np.hstack((0, np.cumsum(lab == 0)))
    precision = np.maximum(tp, 1e-10) / np.maximum(tp + fp, 1e-10)
    return float(np.trapezoid(precision, tp / max(p, 1e-10)))


def _official_auc(scores, labels):
    perm = np.argsort(-scores, kind="mergesort")
    lab = labels[perm]
    tp = np.hstack((0, np.cumsum(lab == 1)))
    fp = np.hstack((0, np.cumsum(lab == 0)))
    return float(np.trapezoid(tp / max(labels.sum(), 1e-10), fp / max(len(labels) - labels.sum(), 1e-10)))


def _cdist(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def official_matching(descr, seqs):
    aps = {lv: [] for lv in LEVELS}
    for seq in seqs:
        ref = descr[seq]["ref"]
        gt = np.arange(len(ref))
        for lv in LEVELS:
            for i in range(1, 6):
                dist = _cdist(ref, descr[seq][f"{lv}{i}"])
                idx = np.argmin(dist, axis=1)
                aps[lv].append(_official_ap(-dist[gt, idx], (idx == gt).astype(int), numpos=len(gt)))
    return {lv: float(np.mean(v)) for lv, v in aps.items()}


def official_retrieval(descr, queries, distractors, pools):
    dq = np.array([descr[s]["ref"][i] for s, i in queries])
    dd = np.array([descr[s]["ref"][i] for s, i in distractors])
    dseq = np.array([s for s, _ in distractors])
    dist = _cdist(dq, dd)
    out = {lv: {k: [] for k in pools} for lv in LEVELS}
    for qi, (seq, idx) in enumerate(queries):
        for lv in LEVELS:
            intra = np.array([_cdist(dq[qi:qi + 1], descr[seq][f"{lv}{k}"][idx:idx + 1])[0, 0] for k in range(1, 6)])
            row = np.hstack((intra, dist[qi][dseq != seq]))
            gt = np.hstack((np.ones(5), np.zeros(len(row) - 5)))
            for k in pools:
                out[lv][k].append(_official_ap(-row[:k], gt[:k]))
    return {lv: {k: float(np.mean(v)) for k, v in out[lv].items()} for lv in LEVELS}


def official_verification(descr, pairs):
    id2t = {0: "ref", **{k: "{}" + str(k) for k in range(1, 6)}}

    def dists(p):
        d = {lv: [] for lv in LEVELS}
        for s1, t1, i1, s2, t2, i2 in zip(p.s1, p.t1, p.idx1, p.s2, p.t2, p.idx2):
            for lv in LEVELS:
                a = descr[s1][id2t[t1].format(lv)][i1]
                b = descr[s2][id2t[t2].format(lv)][i2]
                d[lv].append(np.linalg.norm(a - b))  # float32 vectors, as the official loader gives
        return {lv: np.asarray(v, np.float64) for lv, v in d.items()}

    dp, di, de = dists(pairs["pos"]), dists(pairs["neg_intra"]), dists(pairs["neg_inter"])
    out = {}
    for lv in LEVELS:
        labels = np.hstack((np.zeros(len(dp[lv])), np.ones(len(dp[lv]))))
        n_imb = len(dp[lv]) + int(len(dp[lv]) * 0.2)
        out[lv] = {}
        for kind, neg in (("intra", di[lv]), ("inter", de[lv])):
            stack = np.hstack((neg, dp[lv]))
            out[lv][kind] = (_official_auc(-stack, labels), _official_ap(-stack[:n_imb], labels[:n_imb]))
    return out


def random_descriptors(seed, sizes, dim=6, levels=4):
    """Integer-valued descriptors: many exact ties and duplicates, so tie-breaking is exercised."""
    rng = np.random.default_rng(seed)
    out = {}
    for seq, n in sizes.items():
        base = rng.integers(0, levels, (n, dim))
        out[seq] = {t: (base + (rng.integers(0, 3, (n, dim)) if t != "ref" else 0)).astype(np.float32) for t in TYPES}
        out[seq]["e2"][1] = out[seq]["e2"][2]  # a duplicated target descriptor
    return out


# ------------------------------------------------------------------------------- the hand-made fixture
P_DIST, Q_DIST, R_DIST = [1, 3, 5, 7, 9], [2, 4, 6, 8, 10], [0.5, 10, 10, 10, 10]


def hand_descriptors():
    """Two sequences of 10 patches, 2-D descriptors; every level equal (h_k = t_k = e_k).

    i_a: ref_i = (0, 1000 i); e1 rows 0..4 = (P_i, 1000 i), rows 5..9 = (Q_{i-5}, 1000 (i - 5)); e2..e5 = ref.
    v_b: ref_i = (0, 1000 i + 500); e1 rows 0..4 = (R_i, 1000 i), rows 5..9 = ref rows 5..9; e2..e5 = ref.
    """
    i = np.arange(10)
    a_ref = np.stack([np.zeros(10), 1000 * i], 1)
    a_e1 = np.stack([np.r_[P_DIST, Q_DIST], 1000 * np.r_[i[:5], i[:5]]], 1)
    b_ref = np.stack([np.zeros(10), 1000 * i + 500], 1)
    b_e1 = np.concatenate([np.stack([R_DIST, 1000 * i[:5]], 1), b_ref[5:]])
    out = {}
    for seq, ref, e1 in (("i_a", a_ref, a_e1), ("v_b", b_ref, b_e1)):
        out[seq] = {"ref": ref.astype(np.float32)}
        for lv in LEVELS:
            out[seq][f"{lv}1"] = e1.astype(np.float32)
            for k in range(2, 6):
                out[seq][f"{lv}{k}"] = ref.astype(np.float32)
    return out


def hand_pairs():
    i = np.arange(5)
    a = np.array(["i_a"] * 5)
    zeros, ones = np.zeros(5, np.int64), np.ones(5, np.int64)
    return {"pos": VerificationPairs(a, zeros, i, a, ones, i),
            "neg_intra": VerificationPairs(a, zeros, i, a, ones, i + 5),
            "neg_inter": VerificationPairs(a, zeros, i, np.array(["v_b"] * 5), ones, i)}


HAND_QUERIES = [("i_a", 0), ("v_b", 0)]
HAND_DISTRACTORS = [("i_a", 0), ("i_a", 1), ("v_b", 3), ("i_a", 5)]
# matching: i_a e1 -> rows 0..4 correct at distances 1,3,5,7,9, rows 5..9 wrong and far: AP = 5 x 0.1 = 0.5;
# every other (sequence, image) matches all rows: AP 1. Per level: (0.5 + 9) / 10
HAND_MATCHING = 0.95
# retrieval: query i_a/0 has its positives at 0,0,0,0,1 and one distractor (v_b/3) at 3500: AP 1.
# query v_b/0: positives at 0,0,0,0 and sqrt(0.25 + 500^2); distractors i_a/0, i_a/1 at exactly 500 come
# first, i_a/5 at 4500 last: ranks 1,2,3,4,7 -> AP = (4 + (5/7 + 4/6) / 2) / 5 = 197/210
HAND_RETRIEVAL = float((1 + Fraction(197, 210)) / 2)
# verification: positives 1,3,5,7,9; intra negatives 2,4,...,10: AUC = (5+4+3+2+1)/25; the imbalanced
# stack holds the 5 negatives and the first positive (distance 1), ranked first: AP 1.
# inter negatives 0.5,10,10,10,10: AUC = 20/25; imbalanced: the negative at 0.5, then the positive at 1:
# AP = (1/2 + 1e-10) / 2
HAND_VERIFICATION = {"intra": (0.6, 1.0), "inter": (0.8, (0.5 + 1e-10) / 2)}


def test_hand_made_matching():
    res = evaluate_matching(hand_descriptors())
    assert res["per_sequence"]["i_a"]["e"]["ap"] == pytest.approx([0.5, 1, 1, 1, 1], abs=1e-15)
    assert res["per_sequence"]["i_a"]["e"]["success_rate"] == pytest.approx([0.5, 1, 1, 1, 1])
    for lv in LEVELS:
        assert res["mAP"][lv] == pytest.approx(HAND_MATCHING, abs=1e-15)
    assert res["by_sequence_type"] == {"illum": {lv: pytest.approx(0.9) for lv in LEVELS},
                                       "view": {lv: pytest.approx(1.0) for lv in LEVELS}}
    assert matching_map(hand_descriptors(), ["v_b"]) == 1.0


def refs(items, source="test"):
    return PatchRefs(np.array([s for s, _ in items]), np.array([i for _, i in items]), source)


def test_hand_made_retrieval():
    res = evaluate_retrieval(hand_descriptors(), refs(HAND_QUERIES), refs(HAND_DISTRACTORS), pool_sizes=(6, 100))
    for lv in LEVELS:
        assert res["mAP"][lv]["100"] == pytest.approx(HAND_RETRIEVAL, abs=1e-12)
        # pool 6 = 5 positives + the first distractor: v_b/0 keeps i_a/0 (500) before its last positive
        assert res["mAP"][lv]["6"] == pytest.approx(float((1 + (4 + (Fraction(5, 6) + Fraction(4, 5)) / 2) / 5) / 2),
                                                    abs=1e-12)


def test_hand_made_verification():
    res = evaluate_verification(hand_descriptors(), hand_pairs())
    for lv in LEVELS:
        for kind, (auc, ap) in HAND_VERIFICATION.items():
            assert res[lv][kind]["balanced_auc"] == pytest.approx(auc, abs=1e-15)
            assert res[lv][kind]["imbalanced_ap"] == pytest.approx(ap, abs=1e-15)
    assert res["mAP"] == pytest.approx((1 + (0.5 + 1e-10) / 2) / 2, abs=1e-15)


@pytest.mark.parametrize("seed", [0, 1])
def test_tasks_equal_the_official_code_with_ties(seed):
    sizes = {"i_x": 23, "v_y": 17, "v_z": 30}
    descr = random_descriptors(seed, sizes)
    got = evaluate_matching(descr)["mAP"]
    want = official_matching(descr, list(sizes))
    for lv in LEVELS:
        assert got[lv] == pytest.approx(want[lv], abs=1e-12)

    rng = np.random.default_rng(seed)
    names = list(sizes)
    queries = [(names[i % 3], int(rng.integers(0, 17))) for i in range(25)]
    distractors = [(names[int(rng.integers(0, 3))], int(rng.integers(0, 17))) for _ in range(60)]
    pools = (8, 20, 40, 70)
    got = evaluate_retrieval(descr, refs(queries), refs(distractors), pool_sizes=pools, chunk=7)["mAP"]
    want = official_retrieval(descr, queries, distractors, pools)
    for lv in LEVELS:
        for k in pools:
            assert got[lv][str(k)] == pytest.approx(want[lv][k], abs=1e-12)

    pairs = generate_verification_pairs(sizes, names, 400, seed=seed)
    got = evaluate_verification(descr, pairs)
    want = official_verification(descr, pairs)
    for lv in LEVELS:
        for kind in ("inter", "intra"):
            assert got[lv][kind]["balanced_auc"] == pytest.approx(want[lv][kind][0], abs=1e-12)
            assert got[lv][kind]["imbalanced_ap"] == pytest.approx(want[lv][kind][1], abs=1e-12)


def test_ap_from_ranks_equals_the_trapezoid():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(6, 40))
        labels = np.zeros(n, int)
        labels[rng.choice(n, 5, replace=False)] = 1
        ranks = np.flatnonzero(labels) + 1
        assert _ap_from_ranks(ranks, 5) == pytest.approx(average_precision(np.arange(n), labels), abs=1e-14)


def test_nearest_neighbours_exact_at_float32_near_ties():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 128)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    # two candidates per row whose float64 distances differ by ~1e-7, below float32 matmul resolution
    b = np.concatenate([a + 1e-3 * rng.normal(size=a.shape).astype(np.float32) for _ in range(2)])
    b[200:] = b[:200]
    b[200:, 0] += np.float32(3e-7)
    b[:200, 1] += np.float32(3e-7)
    dist = _cdist(a, b)
    idx, d = nearest_neighbours(a, b)
    np.testing.assert_array_equal(idx, np.argmin(dist, axis=1))
    np.testing.assert_allclose(d, dist[np.arange(200), idx], rtol=1e-15)
    b[200:] = b[:200]  # exact duplicates: the first index wins, as np.argmin
    idx, _ = nearest_neighbours(a, b)
    assert (idx < 200).all()


def test_generated_verification_pairs_follow_the_definition():
    lengths = {"v_a": 5, "i_b": 8, "v_c": 3}
    pairs = generate_verification_pairs(lengths, list(lengths), 20_000, seed=42)
    again = generate_verification_pairs(lengths, list(lengths), 20_000, seed=42)
    np.testing.assert_array_equal(pairs["neg_inter"].idx2, again["neg_inter"].idx2)
    pos, intra, inter = pairs["pos"], pairs["neg_intra"], pairs["neg_inter"]
    for p in (pos, intra, inter):
        assert ((p.t1 >= 0) & (p.t1 <= 4) & (p.t2 >= 0) & (p.t2 <= 4) & (p.t1 != p.t2)).all()
        np.testing.assert_array_equal(p.s1, pos.s1)
        np.testing.assert_array_equal(p.idx1, pos.idx1)
    assert (pos.s1 == pos.s2).all() and (pos.idx1 == pos.idx2).all()
    assert (intra.s1 == intra.s2).all() and (intra.idx1 != intra.idx2).all()
    sizes = np.array([lengths[s] for s in inter.s2])
    assert (inter.idx2 < sizes).all() and (inter.s1 != inter.s2).any() and (inter.s1 == inter.s2).any()
    share = np.mean(pos.s1 == "v_c")
    assert abs(share - 1 / 3) < 0.02  # sequences drawn uniformly
    assert abs(np.mean(pos.t1 == 0) - 0.2) < 0.02  # ref is one of 5 types


def test_descriptor_csv_and_h5_round_trip(tmp_path):
    descr = random_descriptors(0, {"v_a": 4, "i_b": 3}, dim=5)
    rng = np.random.default_rng(1)
    for seq in descr:
        for t in TYPES:
            descr[seq][t] = (descr[seq][t] + rng.normal(size=descr[seq][t].shape)).astype(np.float32)
    ds = HPatchesDescriptors.from_mapping(descr, name="x")
    write_descriptor_csvs(tmp_path / "csv" / "x", ds)
    line = (tmp_path / "csv" / "x" / "v_a" / "e3.csv").read_text().splitlines()[0]
    assert line.count(",") == 4  # the official layout: comma separated, no header
    back = read_descriptor_csvs(tmp_path / "csv" / "x")
    assert back.sequences == ("i_b", "v_a")
    for seq in descr:
        for t in TYPES:
            np.testing.assert_array_equal(back[seq][t], descr[seq][t])  # float32 bit for bit
    write_descriptor_h5(tmp_path / "x.h5", ds, {"spec": "x"})
    back, meta = read_descriptor_h5(tmp_path / "x.h5")
    assert meta == {"spec": "x"}
    np.testing.assert_array_equal(back.data, ds.data)


def test_descriptor_csv_errors(tmp_path):
    ds = HPatchesDescriptors.from_mapping(random_descriptors(0, {"v_a": 4}, dim=3))
    root = write_descriptor_csvs(tmp_path / "d", ds)
    path = root / "v_a" / "h2.csv"
    good = path.read_text()
    path.write_text(good.replace(",", ";"))
    with pytest.raises(ValueError, match=r"h2.csv: the values are separated by ';'.*comma-separated"):
        read_descriptor_csvs(root)
    path.write_text(good.replace(",", " "))
    with pytest.raises(ValueError, match=r"h2.csv: the values are separated by ' '"):
        read_descriptor_csvs(root)
    lines = good.splitlines()
    path.write_text("\n".join([lines[0] + ",1"] + [ln + ",1" for ln in lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"h2.csv: 4 values per row, but .*ref.csv has 3"):
        read_descriptor_csvs(root)
    path.write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(ValueError, match=r"h2.csv: 3 rows, but .*ref.csv has 4"):
        read_descriptor_csvs(root)
    path.write_text("\n".join(lines[:2] + ["nan,1,2"] + lines[3:]) + "\n")
    with pytest.raises(ValueError, match=r"h2.csv: line 3 holds a NaN"):
        read_descriptor_csvs(root)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"h2.csv: missing descriptors of image type h2"):
        read_descriptor_csvs(root)
    with pytest.raises(FileNotFoundError, match=r"v_q: missing descriptor folder"):
        read_descriptor_csvs(root, ["v_q"])


def test_descriptor_container_checks():
    descr = random_descriptors(0, {"v_a": 3})
    descr["v_a"]["t4"] = descr["v_a"]["t4"].copy()
    descr["v_a"]["t4"][2, 1] = np.inf
    with pytest.raises(ValueError, match="non-finite descriptor .* sequence v_a, type t4, patch 2"):
        HPatchesDescriptors.from_mapping(descr)
    descr["v_a"]["t4"] = descr["v_a"]["t4"][:2]
    with pytest.raises(ValueError, match="different numbers of descriptors"):
        HPatchesDescriptors.from_mapping(descr)
    ds = HPatchesDescriptors.from_mapping(random_descriptors(0, {"v_a": 3}))
    with pytest.raises(ValueError, match=r"q.csv refers to sequence\(s\) v_zz"):
        evaluate_retrieval(ds, refs([("v_zz", 0)], "q.csv"), refs([("v_a", 0)]))
    with pytest.raises(ValueError, match=r"d.csv: row 0: patch 7 of sequence v_a does not exist"):
        evaluate_retrieval(ds, refs([("v_a", 0)]), refs([("v_a", 7)], "d.csv"))


# -------------------------------------------------------------------------------------------- SIFT
def test_sift_mosaic_equals_one_patch_at_a_time(shared_data):
    from descnet.models.handcrafted import _sift_padding, sift_descriptors

    patches = read_patch_stack(shared_file(shared_data, "hpatches/patches_sample/ref.png"))[:300]
    desc = sift_descriptors(patches)
    assert desc.shape == (300, 128) and desc.dtype == np.float32
    sift = cv2.SIFT_create()
    size = 65 / 6
    pad = _sift_padding(65, size)
    for i in (0, 17, 255, 256, 299):  # tiles at mosaic corners and chunk borders
        image = np.pad(patches[i], pad, mode="edge")
        _, ref = sift.compute(image, [cv2.KeyPoint(pad + 32.0, pad + 32.0, size, 0.0)])
        np.testing.assert_array_equal(desc[i], ref[0])
    assert len({tuple(d) for d in desc}) == 300  # the patches are told apart


def test_sift_and_rootsift_models():
    import torch

    from descnet.features.inference import describe_patches
    from descnet.models import create_model, model_entry
    from descnet.models.handcrafted import sift_descriptors

    rng = np.random.default_rng(0)
    patches = cv2.GaussianBlur(rng.integers(0, 256, (6, 65, 65), dtype=np.uint8), (0, 0), 2)
    raw = sift_descriptors(patches).astype(np.float64)
    sift, rootsift = create_model("sift"), create_model("rootsift")
    assert sift.patch_size == rootsift.patch_size == 65 and not model_entry("rootsift").trainable
    d = describe_patches(sift, patches).numpy()
    np.testing.assert_allclose(d, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-6, atol=1e-7)
    r = describe_patches(rootsift, patches).numpy()
    root = np.sqrt(raw / raw.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(r, root, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1, rtol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, 1, 65, 65\)"):
        sift(torch.zeros(2, 1, 32, 32))


# --------------------------------------------------------------------------------------------- the CLI
def write_tasks(tasks: Path, test, queries, distractors, pairs=None):
    (tasks / "splits").mkdir(parents=True, exist_ok=True)
    (tasks / "splits" / "splits.json").write_text(json.dumps({"a": {"name": "a", "train": [], "test": test}}))
    for kind, items in (("queries", queries), ("distractors", distractors)):
        (tasks / f"retr_{kind}_split-a.csv").write_text("s,idx\n" + "".join(f"{s},{i}\n" for s, i in items))
    for kind, p in (pairs or {}).items():
        rows = zip(p.s1, p.t1, p.idx1, p.s2, p.t2, p.idx2)
        (tasks / f"verif_{kind}_split-a.csv").write_text(
            "s1,t1,idx1,s2,t2,idx2\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


def test_cli_hand_made_csv_descriptors(tmp_path, capsys):
    write_descriptor_csvs(tmp_path / "descs" / "hand", HPatchesDescriptors.from_mapping(hand_descriptors()))
    write_tasks(tmp_path / "tasks", ["i_a", "v_b"], HAND_QUERIES, HAND_DISTRACTORS, hand_pairs())
    out = tmp_path / "out"
    assert main(["eval", "hpatches", "--descriptors", str(tmp_path / "descs" / "hand"), "--tasks-dir",
                 str(tmp_path / "tasks"), "--split", "a", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert ">> HAND - verification, Imbalanced variant (ap, %), split a" in printed
    assert "Noise" in printed and "20000" in printed
    res = json.loads((out / "hpatches_a.json").read_text())
    assert res["split"]["name"] == "a" and res["task_files"]["verification"]["source"] == "official files"
    m = res["models"]["hand"]
    for lv in LEVELS:
        assert m["matching"]["mAP"][lv] == pytest.approx(HAND_MATCHING, abs=1e-15)
        for pool in ("100", "20000"):
            assert m["retrieval"]["mAP"][lv][pool] == pytest.approx(HAND_RETRIEVAL, abs=1e-12)
        for kind, (auc, ap) in HAND_VERIFICATION.items():
            assert m["verification"][lv][kind]["balanced_auc"] == pytest.approx(auc, abs=1e-15)
            assert m["verification"][lv][kind]["imbalanced_ap"] == pytest.approx(ap, abs=1e-15)
    assert m["headline"]["retrieval"] == pytest.approx(HAND_RETRIEVAL, abs=1e-12)
    md = (out / "hpatches_a.md").read_text()
    assert "| hand | 62.50 | 95.00 | 96.90 |" in md  # verification (1 + 0.25) / 2, matching, retrieval
    tex = (out / "hpatches_a.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\textbf{95.00}" in tex
    for suffix in (".png", ".pdf"):
        assert (out / f"hpatches_a{suffix}").stat().st_size > 1000
    assert not list(out.glob(".hpatches-*"))  # no staging leftovers


def make_copies_release(root: Path) -> None:
    """v_c: 4 distinct patches, e1 = ref with rows 1 and 2 swapped, every other image a copy of ref;
    i_d: 3 patches, all images copies. Any deterministic descriptor gives distance 0 to the copies."""
    rng = np.random.default_rng(0)
    for name, n in (("v_c", 4), ("i_d", 3)):
        ref = rng.integers(0, 256, (n, 65, 65), dtype=np.uint8)
        for kind in TYPES:
            stack = ref[[0, 2, 1, 3]] if (name, kind) == ("v_c", "e1") else ref
            write_patch_stack(root / name / f"{kind}.png", stack)


def test_cli_models_on_patches_cache_and_csv_round_trip(tmp_path, capsys):
    root = tmp_path / "hpatches-release"
    make_copies_release(root)
    write_tasks(tmp_path / "tasks", ["v_c", "i_d"], [("v_c", 0), ("i_d", 1)], [("v_c", 3), ("i_d", 0), ("i_d", 2)])
    out, csv = tmp_path / "out", tmp_path / "csv"
    args = ["eval", "hpatches", "--root", str(root), "--model", "pixels", "--split", "a", "--out", str(out),
            "--verification-pairs", "300", "--quiet"]
    assert main(args + ["--export-csv", str(csv)]) == 0
    first = json.loads((out / "hpatches_a.json").read_text())
    m = first["models"]["pixels"]
    # v_c e1: all NN distances 0, stable order [correct, wrong, wrong, correct], recall over 4: 17/48
    assert m["matching"]["per_sequence"]["v_c"]["e"]["ap"][0] == pytest.approx(17 / 48, abs=1e-15)
    assert m["matching"]["mAP"]["e"] == pytest.approx((17 / 48 + 9) / 10, abs=1e-15)
    assert m["matching"]["mAP"]["h"] == 1.0
    verif = first["task_files"]["verification"]
    assert verif["source"] == "generated" and verif["seed"] == 42
    assert "GENERATED" in first["notes"][0] and "GENERATED" in (out / "hpatches_a.md").read_text()
    assert (out / "tasks" / "verif_pos_split-a.csv").read_text().startswith("s1,t1,idx1,s2,t2,idx2\n")
    assert (out / "descriptors" / "pixels.h5").is_file()
    assert "GENERATED" in capsys.readouterr().out

    assert main(args) == 0  # second run: descriptors from the cache, same numbers
    assert "from the cache" in capsys.readouterr().out
    assert json.loads((out / "hpatches_a.json").read_text())["models"] == first["models"]

    # the exported CSV layout, read back, gives the same numbers (and the generated pairs, same seed)
    out2 = tmp_path / "out2"
    assert main(["eval", "hpatches", "--descriptors", str(csv / "pixels"), "--tasks-dir", str(tmp_path / "tasks"),
                 "--split", "a", "--out", str(out2), "--verification-pairs", "300", "--quiet"]) == 0
    again = json.loads((out2 / "hpatches_a.json").read_text())["models"]["pixels"]
    for task in ("verification", "matching", "retrieval"):
        assert again[task] == m[task]


def test_benchmark_hpatches_from_python_caches_and_equals_the_cli(tmp_path, capsys):
    from descnet.eval import benchmark_hpatches, describe_hpatches_cached
    from descnet.data.hpatches import HPatches

    root = tmp_path / "hpatches-release"
    make_copies_release(root)
    write_tasks(tmp_path / "tasks", ["v_c", "i_d"], [("v_c", 0), ("i_d", 1)], [("v_c", 3), ("i_d", 0), ("i_d", 2)])
    assert main(["eval", "hpatches", "--root", str(root), "--model", "sift", "--split", "a", "--out",
                 str(tmp_path / "cli"), "--verification-pairs", "300", "--quiet"]) == 0
    cli = json.loads((tmp_path / "cli" / "hpatches_a.json").read_text())
    lines = []
    run = benchmark_hpatches(tmp_path / "lib", root=root, models=["sift"], split="a", verification_pairs=300,
                             log=lines.append)
    assert any(line.startswith("sift: describing 2 sequences") for line in lines)
    assert run.path == tmp_path / "lib" / "hpatches_a.json" and run.kept == []
    assert tmp_path / "lib" / "hpatches_a.md" in run.written and (tmp_path / "lib" / "tasks").is_dir()
    assert json.loads(run.path.read_text())["models"] == run.payload["models"]
    for task in ("verification", "matching", "retrieval"):
        assert run.payload["models"]["sift"][task] == cli["models"]["sift"][task]
    lines.clear()
    again = benchmark_hpatches(tmp_path / "lib", root=root, models=["sift"], split="a", verification_pairs=300,
                               log=lines.append)
    assert f"sift: descriptors from the cache {tmp_path / 'lib' / 'descriptors' / 'sift.h5'}" in lines
    assert again.payload["models"] == run.payload["models"]
    # the cache alone: a cached sequence is read back as stored; untrained models are never cached
    dataset = HPatches(root, tmp_path / "tasks")
    cached = describe_hpatches_cached("sift", dataset, ["i_d"], tmp_path / "lib" / "descriptors", label="sift")
    stored = read_descriptor_h5(tmp_path / "lib" / "descriptors" / "sift.h5", name="sift")[0]
    assert list(cached.sequences) == ["i_d"] and np.array_equal(cached["i_d"]["ref"], stored["i_d"]["ref"])
    describe_hpatches_cached("tfeat:random", dataset, ["i_d"], tmp_path / "c2", label="tfeat")
    assert not (tmp_path / "c2" / "tfeat.h5").exists()
    # the cache is keyed by content (issue 24): a patch file edited in place, same size, time restored
    png = root / "i_d" / "ref.png"
    st, stack = png.stat(), cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert cv2.imwrite(str(png), np.ascontiguousarray(stack[::-1]))
    os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns))
    lines.clear()
    fresh = describe_hpatches_cached("sift", dataset, ["v_c", "i_d"], tmp_path / "lib" / "descriptors", label="sift",
                                     log=lines.append)
    assert lines == ["sift: describing 1 sequences (" + f"{dataset.check(['i_d'])['i_d'] * 16:,} patches)"]
    assert not np.array_equal(fresh["i_d"]["ref"], stored["i_d"]["ref"])
    assert np.array_equal(fresh["v_c"]["ref"], stored["v_c"]["ref"])
    with pytest.raises(ValueError, match="tasks: unknown task"):
        benchmark_hpatches(tmp_path / "lib", root=root, models=["sift"], tasks=["sorting"])


def test_cli_bad_input_leaves_no_results(tmp_path, capsys):
    descs = tmp_path / "descs" / "hand"
    write_descriptor_csvs(descs, HPatchesDescriptors.from_mapping(hand_descriptors()))
    write_tasks(tmp_path / "tasks", ["i_a", "v_b"], HAND_QUERIES, HAND_DISTRACTORS, hand_pairs())
    out = tmp_path / "out"
    out.mkdir()
    (out / "hpatches_a.json").write_text("previous results")
    base = ["eval", "hpatches", "--descriptors", str(descs), "--tasks-dir", str(tmp_path / "tasks"),
            "--out", str(out), "--quiet"]

    assert main(base + ["--split", "zz"]) == 2
    err = capsys.readouterr().err
    assert "unknown HPatches split 'zz'" in err and "splits.json defines: a" in err

    path = descs / "v_b" / "t3.csv"
    good = path.read_text()
    path.write_text(good.replace("500", "nan", 1))
    assert main(base + ["--split", "a"]) == 2
    assert "t3.csv: line 1 holds a NaN or infinite value" in capsys.readouterr().err
    path.write_text(good.replace(",", "\t"))
    assert main(base + ["--split", "a"]) == 2
    assert "t3.csv: the values are separated by '\\t'" in capsys.readouterr().err
    path.write_text(good)

    assert main(base + ["--split", "a", "--tasks", "matching,sorting"]) == 2
    assert "unknown task(s) sorting" in capsys.readouterr().err

    # a task file naming a patch the descriptors do not have
    (tmp_path / "tasks" / "retr_queries_split-a.csv").write_text("s,idx\ni_a,10\n")
    assert main(base + ["--split", "a"]) == 2
    assert "retr_queries_split-a.csv: row 0: patch 10 of sequence i_a does not exist" in capsys.readouterr().err

    root = tmp_path / "rel"
    make_copies_release(root)
    (root / "v_c" / "h4.png").unlink()
    assert main(["eval", "hpatches", "--root", str(root), "--model", "pixels", "--tasks-dir", str(tmp_path / "tasks"),
                 "--split", "a", "--out", str(out), "--quiet"]) == 2
    assert "missing HPatches sequence folder(s) i_a, v_b" in capsys.readouterr().err

    assert (out / "hpatches_a.json").read_text() == "previous results"
    assert sorted(p.name for p in out.iterdir()) == ["hpatches_a.json"]


def test_evaluate_hpatches_driver_checks_the_split():
    from descnet.data.hpatches import Split

    ds = hand_descriptors()
    with pytest.raises(ValueError, match="no descriptors for 1 test sequence"):
        evaluate_hpatches(ds, Split("a", (), ("i_a", "v_q")), ["matching"])
    res = evaluate_hpatches(ds, Split("a", (), ("i_a",)), ["matching"])
    assert res["headline"] == {"matching": pytest.approx(0.9)}


def test_retrieval_on_the_real_task_files_equals_the_official_code(shared_data):
    from descnet.data.hpatches import read_retrieval_task

    tasks = shared_file(shared_data, "hpatches/tasks")
    queries, distractors = read_retrieval_task(tasks, "a")
    sizes: dict[str, int] = {}
    for refs_ in (queries, distractors):
        for s, i in zip(refs_.sequence.tolist(), refs_.idx.tolist()):
            sizes[s] = max(sizes.get(s, 0), i + 1)
    descr = random_descriptors(5, sizes, dim=3, levels=6)  # coarse values: many ties with distractors
    q = PatchRefs(queries.sequence[:40], queries.idx[:40], queries.source)
    got = evaluate_retrieval(descr, q, distractors)["mAP"]
    want = official_retrieval(descr, list(zip(q.sequence.tolist(), q.idx.tolist())),
                              list(zip(distractors.sequence.tolist(), distractors.idx.tolist())),
                              (100, 500, 1000, 5000, 10000, 15000, 20000))
    for lv in LEVELS:
        for k, value in want[lv].items():
            assert got[lv][str(k)] == pytest.approx(value, abs=1e-12)


def test_cli_reruns_add_models_and_keep_earlier_ones_and_warn_on_constant_descriptors(tmp_path, capsys):
    hand = hand_descriptors()
    write_descriptor_csvs(tmp_path / "descs" / "hand", HPatchesDescriptors.from_mapping(hand))
    flat = {s: {t: np.ones_like(np.asarray(a)) for t, a in types.items()} for s, types in hand.items()}
    write_descriptor_csvs(tmp_path / "descs" / "flat", HPatchesDescriptors.from_mapping(flat))
    write_tasks(tmp_path / "tasks", ["i_a", "v_b"], HAND_QUERIES, HAND_DISTRACTORS, hand_pairs())
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    base = ["eval", "hpatches", "--tasks-dir", str(tmp_path / "tasks"), "--split", "a", "--out", str(out), "--quiet"]
    assert main(base + ["--descriptors", str(tmp_path / "descs" / "hand")]) == 0
    first = json.loads((out / "hpatches_a.json").read_text())["models"]["hand"]
    assert first["warnings"] == []
    assert main(base + ["--descriptors", str(tmp_path / "descs" / "flat")]) == 0
    assert "kept the earlier results of hand" in capsys.readouterr().out
    res = json.loads((out / "hpatches_a.json").read_text())
    assert list(res["models"]) == ["hand", "flat"] and res["models"]["hand"] == first
    assert res["models"]["flat"]["headline"]["retrieval"] == 1.0  # the official numbers are kept ...
    assert "all descriptors are identical" in res["models"]["flat"]["warnings"][0]  # ... with a warning
    md, tex = (out / "hpatches_a.md").read_text(), (out / "hpatches_a.tex").read_text()
    assert "| hand |" in md and "| flat |" in md and "WARNING: flat: all descriptors are identical" in md
    assert "WARNING: flat: all descriptors are identical" in tex and "hand &" in tex
    names = sorted(p.name for p in out.iterdir())
    assert names == [".descnet-manifest.json", "hpatches_a.json", "hpatches_a.md", "hpatches_a.pdf",
                     "hpatches_a.png", "hpatches_a.tex", "notes.txt"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(base + ["--descriptors", str(tmp_path / "descs" / "hand"), "--tasks", "matching"]) == 2
    captured = capsys.readouterr()
    assert "hpatches_a.json: holds results of another setting (tasks differ)" in captured.err
    assert "evaluating" not in captured.out  # refused before any work
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(base + ["--descriptors", str(tmp_path / "descs" / "hand"), "--tasks", "matching",
                        "--overwrite"]) == 0
    assert list(json.loads((out / "hpatches_a.json").read_text())["models"]) == ["hand"]
    assert (out / "notes.txt").read_text() == "mine"
