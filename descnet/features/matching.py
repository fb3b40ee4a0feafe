"""Descriptor matching, geometric verification and match drawing: ``descnet.match(desc1, desc2)``.

>>> m = descnet.match(f1.descriptors, f2.descriptors, matcher="smnn", ratio=0.9)
>>> v = verify(f1.keypoints[m.indices[:, 0], :2], f2.keypoints[m.indices[:, 1], :2], "homography")
>>> v.geometry_matrix, v.inliers                    # (3, 3) H or None, (M,) bool

* Matchers (the decisions of kornia's ``match_mnn``, ``match_snn``, ``match_smnn`` on L2 distances, computed from
  the two nearest neighbours of each row and column, :func:`nearest_two`, block by block): ``mnn`` mutual nearest
  neighbours; ``snn`` nearest neighbour with Lowe's ratio test (nearest / second-nearest distance
  ``<= ratio``, default 0.8); ``smnn`` mutual nearest neighbours passing the ratio test both ways
  (default 0.95, kornia's).
* Verification: OpenCV's robust estimators, ``cv2.findHomography`` or ``cv2.findFundamentalMat``, with
  ``cv2.USAC_MAGSAC`` by default (:data:`ESTIMATORS`). ``threshold`` is the inlier threshold in pixels
  (reprojection error for a homography, distance to the epipolar line for F); for MAGSAC it is the
  largest noise sigma considered.
* :func:`match_pair` runs the whole chain for two images with the time of each stage, its choices as
  :class:`~descnet.features.options.KeypointOptions` and :class:`~descnet.features.options.MatchOptions`.

The arguments of :func:`match` and :func:`verify` are checked by :class:`MatchOptions` (one place for the
checks of the matching choices).
"""
from __future__ import annotations

import time
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch

from ..models.pretrained import DEFAULT_MODEL
from .files import PairMatches
from .options import ESTIMATOR_NAMES, GEOMETRIES, KeypointOptions, MatchOptions

__all__ = ["match", "nearest_two", "verify", "match_pair", "draw_matches", "Matches", "Verification", "ESTIMATORS"]

#: OpenCV robust estimators by name (:data:`descnet.features.options.ESTIMATOR_NAMES`)
ESTIMATORS = dict(zip(ESTIMATOR_NAMES, (cv2.USAC_MAGSAC, cv2.USAC_DEFAULT, cv2.USAC_ACCURATE, cv2.USAC_PROSAC,
                                        cv2.RANSAC, cv2.LMEDS)))


class Matches(NamedTuple):
    """``indices``: ``(M, 2)`` int64 rows (index in desc1, index in desc2); ``distances``: ``(M,)`` float32 L2."""

    indices: np.ndarray
    distances: np.ndarray


class Verification(NamedTuple):
    """``geometry_matrix``: ``(3, 3)`` float64 H (points1 -> points2) or F, ``None`` if none found;
    ``inliers``: ``(M,)`` bool."""

    geometry_matrix: np.ndarray | None
    inliers: np.ndarray


def _as_descriptors(desc: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(desc) if not isinstance(desc, torch.Tensor) else desc).float()
    if t.ndim != 2:
        raise ValueError(f"{name} must be (N, D) descriptors, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} has non-finite values")
    return t


def match(desc1: Any, desc2: Any, matcher: str = "mnn", ratio: float | None = None) -> Matches:
    """Match ``(N1, D)`` to ``(N2, D)`` descriptors (numpy or torch) -> :class:`Matches`, sorted by ``desc1`` index.

    ``matcher``: ``mnn``, ``snn`` or ``smnn`` (module docstring); ``ratio`` is the ratio-test threshold of
    ``snn``/``smnn`` (``None``: 0.8 for snn, 0.95 for smnn) and must be ``None`` for ``mnn``.
    """
    th = MatchOptions(matcher, ratio).ratio_or_default
    d1, d2 = _as_descriptors(desc1, "desc1"), _as_descriptors(desc2, "desc2")
    if d1.shape[1] != d2.shape[1]:
        raise ValueError(f"descriptor sizes differ: desc1 is {tuple(d1.shape)}, desc2 is {tuple(d2.shape)} "
                         f"(were both described with the same model?)")
    empty = Matches(np.zeros((0, 2), np.int64), np.zeros(0, np.float32))
    n1, n2 = len(d1), len(d2)
    if n1 == 0 or n2 == 0 or (matcher == "snn" and n2 < 2) or (matcher == "smnn" and min(n1, n2) < 2):
        return empty  # kornia's rule: no ratio test without a second neighbour
    with torch.inference_mode():
        row_dist, row_idx, col_dist, col_idx = nearest_two(d1, d2, columns=matcher != "snn")
        rows = torch.arange(n1)
        nearest = row_idx[:, 0]
        keep = torch.ones(n1, dtype=torch.bool)
        if matcher != "snn":  # mutual: desc1[i]'s nearest neighbour has desc1[i] as its own nearest
            keep &= col_idx[0][nearest] == rows
        if matcher != "mnn":  # the ratio test, and for smnn also from desc2's side
            keep &= row_dist[:, 0] / row_dist[:, 1] <= th
            if matcher == "smnn":
                keep &= (col_dist[0] / col_dist[1] <= th)[nearest]
        idx = torch.stack([rows[keep], nearest[keep]], 1)
        if len(idx) == 0:
            return empty
        dist = (d1[idx[:, 0]] - d2[idx[:, 1]]).norm(dim=1)  # exact, not from the expanded squares
    return Matches(idx.numpy().astype(np.int64), dist.float().numpy())


#: rows of desc1 per block of the distance matrix in :func:`nearest_two` (a block of ``1024 x N2`` float32; the
#: whole ``N1 x N2`` matrix is never held: 8192 x 8192 would be 268 MB)
BLOCK_ROWS = 1024


def nearest_two(desc1: torch.Tensor, desc2: torch.Tensor, columns: bool = True,
                block_rows: int = BLOCK_ROWS) -> tuple[torch.Tensor, ...]:
    """The two nearest neighbours of every row and (``columns``) every column of the L2 distance matrix.

    ``desc1`` ``(N1, D)``, ``desc2`` ``(N2, D)`` float32 -> ``row_dist (N1, k2)``, ``row_idx (N1, k2)`` (indices into
    desc2, nearest first, ``k2 = min(2, N2)``) and ``col_dist (k1, N2)``, ``col_idx (k1, N2)`` (indices into desc1,
    ``k1 = min(2, N1)``; empty when not ``columns``).

    The candidates come from one matrix product per block of ``block_rows`` rows (BLAS on torch's threads) and two
    top-2 selections, never the whole ``N1 x N2`` matrix: for descriptors of one length (unit descriptors: every
    descnet model, RootSIFT) the nearest are the most similar, ``|a - b|^2 = 2 - 2 a.b``, so the selection runs on
    ``a.b`` directly; otherwise on ``|b|^2 - 2 a.b`` (rows) and ``|a|^2 - 2 a.b`` (columns). The returned distances
    are computed exactly from the descriptors of the candidates (and the two re-ordered by them).
    """
    n1, n2 = len(desc1), len(desc2)
    k2, k1 = min(2, n2), min(2, n1)
    sq1, sq2 = (desc1 * desc1).sum(1), (desc2 * desc2).sum(1)
    norms = torch.cat([sq1, sq2])
    same_length = bool((norms.max() - norms.min()) <= 1e-5 * norms.max().clamp(min=1e-12))
    row_idx = torch.empty(n1, k2, dtype=torch.long)
    col_val = torch.empty(0, n2)
    col_idx = torch.empty(0, n2, dtype=torch.long)
    d2t = desc2.t()
    for start in range(0, n1, block_rows):
        a = desc1[start:start + block_rows]
        if same_length:  # largest a.b = nearest
            block = a @ d2t
            row_idx[start:start + len(a)] = block.topk(k2, dim=1).indices
            score = block
        else:  # smallest |b|^2 - 2 a.b along rows, |a|^2 - 2 a.b along columns
            block = torch.addmm(sq2.unsqueeze(0), a, d2t, beta=1.0, alpha=-2.0)
            row_idx[start:start + len(a)] = block.topk(k2, dim=1, largest=False).indices
            score = block.sub_(sq2.unsqueeze(0)).add_(sq1[start:start + len(a)].unsqueeze(1)).neg_()
        if columns:
            values, indices = score.topk(min(2, len(a)), dim=0)
            both_val = torch.cat([col_val, values])
            both_idx = torch.cat([col_idx, indices + start])
            values, order = both_val.topk(min(k1, len(both_val)), dim=0)
            col_val, col_idx = values, both_idx.gather(0, order)
    row_dist = (desc1.unsqueeze(1) - desc2[row_idx]).norm(dim=2)
    col_dist = (desc1[col_idx] - desc2.unsqueeze(0)).norm(dim=2) if columns else col_val
    if k2 == 2:  # exact distances decide the order of the two candidates
        swap = row_dist[:, 1] < row_dist[:, 0]
        row_dist[swap] = row_dist[swap].flip(1)
        row_idx[swap] = row_idx[swap].flip(1)
    if columns and k1 == 2:
        swap = col_dist[1] < col_dist[0]
        col_dist[:, swap] = col_dist[:, swap].flip(0)
        col_idx[:, swap] = col_idx[:, swap].flip(0)
    return row_dist, row_idx, col_dist, col_idx


def verify(points1: np.ndarray, points2: np.ndarray, geometry: str = "homography", estimator: str = "magsac",
           threshold: float | None = None, confidence: float = 0.9999, max_iters: int = 10000) -> Verification:
    """Robustly fit a homography or fundamental matrix to ``(M, 2)`` point pairs -> :class:`Verification`.

    ``threshold`` in pixels (default: 3 for a homography, 1 for F). Fewer than 4 (H) or 8 (F) matches, or
    an estimator that finds nothing, gives ``geometry_matrix=None`` and no inliers.
    """
    th = MatchOptions(geometry=geometry, estimator=estimator, threshold=threshold).threshold_or_default
    p1 = np.asarray(points1, np.float64).reshape(-1, 2)
    p2 = np.asarray(points2, np.float64).reshape(-1, 2)
    if len(p1) != len(p2):
        raise ValueError(f"points1 and points2 must have the same length, got {len(p1)} and {len(p2)}")
    min_count = GEOMETRIES[geometry][0]
    none = Verification(None, np.zeros(len(p1), bool))
    if len(p1) < min_count:
        return none
    method = ESTIMATORS[estimator]
    try:
        if geometry == "homography":
            matrix, mask = cv2.findHomography(p1, p2, method, th, maxIters=max_iters, confidence=confidence)
        else:
            matrix, mask = cv2.findFundamentalMat(p1, p2, method, th, confidence, max_iters)
    except cv2.error:  # degenerate configurations (e.g. all points on a line) make some estimators throw
        return none
    if matrix is None or mask is None or matrix.shape != (3, 3) or not np.isfinite(matrix).all():
        return none
    return Verification(matrix.astype(np.float64), mask.ravel().astype(bool))


def match_pair(image1: Any, image2: Any, *, model: Any = DEFAULT_MODEL, keypoints1: Any = None,
               keypoints2: Any = None, keypoint_options: KeypointOptions = KeypointOptions(),
               match_options: MatchOptions = MatchOptions(), device: str = "cpu",
               timings: dict[str, float] | None = None) -> PairMatches:
    """Describe two images, match them and verify the matches geometrically -> :class:`PairMatches`.

    Images, keypoints and ``keypoint_options`` as in :func:`descnet.features.description.describe`; ``model``
    (a SPEC or module) is resolved once; ``match_options``: matcher and geometry
    (:class:`~descnet.features.options.MatchOptions`; its :meth:`~MatchOptions.settings` become the result's
    ``settings``). ``timings``, if given, gets wall-clock seconds per stage: ``load_model``, ``detect`` (with
    image reading), ``extract``, ``describe`` (both images together:
    :func:`~descnet.features.description.describe_images`), ``match``, ``verify``.
    """
    from ..models import resolve_model
    from .description import describe_images

    t0 = time.perf_counter()
    net = resolve_model(model)
    stage = {"load_model": time.perf_counter() - t0}
    features = describe_images([image1, image2], [keypoints1, keypoints2], model=net, options=keypoint_options,
                               device=device, timings=stage)
    opts = match_options
    t0 = time.perf_counter()
    m = match(features[0].descriptors, features[1].descriptors, opts.matcher, opts.ratio)
    t1 = time.perf_counter()
    p1 = features[0].keypoints[m.indices[:, 0], :2]
    p2 = features[1].keypoints[m.indices[:, 1], :2]
    v = verify(p1, p2, opts.geometry, opts.estimator, opts.threshold)
    t2 = time.perf_counter()
    stage.update(match=t1 - t0, verify=t2 - t1)
    if timings is not None:
        timings.update(stage)
    return PairMatches(m.indices, m.distances, v.inliers, v.geometry_matrix, opts.settings(), features[0],
                       features[1])


def draw_matches(image1: np.ndarray, image2: np.ndarray, points1: np.ndarray, points2: np.ndarray,
                 inliers: np.ndarray | None = None, caption: str = "", draw_outliers: bool = False,
                 max_lines: int | None = 300, seed: int = 0) -> np.ndarray:
    """Side-by-side picture of two images with match lines (``cv2.drawMatches``) -> ``(H + band, W1 + W2, 3)`` uint8 RGB.

    ``image1``/``image2``: grey or RGB, uint8/uint16/float in [0, 1]; ``points1``/``points2``: ``(M, 2)``
    positions. Inliers are drawn in green, outliers in red when ``draw_outliers`` (under the inliers), as
    1-pixel anti-aliased lines so that thousands of matches stay readable; with more than ``max_lines`` lines
    to draw a random subset of that many is drawn (``seed``; inliers and outliers in proportion; ``None``: all)
    and the caption says so. ``caption`` (lines separated by ``\\n``) is written in a band under the images.
    """
    from ..data.images import to_gray

    def rgb8(img: np.ndarray) -> np.ndarray:
        arr = np.asarray(img)
        if arr.ndim == 3 and arr.shape[2] >= 3:
            if arr.dtype == np.uint8:
                return np.ascontiguousarray(arr[..., :3])
            scale = 65535.0 if arr.dtype == np.uint16 else 1.0
            return np.clip(np.rint(arr[..., :3].astype(np.float32) / scale * 255), 0, 255).astype(np.uint8)
        g = np.clip(np.rint(to_gray(arr) * 255), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)

    a, b = rgb8(image1), rgb8(image2)
    p1 = np.asarray(points1, np.float64).reshape(-1, 2)
    p2 = np.asarray(points2, np.float64).reshape(-1, 2)
    if len(p1) != len(p2):
        raise ValueError(f"points1 and points2 must have the same length, got {len(p1)} and {len(p2)}")
    good = np.ones(len(p1), bool) if inliers is None else np.asarray(inliers, bool).reshape(-1)
    drawn = np.flatnonzero(good | draw_outliers)
    shown = len(drawn)
    if max_lines is not None and len(drawn) > max_lines:
        drawn = np.sort(np.random.default_rng(seed).choice(drawn, size=max_lines, replace=False))
    kp1 = [cv2.KeyPoint(float(x), float(y), 1.0) for x, y in p1]
    kp2 = [cv2.KeyPoint(float(x), float(y), 1.0) for x, y in p2]
    canvas = cv2.drawMatches(a, kp1, b, kp2, [], None, flags=cv2.DrawMatchesFlags_NOT_DRAW_SINGLE_POINTS)
    over = cv2.DrawMatchesFlags_DRAW_OVER_OUTIMG | cv2.DrawMatchesFlags_NOT_DRAW_SINGLE_POINTS
    for chosen, colour in ((drawn[~good[drawn]], (220, 40, 40)), (drawn[good[drawn]], (40, 200, 60))):
        if len(chosen):
            matches = [cv2.DMatch(int(i), int(i), 0.0) for i in chosen]
            canvas = cv2.drawMatches(a, kp1, b, kp2, matches, canvas, matchesThickness=1, matchColor=colour,
                                     singlePointColor=colour, flags=over)
    lines = caption.split("\n") if caption else []
    if max_lines is not None and shown > len(drawn):
        lines.append(f"showing {len(drawn)} of {shown} {'matches' if draw_outliers else 'inliers'} (random subset)")
    if not lines:
        return canvas
    band = np.full((12 + 22 * len(lines), canvas.shape[1], 3), 255, np.uint8)
    for row, text in enumerate(lines):
        cv2.putText(band, text, (8, 24 + 22 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([canvas, band], axis=0)
