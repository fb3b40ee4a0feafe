"""Photos -> a COLMAP model in one call: describe, match every pair, reconstruct (``descnet reconstruct IMAGES``).

>>> summary = reconstruct_images("photos", "sfm")          # sfm/features.h5, sfm/matches.h5, sfm/colmap/
>>> summary.registered, summary.points3D, summary.seconds   # seconds per stage: describe, match, colmap_*

The steps are the composable ones of :mod:`descnet.features.pipeline` and :mod:`descnet.geometry.colmap`, with
COLMAP's own choices by default (:data:`~descnet.features.options.COLMAP_KEYPOINTS`: COLMAP's SIFT detection, up to
8192 locations; :data:`~descnet.features.options.COLMAP_MATCHING`: mutual nearest neighbours with ratio 0.8, a
fundamental matrix), so the result compares with COLMAP's own pipeline
(:func:`~descnet.geometry.colmap.reconstruct_colmap_sift`) by the descriptor only.

Output folder (the layout of one ``eval sfm`` row)::

    OUT/features.h5, OUT/matches.h5    hloc-layout files (a rerun adds missing images and pairs only)
    OUT/colmap/                        database.db, model/, summary.json, summary.md
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..features.options import COLMAP_KEYPOINTS, COLMAP_MATCHING, KeypointOptions, MatchOptions
from ..models.pretrained import DEFAULT_MODEL
from .colmap import SfmOptions, SfmSummary, import_pycolmap, reconstruct

__all__ = ["reconstruct_images"]


def reconstruct_images(image_dir: str | os.PathLike, out: str | os.PathLike, *, model: Any = DEFAULT_MODEL,
                       image_list: str | os.PathLike | None = None, pairs: Sequence[tuple[str, str]] | None = None,
                       keypoint_options: KeypointOptions = COLMAP_KEYPOINTS,
                       match_options: MatchOptions = COLMAP_MATCHING, options: SfmOptions = SfmOptions(),
                       device: str = "cpu", label: str | None = None, progress: bool = False,
                       log: Callable[[str], None] | None = None,
                       ground_truth: Mapping[str, Any] | None = None) -> SfmSummary:
    """Describe the images of ``image_dir``, match ``pairs`` (default: all), reconstruct with COLMAP -> the summary.

    Args:
        image_dir: the photo folder; ``image_list``: only these images (names relative to it).
        out: the output folder (module docstring).
        model: the descriptor (a model SPEC or module; default descnet's shipped model).
        keypoint_options, match_options: as :func:`descnet.features.pipeline.describe_to_file` and
            :func:`~descnet.features.pipeline.match_to_file` take them; COLMAP's choices by default.
        options: COLMAP settings (:class:`~descnet.geometry.colmap.SfmOptions`).
        label: the row label of the summary table (default: the model's label).
        progress: a progress bar with a time estimate for each stage (images, pairs, registered images).
        log: called with one line per finished stage.
        ground_truth: ``{image name: Camera}`` (:func:`descnet.geometry.cameras.read_ground_truth`): the summary
            then holds the camera errors (:func:`descnet.geometry.colmap.reconstruct`).

    Returns the :class:`~descnet.geometry.colmap.SfmSummary` of the reconstruction with ``seconds`` for the whole
    pipeline: ``describe``, ``match``, ``colmap_import``, ``colmap_verify``, ``colmap_map`` and ``total``.
    """
    import_pycolmap()  # fail before describing anything
    from ..features.pairs import check_pairs, exhaustive_pairs
    from ..features.pipeline import describe_to_file, image_sources, match_to_file
    from ..models import resolve_model
    from ..models.contract import model_label

    start = time.perf_counter()
    out = Path(out)
    images = image_sources([image_dir], image_list)
    names = list(images)
    pairs = check_pairs(exhaustive_pairs(names) if pairs is None else pairs, names, "pairs")
    if not pairs:
        raise ValueError(f"{image_dir}: {len(names)} image(s), no pair to match")
    net = resolve_model(model)
    described = describe_to_file(images, out / "features.h5", model=net, options=keypoint_options, device=device,
                                 progress=progress)
    if log is not None:
        log(f"described {len(described.described)} image(s) ({described.keypoints:,} keypoints) in "
            f"{described.seconds:.1f} s")
    matched = match_to_file(out / "features.h5", pairs, out / "matches.h5", options=match_options, progress=progress)
    if log is not None:
        log(f"matched {len(matched.matched)} pair(s) in {matched.seconds:.1f} s")
    summary = reconstruct(image_dir, out / "features.h5", out / "matches.h5", out / "colmap", pairs=pairs,
                          options=options, label=label or model_label(net), progress=progress,
                          ground_truth=ground_truth)
    seconds = {"describe": described.seconds, "match": matched.seconds,
               **{f"colmap_{k}": v for k, v in summary.seconds.items() if k != "total"},
               "total": time.perf_counter() - start}
    return replace(summary, seconds=seconds)
