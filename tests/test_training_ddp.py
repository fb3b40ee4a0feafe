"""DDP: two CPU processes (gloo, started by ``descnet train --nproc 2`` through torchrun) with hardest-negative
mining over the global batch take the same optimiser step as one process with the same global batch.

TFeat is used because it has no BatchNorm or dropout: with BatchNorm, each DDP process normalises its own
half of the batch (SyncBatchNorm is CUDA-only), which is a different computation from one process.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from descnet.training import Trainer, load_config
from tests.test_training import tiny_overrides, write_patchset


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    patchset = write_patchset(tmp_path / "hpatches-release")
    sets = tiny_overrides(patchset, **{"model.name": "tfeat", "epochs": 1, "pairs_per_epoch": 32, "batch_size": 32,
                                       "loss.global_mining": True})
    config = tmp_path / "tiny.yaml"
    config.write_text("model: {name: tfeat}\n")
    command = [sys.executable, "-m", "descnet.cli.main", "train", str(config), "--nproc", "2",
               "--out", str(tmp_path / "ddp")]
    command += [x for item in sets for x in ("--set", item)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    env = json.loads((tmp_path / "ddp" / "environment.json").read_text())
    assert env["sessions"][0]["world_size"] == 2

    single = Trainer(load_config(config, sets), tmp_path / "single")
    initial = {k: v.clone() for k, v in single.model.state_dict().items()}
    single.fit()
    ddp = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert ddp["step"] == single.step == 1
    moved = 0.0
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["state_dict"][key], value, rtol=1e-5, atol=1e-6)
        moved = max(moved, (value - initial[key]).abs().max().item())
    assert moved > 1e-3  # the step really changed the weights
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["kind"] == ref[0]["kind"] == "step"
    assert abs(rows[0]["loss"] - ref[0]["loss"]) < 1e-6  # the loss over the whole global batch
