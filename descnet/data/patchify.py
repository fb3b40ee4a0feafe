"""Build HPatches-style patch sets from image sequences with homographies (the ``hpatches-release`` recipe).

For each sequence (see :mod:`descnet.data.sequences`):

1. **Detect** in image 1: DoG (OpenCV SIFT) by default; multi-scale Hessian and Harris on request (each on a
   half-octave pyramid with non-maximum suppression over space and scale). A detection has a centre and a
   scale ``sigma`` (OpenCV SIFT: ``sigma = kp.size / 2``); those with ``sigma < min_sigma`` are dropped.
2. **Region** = a square of half-side ``magnification * sigma`` (HPatches: 5x the detected scale), which
   must lie fully inside image 1. Regions overlapping by more than ``max_overlap`` (intersection over
   union of their circles) are merged, keeping the strongest (detectors ranked by their own response).
3. **Orientation**: one dominant gradient orientation per region (Lowe's histogram, as computed by
   ``kornia.feature.PatchDominantGradientOrientation`` on a window of half-side ``4.5 * sigma``); the
   patch's x axis points along the dominant gradient, so a patch shows that gradient pointing right.
4. **Jitter**: for each noise level (``e``asy, ``h``ard, ``t``ough) and target image, the reference frame
   is composed with a random affine :class:`Jitter` (rotation, isotropic scale, anisotropic scale,
   translation), drawn independently per point and image. The defaults give a median region overlap
   with the reference of about 0.85 (easy), 0.72 (hard) and 0.62 (tough); the first two are the figures
   the HPatches authors state for their easy and hard levels.
5. **Reprojection**: the jittered frame is mapped into image k with the ground-truth homography itself
   (exactly, not through a local affine approximation); points whose reference region or any jittered
   region leaves its image are dropped. The strongest ``max_points`` remaining points become the rows.
6. **Sampling**: each patch is sampled bilinearly from the level of a half-octave Gaussian pyramid that
   matches its scale (anti-aliased: the residual shrink is below sqrt(2) on a pre-blurred level).

Frames are ``(3, 3)`` maps from normalised patch coordinates ``(u, v, 1)``, ``u, v in [-1, 1]`` (patch
pixel ``j`` has ``u = (j - c) / c``, ``c = (P - 1) / 2``; ``u`` along columns, ``v`` along rows) to image
pixel coordinates (OpenCV convention: the centre of the top-left pixel is ``(0, 0)``).

Output of :func:`write_patch_dataset` (``descnet data patches``)::

    OUT/patchify.json                              all parameters, jitter levels, rows per sequence
    OUT/hpatches-release/<sequence>/<type>.png     ref, e1..e5, h1..h5, t1..t5 (hpatches-release format,
                                                   written by :func:`descnet.data.hpatches.write_patch_stack`)
    OUT/<NAME>/                                    with ``options.brown``: the Brown (UBC Phototour) layout,
                                                   written by :func:`descnet.data.phototour.write_phototour`
    OUT/tasks/                                     HPatches task files for this set (splits ``full`` and,
                                                   with test sequences, ``custom``; retrieval CSVs,
                                                   GENERATED.json), by
                                                   :func:`descnet.data.hpatches.write_custom_tasks`, so
                                                   ``descnet eval hpatches --root OUT/hpatches-release`` works
"""
from __future__ import annotations

import dataclasses
import math
import os
import zlib
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from descnet.data.sequences import ImageSequence, ImageSequences

__all__ = ["Jitter", "JITTER_LEVELS", "parse_jitter", "PatchifyOptions", "BrownOptions", "PatchDatasetOptions",
           "Pyramid", "DETECTORS", "detect_regions",
           "merge_overlapping", "circle_overlap", "dominant_orientations", "reference_frames",
           "frames_inside", "target_frames", "warp_patches", "image_types", "sequence_patches",
           "brown_patches", "balanced_pairs", "write_patch_dataset", "MARKER"]

MARKER = "patchify.json"
DETECTORS = ("dog", "hessian", "harris")
ORIENTATION_WINDOW = 4.5  # half-side of the orientation window, in units of sigma (3 x Lowe's 1.5 sigma)
ORIENTATION_PATCH = 32
PYRAMID_SIGMA0 = 1.6      # detection scale of the multi-scale Hessian / Harris at pyramid level 0


@dataclass(frozen=True)
class Jitter:
    """Random affine noise in normalised patch coordinates (the region's half-side is 1).

    Attributes:
        rotation: rotation uniform in ``[-rotation, rotation]`` degrees.
        scale: isotropic scale log-uniform in ``[1 / (1 + scale), 1 + scale]``.
        anisotropy: aspect ratio log-uniform in ``[1, 1 + anisotropy]``, along a uniformly random axis
            (area preserved).
        translation: shift uniform in ``[-translation, translation]`` per axis, in half-sides.
    """

    rotation: float = 0.0
    scale: float = 0.0
    anisotropy: float = 0.0
    translation: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rotation", "scale", "anisotropy", "translation"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"jitter {name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.rotation > 180:
            raise ValueError(f"jitter rotation is at most 180 degrees, got {self.rotation}")

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` random jitters: float64 ``(n, 3, 3)`` affine maps (normalised -> normalised coordinates)."""
        theta = np.deg2rad(rng.uniform(-self.rotation, self.rotation, n))
        scale = np.exp(rng.uniform(-1, 1, n) * np.log1p(self.scale))
        aspect = np.exp(rng.uniform(0, 1, n) * np.log1p(self.anisotropy))
        phi = rng.uniform(0, np.pi, n)
        shift = rng.uniform(-self.translation, self.translation, (n, 2))
        axis = _rotations(phi)
        stretch = np.zeros((n, 2, 2))
        stretch[:, 0, 0], stretch[:, 1, 1] = np.sqrt(aspect), 1 / np.sqrt(aspect)
        linear = scale[:, None, None] * _rotations(theta) @ axis @ stretch @ axis.transpose(0, 2, 1)
        out = np.tile(np.eye(3), (n, 1, 1))
        out[:, :2, :2] = linear
        out[:, :2, 2] = shift
        return out


def parse_jitter(text: str, base: Jitter | None = None, name: str = "jitter") -> Jitter:
    """``'10,0.15,0.15,0.1'`` (rotation, scale, anisotropy, translation), ``'translation=0.3'`` (overrides
    ``base``) or ``'none'`` -> :class:`Jitter`; errors start with ``name`` (e.g. ``--jitter-easy``)."""
    fields = [f.name for f in dataclasses.fields(Jitter)]
    text = text.strip()
    if text.lower() == "none":
        return Jitter()
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if all("=" not in p for p in parts):
            if len(parts) != 4:
                raise ValueError
            return Jitter(*(float(p) for p in parts))
        values = {}
        for part in parts:
            key, _, value = part.partition("=")
            if key.strip() not in fields:
                raise ValueError
            values[key.strip()] = float(value)
        return dataclasses.replace(base or Jitter(), **values)
    except ValueError as err:
        detail = f" ({err})" if str(err) else ""
        raise ValueError(f"{name} must be 4 numbers ROTATION,SCALE,ANISOTROPY,TRANSLATION, key=value pairs "
                         f"({', '.join(fields)}) or 'none'; got {text!r}{detail}") from None


def _rotations(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


#: Default jitter per noise level; median region overlap with the reference ~0.85 / 0.72 / 0.62.
JITTER_LEVELS: dict[str, Jitter] = {
    "e": Jitter(rotation=10.0, scale=0.15, anisotropy=0.15, translation=0.10),
    "h": Jitter(rotation=20.0, scale=0.32, anisotropy=0.32, translation=0.20),
    "t": Jitter(rotation=30.0, scale=0.50, anisotropy=0.50, translation=0.27),
}


@dataclass(frozen=True)
class PatchifyOptions:
    """Parameters of the patch builder (all go into ``patchify.json``).

    Attributes:
        detectors: any of ``'dog'`` (OpenCV SIFT), ``'hessian'``, ``'harris'``.
        max_points: rows per sequence, strongest first (``None`` = all).
        magnification: region half-side in units of the detected scale sigma (HPatches: 5); `descnet data patches
            --mr-size X` sets 2 X (describe and match size regions per unit of keypoint size = 2 sigma).
        min_sigma: detections with a smaller scale (pixels of image 1 after ``image_scale``) are dropped.
        max_overlap: regions whose circles overlap more than this (IoU) are merged.
        patch_size: output patch side (HPatches: 65).
        image_scale: resize every image by this factor first (homographies adjusted), e.g. 0.5 to be fast.
        upright: skip orientation estimation (x axis of every patch = image x axis).
        jitter: noise level letter -> :class:`Jitter`; the letters name the output files (``e1``...).
    """

    detectors: tuple[str, ...] = ("dog",)
    max_points: int | None = 2000
    magnification: float = 5.0
    min_sigma: float = 1.6
    max_overlap: float = 0.5
    patch_size: int = 65
    image_scale: float = 1.0
    upright: bool = False
    jitter: Mapping[str, Jitter] = field(default_factory=lambda: dict(JITTER_LEVELS))

    def __post_init__(self) -> None:
        unknown = [d for d in self.detectors if d not in DETECTORS]
        if not self.detectors or unknown:
            raise ValueError(f"detectors must be a non-empty subset of {', '.join(DETECTORS)}, got "
                             f"{', '.join(self.detectors) or 'none'}")
        if self.max_points is not None and self.max_points < 1:
            raise ValueError(f"max_points must be >= 1 or None, got {self.max_points}")
        if not self.magnification > 0 or not 0 < self.image_scale <= 4 or self.min_sigma < 0:
            raise ValueError("magnification must be > 0, image_scale in (0, 4] and min_sigma >= 0")
        if not 0 < self.max_overlap <= 1:
            raise ValueError(f"max_overlap must be in (0, 1], got {self.max_overlap}")
        if self.patch_size < 8:
            raise ValueError(f"patch_size must be at least 8, got {self.patch_size}")
        for level in self.jitter:
            if len(level) != 1 or not level.isalpha() or level == "r":
                raise ValueError(f"jitter levels are single letters other than 'r' (e, h, t), got {level!r}")

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["jitter"] = {k: dataclasses.asdict(v) for k, v in self.jitter.items()}
        return out


@dataclass(frozen=True)
class BrownOptions:
    """The Brown (UBC Phototour) copy of a patch set, ``OUT/<name>/`` (:func:`write_patch_dataset`).

    Attributes:
        name: folder name under ``OUT`` (a plain name, not ``hpatches-release``).
        types: patch types a scene point draws from: ``'ref'`` and jitter level letters.
        per_point: patches per scene point (at least 2: a point needs a matching pair).
        pairs: test pairs in ``m50_<pairs>_<pairs>_0.txt``, half of them matching.
    """

    name: str
    types: tuple[str, ...] = ("ref", "e", "h")
    per_point: int = 4
    pairs: int = 100_000

    def __post_init__(self) -> None:
        name = self.name
        if not name or "/" in name or "\\" in name or name.startswith(".") or name == "hpatches-release":
            raise ValueError(f"--brown NAME must be a plain folder name such as 'synthetic', got {name!r}")
        if self.pairs < 2:
            raise ValueError(f"--brown-pairs must be at least 2, got {self.pairs}")
        if self.per_point < 2:
            raise ValueError(f"--brown-per-point must be at least 2 (a point needs a matching pair), "
                             f"got {self.per_point}")


@dataclass(frozen=True)
class PatchDatasetOptions:
    """What :func:`write_patch_dataset` builds besides the patches of each sequence.

    Attributes:
        patchify: the patch builder's parameters (:class:`PatchifyOptions`).
        seed: seed of the jitter, the Brown pairs, the drawn test sequences and the retrieval files.
        brown: also write the Brown layout (``None``: not).
        test_sequences: test sequences of the split ``custom`` in ``OUT/tasks`` (names as in the input or as
            written; train = the others).
        test_fraction: or draw this fraction of the sequences (with ``seed``) as the test sequences.
    """

    patchify: PatchifyOptions = field(default_factory=PatchifyOptions)
    seed: int = 0
    brown: BrownOptions | None = None
    test_sequences: tuple[str, ...] | None = None
    test_fraction: float | None = None

    def __post_init__(self) -> None:
        if self.test_sequences is not None and self.test_fraction is not None:
            raise ValueError("give test sequences or a test fraction, not both")
        if self.test_fraction is not None and not 0 < self.test_fraction < 1:
            raise ValueError(f"--test-fraction must be between 0 and 1 (exclusive), got {self.test_fraction}")


def image_types(num_images: int, levels: Sequence[str]) -> list[str]:
    """``['ref', 'e1', ..., 'e5', 'h1', ...]`` for a sequence of ``num_images`` images."""
    return ["ref"] + [f"{level}{k}" for level in levels for k in range(1, num_images)]


# ---------------------------------------------------------------------------------------------- pyramid

class Pyramid:
    """Half-octave Gaussian pyramid of a grey image, for anti-aliased sampling.

    Level ``l`` is the image shrunk by about ``2 ** (l / 2)`` after a Gaussian blur that leaves it
    sampled like the original (blur 0.5 pixel per pixel); it is built from level ``l - 2`` (or the image,
    for level 1). Level sizes are rounded; ``factors[l]`` holds the exact per-axis ``(fx, fy)``.

    Args:
        image: ``(H, W)`` uint8 or float image.
        min_size: the smallest level is at least this many pixels on its short side.
    """

    def __init__(self, image: np.ndarray, min_size: int = 16) -> None:
        import cv2

        if image.ndim != 2:
            raise ValueError(f"Pyramid needs a grey (H, W) image, got shape {image.shape}")
        base = image.astype(np.float32)
        h, w = base.shape
        self.size = (w, h)
        self.levels: list[np.ndarray] = [base]
        level = 1
        while min(w, h) / 2 ** (level / 2) >= min_size:
            src = self.levels[level - 2] if level >= 2 else base
            dst = (max(1, round(w / 2 ** (level / 2))), max(1, round(h / 2 ** (level / 2))))
            shrink = src.shape[1] / dst[0]
            blurred = cv2.GaussianBlur(src, (0, 0), 0.5 * math.sqrt(max(shrink ** 2 - 1, 1e-6)))
            self.levels.append(cv2.resize(blurred, dst, interpolation=cv2.INTER_LINEAR))
            level += 1
        self.factors = [(w / lv.shape[1], h / lv.shape[0]) for lv in self.levels]

    def __len__(self) -> int:
        return len(self.levels)

    def sample(self, maps: np.ndarray, size: int, chunk: int = 256) -> np.ndarray:
        """Sample ``size x size`` patches: ``maps`` float ``(N, 3, 3)`` (see the module docstring) ->
        float32 ``(N, size, size)``. Each patch comes from the level that matches its local scale."""
        import cv2

        maps = np.asarray(maps, dtype=np.float64).reshape(-1, 3, 3)
        n = len(maps)
        out = np.zeros((n, size, size), np.float32)
        if n == 0:
            return out
        c = (size - 1) / 2
        spacing = np.sqrt(np.abs(np.linalg.det(_jacobian_at_centre(maps)))) / c  # image px per patch px
        level = np.clip(np.floor(2 * np.log2(np.maximum(spacing, 1e-12)) + 1e-9), 0, len(self) - 1).astype(int)
        grid = (np.arange(size, dtype=np.float64) - c) / c
        uu, vv = np.meshgrid(grid, grid)
        homog = np.stack([uu.ravel(), vv.ravel(), np.ones(size * size)]).astype(np.float32)  # (3, S*S)
        for lv in np.unique(level):
            idx = np.flatnonzero(level == lv)
            fx, fy = self.factors[lv]
            to_level = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
            for start in range(0, len(idx), chunk):
                part = idx[start:start + chunk]
                pts = (to_level @ maps[part]).astype(np.float32) @ homog  # (n, 3, S*S)
                mx = (pts[:, 0] / pts[:, 2]).reshape(-1, size)
                my = (pts[:, 1] / pts[:, 2]).reshape(-1, size)
                patches = cv2.remap(self.levels[lv], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
                out[part] = patches.reshape(len(part), size, size)
        return out


def _jacobian_at_centre(maps: np.ndarray) -> np.ndarray:
    """``(N, 2, 2)`` Jacobian of projective maps ``(N, 3, 3)`` at normalised patch coordinate (0, 0)."""
    q = maps[:, :, 2]  # image of (0, 0, 1)
    return (maps[:, :2, :2] - q[:, :2, None] / q[:, 2, None, None] * maps[:, 2, None, :2]) / q[:, 2, None, None]


def warp_patches(pyramid: Pyramid, maps: np.ndarray, size: int = 65) -> np.ndarray:
    """Anti-aliased patches for frames ``maps`` ``(N, 3, 3)`` -> uint8 ``(N, size, size)``."""
    return np.clip(np.rint(pyramid.sample(maps, size)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- detection

def detect_regions(image: np.ndarray, detectors: Sequence[str] = ("dog",), pyramid: Pyramid | None = None,
                   min_sigma: float = 0.0) -> np.ndarray:
    """Detections in a grey uint8 image ``(H, W)`` -> float64 ``(N, 4)`` rows ``(x, y, sigma, score)``.

    ``score`` ranks detections across detectors: 1 for each detector's strongest, falling linearly to 0 for
    its weakest (so detectors interleave). Rows are sorted by score, strongest first.
    """
    out = []
    for name in detectors:
        if name == "dog":
            found = _detect_dog(image)
        elif name in ("hessian", "harris"):
            found = _detect_multiscale(pyramid if pyramid is not None else Pyramid(image), name)
        else:
            raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
        found = found[found[:, 2] >= min_sigma]
        found = found[np.argsort(-found[:, 3], kind="stable")]
        found[:, 3] = 1 - np.arange(len(found)) / max(len(found), 1)
        out.append(found)
    regions = np.concatenate(out) if out else np.zeros((0, 4))
    return regions[np.argsort(-regions[:, 3], kind="stable")]


def _detect_dog(image: np.ndarray) -> np.ndarray:
    import cv2

    keypoints = cv2.SIFT_create().detect(image, None)
    rows = np.array([(k.pt[0], k.pt[1], k.size / 2, k.response) for k in keypoints], np.float64).reshape(-1, 4)
    # SIFT repeats a keypoint once per orientation peak: keep one
    _, first = np.unique(np.round(rows[:, :3], 3), axis=0, return_index=True)
    return rows[np.sort(first)]


def _detect_multiscale(pyramid: Pyramid, kind: str) -> np.ndarray:
    """Hessian-determinant or Harris maxima over space and pyramid level (3x3x3 neighbourhood)."""
    import cv2

    responses = []
    for level in pyramid.levels:
        g = cv2.GaussianBlur(level / 255.0, (0, 0), 1.2)
        if kind == "hessian":
            dxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3, scale=0.25)
            dyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3, scale=0.25)
            dxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3, scale=0.25)
            r = dxx * dyy - dxy * dxy
            threshold = 1e-4
        else:
            r = cv2.cornerHarris(g, 5, 3, 0.04)
            threshold = 1e-6
        responses.append(r)
    kernel = np.ones((3, 3), np.uint8)
    rows = []
    for lv, r in enumerate(responses):
        h, w = r.shape
        peak = (r >= cv2.dilate(r, kernel)) & (r > threshold)
        for other in (lv - 1, lv + 1):
            if 0 <= other < len(responses):
                neighbour = cv2.resize(responses[other], (w, h), interpolation=cv2.INTER_LINEAR)
                peak &= r > cv2.dilate(neighbour, kernel)
        border = 2
        peak[:border], peak[-border:], peak[:, :border], peak[:, -border:] = False, False, False, False
        ys, xs = np.nonzero(peak)
        fx, fy = pyramid.factors[lv]
        sigma = PYRAMID_SIGMA0 * math.sqrt(fx * fy)
        rows.append(np.stack([(xs + 0.5) * fx - 0.5, (ys + 0.5) * fy - 0.5, np.full(len(xs), sigma),
                              r[ys, xs].astype(np.float64)], 1))
    return np.concatenate(rows) if rows else np.zeros((0, 4))


# ---------------------------------------------------------------------------------------------- regions

def circle_overlap(c1: np.ndarray, r1: np.ndarray, c2: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Intersection over union of circles (centres ``(..., 2)``, radii ``(...)``), broadcast -> ``(...)``."""
    d = np.linalg.norm(np.asarray(c1, float) - np.asarray(c2, float), axis=-1)
    r1, r2 = np.broadcast_arrays(np.asarray(r1, float), np.asarray(r2, float))
    d, r1, r2 = np.broadcast_arrays(d, r1, r2)
    small, big = np.minimum(r1, r2), np.maximum(r1, r2)
    with np.errstate(invalid="ignore", divide="ignore"):
        a1 = r1 ** 2 * np.arccos(np.clip((d ** 2 + r1 ** 2 - r2 ** 2) / (2 * d * r1), -1, 1))
        a2 = r2 ** 2 * np.arccos(np.clip((d ** 2 + r2 ** 2 - r1 ** 2) / (2 * d * r2), -1, 1))
        k = np.sqrt(np.clip((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2), 0, None))
        lens = a1 + a2 - 0.5 * k
    inter = np.where(d >= r1 + r2, 0.0, np.where(d <= big - small, np.pi * small ** 2, lens))
    return inter / (np.pi * (r1 ** 2 + r2 ** 2) - inter)


def merge_overlapping(centres: np.ndarray, radii: np.ndarray, max_overlap: float = 0.5) -> np.ndarray:
    """Greedy merge of near-duplicate circular regions, given in priority order.

    ``centres`` ``(N, 2)``, ``radii`` ``(N,)`` -> indices of the kept regions (ascending): a region is kept
    when its overlap (IoU, see :func:`circle_overlap`) with every region kept before it is at most
    ``max_overlap``. Regions are bucketed by half-octave of radius and by position, so only regions that
    could overlap are compared (IoU > 0.5 needs radii within a factor sqrt(2) and centres closer than
    the sum of the radii).
    """
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    radii = np.asarray(radii, np.float64).reshape(-1)
    if len(radii) and radii.min() <= 0:
        raise ValueError("region radii must be > 0")
    # two circles with IoU > t have radius ratio > sqrt(t): compare bins as far apart as that allows
    reach = int(math.ceil(-math.log2(max_overlap))) if max_overlap < 1 else 0
    bins = np.floor(2 * np.log2(radii)).astype(int) if len(radii) else np.zeros(0, int)
    kept: list[int] = []
    grid: dict[tuple[int, int, int], list[int]] = {}
    xs, ys, rs = centres[:, 0].tolist(), centres[:, 1].tolist(), radii.tolist()
    for i, b in enumerate(bins.tolist()):
        x, y, r = xs[i], ys[i], rs[i]
        duplicate = False
        for nb in range(b - reach, b + reach + 1):
            cell = _cell_size(nb, reach)
            gx, gy = int(x // cell), int(y // cell)
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    for j in grid.get((nb, gx + dx, gy + dy), ()):
                        if _iou(x, y, r, xs[j], ys[j], rs[j]) > max_overlap:
                            duplicate = True
                            break
                    if duplicate:
                        break
                if duplicate:
                    break
            if duplicate:
                break
        if not duplicate:
            kept.append(i)
            cell = _cell_size(b, reach)
            grid.setdefault((b, int(x // cell), int(y // cell)), []).append(i)
    return np.array(kept, dtype=np.int64)


def _cell_size(radius_bin: int, reach: int) -> float:
    """Grid cell of a radius bin: at least the largest centre distance of two overlapping regions."""
    return 2.0 * 2 ** ((radius_bin + 1 + reach) / 2)


def _iou(x1: float, y1: float, r1: float, x2: float, y2: float, r2: float) -> float:
    """Scalar :func:`circle_overlap` (pure Python: fast for the few neighbours of one region)."""
    d = math.hypot(x1 - x2, y1 - y2)
    if d >= r1 + r2:
        return 0.0
    small, big = min(r1, r2), max(r1, r2)
    if d <= big - small:
        inter = math.pi * small * small
    else:
        a1 = r1 * r1 * math.acos(max(-1.0, min(1.0, (d * d + r1 * r1 - r2 * r2) / (2 * d * r1))))
        a2 = r2 * r2 * math.acos(max(-1.0, min(1.0, (d * d + r2 * r2 - r1 * r1) / (2 * d * r2))))
        inter = a1 + a2 - 0.5 * math.sqrt(max(0.0, (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2)))
    return inter / (math.pi * (r1 * r1 + r2 * r2) - inter)


def dominant_orientations(pyramid: Pyramid, xy: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """One dominant gradient orientation per point -> float64 ``(N,)`` radians, in kornia's convention
    (counter-clockwise on screen: the gradient direction in pixel coordinates is ``(cos a, -sin a)``)."""
    import torch
    from kornia.feature import PatchDominantGradientOrientation

    n = len(xy)
    if n == 0:
        return np.zeros(0)
    half = ORIENTATION_WINDOW * np.asarray(sigma, np.float64)
    maps = np.zeros((n, 3, 3))
    maps[:, 0, 0] = maps[:, 1, 1] = half
    maps[:, :2, 2] = xy
    maps[:, 2, 2] = 1
    patches = torch.from_numpy(pyramid.sample(maps, ORIENTATION_PATCH)).unsqueeze(1)
    estimator = PatchDominantGradientOrientation(ORIENTATION_PATCH)
    with torch.inference_mode():
        angles = torch.cat([estimator(patches[i:i + 4096]) for i in range(0, n, 4096)])
    return angles.double().numpy()


def reference_frames(xy: np.ndarray, half_side: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Square oriented regions -> float64 ``(N, 3, 3)`` frames: the patch x axis points along ``angle``
    (kornia convention, see :func:`dominant_orientations`), half-side ``half_side`` pixels."""
    n = len(xy)
    c, s = np.cos(angle), np.sin(angle)
    frames = np.zeros((n, 3, 3))
    frames[:, 0, 0], frames[:, 1, 0] = half_side * c, -half_side * s    # u axis
    frames[:, 0, 1], frames[:, 1, 1] = half_side * s, half_side * c     # v axis
    frames[:, :2, 2] = xy
    frames[:, 2, 2] = 1
    return frames


def frames_inside(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Which frames ``(N, 3, 3)`` map the whole patch square inside an image of ``size`` = (W, H) -> bool ``(N,)``."""
    w, h = size
    corners = np.array([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], np.float64).T
    p = np.asarray(maps) @ corners  # (N, 3, 4)
    z = p[:, 2]
    ok = (z > 1e-12).all(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = p[:, 0] / z, p[:, 1] / z
    return ok & (x >= 0).all(1) & (x <= w - 1).all(1) & (y >= 0).all(1) & (y <= h - 1).all(1)


def target_frames(ref: np.ndarray, homographies: Mapping[int, np.ndarray], jitter: Mapping[str, Jitter],
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Reference frames ``(N, 3, 3)`` in image 1 -> ``{type: (N, 3, 3)}`` frames in each image.

    ``'ref'`` is ``ref`` itself; ``f'{level}{k - 1}'`` is ``H_1_k @ ref @ J`` with an independent random
    jitter ``J`` per point for each level and target image ``k`` (``homographies`` holds ``k >= 2``).
    """
    out = {"ref": ref}
    for level, noise in jitter.items():
        for k in sorted(homographies):
            if k == 1:
                continue
            out[f"{level}{k - 1}"] = homographies[k] @ ref @ noise.sample(len(ref), rng)
    return out


# ---------------------------------------------------------------------------------------------- sequences

def _scaled_images(sequence: ImageSequence, scale: float) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """Grey images 1..n resized by ``scale`` and the homographies ``{k: H_1_k}`` between the resized images."""
    import cv2

    images, resize = [], {}
    for k in range(1, len(sequence) + 1):
        image = sequence.image(k, gray=True)
        h, w = image.shape
        if scale != 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        sx, sy = image.shape[1] / w, image.shape[0] / h
        resize[k] = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])  # cv2.resize's map
        images.append(image)
    homs = {k: resize[k] @ sequence.homographies[k] @ np.linalg.inv(resize[1]) for k in resize}
    return images, homs


def sequence_patches(sequence: ImageSequence, options: PatchifyOptions | None = None, seed: int = 0,
                     return_frames: bool = False):
    """The HPatches-style patch arrays of one sequence, in memory.

    Args:
        sequence: a :class:`~descnet.data.sequences.ImageSequence` (n images, homographies from image 1).
        options: see :class:`PatchifyOptions`.
        seed: jitter is drawn from ``default_rng([seed, crc32(sequence.name)])``: the same sequence gives
            the same patches whatever else is processed.
        return_frames: also return the frames.

    Returns:
        ``{type: uint8 (N, P, P)}`` for types ``ref, e1..e{n-1}, h1.., t1..`` (row i = the same scene point
        in every type; N may be 0), and with ``return_frames`` also ``{type: float64 (N, 3, 3)}`` frames in
        the pixel coordinates of the (``image_scale``-resized) images.
    """
    options = options or PatchifyOptions()
    images, homs = _scaled_images(sequence, options.image_scale)
    sizes = {k: (im.shape[1], im.shape[0]) for k, im in enumerate(images, start=1)}
    rng = np.random.default_rng([seed, zlib.crc32(sequence.name.encode())])
    pyramid = Pyramid(images[0])

    regions = detect_regions(images[0], options.detectors, pyramid, options.min_sigma)
    xy, half = regions[:, :2], options.magnification * regions[:, 2]
    w, h = sizes[1]
    fits = (xy[:, 0] - half >= 0) & (xy[:, 0] + half <= w - 1) & (xy[:, 1] - half >= 0) & (xy[:, 1] + half <= h - 1)
    regions, xy, half = regions[fits], xy[fits], half[fits]
    keep = merge_overlapping(xy, half, options.max_overlap)
    regions, xy, half = regions[keep], xy[keep], half[keep]

    # orient, jitter and check candidates in priority order, a chunk at a time, until max_points rows
    wanted = options.max_points or len(regions)
    chunk = max(512, 2 * wanted) if options.max_points else max(len(regions), 1)
    targets = {k: homs[k] for k in range(2, len(images) + 1)}
    found: list[dict[str, np.ndarray]] = []
    count = 0
    for start in range(0, len(regions), chunk):
        part = slice(start, start + chunk)
        angle = np.zeros(len(xy[part])) if options.upright else \
            dominant_orientations(pyramid, xy[part], regions[part, 2])
        frames = target_frames(reference_frames(xy[part], half[part], angle), targets, options.jitter, rng)
        inside = np.ones(len(angle), bool)
        for kind, maps in frames.items():
            inside &= frames_inside(maps, sizes[_image_of(kind)])
        found.append({kind: maps[inside] for kind, maps in frames.items()})
        count += int(inside.sum())
        if count >= wanted:
            break
    order = image_types(len(images), list(options.jitter))
    if found:
        frames = {kind: np.concatenate([f[kind] for f in found])[:wanted] for kind in order}
    else:
        frames = {kind: np.zeros((0, 3, 3)) for kind in order}

    patches = {}
    for k in range(1, len(images) + 1):
        kinds = [t for t in frames if _image_of(t) == k]
        pyr = pyramid if k == 1 or not kinds else Pyramid(images[k - 1])
        for kind in kinds:
            patches[kind] = warp_patches(pyr, frames[kind], options.patch_size)
    patches = {kind: patches[kind] for kind in order}
    return (patches, {kind: frames[kind] for kind in order}) if return_frames else patches


def _image_of(kind: str) -> int:
    """Image number of a patch type: ``ref`` -> 1, ``e3`` -> 4."""
    return 1 if kind == "ref" else int(kind[1:]) + 1


def brown_patches(patches: Mapping[str, np.ndarray], per_point: int, rng: np.random.Generator,
                  types: Sequence[str] = ("ref", "e", "h")) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brown-style patches from one sequence's patch arrays: ``per_point`` distinct patches per row.

    Args:
        patches: ``{type: uint8 (N, P, P)}`` as returned by :func:`sequence_patches`.
        per_point: patches kept per scene point (Brown's subsets have 2 to ~10, about 3 on average).
        types: the pool: ``'ref'`` and/or level letters (``'e'`` = e1..e5).

    Returns:
        uint8 ``(N * per_point, 64, 64)`` patches (resized with area averaging), grouped by row; the row of
        each (int64); the index of each patch's type in ``list(patches)`` (int64).
    """
    import cv2

    names = list(patches)
    pool = [i for i, t in enumerate(names) if t in types or (t != "ref" and t[0] in types)]
    if per_point < 2 or per_point > len(pool):
        raise ValueError(f"per_point must be between 2 and the {len(pool)} patch types of "
                         f"{', '.join(types)}, got {per_point}")
    n = len(patches[names[0]])
    choice = np.argsort(rng.random((n, len(pool))), axis=1)[:, :per_point]
    type_index = np.asarray(pool)[choice].reshape(-1)
    rows = np.repeat(np.arange(n), per_point)
    stack = np.stack([patches[t] for t in names])  # (T, N, P, P)
    picked = stack[type_index, rows]
    if picked.shape[1:] != (64, 64):
        picked = np.stack([cv2.resize(p, (64, 64), interpolation=cv2.INTER_AREA) for p in picked]) \
            if len(picked) else np.zeros((0, 64, 64), np.uint8)
    return picked, rows.astype(np.int64), type_index.astype(np.int64)


def balanced_pairs(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random test pairs, half matching: int64 ``(count, 3)`` rows ``(patch1, patch2, is_match)``.

    Positives are two different patches with the same label; negatives two patches with different labels.
    ``labels``: ``(N,)`` with patches of one label consecutive, each label at least twice, >= 2 labels.
    """
    labels = np.asarray(labels)
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    sizes = np.diff(np.r_[starts, len(labels)])
    if len(starts) < 2 or sizes.min() < 2:
        raise ValueError("balanced pairs need at least 2 points with at least 2 patches each")
    n_pos = count // 2
    group = rng.integers(len(starts), size=n_pos)
    first = rng.integers(sizes[group])
    second = (first + rng.integers(1, sizes[group])) % sizes[group]
    pos = np.stack([starts[group] + first, starts[group] + second, np.ones(n_pos, np.int64)], 1)
    n_neg = count - n_pos
    a, b = rng.integers(len(labels), size=(2, n_neg))
    clash = labels[a] == labels[b]
    while clash.any():
        b[clash] = rng.integers(len(labels), size=int(clash.sum()))
        clash = labels[a] == labels[b]
    neg = np.stack([a, b, np.zeros(n_neg, np.int64)], 1)
    pairs = np.concatenate([pos, neg]).astype(np.int64)
    return pairs[rng.permutation(len(pairs))]


def _output_name(sequence: ImageSequence) -> str:
    """hpatches-release folder name: the sequence name, with ``v_`` added when it has no ``i_``/``v_`` prefix."""
    return sequence.name if sequence.kind else f"v_{sequence.name}"


def _earlier_output(out: Path) -> list[str]:
    """What an earlier patch set without a manifest holds: its marker, hpatches-release, tasks, the Brown set."""
    import json

    try:
        brown = (json.loads((out / MARKER).read_text()).get("brown") or {}).get("name")
    except (OSError, ValueError, AttributeError):
        brown = None
    return [MARKER, "hpatches-release", "tasks", *([brown] if isinstance(brown, str) else [])]


def write_patch_dataset(sequences: str | os.PathLike | ImageSequences, out: str | os.PathLike,
                        options: PatchDatasetOptions | None = None, overwrite: bool = False,
                        progress: bool = False) -> dict:
    """Build the patch set of every sequence and write it (layout in the module docstring).

    The output is built in a temporary folder next to ``out`` and moved into place at the end; an existing
    non-empty ``out`` is replaced only when it holds an earlier ``patchify.json`` and ``overwrite`` is set.
    ``OUT/tasks`` gets the split ``custom`` (``options.test_sequences`` or ``options.test_fraction``) when
    either is given, and always ``full``; the retrieval files are drawn with ``options.seed`` (see
    :func:`descnet.data.hpatches.write_custom_tasks`).
    Sequences named without ``i_``/``v_`` (Oxford, EF) are written as ``v_<name>``; sequences where no
    region survives are skipped (listed in ``patchify.json``).

    Returns:
        the content of ``patchify.json``.
    """
    from descnet.data.hpatches import PATCH_SIZE, write_patch_stack
    from descnet.data.synth import check_output_folder
    from descnet.io import result_set, write_json

    dataset = options or PatchDatasetOptions()
    options, seed, brown = dataset.patchify, dataset.seed, dataset.brown
    if options.patch_size != PATCH_SIZE:
        raise ValueError(f"the hpatches-release layout has {PATCH_SIZE}x{PATCH_SIZE} patches, "
                         f"got patch_size={options.patch_size}")
    if brown is not None:
        levels = list(options.jitter)
        bad = [t for t in brown.types if t != "ref" and t not in levels]
        if bad or not brown.types:
            raise ValueError(f"--brown-types must name 'ref' and/or jitter levels ({', '.join(levels)}), "
                             f"got {', '.join(brown.types) or 'nothing'}")
    if tuple(options.jitter) != ("e", "h", "t"):
        raise ValueError(f"the hpatches-release layout has the jitter levels e, h, t; got "
                         f"{', '.join(options.jitter) or 'none'}")
    seqs = sequences if isinstance(sequences, ImageSequences) else ImageSequences(sequences)
    wrong = [s for s in seqs if len(s) != 6]
    if wrong:
        raise ValueError(f"{wrong[0].path}: has {len(wrong[0])} images; the hpatches-release layout needs 6 "
                         f"(use sequence_patches() for other lengths)")
    names = [_output_name(s) for s in seqs]
    if len(set(names)) != len(names):
        raise ValueError(f"{seqs.root}: two sequences would be written to the same folder ({names})")
    test_names = _test_sequence_names(seqs, names, dataset.test_sequences, dataset.test_fraction, seed)
    out = check_output_folder(out, MARKER, overwrite)

    summary: dict = {"descnet": "patchify", "sequences_root": str(seqs.root), "seed": seed,
                     "options": options.to_json(),
                     "conventions": {
                         "frame": "maps normalised patch coords (u, v in [-1, 1]) to image pixels (OpenCV centres)",
                         "region": "square of half-side magnification * sigma; sigma = OpenCV SIFT size / 2",
                         "type_k": "e/h/t k = image k + 1 with that level's jitter; ref = image 1, no jitter",
                         "reprojection": "exact homography",
                     },
                     "rows": {}, "skipped": {}, "renamed": {}}
    brown_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    next_label = 0
    brown_rng = np.random.default_rng([seed, 1])
    iterator = seqs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(seqs, desc="patchify", unit="seq")
    with result_set(out, overwrite=True, earlier=_earlier_output(out)) as staged:
        tmp = staged.dir
        for image_offset, (sequence, name) in enumerate(zip(iterator, names)):
            patches, frames = sequence_patches(sequence, options, seed, return_frames=True)
            n = len(patches["ref"])
            if n == 0:
                summary["skipped"][sequence.name] = "no region fits inside all images"
                continue
            for kind, stack in patches.items():
                write_patch_stack(tmp / "hpatches-release" / name / f"{kind}.png", stack)
            summary["rows"][name] = n
            if name != sequence.name:
                summary["renamed"][sequence.name] = name
            if brown is not None:
                picked, rows, type_index = brown_patches(patches, brown.per_point, brown_rng, brown.types)
                kinds = list(frames)
                maps = np.stack([frames[kind] for kind in kinds])[type_index, rows]
                image_id = image_offset * len(sequence) + np.array([_image_of(k) - 1 for k in kinds])[type_index]
                brown_parts.append((picked, rows + next_label, _interest(maps, image_id)))
                next_label += n
        if not summary["rows"]:
            raise ValueError(f"{seqs.root}: no patches from any sequence (every region left an image); try "
                             f"a smaller --mr-size or weaker jitter")
        if brown is not None:
            patches64 = np.concatenate([p[0] for p in brown_parts])
            labels = np.concatenate([p[1] for p in brown_parts])
            interest = np.concatenate([p[2] for p in brown_parts])
            if next_label < 2:
                raise ValueError("--brown needs at least 2 scene points; only 1 was found")
            pairs = balanced_pairs(labels, brown.pairs, brown_rng)
            from descnet.data.phototour import write_phototour

            write_phototour(tmp, brown.name, patches64, labels, pairs, interest=interest)
            summary["brown"] = {"name": brown.name, "patches": len(labels), "points": next_label,
                                "pairs": len(pairs), "types": list(brown.types), "per_point": brown.per_point,
                                "interest": "image id (sequence index * images + k - 1), x, y, "
                                            "orientation (degrees), log2 of the region half-side"}
        if test_names is not None:
            lost = [n for n in test_names if n not in summary["rows"]]
            if lost:
                raise ValueError(f"test sequence(s) {', '.join(lost)} gave no patches (skipped); choose others")
        from descnet.data.hpatches import write_custom_tasks

        summary["tasks"] = write_custom_tasks(tmp / "tasks", summary["rows"], test_names, "custom", seed=seed)
        write_json(tmp / MARKER, summary)
    return summary


def _test_sequence_names(seqs: ImageSequences, names: list[str], test_sequences: Sequence[str] | None,
                         test_fraction: float | None, seed: int) -> list[str] | None:
    """Output names of the custom split's test sequences (None: no custom split), checked before any work."""
    if test_fraction is not None:
        count = min(max(1, round(test_fraction * len(names))), max(1, len(names) - 1))
        picked = np.random.default_rng([seed, 2]).choice(len(names), count, replace=False)
        return sorted(names[i] for i in picked)
    if test_sequences is None:
        return None
    by_name = {**{s.name: n for s, n in zip(seqs, names)}, **{n: n for n in names}}
    unknown = [t for t in test_sequences if t not in by_name]
    if unknown or not test_sequences:
        raise ValueError(f"--test-sequences: {', '.join(unknown) or '(none given)'} not among the sequences of "
                         f"{seqs.root} ({', '.join(names)})")
    return list(dict.fromkeys(by_name[t] for t in test_sequences))


def _interest(maps: np.ndarray, image_id: np.ndarray) -> np.ndarray:
    """Brown ``interest.txt`` rows for frames ``(N, 3, 3)``: image id, x, y, orientation (deg), log2 half-side."""
    centre = maps[:, :2, 2] / maps[:, 2:, 2]
    jac = _jacobian_at_centre(maps) if len(maps) else np.zeros((0, 2, 2))
    angle = np.degrees(np.arctan2(-jac[:, 1, 0], jac[:, 0, 0]))
    scale = np.log2(np.sqrt(np.abs(np.linalg.det(jac)))) if len(maps) else np.zeros(0)
    return np.column_stack([image_id, centre, angle, scale]).astype(np.float64)
