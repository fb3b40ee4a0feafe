"""descnet.runinfo: the run-directory names and their two readers."""
from __future__ import annotations

import json

from descnet.runinfo import (BEST_CHECKPOINT, LAST_CHECKPOINT, RUN_CONFIG, RUN_ENVIRONMENT, RUN_METRICS,
                             read_metrics, run_checkpoint)


def test_run_directory_names_are_the_documented_ones():
    # docs/file-layouts.md, the README and the tools/*.sh scripts spell these names
    assert (RUN_CONFIG, RUN_ENVIRONMENT, RUN_METRICS, LAST_CHECKPOINT, BEST_CHECKPOINT) == (
        "config.yaml", "environment.json", "metrics.jsonl", "last.pt", "best.pt")


def test_run_checkpoint_prefers_best_then_last(tmp_path):
    assert run_checkpoint(tmp_path) is None
    (tmp_path / "last.pt").write_bytes(b"x")
    assert run_checkpoint(tmp_path) == tmp_path / "last.pt"
    (tmp_path / "best.pt").mkdir()  # a folder is not a checkpoint
    assert run_checkpoint(tmp_path) == tmp_path / "last.pt"
    (tmp_path / "best.pt").rmdir()
    (tmp_path / "best.pt").write_bytes(b"x")
    assert run_checkpoint(tmp_path) == tmp_path / "best.pt"


def test_read_metrics_skips_blank_lines(tmp_path):
    assert read_metrics(tmp_path) == []
    rows = [{"kind": "step", "step": 1, "loss": 0.5}, {"kind": "epoch", "epoch": 1, "fpr95": 0.25}]
    (tmp_path / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    assert read_metrics(tmp_path) == rows
