"""Conventions shared by the verbs: --quiet where work is long, option names and units, library choices."""
from __future__ import annotations

import argparse


def _verbs(parser, prefix=()):
    """``{("eval", "sfm"): subparser, ...}`` for every verb of the command line."""
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
    assert _options(verbs[("data", "patches")])["--magnification"] == argparse.SUPPRESS  # old name, not shown
    # matcher and estimator choices are the library's
    from descnet.features.options import ESTIMATOR_NAMES, MATCHERS

    for verb in [("match",), ("eval", "sequences")]:
        actions = {a.dest: a for a in verbs[verb]._actions}
        assert tuple(actions["matcher"].choices) == MATCHERS and tuple(actions["estimator"].choices) == ESTIMATOR_NAMES
