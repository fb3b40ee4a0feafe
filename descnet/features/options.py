"""The feature pipeline's choices and option objects, importable without OpenCV or torch.

The command line takes its ``choices`` from here (``descnet --help`` must not import torch or cv2); the
modules that implement them (:mod:`descnet.features.keypoints`, :mod:`descnet.features.matching`,
:mod:`descnet.features.pairs`) import the same names, so a choice is added in one place.

:class:`KeypointOptions` (detector, how many keypoints, region size) and :class:`MatchOptions` (matcher,
ratio test, geometry, robust estimator, inlier threshold) are validated when they are made, once, and are
shared by the library functions and the command line.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["DETECTOR_NAMES", "DEFAULT_MR_SIZE", "COLMAP_SIFT_DETECTORS", "COLMAP_KEYPOINTS", "COLMAP_MATCHING", "MATCHERS",
           "DEFAULT_RATIO", "ESTIMATOR_NAMES", "GEOMETRIES", "PAIR_MODES", "LOWE_MATCHING", "KeypointOptions",
           "MatchOptions", "recommended_matcher", "recommended_match_options"]

#: OpenCV detectors descnet knows -> their default LAF scale per unit of ``KeyPoint.size`` (``mr_size``);
#: :data:`descnet.features.keypoints.DETECTORS` holds those the OpenCV build has.
#: SIFT: 6 x size (kornia's DoGHardNet frames): of 2, 3, 4, 6, 8, TFeat's correct matches at 3 px with 6 were
#: within 2% of the best on graf 1-2, 1-3, boat 1-3 and v_churchill 1-3. ORB: its size is its 31 px patch at
#: the detection level, 0.5 x size is that patch (0.3 .. 1 tried). AKAZE, KAZE, BRISK: not measured.
#: ``colmap-sift`` (and ``colmap-sift-upright``): COLMAP's SIFT detection (:mod:`descnet.features.keypoints`), its
#: keypoints in OpenCV's size convention, so SIFT's 6 applies.
DEFAULT_MR_SIZE = {"sift": 6.0, "orb": 0.5, "akaze": 3.0, "kaze": 3.0, "brisk": 1.0, "colmap-sift": 6.0,
                   "colmap-sift-upright": 6.0}
DETECTOR_NAMES = tuple(DEFAULT_MR_SIZE)
#: the detectors that follow COLMAP's SIFT extraction (pycolmap's where installed, else OpenCV with its settings)
COLMAP_SIFT_DETECTORS = ("colmap-sift", "colmap-sift-upright")
#: descriptor matchers (:func:`descnet.features.matching.match`) and their default ratio-test thresholds
MATCHERS = ("mnn", "snn", "smnn")
DEFAULT_RATIO = {"snn": 0.8, "smnn": 0.95}
#: Lowe's ratio test as COLMAP applies it (ratio 0.8 with cross-check): what OpenCV's SIFT and RootSIFT are
#: matched with when the user gives no matcher
LOWE_MATCHING = {"matcher": "smnn", "ratio": 0.8}
#: OpenCV robust estimators by name (:data:`descnet.features.matching.ESTIMATORS` maps them to OpenCV's flags)
ESTIMATOR_NAMES = ("magsac", "usac", "accurate", "prosac", "ransac", "lmeds")
#: geometry -> (minimum number of matches, default inlier threshold in pixels)
GEOMETRIES = {"homography": (4, 3.0), "fundamental": (8, 1.0)}
#: how pair lists are made (:func:`descnet.features.pairs.make_pairs`)
PAIR_MODES = ("exhaustive", "sequential")


def _positive(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class KeypointOptions:
    """Where patches come from: an OpenCV detector by name and the region each keypoint covers.

    Attributes:
        detector: one of :data:`DETECTOR_NAMES` (case-insensitive; whether this OpenCV build has it is
            checked when detecting, :data:`descnet.features.keypoints.DETECTORS`). ``colmap-sift``: COLMAP's
            SIFT detection (:func:`descnet.features.keypoints.detect_colmap_sift`), ``colmap-sift-upright``
            the same without orientations.
        max_keypoints: keep the strongest detections (``None``: all); ignored for keypoints given by the caller.
        mr_size: LAF half-side per unit of OpenCV's ``KeyPoint.size``; ``None``: the detector's default
            (:data:`DEFAULT_MR_SIZE`: 6 for SIFT; :mod:`descnet.features.keypoints` explains the convention).
    """

    detector: str = "sift"
    max_keypoints: int | None = 2000
    mr_size: float | None = None

    def __post_init__(self) -> None:
        detector = str(self.detector).lower()
        if detector not in DETECTOR_NAMES:
            raise ValueError(f"detector {self.detector!r}: unknown; choose one of: {', '.join(DETECTOR_NAMES)}")
        object.__setattr__(self, "detector", detector)
        if self.max_keypoints is not None and (isinstance(self.max_keypoints, bool)
                                               or not isinstance(self.max_keypoints, int) or self.max_keypoints < 1):
            raise ValueError(f"max_keypoints must be a whole number >= 1 (or None for all), got {self.max_keypoints!r}")
        object.__setattr__(self, "mr_size", _positive(self.mr_size, "mr_size"))

    @property
    def mr_size_or_default(self) -> float:
        """The LAF scale per unit of keypoint size in use (:data:`DEFAULT_MR_SIZE` for the detector)."""
        return DEFAULT_MR_SIZE[self.detector] if self.mr_size is None else self.mr_size


@dataclass(frozen=True)
class MatchOptions:
    """How two sets of descriptors are matched and the matches checked geometrically.

    Attributes:
        matcher: one of :data:`MATCHERS` (``mnn``, ``snn``, ``smnn``; :mod:`descnet.features.matching`).
        ratio: the ratio-test threshold in (0, 1] of ``snn``/``smnn``; ``None``: :data:`DEFAULT_RATIO`.
            Refused for ``mnn``, which has no ratio test.
        geometry: one of :data:`GEOMETRIES` (``homography`` for planar scenes and sequences, ``fundamental``
            for 3D scenes).
        estimator: one of :data:`ESTIMATOR_NAMES` (OpenCV's robust estimators; MAGSAC by default).
        threshold: inlier threshold in pixels; ``None``: the geometry's default (3 px for a homography,
            1 px for F).
    """

    matcher: str = "mnn"
    ratio: float | None = None
    geometry: str = "homography"
    estimator: str = "magsac"
    threshold: float | None = None

    def __post_init__(self) -> None:
        for field, choices in (("matcher", MATCHERS), ("geometry", tuple(GEOMETRIES)), ("estimator", ESTIMATOR_NAMES)):
            if getattr(self, field) not in choices:
                raise ValueError(f"{field} {getattr(self, field)!r}: unknown; choose one of: {', '.join(choices)}")
        if self.ratio is not None:
            if self.matcher == "mnn":
                raise ValueError("ratio applies to the snn and smnn matchers, not mnn")
            ratio = _positive(self.ratio, "ratio")
            if ratio > 1:
                raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
            object.__setattr__(self, "ratio", ratio)
        object.__setattr__(self, "threshold", _positive(self.threshold, "threshold"))

    @property
    def ratio_or_default(self) -> float | None:
        """The ratio test's threshold in use (``None`` for ``mnn``)."""
        return DEFAULT_RATIO.get(self.matcher) if self.ratio is None else self.ratio

    @property
    def threshold_or_default(self) -> float:
        """The inlier threshold in use, in pixels."""
        return GEOMETRIES[self.geometry][1] if self.threshold is None else self.threshold

    def settings(self) -> dict[str, Any]:
        """The values in use, as matches files and summaries record them (``matcher ratio geometry estimator
        threshold``, :data:`descnet.features.files.MATCH_SETTINGS`)."""
        return {"matcher": self.matcher, "ratio": self.ratio_or_default, "geometry": self.geometry,
                "estimator": self.estimator, "threshold": self.threshold_or_default}


#: COLMAP's own SIFT pipeline's choices, the defaults of ``descnet reconstruct`` from images and ``eval sfm``: its SIFT
#: detection (``colmap-sift``, up to 8192 locations per image)
COLMAP_KEYPOINTS = KeypointOptions("colmap-sift", max_keypoints=8192)
#: ... and its matching: mutual nearest neighbours passing the ratio test at 0.8, a fundamental matrix
COLMAP_MATCHING = MatchOptions(matcher="smnn", ratio=0.8, geometry="fundamental")
_HAND_CRAFTED_SIFT = ("opencv-sift", "opencv-rootsift", "sift", "rootsift")


def recommended_matcher(model: Any) -> dict[str, Any] | None:
    """The matcher a model recommends, ``{"matcher", "ratio", "source"}``, or ``None`` when it has none.

    ``model``: a SPEC or a resolved module. Trained weights carry their recommendation (chosen on their own
    training data by :func:`descnet.eval.matcher_choice.choose_matcher`, recorded in the model card and the
    weights' ``info["matching"]``): a module has it as ``descnet_matching`` (:mod:`descnet.models.spec`), a
    pretrained name in its registry entry (:class:`descnet.models.pretrained.PretrainedWeights`), a checkpoint
    file or run directory in its ``info``. OpenCV's SIFT and RootSIFT (and the patch-based ``sift``,
    ``rootsift``) recommend Lowe's ratio test (:data:`LOWE_MATCHING`).
    """
    found = getattr(model, "descnet_matching", None)
    name = getattr(model, "descnet_spec", None)
    source = f"{name}'s recommended matcher" if name else "the model's recommended matcher"
    if found is None and isinstance(model, (str, os.PathLike)):
        from ..models.pretrained import pretrained_entry

        text = str(model)
        entry = pretrained_entry(text)
        source = f"{text}'s recommended matcher (model card)"
        if entry is not None:
            found = entry.matching
        elif text in _HAND_CRAFTED_SIFT:
            found, source = LOWE_MATCHING, "Lowe's ratio test (OpenCV SIFT/RootSIFT)"
        elif os.path.exists(text):
            found = _checkpoint_matching(text)
    elif found is None and name in _HAND_CRAFTED_SIFT:
        found, source = LOWE_MATCHING, "Lowe's ratio test (OpenCV SIFT/RootSIFT)"
    if not found:
        return None
    return {"matcher": found["matcher"], "ratio": found.get("ratio"), "source": source}


def _checkpoint_matching(path: str) -> dict[str, Any] | None:
    """``info["matching"]`` of a descnet weights file or run directory (``None`` when it has none)."""
    from ..models.weights import checkpoint_matching, read_weights_file
    from ..runinfo import run_checkpoint

    target = run_checkpoint(path) if os.path.isdir(path) else path
    if target is None:
        return None
    try:
        obj = read_weights_file(target)
    except Exception:  # not a weights file: no recommendation (resolving the model reports what is wrong)
        return None
    matching = checkpoint_matching(obj)
    return matching if matching is not None and matching.get("matcher") in MATCHERS else None


def recommended_match_options(model: Any, matcher: str | None = None, ratio: float | None = None, *,
                              default: MatchOptions = MatchOptions()) -> tuple[MatchOptions, str]:
    """The matching options a command uses with ``model``, and where its matcher came from.

    The one place that decides (``match``, ``eval sfm``, ``eval pose`` and the library functions behind them):

    * ``matcher`` and/or ``ratio`` given (not ``None``): they win. A ratio without a matcher goes with the
      model's (or ``default``'s) matcher when that has a ratio test, else with ``smnn``; a matcher without a
      ratio gets :data:`DEFAULT_RATIO`.
    * neither given: the model's recommendation (:func:`recommended_matcher`), else ``default``'s matcher and ratio.

    ``default`` also gives the geometry, estimator and threshold. Returns ``(options, origin)``, ``origin``
    a phrase for tables and JSON: ``"given"``, the recommendation's source, or ``"default"``.
    """
    recommended = recommended_matcher(model)
    rest = {"geometry": default.geometry, "estimator": default.estimator, "threshold": default.threshold}
    if matcher is not None or ratio is not None:
        if matcher is None:
            base = (recommended or {}).get("matcher") or default.matcher
            matcher = base if base != "mnn" else "smnn"
        return MatchOptions(matcher, ratio, **rest), "given"
    if recommended is not None:
        return MatchOptions(recommended["matcher"], recommended["ratio"], **rest), recommended["source"]
    return default, "default"
