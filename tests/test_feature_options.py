"""KeypointOptions and MatchOptions: validated once, with errors naming the field, and their defaults."""
from __future__ import annotations

import subprocess
import sys

import pytest

from descnet.features.options import DEFAULT_RATIO, GEOMETRIES, KeypointOptions, MatchOptions


def test_keypoint_options_normalise_and_check():
    assert KeypointOptions("SIFT").detector == "sift"
    assert KeypointOptions(mr_size=3).mr_size == 3.0
    for kwargs, field in [({"detector": "surf"}, "detector"), ({"max_keypoints": 0}, "max_keypoints"),
                          ({"max_keypoints": 2.5}, "max_keypoints"), ({"mr_size": -1}, "mr_size"),
                          ({"mr_size": float("nan")}, "mr_size")]:
        with pytest.raises(ValueError, match=field):
            KeypointOptions(**kwargs)


def test_match_options_defaults_and_settings():
    assert MatchOptions().settings() == {"matcher": "mnn", "ratio": None, "geometry": "homography",
                                         "estimator": "magsac", "threshold": GEOMETRIES["homography"][1]}
    snn = MatchOptions("snn", geometry="fundamental")
    assert snn.ratio_or_default == DEFAULT_RATIO["snn"] and snn.threshold_or_default == GEOMETRIES["fundamental"][1]
    assert MatchOptions("smnn", ratio=0.9, threshold=2).settings()["ratio"] == 0.9


@pytest.mark.parametrize("kwargs, message", [
    ({"matcher": "knn"}, "matcher"), ({"geometry": "affine"}, "geometry"), ({"estimator": "gc"}, "estimator"),
    ({"ratio": 0.8}, "not mnn"), ({"matcher": "snn", "ratio": 1.5}, r"\(0, 1\]"),
    ({"matcher": "snn", "ratio": 0}, "ratio"), ({"threshold": 0}, "threshold"),
])
def test_match_options_refuse_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MatchOptions(**kwargs)


def test_options_import_neither_torch_nor_opencv():
    code = "import sys, descnet.features.options; print('torch' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
