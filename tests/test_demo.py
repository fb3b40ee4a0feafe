"""`descnet demo` end to end at a tiny scale: every step runs, the report has every section, a rerun reuses."""
from __future__ import annotations

from pathlib import Path

import pytest

from descnet.cli.demo_driver import DemoOptions, run_demo


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reuses_finished_steps(tmp_path):
    lines: list[str] = []
    opts = DemoOptions(out=tmp_path / "demo", train_sequences=3, test_sequences=2, image_size="320x240",
                       points_per_sequence=120, train_steps=3, batch_size=16, verification_pairs=2000,
                       max_keypoints=150, real_keypoints=150, quiet=True, log=lines.append)
    report = run_demo(opts)
    text = report.read_text()
    assert "synthetic" in text
    for section in ("HPatches-style tasks", "FPR95", "Image matching on the held-out sequences", "One held-out pair",
                    "Training curves"):
        assert section in text, section
    assert '"seconds"' in text  # the match timings reach the report
    if opts.real_data is not None:  # the shipped default on the real held-out pairs
        assert "shipped model on real held-out pairs" in text and "descnet-hardnet-csa" in text
    out = tmp_path / "demo"
    for path in ("eval/hpatches/hpatches_full.png", "match/matches.png", "training_curves.png",
                 "runs/hardnet/best.pt", "runs/hardnet-csa/last.pt"):
        assert (out / path).is_file(), path
    assert any(line.startswith("$ descnet train") for line in lines)

    lines.clear()
    run_demo(opts)  # everything is reused: no command runs again
    assert not any(line.startswith("$ descnet") for line in lines)
    assert sum("reusing" in line for line in lines) >= 8
