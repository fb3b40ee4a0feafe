"""The names of the feature pipeline's choices, importable without OpenCV or torch.

The command line takes its ``choices`` from here (``descnet --help`` must not import torch or cv2); the
modules that implement them (:mod:`descnet.features.description`, :mod:`descnet.features.matching`, :mod:`descnet.features.pairs`)
import the same names, so a choice is added in one place.
"""
from __future__ import annotations

__all__ = ["DETECTOR_NAMES", "OPENCV_DESCRIPTORS", "MATCHERS", "DEFAULT_RATIO", "ESTIMATOR_NAMES", "GEOMETRIES",
           "PAIR_MODES"]

#: OpenCV detectors descnet knows; :data:`descnet.features.keypoints.DETECTORS` holds those the OpenCV build has
DETECTOR_NAMES = ("sift", "orb", "akaze", "kaze", "brisk")
#: ``model`` names that select OpenCV's SIFT descriptor instead of a network: name -> RootSIFT?
OPENCV_DESCRIPTORS = {"opencv-sift": False, "opencv-rootsift": True}
#: descriptor matchers (:func:`descnet.features.matching.match`) and their default ratio-test thresholds
MATCHERS = ("mnn", "snn", "smnn")
DEFAULT_RATIO = {"snn": 0.8, "smnn": 0.95}
#: OpenCV robust estimators by name (:data:`descnet.features.matching.ESTIMATORS` maps them to OpenCV's flags)
ESTIMATOR_NAMES = ("magsac", "usac", "accurate", "prosac", "ransac", "lmeds")
#: geometry -> (minimum number of matches, default inlier threshold in pixels)
GEOMETRIES = {"homography": (4, 3.0), "fundamental": (8, 1.0)}
#: how pair lists are made (:func:`descnet.features.pairs.make_pairs`)
PAIR_MODES = ("exhaustive", "sequential")
