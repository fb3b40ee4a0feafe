"""The console script: start-up cost, --help, `descnet models`."""
from __future__ import annotations

import json
import subprocess
import sys

from descnet.cli.main import main


def test_import_descnet_is_light():
    code = ("import sys, descnet; heavy = [m for m in ('torch', 'cv2', 'kornia', 'matplotlib', 'h5py') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_does_not_import_torch():
    code = ("import sys; from descnet.cli.main import build_parser; build_parser(); "
            "print([m for m in ('torch', 'cv2', 'kornia') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_models_command_lists_the_registry(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {"hardnet", "hardnet-csa", "hardnet-sa", "tfeat", "pixels"} <= names
    csa = next(r for r in rows if r["name"] == "hardnet-csa")
    assert csa["options"]["num_bases"] == 32 and csa["dim"] == 128
    assert main(["models"]) == 0
    assert "hardnet-csa" in capsys.readouterr().out


def _verbs(parser, prefix=()):
    """``{("eval", "sfm"): subparser, ...}`` for every verb of the command line."""
    import argparse

    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _verbs(sub, prefix + (name,))
                out.update(nested or {prefix + (name,): sub})
    return out


def _options(sub) -> dict[str, str]:
    """option string -> help text of a verb's parser."""
    return {opt: action.help or "" for action in sub._actions for opt in action.option_strings}


def test_options_are_consistent_across_verbs():
    from descnet.cli.main import build_parser

    verbs = _verbs(build_parser())
    long_work = [("describe",), ("match",), ("reconstruct",), ("train",), ("demo",), ("data", "download"),
                 ("data", "synth"), ("data", "patches"), ("eval", "brown"), ("eval", "hpatches"),
                 ("eval", "sequences"), ("eval", "sfm")]
    for verb in long_work:
        assert "--quiet" in _options(verbs[verb]), verb
    # keypoint files are --keypoints in describe and match
    assert "--keypoints" in _options(verbs[("describe",)]) and "--keypoints" in _options(verbs[("match",)])
    # one unit for the region size: --mr-size (half-side per keypoint size) wherever regions are cut
    for verb in [("describe",), ("match",), ("eval", "sequences"), ("eval", "sfm"), ("data", "patches")]:
        assert "per unit of keypoint size" in _options(verbs[verb])["--mr-size"], verb
    import argparse

    assert _options(verbs[("data", "patches")])["--magnification"] == argparse.SUPPRESS  # old name, not shown
    # matcher and estimator choices are the library's
    from descnet.choices import ESTIMATOR_NAMES, MATCHERS

    for verb in [("match",), ("eval", "sequences")]:
        actions = {a.dest: a for a in verbs[verb]._actions}
        assert tuple(actions["matcher"].choices) == MATCHERS and tuple(actions["estimator"].choices) == ESTIMATOR_NAMES
