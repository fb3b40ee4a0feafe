"""The protocol scripts in tools/: tools/train_brown.sh trains on one Brown subset and evaluates FPR95 on the
other two, on a tiny dataset written in the original Brown layout."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_training import point_patches

REPO = Path(__file__).resolve().parents[1]


def _write_brown(root: Path) -> None:
    from descnet.data.phototour import write_phototour
    from descnet.sampling import make_validation_pairs

    for seed, name in enumerate(("liberty", "notredame", "yosemite")):
        stacks = point_patches(40, 3, seed, size=64)  # 40 points x 3 patches
        labels = np.tile(np.arange(40), 3)
        pairs = make_validation_pairs(labels, 120, seed)
        # the file name every FPR95 table reads (here with 120 pairs instead of 100k)
        write_phototour(root, name, stacks.reshape(-1, 64, 64), labels, pairs, pairs_name="m50_100000_100000_0.txt")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_train_brown_script_trains_and_evaluates_the_other_subsets(tmp_path):
    _write_brown(tmp_path / "brown")
    config = tmp_path / "tiny.yaml"
    config.write_text("base: " + str(REPO / "configs" / "hardnet+.yaml") + "\nmodel: {name: tfeat, options: {}}\n")
    descnet = Path(sys.executable).parent / "descnet"
    env = dict(os.environ, DESCNET=str(descnet) if descnet.exists() else "descnet")
    args = [str(REPO / "tools" / "train_brown.sh"), str(tmp_path / "brown"), str(tmp_path / "runs"), "notredame",
            str(config), "--", "--set", "batch_size=16", "--set", "pairs_per_epoch=32", "--set", "epochs=1",
            "--set", "runtime.progress=false", "--set", "runtime.threads=1", "--set", "runtime.amp=none"]
    done = subprocess.run(["bash", *args], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    run = tmp_path / "runs" / "tiny-notredame"
    assert (run / "best.pt").is_file()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epoch = [m for m in metrics if m["kind"] == "epoch"][-1]
    assert {"fpr95/liberty", "fpr95/yosemite"} <= set(epoch)  # validated on the two other subsets
    for subset in ("liberty", "yosemite"):
        report = json.loads((run / "eval" / f"brown_{subset}.json").read_text())
        (model,) = report["models"].values()
        value = next(iter(model["pairs"].values()))["fpr95"]
        assert abs(value - epoch[f"fpr95/{subset}"]) < 1e-6  # the same figure as the last validation
    bad = subprocess.run(["bash", args[0], str(tmp_path / "brown"), str(tmp_path / "runs"), "paris"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 2 and "TRAIN_SUBSET must be liberty, notredame or yosemite" in bad.stderr
