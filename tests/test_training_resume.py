"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends with the same weights, optimiser state,
best checkpoint and metrics as an uninterrupted run (CPU, HardNet with BatchNorm and dropout)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from descnet.cli.main import main
from descnet.training import Trainer, load_config
from tests.test_training import tiny_overrides, write_patchset

# killed in the subprocess right after optimiser step 7 of 8; last.pt then holds step 6 (epoch 2, batch 2)
KILLER = textwrap.dedent("""
    import os, signal, sys
    from descnet.training import Trainer, load_config

    config = load_config(None, sys.argv[2:])
    def kill(trainer, event):
        if event == "step" and trainer.step == 7:
            os.kill(os.getpid(), signal.SIGKILL)
    Trainer(config, sys.argv[1], callbacks=[kill]).fit()
""")


def _rows(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("pairs_per_s", "data_wait", "time_s")} for r in rows]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path, capsys):
    patchset = write_patchset(tmp_path / "hpatches-release")
    sets = tiny_overrides(patchset, **{"model.name": "hardnet", "runtime.checkpoint_every": 3})

    killed = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "killed"), *sets], capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    partial = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)
    assert (partial["epoch"], partial["batch"], partial["step"]) == (1, 2, 6)
    assert max(r["step"] for r in _rows(tmp_path / "killed")) == 7  # the killed run logged past its checkpoint

    # resume through the command line (the run's own config; runtime.* may change), then the reference run
    assert main(["train", "--resume", str(tmp_path / "killed"), "--set", "runtime.progress=false"]) == 0
    Trainer(load_config(None, sets), tmp_path / "full").fit()
    capsys.readouterr()

    for name in ("last.pt", "best.pt"):
        resumed = torch.load(tmp_path / "killed" / name, weights_only=True)
        full = torch.load(tmp_path / "full" / name, weights_only=True)
        assert (resumed["step"], resumed["epoch"], resumed["best"]) == (full["step"], full["epoch"], full["best"])
        for key, value in full["state_dict"].items():
            assert torch.equal(resumed["state_dict"][key], value), (name, key)
        for i, state in full["optimizer"]["state"].items():
            assert torch.equal(resumed["optimizer"]["state"][i]["momentum_buffer"], state["momentum_buffer"])
        assert resumed["scheduler"] == full["scheduler"]
    assert full["step"] == 8
    assert _rows(tmp_path / "killed") == _rows(tmp_path / "full")  # the killed run's extra rows were dropped
    sessions = json.loads((tmp_path / "killed" / "environment.json").read_text())["sessions"]
    assert [s["resumed_at_step"] for s in sessions] == [0, 6]
