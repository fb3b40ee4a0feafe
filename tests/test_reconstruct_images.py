"""``descnet reconstruct IMAGES --out DIR``: photos -> describe, match, reconstruct in one call."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("pycolmap", reason="pycolmap is not installed (pip install 'descnet[sfm]')")

from descnet.cli.main import main  # noqa: E402
from descnet.features.files import read_feature_info, read_matches  # noqa: E402
from tests.test_sfm import render_box  # noqa: E402


@pytest.mark.slow
def test_reconstruct_from_photos_runs_the_whole_pipeline(tmp_path, capsys):
    render_box(tmp_path / "images")
    out = tmp_path / "sfm"
    assert main(["reconstruct", str(tmp_path / "images"), "--model", "opencv-rootsift", "--max-keypoints", "1500",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| 5 / 5 |" in printed and "seconds: describe" in printed
    assert {p.name for p in out.iterdir()} == {"features.h5", "matches.h5", "colmap"}
    info = read_feature_info(out / "features.h5", [f"view{i}.png" for i in range(5)])
    assert {i["detector"] for i in info.values()} == {"colmap-sift"}  # COLMAP's SIFT detection by default
    assert len(read_matches(out / "matches.h5")) == 10  # all pairs of the 5 views
    summary = json.loads((out / "colmap" / "summary.json").read_text())
    assert summary["registered"] == 5 and summary["points3D"] > 100
    # a rerun finds everything described and matched, and reconstructs again
    assert main(["reconstruct", str(tmp_path / "images"), "--model", "opencv-rootsift", "--max-keypoints", "1500",
                 "--out", str(out), "--quiet"]) == 0


def test_features_without_matches_is_refused(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    assert main(["reconstruct", str(tmp_path / "images"), "--features", str(tmp_path / "f.h5"),
                 "--out", str(tmp_path / "sfm")]) == 2
    assert "give --features and --matches together" in capsys.readouterr().err
