"""Conventions shared by the verbs: what ``--out`` means, ``--quiet``, and the model, keypoint and matching
arguments (built into :class:`~descnet.features.options.KeypointOptions` and
:class:`~descnet.features.options.MatchOptions`, which check them; their choices are the library's constants).

**--out**: a verb that writes one file takes ``--out FILE`` (``describe``, ``pairs``, ``match --pairs``,
``export``); a verb that writes several takes ``--out DIR`` and writes fixed names inside it (``match IMAGE1
IMAGE2``, ``reconstruct``, ``eval ...``, ``train``, ``data ...``). A file that is an existing folder, or a
folder that is an existing file, is an error naming the path; files descnet did not write are never removed.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from descnet.features.options import (DETECTOR_NAMES, ESTIMATOR_NAMES, GEOMETRIES, MATCHERS, KeypointOptions,
                                      MatchOptions)
from descnet.io import check_output_parents
from descnet.models.pretrained import DEFAULT_MODEL

__all__ = ["output_file", "output_dir", "add_quiet", "add_benchmark_arguments", "add_model_arguments",
           "add_keypoint_arguments", "keypoint_options", "add_match_arguments", "match_options",
           "model_match_options", "describe_matching"]


def output_file(path: str, example: str, option: str = "--out") -> Path:
    """``--out`` naming one file: refuse an existing folder (suggesting ``folder/example``)."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{option} {out}: is a folder; this command writes one file, e.g. {out / example}")
    check_output_parents(out, option)
    return out


def output_dir(path: str, option: str = "--out") -> Path:
    """``--out`` naming a folder of results: refuse an existing file."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {out}: exists and is not a folder; this command writes several files into a "
                         "folder")
    check_output_parents(out, option)
    return out


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bars or per-item lines (the summary is still printed)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-item lines")


def add_benchmark_arguments(parser: argparse.ArgumentParser, batch_size: bool = True) -> None:
    """What every ``eval`` verb takes: ``--batch-size`` (when it describes patches), ``--device``,
    ``--overwrite`` (earlier results in ``--out`` are merged by model otherwise) and ``--quiet``."""
    if batch_size:
        parser.add_argument("--batch-size", type=int, default=None,
                            help="patches per forward pass (default: descnet.features.inference.default_batch_size)")
    parser.add_argument("--device", default="cpu", help="torch device for the models (default: cpu)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the earlier results in --out (default: add these models to them; results of "
                             "other models are kept)")
    add_quiet(parser)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model SPEC`` (one model) and ``--device``."""
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="SPEC",
                        help=f"trained model name (default: {DEFAULT_MODEL}, descnet's shipped weights; "
                             "`descnet models` lists them), NAME:WEIGHTS, checkpoint, run dir, NAME:random "
                             "(untrained), "
                             "or opencv-sift / opencv-rootsift (OpenCV's own SIFT descriptor on the same keypoints)")
    parser.add_argument("--device", default="cpu", help="torch device for the model (default: cpu)")


def add_keypoint_arguments(parser: argparse.ArgumentParser, max_keypoints: int = 2000, detector: str = "sift") -> None:
    """``--detector``, ``--max-keypoints``, ``--mr-size``: read by :func:`keypoint_options`."""
    parser.add_argument("--detector", default=detector, type=str.lower, choices=DETECTOR_NAMES,
                        help=f"keypoint detector (default: {detector}): OpenCV's sift, orb, and akaze/kaze/brisk where "
                             "OpenCV has them; colmap-sift / colmap-sift-upright: COLMAP's SIFT detection (pycolmap's "
                             "where installed, else OpenCV's SIFT with COLMAP's thresholds)")
    parser.add_argument("--max-keypoints", type=int, default=max_keypoints, metavar="N",
                        help=f"keep the N strongest detections (default: {max_keypoints}; 0 = all)")
    parser.add_argument("--mr-size", type=float, default=None, metavar="X",
                        help="region half-side per unit of keypoint size (kornia LAF scale = X * size; "
                             "default: 6 for sift and colmap-sift, 0.5 for orb)")


def keypoint_options(args: argparse.Namespace) -> KeypointOptions:
    """The :class:`KeypointOptions` of :func:`add_keypoint_arguments` (``--max-keypoints 0``: all); errors name
    the argument."""
    try:
        return KeypointOptions(args.detector, args.max_keypoints or None, args.mr_size)
    except ValueError as err:
        raise _naming_argument(err) from None


def add_match_arguments(parser: argparse.ArgumentParser, matcher: str = "mnn", ratio: float | None = None,
                        geometry: str | None = "homography", fixed_geometry: bool = False,
                        recommended: bool = False, verification: bool = True) -> None:
    """``--matcher``, ``--ratio``, ``--geometry``, ``--estimator``, ``--threshold``: read by :func:`match_options`.

    ``geometry=None``: the verb picks the default (``match``: homography for two images, fundamental for a pair
    list). ``fixed_geometry``: the verb's protocol fixes the geometry (``eval sequences``: homography, ``eval
    sfm``: fundamental), so there is no ``--geometry``. ``recommended``: ``--matcher`` and ``--ratio`` default to
    ``None`` ("not given"), so that each model's recommended matcher applies (``matcher``/``ratio`` are then the
    fallback for models without one; :func:`descnet.features.options.recommended_match_options`).
    ``verification=False``: the verb's protocol fixes the robust estimator too (``eval pose``), so there is no
    ``--estimator`` or ``--threshold``.
    """
    fallback = matcher + (f" {ratio:g}" if ratio is not None else "")
    if recommended:
        matcher_help = ("mnn: mutual nearest neighbours, snn: ratio test, smnn: both (default: the model's recommended "
                        f"matcher, from its model card; OpenCV SIFT/RootSIFT: smnn 0.8; other models: {fallback})")
        ratio_help = "ratio-test threshold for snn/smnn (default: the model's recommended one, else 0.8 snn, 0.95 smnn)"
    else:
        matcher_help = f"mnn: mutual nearest neighbours, snn: ratio test, smnn: both (default: {matcher})"
        ratio_help = ("ratio-test threshold for snn/smnn (default: "
                      + (f"{ratio})" if ratio is not None else "0.8 snn, 0.95 smnn)"))
    parser.add_argument("--matcher", choices=MATCHERS, default=None if recommended else matcher, help=matcher_help)
    parser.add_argument("--ratio", type=float, default=None if recommended else ratio, help=ratio_help)
    if not fixed_geometry:
        parser.add_argument("--geometry", choices=tuple(GEOMETRIES), default=geometry,
                            help="geometry matrix fitted to the matches (default: "
                                 + (f"{geometry})" if geometry else "homography for two images, fundamental for --pairs)"))
    if not verification:
        return
    parser.add_argument("--estimator", choices=ESTIMATOR_NAMES, default="magsac",
                        help="OpenCV robust estimator (default: magsac = cv2.USAC_MAGSAC)")
    default = f"{GEOMETRIES[geometry][1]:g}" if fixed_geometry else "3 for homography, 1 for fundamental"
    parser.add_argument("--threshold", type=float, default=None, metavar="PX",
                        help=f"inlier threshold in pixels (default: {default})")


def match_options(args: argparse.Namespace, geometry: str | None = None) -> MatchOptions:
    """The :class:`MatchOptions` of :func:`add_match_arguments` (``geometry``: used when ``--geometry`` is not
    given or not offered); errors name the argument."""
    try:
        return MatchOptions(args.matcher, args.ratio, getattr(args, "geometry", None) or geometry, args.estimator,
                            args.threshold)
    except ValueError as err:
        raise _naming_argument(err) from None


def model_match_options(args: argparse.Namespace, model: Any, geometry: str | None = None, matcher: str = "mnn",
                        ratio: float | None = None) -> tuple[MatchOptions, str]:
    """The options of :func:`add_match_arguments` (``recommended=True``) for ``model``: the given ``--matcher``/
    ``--ratio``, else the model's recommended matcher, else ``matcher``/``ratio``
    (:func:`descnet.features.options.recommended_match_options`). Returns ``(options, origin)``."""
    from descnet.features.options import recommended_match_options

    try:
        default = MatchOptions(matcher, ratio, getattr(args, "geometry", None) or geometry,
                               getattr(args, "estimator", "magsac"), getattr(args, "threshold", None))
        return recommended_match_options(model, args.matcher, args.ratio, default=default)
    except ValueError as err:
        raise _naming_argument(err) from None


def describe_matching(options: MatchOptions, origin: str) -> str:
    """``'smnn ratio 0.9 (descnet-hardnet-csa's recommended matcher (model card))'`` for printing."""
    ratio = options.ratio_or_default
    return options.matcher + (f" ratio {ratio:g}" if ratio is not None else "") + f" ({origin})"


def _naming_argument(err: ValueError) -> ValueError:
    """An option object's error (``max_keypoints must be ...``) naming the argument
    (``--max-keypoints must be ...``)."""
    field, _, rest = str(err).partition(" ")
    return ValueError(f"--{field.replace('_', '-')} {rest}")
