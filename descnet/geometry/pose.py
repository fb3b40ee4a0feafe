"""Relative pose from matches and its errors against ground truth: SuperGlue's evaluation protocol.

The protocol of SuperGlue's ``match_pairs.py --eval`` (``models/utils.py``; reused by LoFTR and LightGlue),
computed here by descnet's own code:

1. **Normalised coordinates**: ``x_n = (x - c) / f`` per axis with each image's intrinsics (skew ignored).
2. **Essential matrix**: ``cv2.findEssentialMat`` on the normalised points with the identity camera,
   ``method=cv2.RANSAC``, ``prob=0.99999``, threshold ``1 px / f_mean`` where ``f_mean`` is SuperGlue's
   ``mean(fx0, fy1)`` (its code averages ``K0[0, 0]`` and ``K1[1, 1]``). Fewer than 5 matches, no matrix, or an
   OpenCV error (OpenCV 5's solver can raise on degenerate samples) is a failed pair.
3. **Pose**: ``cv2.recoverPose`` (distance threshold 1e9, the RANSAC mask) for each 3x3 candidate that
   ``findEssentialMat`` stacks; the candidate with the most cheirality inliers is kept.
4. **Errors**: rotation error = the angle of ``R_est^T R_gt`` (:func:`rotation_angle`); translation error = the angle
   between the directions ``t_est`` and ``t_gt``, folded as ``min(e, 180 - e)`` (E's sign ambiguity); the pose error
   of the pair is the larger of the two; a failed pair has an infinite error.
5. **AUC** at 5, 10, 20 degrees (:func:`pose_auc`): the area under the recall-vs-error curve from (0, 0) to the
   threshold (trapezoid rule over the sorted errors), divided by the threshold.
6. **Precision**: the share of matches whose symmetric epipolar error under the ground-truth ``E = [t]x R`` in
   normalised coordinates (:func:`epipolar_errors`, a sum of two *squared* distances) is below ``5e-4``; 0 for a
   pair without matches. **Matching score**: those correct matches over the keypoints of image 0.

:func:`estimate_relative_pose` also offers ``method="magsac"`` (``cv2.USAC_MAGSAC``, same threshold and
confidence): a modern estimator for a second, labelled column; the protocol column is ``ransac``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

import numpy as np

__all__ = ["AUC_THRESHOLDS", "PRECISION_THRESHOLD", "POSE_METHODS", "RelativePose", "PairPoseResult",
           "normalize_points", "essential_from_pose", "epipolar_errors", "estimate_relative_pose", "rotation_angle",
           "vector_angle", "pose_errors", "pose_auc", "evaluate_pair_pose"]

#: degrees at which the AUC of the pose error is reported (SuperGlue's)
AUC_THRESHOLDS = (5, 10, 20)
#: symmetric epipolar error (normalised coordinates, squared) below which a match is correct (SuperGlue's)
PRECISION_THRESHOLD = 5e-4
#: essential-matrix estimators: the protocol's RANSAC and OpenCV's MAGSAC (the second column)
POSE_METHODS = ("ransac", "magsac")


class RelativePose(NamedTuple):
    """An estimated pose: ``R`` (3, 3) and unit ``t`` (3,) from camera 0 to camera 1 (``X_1 = R X_0 + t`` up to
    the scale of ``t``), ``inliers`` (M,) bool: RANSAC inliers in front of both cameras (the mask
    ``recoverPose`` leaves, as SuperGlue returns it)."""

    R: np.ndarray
    t: np.ndarray
    inliers: np.ndarray


@dataclass(frozen=True)
class PairPoseResult:
    """The protocol's numbers of one pair: errors in degrees (inf: failed), ``matches``, ``correct`` (epipolar
    error below :data:`PRECISION_THRESHOLD`), ``precision``, ``matching_score``, RANSAC ``inliers``."""

    error_R: float
    error_t: float
    matches: int
    correct: int
    precision: float
    matching_score: float
    inliers: int

    @property
    def error(self) -> float:
        """The pair's pose error: ``max(error_R, error_t)`` (inf for a failed pair)."""
        return max(self.error_R, self.error_t)


def normalize_points(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """``(N, 2)`` pixels -> ``(N, 2)`` normalised coordinates ``((x - cx) / fx, (y - cy) / fy)``."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    K = np.asarray(K, np.float64)
    return (p - K[[0, 1], [2, 2]]) / K[[0, 1], [0, 1]]


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def essential_from_pose(T_0to1: np.ndarray) -> np.ndarray:
    """``(4, 4)`` pose -> ``E = [t]x R`` (3, 3), so that ``x1^T E x0 = 0`` for normalised homogeneous points."""
    T = np.asarray(T_0to1, np.float64)
    return _skew(T[:3, 3]) @ T[:3, :3]


def epipolar_errors(points0: np.ndarray, points1: np.ndarray, T_0to1: np.ndarray, K0: np.ndarray,
                    K1: np.ndarray) -> np.ndarray:
    """Symmetric epipolar error of ``(M, 2)`` matched pixels under the true pose -> ``(M,)``.

    In normalised coordinates, ``(x1^T E x0)^2 (1 / ((E x0)_1^2 + (E x0)_2^2) + 1 / ((E^T x1)_1^2 + (E^T x1)_2^2))``:
    the sum of the squared distances of each point to the other's epipolar line (SuperGlue's
    ``compute_epipolar_error``; compare with :data:`PRECISION_THRESHOLD`)."""
    x0 = np.c_[normalize_points(points0, K0), np.ones(len(np.atleast_2d(points0)) if np.size(points0) else 0)]
    x1 = np.c_[normalize_points(points1, K1), np.ones(len(np.atleast_2d(points1)) if np.size(points1) else 0)]
    E = essential_from_pose(T_0to1)
    Ex0, Etx1 = x0 @ E.T, x1 @ E
    residual = np.sum(x1 * Ex0, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return residual ** 2 * (1.0 / (Ex0[:, 0] ** 2 + Ex0[:, 1] ** 2) + 1.0 / (Etx1[:, 0] ** 2 + Etx1[:, 1] ** 2))


def estimate_relative_pose(points0: np.ndarray, points1: np.ndarray, K0: np.ndarray, K1: np.ndarray,
                           threshold: float = 1.0, confidence: float = 0.99999,
                           method: str = "ransac") -> RelativePose | None:
    """Relative pose from ``(M, 2)`` matched pixels (module docstring, steps 1-3) -> :class:`RelativePose`, or
    ``None`` for a failed pair.

    Args:
        threshold: the inlier threshold in pixels (divided by SuperGlue's mean focal length).
        confidence: RANSAC's probability.
        method: ``ransac`` (the protocol) or ``magsac`` (``cv2.USAC_MAGSAC``).
    """
    import cv2

    if method not in POSE_METHODS:
        raise ValueError(f"method {method!r}: choose one of {', '.join(POSE_METHODS)}")
    p0 = np.asarray(points0, np.float64).reshape(-1, 2)
    p1 = np.asarray(points1, np.float64).reshape(-1, 2)
    if len(p0) != len(p1):
        raise ValueError(f"points0 and points1 must have the same length, got {len(p0)} and {len(p1)}")
    if len(p0) < 5:
        return None
    K0, K1 = np.asarray(K0, np.float64), np.asarray(K1, np.float64)
    f_mean = np.mean([K0[0, 0], K1[1, 1]])  # SuperGlue: mean of K0[0, 0], K1[1, 1], K0[0, 0], K1[1, 1]
    n0, n1 = normalize_points(p0, K0), normalize_points(p1, K1)
    flag = cv2.RANSAC if method == "ransac" else cv2.USAC_MAGSAC
    try:
        E, mask = cv2.findEssentialMat(n0, n1, np.eye(3), method=flag, prob=confidence, threshold=threshold / f_mean)
    except cv2.error:
        return None
    if E is None or mask is None or E.shape[0] < 3 or E.shape[0] % 3 or not np.isfinite(E).all():
        return None
    best, result = 0, None
    # as SuperGlue: one mask for every candidate (recoverPose narrows it in place to the cheirality inliers)
    for candidate in np.split(E, len(E) // 3):
        try:
            n, R, t, _ = cv2.recoverPose(candidate, n0, n1, np.eye(3), 1e9, mask=mask)[:4]
        except cv2.error:
            continue
        if n > best:
            best, result = n, RelativePose(R.astype(np.float64), t.ravel().astype(np.float64), mask.ravel() > 0)
    return result


def rotation_angle(R1: np.ndarray, R2: np.ndarray) -> float:
    """Angle in degrees of the rotation between ``R1`` and ``R2``: ``arccos((trace(R1^T R2) - 1) / 2)``
    (the cosine clipped to [-1, 1])."""
    cos = (np.trace(np.asarray(R1, np.float64).T @ np.asarray(R2, np.float64)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def vector_angle(v1: np.ndarray, v2: np.ndarray) -> float:
    """Angle in degrees between two 3-vectors (nan when one is zero)."""
    v1, v2 = np.asarray(v1, np.float64).ravel(), np.asarray(v2, np.float64).ravel()
    n = np.linalg.norm(v1) * np.linalg.norm(v2)
    if n == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(np.dot(v1, v2) / n, -1.0, 1.0))))


def pose_errors(T_0to1: np.ndarray, R: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """``(rotation error, translation error)`` in degrees of an estimate against the true ``T_0to1``; the
    translation angle folded as ``min(e, 180 - e)``."""
    T = np.asarray(T_0to1, np.float64)
    error_t = vector_angle(t, T[:3, 3])
    return rotation_angle(R, T[:3, :3]), min(error_t, 180.0 - error_t)


def pose_auc(errors: Iterable[float], thresholds: Sequence[float] = AUC_THRESHOLDS) -> list[float]:
    """Area under the recall-vs-error curve up to each threshold, over the threshold (fractions in [0, 1]).

    The curve starts at (0, 0) and steps to recall ``k / n`` at the ``k``-th smallest error; between steps it is
    linear (trapezoid rule, as SuperGlue's ``pose_auc``); it is cut at the threshold, holding the recall reached
    there. Infinite errors (failed pairs) count in ``n`` and never reach a threshold.
    """
    e = np.sort(np.asarray(list(errors), np.float64))
    if len(e) == 0:
        return [0.0 for _ in thresholds]
    recall = np.r_[0.0, np.arange(1, len(e) + 1) / len(e)]
    e = np.r_[0.0, e]
    aucs = []
    for threshold in thresholds:
        last = int(np.searchsorted(e, threshold))
        x = np.r_[e[:last], threshold]
        y = np.r_[recall[:last], recall[last - 1]]
        aucs.append(float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0) / threshold))
    return aucs


def evaluate_pair_pose(keypoints0: np.ndarray, keypoints1: np.ndarray, matches: np.ndarray, K0: np.ndarray,
                       K1: np.ndarray, T_0to1: np.ndarray, method: str = "ransac",
                       threshold: float = 1.0) -> PairPoseResult:
    """The protocol for one pair: ``(N0, 2+)``/``(N1, 2+)`` keypoints (pixels, the images the intrinsics belong
    to), ``(M, 2)`` match indices, the intrinsics and the true ``T_0to1`` -> :class:`PairPoseResult`."""
    m = np.asarray(matches, np.int64).reshape(-1, 2)
    p0 = np.asarray(keypoints0, np.float64)[m[:, 0], :2]
    p1 = np.asarray(keypoints1, np.float64)[m[:, 1], :2]
    correct = int((epipolar_errors(p0, p1, T_0to1, K0, K1) < PRECISION_THRESHOLD).sum()) if len(m) else 0
    pose = estimate_relative_pose(p0, p1, K0, K1, threshold=threshold, method=method)
    if pose is None:
        error_R = error_t = float("inf")
        inliers = 0
    else:
        error_R, error_t = pose_errors(T_0to1, pose.R, pose.t)
        inliers = int(pose.inliers.sum())
    return PairPoseResult(error_R=error_R, error_t=error_t, matches=len(m), correct=correct,
                          precision=correct / len(m) if len(m) else 0.0,
                          matching_score=correct / len(keypoints0) if len(keypoints0) else 0.0, inliers=inliers)
