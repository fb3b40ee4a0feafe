"""Reconstructed cameras against ground truth: a robust similarity on camera centres, then camera errors.

>>> errors = camera_errors(cameras_from_reconstruction(model), read_strecha_scene("fountain-P11"))
>>> errors.registered, errors.rotation_median, errors.centre_median, errors.accuracy

**Alignment** (:func:`robust_similarity`): a reconstruction is known up to a similarity (scale, rotation,
translation), so its camera centres are mapped onto the ground truth's by the similarity ``X_gt = s R X + t`` of
Umeyama (1991, least squares, :func:`umeyama`), fitted robustly: every triple of cameras (all of them up to
:data:`MAX_SAMPLES`, else that many seeded random triples) proposes a similarity; the one with the most centres
within ``threshold`` of their ground truth (ties: the smaller sum of squared residuals of those inliers) is refitted
on its inliers until the inlier set stops changing (local optimisation, at most 10 rounds). The default threshold
is :data:`INLIER_SHARE` (5%) of the ground truth's *extent*: the root mean square distance of the ground-truth
centres to their centroid. Fewer than 3 common cameras: no alignment, and no centre errors.

**Camera errors** (openMVG's evaluation on Strecha's scenes): for every ground-truth image the reconstruction
registered, the rotation error (degrees; the angle between the aligned world -> camera rotation ``R_est R_s^T`` and
the true one) and the centre error (ground-truth units: metres for Strecha) after the alignment; their median and
mean; and the share of *all* ground-truth images registered with rotation error <= ``d`` degrees and centre error <=
``c`` x extent, for each ``(d, c)`` in :data:`CAMERA_THRESHOLDS` (an unregistered image counts as a miss).

**mAA of relative poses** (the Image Matching Challenge's): for every pair of ground-truth images, the rotation
and translation-direction errors of the relative pose of the reconstruction (no alignment needed; translation angle
not folded, since a reconstruction has no sign ambiguity); the pair is accurate at ``d`` degrees when both errors
are ``<= d``; mAA = mean over ``d`` = 1..10 of the share of accurate pairs (a pair with an unregistered image is a
miss).
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, NamedTuple

import numpy as np

from .cameras import Camera, relative_pose
from .pose import rotation_angle, vector_angle

__all__ = ["Similarity", "CameraErrors", "CAMERA_THRESHOLDS", "MAA_THRESHOLDS", "INLIER_SHARE", "MAX_SAMPLES",
           "umeyama", "robust_similarity", "camera_errors", "relative_pose_maa", "format_camera_table"]

#: (rotation degrees, centre error as a share of the ground truth's extent) of the camera accuracy figures
CAMERA_THRESHOLDS = ((1.0, 0.01), (2.0, 0.02), (5.0, 0.05))
#: degrees of the mAA of relative poses (IMC's 1..10)
MAA_THRESHOLDS = tuple(float(d) for d in range(1, 11))
#: default inlier threshold of the alignment, as a share of the ground truth's extent
INLIER_SHARE = 0.05
#: minimal samples (camera triples) tried by the alignment; fewer cameras: every triple
MAX_SAMPLES = 2000


class Similarity(NamedTuple):
    """``X' = scale R X + t``: ``scale`` (float), ``R`` (3, 3), ``t`` (3,)."""

    scale: float
    R: np.ndarray
    t: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """``(N, 3)`` -> ``(N, 3)``."""
        return self.scale * np.asarray(points, np.float64) @ self.R.T + self.t


def umeyama(source: np.ndarray, target: np.ndarray) -> Similarity:
    """The least-squares similarity mapping ``(N, 3)`` ``source`` onto ``target`` (Umeyama 1991; ``N >= 3``, not
    all on a line)."""
    src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mu_s, mu_t = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_t
    u, d, vt = np.linalg.svd(b.T @ a / len(a))
    e = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    R = u @ e @ vt
    var = (a ** 2).sum() / len(a)
    scale = float(np.trace(np.diag(d) @ e) / var) if var > 0 else 1.0
    return Similarity(scale, R, mu_t - scale * R @ mu_s)


def _extent(points: np.ndarray) -> float:
    return float(np.sqrt(((points - points.mean(0)) ** 2).sum(1).mean()))


def robust_similarity(source: np.ndarray, target: np.ndarray, threshold: float | None = None,
                      seed: int = 0) -> tuple[Similarity, np.ndarray]:
    """The robust similarity of the module docstring: ``(N, 3)`` source and target centres ->
    ``(Similarity, (N,) bool inliers)``. ``threshold`` in target units (default :data:`INLIER_SHARE` x extent)."""
    src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
    n = len(src)
    if n < 3:
        raise ValueError(f"a similarity needs at least 3 camera centres, got {n}")
    threshold = INLIER_SHARE * _extent(dst) if threshold is None else float(threshold)
    triples = list(itertools.combinations(range(n), 3)) if n <= 24 else None
    if triples is None or len(triples) > MAX_SAMPLES:
        rng = np.random.default_rng(seed)
        triples = [tuple(rng.choice(n, 3, replace=False)) for _ in range(MAX_SAMPLES)]
    best: tuple[int, float] | None = None
    best_inliers = np.ones(n, bool)
    tol = 1e-9 * max(_extent(src), 1e-12)
    for triple in triples:
        idx = list(triple)
        if np.linalg.matrix_rank(src[idx] - src[idx].mean(0), tol=tol) < 2:
            continue  # collinear: no rotation about their line
        sim = umeyama(src[idx], dst[idx])
        residual = np.linalg.norm(sim.apply(src) - dst, axis=1)
        inliers = residual <= threshold
        score = (int(inliers.sum()), -float((residual[inliers] ** 2).sum()))
        if best is None or score > best:
            best, best_inliers = score, inliers
    inliers = best_inliers if best is not None and best_inliers.sum() >= 3 else np.ones(n, bool)
    sim = umeyama(src[inliers], dst[inliers])
    for _ in range(10):  # local optimisation: refit on the inliers until they stop changing
        new = np.linalg.norm(sim.apply(src) - dst, axis=1) <= threshold
        if new.sum() < 3 or np.array_equal(new, inliers):
            break
        inliers = new
        sim = umeyama(src[inliers], dst[inliers])
    return sim, inliers


@dataclass(frozen=True)
class CameraErrors:
    """Camera accuracy of a reconstruction against ground truth (module docstring). Errors in degrees and in
    ground-truth units; ``None`` where undefined (fewer than 3 registered images, nothing registered)."""

    images: int
    registered: int
    rotation_median: float | None
    rotation_mean: float | None
    centre_median: float | None
    centre_mean: float | None
    extent: float
    accuracy: dict[str, float] = field(default_factory=dict)
    maa: float | None = None
    alignment_inliers: int = 0
    scale: float | None = None
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def relative_pose_maa(estimated: Mapping[str, Camera], truth: Mapping[str, Camera],
                      thresholds: tuple[float, ...] = MAA_THRESHOLDS) -> float:
    """IMC's mean average accuracy of the relative poses of every pair of ground-truth images (module docstring)."""
    names = sorted(truth)
    pairs = list(itertools.combinations(names, 2))
    if not pairs:
        return 0.0
    errors = []
    for a, b in pairs:
        if a not in estimated or b not in estimated:
            errors.append(np.inf)
            continue
        T_gt, T_est = relative_pose(truth[a], truth[b]), relative_pose(estimated[a], estimated[b])
        error_t = vector_angle(T_est[:3, 3], T_gt[:3, 3])
        errors.append(max(rotation_angle(T_est[:3, :3], T_gt[:3, :3]), error_t if np.isfinite(error_t) else np.inf))
    errors = np.asarray(errors)
    return float(np.mean([(errors <= d).mean() for d in thresholds]))


def camera_errors(estimated: Mapping[str, Camera], truth: Mapping[str, Camera], threshold: float | None = None,
                  seed: int = 0) -> CameraErrors:
    """Align ``{name: Camera}`` of a reconstruction to the ground truth ``{name: Camera}`` and measure them
    (module docstring). Images of the reconstruction without ground truth are ignored."""
    if not truth:
        raise ValueError("the ground truth holds no cameras")
    names = [name for name in sorted(truth) if name in estimated]
    gt_centres = np.array([c.C for c in truth.values()])
    extent = _extent(gt_centres)
    none = dict(rotation_median=None, rotation_mean=None, centre_median=None, centre_mean=None)
    accuracy_keys = [f"{d:g}deg/{100 * c:g}%" for d, c in CAMERA_THRESHOLDS]
    if len(names) < 3:
        return CameraErrors(images=len(truth), registered=len(names), extent=extent, **none,
                            accuracy={k: 0.0 for k in accuracy_keys}, maa=relative_pose_maa(estimated, truth))
    src = np.array([estimated[n].C for n in names])
    dst = np.array([truth[n].C for n in names])
    sim, inliers = robust_similarity(src, dst, threshold, seed)
    centre = np.linalg.norm(sim.apply(src) - dst, axis=1)
    rotation = np.array([rotation_angle(estimated[n].R @ sim.R.T, truth[n].R) for n in names])
    accuracy = {key: float(((rotation <= d) & (centre <= c * extent)).sum() / len(truth))
                for key, (d, c) in zip(accuracy_keys, CAMERA_THRESHOLDS)}
    return CameraErrors(
        images=len(truth), registered=len(names), rotation_median=float(np.median(rotation)),
        rotation_mean=float(rotation.mean()), centre_median=float(np.median(centre)), centre_mean=float(centre.mean()),
        extent=extent, accuracy=accuracy, maa=relative_pose_maa(estimated, truth),
        alignment_inliers=int(inliers.sum()), scale=float(sim.scale),
        per_image={n: {"rotation_error": float(r), "centre_error": float(c)} for n, r, c in zip(names, rotation, centre)})


def format_camera_table(rows: Mapping[str, Mapping[str, Any] | CameraErrors | None]) -> str:
    """A markdown table of camera errors, one row per reconstruction (``CameraErrors`` or its dict; ``None``:
    no ground truth for that row, shown as dashes)."""
    keys = [f"{d:g}deg/{100 * c:g}%" for d, c in CAMERA_THRESHOLDS]
    headers = ["descriptor", "registered / GT", "rotation error deg (median / mean)",
               "centre error GT units (median / mean)",
               *(f"within {d:g} deg & {100 * c:g}% extent" for d, c in CAMERA_THRESHOLDS), "rel. pose mAA 1-10 deg"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]

    def num(x: Any, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    for label, e in rows.items():
        if e is None:
            lines.append("| " + " | ".join([label] + ["-"] * (len(headers) - 1)) + " |")
            continue
        e = e.to_dict() if isinstance(e, CameraErrors) else e
        lines.append("| " + " | ".join([
            label, f"{e['registered']} / {e['images']}",
            f"{num(e['rotation_median'], '.3f')} / {num(e['rotation_mean'], '.3f')}",
            f"{num(e['centre_median'], '.4f')} / {num(e['centre_mean'], '.4f')}",
            *(f"{100 * e['accuracy'].get(k, 0.0):.0f}%" for k in keys),
            f"{100 * e['maa']:.1f}" if e.get("maa") is not None else "-"]) + " |")
    return "\n".join(lines)
