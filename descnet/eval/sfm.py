"""Compare descriptors by structure from motion, as hloc compares RootSIFT and DoG + SOSNet.

Every descriptor describes the *same* keypoints of the same images (the first descriptor detects them, the
others describe its keypoints), matches the same pairs with the same matcher, and goes through the same COLMAP
import, geometric verification and incremental mapping (:func:`descnet.geometry.colmap.reconstruct`). COLMAP's own
pipeline (its SIFT, exhaustive matching, same mapping: :func:`descnet.geometry.colmap.reconstruct_colmap_sift`) is the
reference row. The table has hloc's columns: registered images, 3D points, observations, mean track length,
mean reprojection error, and the pairs and matches COLMAP's verification kept; seconds are the whole pipeline's
(describe + match + COLMAP; for the reference, COLMAP's extraction + matching + mapping).

Defaults follow COLMAP's own SIFT pipeline, so the rows differ by the descriptor only: up to 8192 keypoints per
image, mutual nearest neighbours passing the ratio test at 0.8 (COLMAP: ratio 0.8 with cross-check).

Output folder::

    OUT/<label>/features.h5, matches.h5     hloc-layout files (grown on reruns: finished images and pairs skip)
    OUT/<label>/colmap/                      database.db, model/, summary.json, summary.md
    OUT/colmap-sift/                         the reference reconstruction
    OUT/sfm.json, OUT/sfm.md                 settings, environment, one summary per row; the table

With ground-truth cameras (``ground_truth``: a Strecha scene or a COLMAP model,
:func:`descnet.geometry.cameras.read_ground_truth`), every row also holds its camera errors after a robust
similarity alignment (:mod:`descnet.geometry.alignment`), and ``sfm.md`` starts with their table.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..geometry.alignment import format_camera_table
from ..geometry.colmap import SfmOptions, SfmSummary, format_table, import_pycolmap, reconstruct, reconstruct_colmap_sift
from ..features.files import read_features
from ..features.options import KeypointOptions, MatchOptions
from ..io import atomic_path, write_json
from ..features.pairs import check_pairs, exhaustive_pairs
from ..features.pipeline import describe_to_file, image_sources, match_to_file

__all__ = ["compare_sfm", "COLMAP_LABEL", "folder_name", "SFM_KEYPOINTS", "SFM_MATCHING"]

COLMAP_LABEL = "COLMAP SIFT (pycolmap)"
#: COLMAP's own SIFT pipeline's choices: up to 8192 keypoints per image; mutual nearest neighbours passing the
#: ratio test at 0.8, checked with a fundamental matrix
SFM_KEYPOINTS = KeypointOptions(max_keypoints=8192)
SFM_MATCHING = MatchOptions(matcher="smnn", ratio=0.8, geometry="fundamental")


def folder_name(label: str) -> str:
    """A file-system-safe folder name for a row label."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", label).strip("-.") or "model"


def compare_sfm(image_dir: str | os.PathLike, models: Mapping[str, Any], out: str | os.PathLike, *,
                image_list: str | os.PathLike | None = None, pairs: Sequence[tuple[str, str]] | None = None,
                colmap_sift: bool = True, keypoint_options: KeypointOptions = SFM_KEYPOINTS,
                match_options: MatchOptions = SFM_MATCHING, options: SfmOptions = SfmOptions(), device: str = "cpu",
                progress: bool = False, ground_truth: str | os.PathLike | None = None) -> dict[str, SfmSummary]:
    """Reconstruct ``image_dir`` with every descriptor of ``{label: model SPEC}`` -> ``{label: SfmSummary}``.

    Args:
        image_dir: the image folder; ``image_list``: only these images (names relative to it).
        models: row labels and model SPECs (``opencv-rootsift`` for OpenCV's RootSIFT on the same keypoints).
        out: the output folder (module docstring).
        pairs: image pairs to match (default: all pairs).
        colmap_sift: add COLMAP's own pipeline as the reference row (:data:`COLMAP_LABEL`).
        keypoint_options: the keypoints, detected once (:func:`descnet.features.pipeline.describe_to_file`);
            ``max_keypoints`` is also COLMAP's SIFT count.
        match_options: the matcher and the geometric check of the matches files
            (:func:`descnet.features.pipeline.match_to_file`; COLMAP verifies again when it imports them).
        options: COLMAP settings (:class:`descnet.geometry.colmap.SfmOptions`).
        ground_truth: ground-truth cameras (a Strecha scene or a COLMAP model folder): every row gets camera errors.

    Writes ``OUT/sfm.json`` and ``OUT/sfm.md`` after all rows are done.
    """
    import_pycolmap()  # fail before describing anything
    from ..runinfo import environment_info

    if not models and not colmap_sift:
        raise ValueError("nothing to compare: give at least one model or keep COLMAP's SIFT")
    folders = [folder_name(label) for label in models]
    if len(set(folders)) != len(folders) or "colmap-sift" in folders:
        raise ValueError(f"row labels must give distinct folder names (and not 'colmap-sift'): {', '.join(models)}")
    out = Path(out)
    images = image_sources([image_dir], image_list)
    names = list(images)
    pairs = check_pairs(exhaustive_pairs(names) if pairs is None else pairs, names, "pairs")
    truth = None
    if ground_truth is not None:  # read and checked before any work
        from ..geometry.cameras import read_ground_truth

        truth = read_ground_truth(ground_truth)
        if not any(name in truth for name in names):
            raise ValueError(f"{ground_truth}: holds no camera of the images of {image_dir} (e.g. {names[0]!r})")
    kp, mo = keypoint_options, match_options
    rows: dict[str, SfmSummary] = {}
    keypoints = None
    for (label, spec), folder in zip(models.items(), folders):
        where = out / folder
        described = describe_to_file(images, where / "features.h5", model=spec, keypoints=keypoints,
                                     options=keypoint_options, device=device, progress=progress)
        if keypoints is None:  # the first descriptor's keypoints are every descriptor's keypoints
            keypoints = {name: f.keypoints for name, f in read_features(where / "features.h5", names).items()}
        matched = match_to_file(where / "features.h5", pairs, where / "matches.h5", options=match_options,
                                progress=progress)
        summary = reconstruct(image_dir, where / "features.h5", where / "matches.h5", where / "colmap",
                              pairs=pairs, options=options, label=label, progress=progress, ground_truth=truth)
        # the whole pipeline's time, as the reference row's (extraction + matching + mapping); a resumed run
        # counts only the images and pairs it described and matched
        seconds = {"describe": described.seconds, "match": matched.seconds,
                   **{f"colmap_{k}": v for k, v in summary.seconds.items() if k != "total"}}
        seconds["total"] = described.seconds + matched.seconds + summary.seconds.get("total", 0.0)
        rows[label] = replace(summary, seconds=seconds)
    if colmap_sift:
        rows[COLMAP_LABEL] = reconstruct_colmap_sift(image_dir, out / "colmap-sift", names=names,
                                                     max_features=kp.max_keypoints or 8192, options=options,
                                                     progress=progress, ground_truth=truth)
    settings = {"images": str(image_dir), "image_names": names, "pairs": len(pairs), "models": dict(models),
                "detector": kp.detector, "max_keypoints": kp.max_keypoints, "mr_size": kp.mr_size,
                "matcher": mo.matcher, "ratio": mo.ratio, "geometry": mo.geometry, "estimator": mo.estimator,
                "threshold": mo.threshold, "colmap": options.__dict__, "colmap_sift": colmap_sift,
                "ground_truth": None if ground_truth is None else str(ground_truth)}
    write_json(out / "sfm.json", {
        "evaluation": "sfm", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment_info(device), "settings": settings,
        "rows": {label: summary.to_dict() for label, summary in rows.items()}})
    with atomic_path(out / "sfm.md") as tmp:
        cameras = (format_camera_table({label: s.cameras for label, s in rows.items()}) + "\n\n"
                   if truth is not None else "")
        tmp.write_text(cameras + format_table(rows) + "\n")
    return rows
