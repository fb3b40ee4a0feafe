"""Compare descriptors by structure from motion, as hloc compares RootSIFT and DoG + SOSNet.

Every descriptor describes the *same* keypoints of the same images (the first descriptor detects them, the
others describe its keypoints), matches the same pairs with the same matcher, and goes through the same COLMAP
import, geometric verification and incremental mapping (:func:`descnet.geometry.colmap.reconstruct`). COLMAP's own
pipeline (its SIFT, exhaustive matching, same mapping: :func:`descnet.geometry.colmap.reconstruct_colmap_sift`) is the
reference row. The table has hloc's columns: registered images, 3D points, observations, mean track length,
mean reprojection error, and the pairs and matches COLMAP's verification kept; seconds are the whole pipeline's
(describe + match + COLMAP; for the reference, COLMAP's extraction + matching + mapping).

Defaults follow COLMAP's own SIFT pipeline, so the rows differ by the descriptor only: COLMAP's SIFT keypoints
(``colmap-sift``, up to 8192 locations per image); each descriptor is matched with its own recommended matcher
(:func:`descnet.features.options.recommended_match_options`: descnet's weights carry one chosen on their training
data; OpenCV SIFT and RootSIFT get COLMAP's mutual nearest neighbours passing the ratio test at 0.8, which is also
the setting of models without a recommendation); ``matcher``/``ratio`` given apply to every row. ``sfm.json``
records each row's setting and where it came from (``settings.matching``).

Output folder::

    OUT/<label>/features.h5, matches.h5     hloc-layout files (grown on reruns: finished images and pairs skip)
    OUT/<label>/colmap/                      database.db, model/, summary.json, summary.md
    OUT/colmap-sift/                         the reference reconstruction
    OUT/sfm.json, OUT/sfm.md                 settings, environment, one summary per row; the table

A rerun into the same folder adds its rows to those of earlier runs (a row of the same label is replaced);
the earlier rows must have the same settings (images, pairs, keypoints, matcher, COLMAP), else the run is
refused before any work (``overwrite`` replaces them). A row's files are reused only when they were made
with the same model (by its weights' digest), keypoint settings and images, and the matches from those
features (:mod:`descnet.features.pipeline`); otherwise the run is refused, naming both sides (``overwrite``
starts them afresh). ``sfm.json`` and ``sfm.md`` are written as one result set, each row's ``colmap/`` as
another (:func:`descnet.geometry.colmap.reconstruct`).

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
from ..features.options import COLMAP_KEYPOINTS, COLMAP_MATCHING, KeypointOptions, MatchOptions, recommended_match_options
from ..io import check_foreign_files, one_run_per_folder, read_json, result_set, write_json
from ..features.pairs import check_pairs, exhaustive_pairs
from ..features.pipeline import describe_to_file, image_sources, match_to_file

__all__ = ["compare_sfm", "COLMAP_LABEL", "folder_name", "SFM_KEYPOINTS", "SFM_MATCHING", "SFM_RESULT_FILES",
           "matching_note"]

COLMAP_LABEL = "COLMAP SIFT (pycolmap)"
#: COLMAP's own SIFT pipeline's choices (:data:`descnet.features.options.COLMAP_KEYPOINTS`, ``COLMAP_MATCHING``): its
#: SIFT detection (``colmap-sift``: the keypoints COLMAP's extraction finds, up to 8192 locations per image); mutual
#: nearest neighbours passing the ratio test at 0.8, checked with a fundamental matrix
SFM_KEYPOINTS = COLMAP_KEYPOINTS
SFM_MATCHING = COLMAP_MATCHING


#: the result files of the comparison (one result set in the output folder)
SFM_RESULT_FILES = ("sfm.json", "sfm.md")
#: settings that every row of one sfm.json shares (the models differ by row)
_ROW_INDEPENDENT = ("models", "matching", "colmap_sift")


def _earlier_rows(path: Path, settings: Mapping[str, Any],
                  overwrite: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(rows, models, matching)`` of an earlier ``sfm.json`` to keep beside this run's; ``ValueError`` when its settings
    differ (naming them and ``--overwrite``) or it is not descnet's result file."""
    if overwrite or not path.is_file():
        return {}, {}, {}
    try:
        old = read_json(path)
    except ValueError as err:
        raise ValueError(f"{err}; pass --overwrite to replace it, or use another --out") from None
    if not isinstance(old, dict) or old.get("evaluation") != "sfm" or not isinstance(old.get("rows"), dict):
        raise ValueError(f"{path}: not a descnet eval sfm result file; pass --overwrite to replace it, or use "
                         "another --out")
    before = old.get("settings") or {}
    differ = [k for k in settings if k not in _ROW_INDEPENDENT and before.get(k) != settings[k]]
    if differ:
        raise ValueError(f"{path}: holds rows of other settings ({', '.join(differ)} differ), which cannot share a "
                         "table; pass --overwrite to replace them, or use another --out")
    return old["rows"], dict(before.get("models") or {}), dict(before.get("matching") or {})


def matching_note(matching: Mapping[str, Mapping[str, Any]]) -> str:
    """One line per row: the matcher it used and where that came from (``sfm.json``'s ``settings.matching``)."""
    lines = []
    for label, m in matching.items():
        ratio = f" {m['ratio']:g}" if m.get("ratio") is not None else ""
        lines.append(f"- {label}: {m['matcher']}{ratio} ({m['origin']})")
    return "Matching:\n" + "\n".join(lines)


def folder_name(label: str) -> str:
    """A file-system-safe folder name for a row label."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", label).strip("-.") or "model"


@one_run_per_folder("out")
def compare_sfm(image_dir: str | os.PathLike, models: Mapping[str, Any], out: str | os.PathLike, *,
                image_list: str | os.PathLike | None = None, pairs: Sequence[tuple[str, str]] | None = None,
                colmap_sift: bool = True, keypoint_options: KeypointOptions = SFM_KEYPOINTS,
                match_options: MatchOptions = SFM_MATCHING, matcher: str | None = None, ratio: float | None = None,
                options: SfmOptions = SfmOptions(), device: str = "cpu", progress: bool = False,
                overwrite: bool = False, ground_truth: str | os.PathLike | None = None) -> dict[str, SfmSummary]:
    """Reconstruct ``image_dir`` with every descriptor of ``{label: model SPEC}`` -> ``{label: SfmSummary}``.

    Args:
        image_dir: the image folder; ``image_list``: only these images (names relative to it).
        models: row labels and model SPECs (``opencv-rootsift`` for OpenCV's RootSIFT on the same keypoints).
        out: the output folder (module docstring).
        pairs: image pairs to match (default: all pairs).
        colmap_sift: add COLMAP's own pipeline as the reference row (:data:`COLMAP_LABEL`).
        keypoint_options: the keypoints, detected once (:func:`descnet.features.pipeline.describe_to_file`);
            ``max_keypoints`` is also COLMAP's SIFT count.
        match_options: the geometric check of the matches files (:func:`descnet.features.pipeline.match_to_file`;
            COLMAP verifies again when it imports them) and the matcher of models without a recommendation.
        matcher, ratio: the matcher for every row (``None``: each model's recommended one; module docstring).
        options: COLMAP settings (:class:`descnet.geometry.colmap.SfmOptions`).
        overwrite: describe and match every row afresh, and drop the rows of earlier runs.
        ground_truth: ground-truth cameras (a Strecha scene or a COLMAP model folder): every row gets camera errors.

    Writes ``OUT/sfm.json`` and ``OUT/sfm.md`` after all rows are done, with the rows of earlier runs (module
    docstring). Returns this run's rows.
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
    matching = {label: recommended_match_options(spec, matcher, ratio, default=match_options)
                for label, spec in models.items()}  # checked before any work
    settings = {"images": str(image_dir), "image_names": names, "pairs": len(pairs), "models": dict(models),
                "detector": kp.detector, "max_keypoints": kp.max_keypoints, "mr_size": kp.mr_size,
                "matcher": matcher, "ratio": ratio, "geometry": mo.geometry, "estimator": mo.estimator,
                "threshold": mo.threshold, "colmap": options.__dict__, "colmap_sift": colmap_sift,
                "matching": {label: {**m.settings(), "origin": origin} for label, (m, origin) in matching.items()},
                "ground_truth": None if ground_truth is None else str(ground_truth)}
    _earlier_rows(out / "sfm.json", settings, overwrite)  # refused before any work
    check_foreign_files(out, SFM_RESULT_FILES)
    rows: dict[str, SfmSummary] = {}
    keypoints = None
    for (label, spec), folder in zip(models.items(), folders):
        where = out / folder
        described = describe_to_file(images, where / "features.h5", model=spec, keypoints=keypoints,
                                     options=keypoint_options, device=device, progress=progress, overwrite=overwrite)
        if keypoints is None:  # the first descriptor's keypoints are every descriptor's keypoints
            keypoints = {name: f.keypoints for name, f in read_features(where / "features.h5", names).items()}
        matched = match_to_file(where / "features.h5", pairs, where / "matches.h5", options=matching[label][0],
                                progress=progress, overwrite=overwrite)
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
    with result_set(out) as staged:  # both files, or (after a failure or kill) both as before
        # the earlier rows as they are now, under the folder's lock: a run that finished meanwhile is kept
        earlier_rows, earlier_models, earlier_matching = _earlier_rows(out / "sfm.json", settings, overwrite)
        all_rows = {**{label: row for label, row in earlier_rows.items() if label not in rows},
                    **{label: summary.to_dict() for label, summary in rows.items()}}
        settings = {**settings, "models": {**{k: v for k, v in earlier_models.items() if k in all_rows},
                                           **dict(models)},
                    "matching": {**{k: v for k, v in earlier_matching.items() if k in all_rows},
                                 **settings["matching"]},
                    "colmap_sift": colmap_sift or COLMAP_LABEL in all_rows}
        table = {label: _summary(row) for label, row in all_rows.items()}
        write_json(staged.path("sfm.json"), {
            "evaluation": "sfm", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "environment": environment_info(device), "settings": settings, "rows": all_rows})
        cameras = (format_camera_table({label: row.cameras for label, row in table.items()}) + "\n\n"
                   if any(row.cameras is not None for row in table.values()) else "")
        staged.path("sfm.md").write_text(cameras + format_table(table) + "\n\n" + matching_note(settings["matching"])
                                         + "\n")
    return rows


def _summary(row: Mapping[str, Any]) -> SfmSummary:
    """An :class:`SfmSummary` from a row of ``sfm.json`` (fields a newer version added are ignored)."""
    from dataclasses import fields

    known = {f.name for f in fields(SfmSummary)}
    return SfmSummary(**{k: v for k, v in row.items() if k in known})
