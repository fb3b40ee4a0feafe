"""Patch sets from 3D points seen in several images: the Brown layout and the HPatches-style layout.

Input: plain arrays, one row per *observation* (a scene point seen in one image) -- the point's id, the
image, the region's centre, half-side and orientation -- e.g. the kept tracks of a COLMAP reconstruction
(:func:`descnet.geometry.tracks.reconstruction_patches`). Patches are sampled anti-aliased from the image
pyramid (:class:`descnet.data.patchify.Pyramid`), frames as in :mod:`descnet.data.patchify` (orientation in
its convention; NaN = the dominant gradient orientation, :func:`~descnet.data.patchify.dominant_orientations`).

Output of :func:`write_point_patch_dataset` (``descnet data patches --reconstruction``), written as a unit::

    OUT/patchify.json                   options, counts, the sequences and their images ("source": "points")
    OUT/<brown>/                        Brown layout (data/phototour.py's writer): one 64x64 patch per
                                        observation, at most ``max_per_point`` per point (drawn with the seed),
                                        info.txt = the point ids (patches of a point consecutive), interest.txt
                                        = image index, x, y, orientation (degrees), log2 half-side; m50 pairs,
                                        half matching (data/patchify.py's balanced_pairs)
    OUT/hpatches-release/v_<image>/     HPatches-style sequences (data/hpatches.py's writer), below
    OUT/tasks/                          HPatches task files (split ``full``; ``custom`` with a test fraction)

**HPatches-style sequences**: a sequence is 6 images that see the same points. Images are taken as reference
in decreasing number of observations; the 5 others are added greedily, each the image sharing the most of
the points still common to the sequence; a point joins at most one sequence (so its label is unique
across sequences) and sequences with fewer than ``min_rows`` rows are skipped. Row i of ``ref`` is the point
in the reference image (its own region, no jitter); ``e_k``, ``h_k``, ``t_k`` are the point in image k + 1 at
*its own* region there (the detector's, or the fixed-scale one), composed with the easy / hard / tough
affine jitter of :data:`descnet.data.patchify.JITTER_LEVELS` (drawn per point and image with the seed), the
detector-like noise HPatches adds.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from descnet.data.patchify import JITTER_LEVELS, MARKER, Jitter

__all__ = ["PointPatchOptions", "cut_patches", "point_sequences", "write_point_patch_dataset"]

SEQUENCE_IMAGES = 6


@dataclass(frozen=True)
class PointPatchOptions:
    """The layouts :func:`write_point_patch_dataset` writes.

    Attributes:
        brown: folder name of the Brown copy under OUT (``None``: none).
        max_per_point: Brown patches per point at most (a random subset of its observations beyond that).
        pairs: Brown test pairs (``m50_<pairs>_<pairs>_0.txt``), half matching, drawn with replacement (the
            default 100,000 is the file ``eval brown`` reads by default).
        hpatches: write the HPatches-style sequences (``hpatches-release`` + ``tasks``).
        min_rows: an HPatches-style sequence needs at least this many points.
        max_rows: and keeps at most this many (random subset with the seed; ``None``: all).
        jitter: level letter -> :class:`~descnet.data.patchify.Jitter` of the e/h/t types.
        test_fraction: draw this fraction of the sequences as the test set of the split ``custom``.
        seed: every random draw (Brown subset and pairs, jitter, rows, test sequences).
    """

    brown: str | None = "points"
    max_per_point: int = 10
    pairs: int = 100_000
    hpatches: bool = True
    min_rows: int = 20
    max_rows: int | None = 2000
    jitter: Mapping[str, Jitter] = field(default_factory=lambda: dict(JITTER_LEVELS))
    test_fraction: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.brown is not None and (not self.brown or "/" in self.brown or self.brown.startswith(".")
                                       or self.brown in ("hpatches-release", "tasks")):
            raise ValueError(f"brown must be a plain folder name such as 'points', got {self.brown!r}")
        if self.brown is None and not self.hpatches:
            raise ValueError("nothing to write: no Brown folder and no HPatches-style sequences")
        if self.max_per_point < 2:
            raise ValueError(f"max_per_point must be at least 2, got {self.max_per_point}")
        if self.pairs < 2:
            raise ValueError(f"pairs must be at least 2, got {self.pairs}")
        if self.min_rows < 1 or (self.max_rows is not None and self.max_rows < self.min_rows):
            raise ValueError(f"need 1 <= min_rows <= max_rows, got {self.min_rows} and {self.max_rows}")
        if tuple(self.jitter) != ("e", "h", "t"):
            raise ValueError(f"the HPatches layout has the jitter levels e, h, t; got {', '.join(self.jitter)}")
        if self.test_fraction is not None and not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {self.test_fraction}")


def _grey(path: Path) -> np.ndarray:
    from descnet.data.images import read_image, to_gray, to_uint8

    image = read_image(path, gray=True)
    return image if image.dtype == np.uint8 else to_uint8(to_gray(image))  # 16-bit: 8 bits like describe's


def cut_patches(image_files: Sequence[str | os.PathLike], image: np.ndarray, xy: np.ndarray, half_side: np.ndarray,
                angle: np.ndarray, size: int, jitter: np.ndarray | None = None,
                pyramids: dict[int, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sample one patch per observation.

    Args:
        image_files: the images, ``(I,)``.
        image: int ``(M,)`` index into ``image_files``; xy ``(M, 2)`` centres (pixel centres at integers);
            half_side ``(M,)`` pixels; angle ``(M,)`` radians (patchify's convention, NaN: dominant gradient).
        size: patch side (64 for Brown, 65 for HPatches).
        jitter: optional float64 ``(M, 3, 3)`` affine maps in normalised patch coordinates composed on the right.
        pyramids: a dict to keep each image's pyramid in between calls (image index -> pyramid).

    Returns:
        uint8 ``(M, size, size)`` patches and float64 ``(M, 3, 3)`` frames (normalised patch coords -> pixels).
    """
    from descnet.data.patchify import Pyramid, dominant_orientations, reference_frames, warp_patches

    image = np.asarray(image, np.int64)
    m = len(image)
    patches = np.zeros((m, size, size), np.uint8)
    frames = np.zeros((m, 3, 3))
    for i in np.unique(image).tolist():
        rows = np.flatnonzero(image == i)
        if pyramids is None:  # one image in memory at a time
            pyramid = Pyramid(_grey(Path(image_files[i])))
        else:
            if i not in pyramids:
                pyramids[i] = Pyramid(_grey(Path(image_files[i])))
            pyramid = pyramids[i]
        a = np.asarray(angle, np.float64)[rows].copy()
        unknown = ~np.isfinite(a)
        if unknown.any():
            a[unknown] = dominant_orientations(pyramid, xy[rows][unknown], half_side[rows][unknown] / 4.5)
        f = reference_frames(np.asarray(xy, np.float64)[rows], np.asarray(half_side, np.float64)[rows], a)
        if jitter is not None:
            f = f @ jitter[rows]
        frames[rows] = f
        patches[rows] = warp_patches(pyramid, f, size)
    return patches, frames


def point_sequences(point_id: np.ndarray, image: np.ndarray, min_rows: int) -> list[tuple[list[int], np.ndarray]]:
    """Group observations into HPatches-style sequences (module docstring).

    Returns ``[(images, points)]``: 6 image indices (reference first) and the int64 ids of the points that
    all 6 see, each point in one sequence at most.
    """
    point_id, image = np.asarray(point_id), np.asarray(image)
    seen: dict[int, set[int]] = {}
    for p, i in zip(point_id.tolist(), image.tolist()):
        seen.setdefault(i, set()).add(p)
    used: set[int] = set()
    out = []
    for ref in sorted(seen, key=lambda i: (-len(seen[i]), i)):
        common = seen[ref] - used
        images = [ref]
        while len(images) < SEQUENCE_IMAGES and len(common) >= min_rows:
            best = max((i for i in seen if i not in images), key=lambda i: (len(common & seen[i]), -i), default=None)
            if best is None:
                break
            images.append(best)
            common = common & seen[best]
        if len(images) == SEQUENCE_IMAGES and len(common) >= min_rows:
            out.append((images, np.array(sorted(common), np.int64)))
            used |= common
    return out


def _sequence_name(path: Path, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "", path.stem) or "img"
    name, k = f"v_{stem}", 1
    while name in taken:
        name, k = f"v_{stem}{k}", k + 1
    taken.add(name)
    return name


def write_point_patch_dataset(out: str | os.PathLike, image_files: Sequence[str | os.PathLike], point_id: np.ndarray,
                              image: np.ndarray, xy: np.ndarray, half_side: np.ndarray, angle: np.ndarray,
                              options: PointPatchOptions | None = None, info: Mapping[str, Any] | None = None,
                              overwrite: bool = False, progress: bool = False) -> dict:
    """Write the observations' patches in the Brown and HPatches-style layouts (module docstring).

    ``point_id``, ``image``, ``xy``, ``half_side``, ``angle``: one row per observation, sorted by ``point_id``
    (see :func:`cut_patches`). ``info`` goes into ``patchify.json``. An existing non-empty ``out`` is replaced
    only when it holds an earlier patch set (``patchify.json``) and ``overwrite`` is set. Returns the summary.
    """
    from descnet.data.hpatches import PATCH_SIZE, write_custom_tasks, write_patch_stack
    from descnet.data.patchify import _earlier_output, balanced_pairs, image_types
    from descnet.data.phototour import PATCH_SIZE as BROWN_SIZE
    from descnet.data.phototour import write_phototour
    from descnet.data.synth import check_output_folder
    from descnet.io import result_set, write_json

    options = options or PointPatchOptions()
    image_files = [Path(p) for p in image_files]
    point_id = np.asarray(point_id, np.int64)
    image = np.asarray(image, np.int64)
    xy, half_side, angle = (np.asarray(a, np.float64) for a in (xy, half_side, angle))
    m = len(point_id)
    if not (image.shape == (m,) and xy.shape == (m, 2) and half_side.shape == (m,) and angle.shape == (m,)):
        raise ValueError(f"one row per observation: point_id {point_id.shape}, image {image.shape}, xy {xy.shape}, "
                         f"half_side {half_side.shape}, angle {angle.shape}")
    if m and (np.any(np.diff(point_id) < 0) or image.min() < 0 or image.max() >= len(image_files)):
        raise ValueError("observations must be sorted by point id and name images 0..len(image_files) - 1")
    if m and not np.all(half_side > 0):
        raise ValueError("every half_side must be > 0 pixels")
    _, counts = np.unique(point_id, return_counts=True)
    if (counts >= 2).sum() < 2:
        raise ValueError(f"{(counts >= 2).sum()} point(s) seen at least twice: a patch set needs at least 2 "
                         f"(loosen the track filters or give a larger reconstruction)")
    out = check_output_folder(out, MARKER, overwrite)
    rng = np.random.default_rng([options.seed, 0x3D])
    summary: dict[str, Any] = {"descnet": "patchify", "source": "points", **dict(info or {}),
                               "options": {**asdict(options),
                                           "jitter": {k: asdict(v) for k, v in options.jitter.items()}},
                               "images_used": [str(p) for p in image_files]}
    with result_set(out, overwrite=True, earlier=_earlier_output(out)) as staged:
        tmp = staged.dir
        if options.brown is not None:
            # at most max_per_point observations per point, points with at least 2
            order = np.lexsort((rng.random(m), point_id))
            starts = np.flatnonzero(np.r_[True, point_id[order][1:] != point_id[order][:-1]])
            rank = np.arange(m) - np.repeat(starts, np.diff(np.r_[starts, m]))
            chosen = order[rank < options.max_per_point]
            chosen = chosen[np.lexsort((image[chosen], point_id[chosen]))]
            _, inverse, n = np.unique(point_id[chosen], return_inverse=True, return_counts=True)
            chosen = chosen[n[inverse] >= 2]
            patches, frames = cut_patches(image_files, image[chosen], xy[chosen], half_side[chosen], angle[chosen],
                                          BROWN_SIZE)
            labels = point_id[chosen]
            points = len(np.unique(labels))
            pairs = balanced_pairs(labels, options.pairs, rng)  # drawn with replacement, as data patches --brown
            from descnet.data.patchify import _interest

            write_phototour(tmp, options.brown, patches, labels, pairs, interest=_interest(frames, image[chosen]))
            summary["brown"] = {"name": options.brown, "patches": len(labels), "points": points, "pairs": len(pairs),
                                "per_point": options.max_per_point,
                                "interest": "image index (images_used), x, y, orientation (degrees), log2 of the "
                                            "region half-side"}
        if options.hpatches:
            summary["rows"], summary["sequences"] = {}, {}
            by_key = {(int(p), int(i)): r for r, (p, i) in enumerate(zip(point_id.tolist(), image.tolist()))}
            taken: set[str] = set()
            groups = point_sequences(point_id, image, options.min_rows)
            for images, points in groups:
                if options.max_rows is not None and len(points) > options.max_rows:
                    points = np.sort(rng.choice(points, options.max_rows, replace=False))
                name = _sequence_name(image_files[images[0]], taken)
                types = image_types(SEQUENCE_IMAGES, list(options.jitter))
                pyramids: dict[int, Any] = {}
                for kind in types:
                    k = 0 if kind == "ref" else int(kind[1:])
                    rows = np.array([by_key[(int(p), images[k])] for p in points], np.int64)
                    noise = None if kind == "ref" else options.jitter[kind[0]].sample(len(rows), rng)
                    stack, _ = cut_patches(image_files, image[rows], xy[rows], half_side[rows], angle[rows],
                                           PATCH_SIZE, noise, pyramids)
                    write_patch_stack(tmp / "hpatches-release" / name / f"{kind}.png", stack)
                summary["rows"][name] = len(points)
                summary["sequences"][name] = [image_files[i].name for i in images]
            if summary["rows"]:
                names = sorted(summary["rows"])
                test = None
                if options.test_fraction is not None and len(names) > 1:
                    count = min(max(1, round(options.test_fraction * len(names))), len(names) - 1)
                    test = sorted(np.random.default_rng([options.seed, 2]).choice(names, count, replace=False).tolist())
                summary["tasks"] = write_custom_tasks(tmp / "tasks", summary["rows"], test, "custom", seed=options.seed)
            elif options.brown is None:
                raise ValueError(f"no HPatches-style sequence: no {SEQUENCE_IMAGES} images share {options.min_rows} "
                                 f"points (lower min_rows, loosen the filters, or write the Brown layout)")
        write_json(tmp / MARKER, summary)
    return summary
