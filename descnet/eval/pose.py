"""Relative pose of image pairs against ground truth: SuperGlue's AUC@5/10/20 for descriptors side by side.

Inputs (:func:`pose_tasks`), one of:

* a **Strecha scene folder** (``images/``, ``gt_dense_cameras/``; :func:`descnet.geometry.cameras.read_strecha_scene`):
  the pairs are every pair of its images (``i < j`` in name order), or with ``max_gap`` those with
  ``j - i <= max_gap`` (neighbours in the capture order, which is the name order in the benchmark);
* a **SuperGlue pairs file** with ground truth (``name0 name1 rot0 rot1 K0 K1 T_0to1``) and the image folder; EXIF
  rotations are applied as SuperGlue's ``match_pairs.py`` does (the image turned by ``np.rot90``, its intrinsics
  and the pose with it; :func:`descnet.geometry.cameras.rotate_pair`);
* **ground-truth cameras in a COLMAP model** and the image folder: pairs as for a Strecha scene.

Every image is read once per rotation, turned to grey, resized by ``scale`` (``cv2.INTER_AREA``; the size rounded
as SuperGlue's ``process_resize``: ``round(w * scale)``), its intrinsics scaled with it
(:func:`descnet.geometry.cameras.scale_intrinsics`). Keypoints are detected once per image (``keypoint_options``,
SIFT by default) and every descriptor describes the *same* keypoints; each row is matched with its model's
recommended matcher unless ``matcher``/``ratio`` set one for every row (:func:`benchmark_pose`; the matcher's
geometry is not used: the protocol estimates the pose itself).

Per pair and descriptor, :func:`descnet.geometry.pose.evaluate_pair_pose` computes the protocol (RANSAC, the
SuperGlue column) and the same with MAGSAC (a second, labelled column); per descriptor: AUC@5/10/20 of the pose
error over all pairs (percent; failures count as infinite error), mean precision and matching score (percent),
matches and inliers per pair, failed pairs. The pose evaluation itself takes milliseconds per pair.

:func:`benchmark_pose` is the whole ``descnet eval pose`` run: ``OUT/pose.json`` (settings, environment, summaries,
every pair), ``pose.md``, ``pose.tex`` and ``pose.png`` (cumulative pose error), written as one unit; a rerun into
the same folder adds its models (results of other settings are refused).
"""
from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from descnet.eval.report import BenchmarkRun
from descnet.features.options import COLMAP_MATCHING, KeypointOptions, MatchOptions
from descnet.geometry.cameras import PosePair
from descnet.geometry.pose import AUC_THRESHOLDS, POSE_METHODS

__all__ = ["POSE_MATCHING", "DEFAULT_SCALE", "pose_tasks", "scene_pairs", "load_views",
           "evaluate_pose", "summarize_pose", "format_pose_table", "latex_pose_table", "plot_pose_errors",
           "benchmark_pose"]

#: the matcher of models without a recommended one: mutual nearest neighbours passing Lowe's ratio test at 0.8
#: (COLMAP's, eval sfm's)
POSE_MATCHING = COLMAP_MATCHING
#: images are evaluated at half their size by default (3072x2048 Strecha photos -> 1536x1024)
DEFAULT_SCALE = 0.5
_CURVE_MAX = 30.0  # degrees shown by the cumulative plot


def scene_pairs(names: Sequence[str], max_gap: int | None = None) -> list[tuple[str, str]]:
    """Every pair ``(names[i], names[j])``, ``i < j``; with ``max_gap`` only ``j - i <= max_gap``."""
    if max_gap is not None and max_gap < 1:
        raise ValueError(f"max_gap must be at least 1, got {max_gap}")
    n = len(names)
    return [(names[i], names[j]) for i in range(n) for j in range(i + 1, n) if max_gap is None or j - i <= max_gap]


def _tasks_from_cameras(cameras: Mapping[str, Any], max_gap: int | None) -> list[PosePair]:
    from descnet.geometry.cameras import relative_pose

    names = sorted(cameras)
    return [PosePair(a, b, 0, 0, cameras[a].K, cameras[b].K, relative_pose(cameras[a], cameras[b]))
            for a, b in scene_pairs(names, max_gap)]


def pose_tasks(scene: str | os.PathLike | None = None, *, pairs: str | os.PathLike | None = None,
               cameras: str | os.PathLike | None = None, images: str | os.PathLike | None = None,
               max_gap: int | None = None) -> tuple[Path, list[PosePair], dict[str, Any]]:
    """The pairs to evaluate (module docstring) -> ``(image folder, [PosePair], {"input": ..., ...})``.

    Give exactly one of ``scene`` (a Strecha folder), ``pairs`` (a SuperGlue pairs file) or ``cameras`` (a COLMAP
    model); ``images`` is the image folder of the latter two. Image sizes are checked against Strecha's cameras
    when the images are read (:func:`load_views`).
    """
    from descnet.geometry.cameras import cameras_from_colmap, read_pairs_with_pose, read_strecha_scene, \
        strecha_scene_root

    given = [name for name, v in (("a scene folder", scene), ("--pairs", pairs), ("--cameras", cameras)) if v]
    if len(given) != 1:
        raise ValueError("give one input: a Strecha scene folder, --pairs FILE --images DIR, or --cameras MODEL "
                         f"--images DIR (got {', '.join(given) if given else 'none'})")
    if scene is not None:
        root = strecha_scene_root(scene)
        if root is None:
            raise FileNotFoundError(f"{scene}: not a Strecha scene folder (images/ and gt_dense_cameras/)")
        cams = read_strecha_scene(root)
        info = {"input": "strecha", "scene": str(root), "max_gap": max_gap}
        return root / "images", _tasks_from_cameras(cams, max_gap), {**info, "_cameras": cams}
    if images is None:
        raise ValueError("--images DIR: the image folder is needed with --pairs and --cameras")
    images = Path(images)
    if not images.is_dir():
        raise FileNotFoundError(f"{images}: no such image folder")
    if pairs is not None:
        if max_gap is not None:
            raise ValueError("--max-gap selects pairs of a scene; a pairs file names its pairs itself")
        tasks = read_pairs_with_pose(pairs)
        return images, tasks, {"input": "pairs", "pairs": str(pairs), "images": str(images)}
    cams = cameras_from_colmap(cameras)
    return images, _tasks_from_cameras(cams, max_gap), {"input": "colmap", "cameras": str(cameras),
                                                        "images": str(images), "max_gap": max_gap}


@dataclass
class _View:
    gray: np.ndarray        # (H, W) uint8, resized and turned
    size: tuple[int, int]   # (width, height) after resizing, before turning
    stored: tuple[int, int]  # (width, height) of the file


def load_views(image_dir: Path, tasks: Sequence[PosePair], scale: float,
               cameras: Mapping[str, Any] | None = None) -> dict[tuple[str, int], _View]:
    """Read, grey, resize and turn every ``(image, rotation)`` of the tasks once -> ``{(name, rot): view}``. A
    missing image, or one whose size is not its camera's (``cameras``), is an error naming the file."""
    import cv2

    from descnet.data.images import read_image

    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    views: dict[tuple[str, int], _View] = {}
    keys = list(dict.fromkeys([(t.name0, t.rot0) for t in tasks] + [(t.name1, t.rot1) for t in tasks]))
    decoded: dict[str, tuple[np.ndarray, tuple[int, int]]] = {}  # name -> (resized grey image, stored (w, h))
    for name, rot in keys:
        if name not in decoded:
            gray = read_image(image_dir / name, gray=True)
            if gray.dtype != np.uint8:
                gray = (gray / 257).astype(np.uint8)
            h, w = gray.shape
            if cameras is not None and (cameras[name].width, cameras[name].height) != (w, h):
                raise ValueError(f"{image_dir / name}: the image is {w}x{h} but its camera is "
                                 f"{cameras[name].width}x{cameras[name].height}")
            size = (int(round(w * scale)), int(round(h * scale)))
            decoded[name] = (gray if size == (w, h) else cv2.resize(gray, size, interpolation=cv2.INTER_AREA), (w, h))
        small, stored = decoded[name]
        views[(name, rot)] = _View(np.ascontiguousarray(np.rot90(small, k=rot)), (small.shape[1], small.shape[0]),
                                   stored)
    return views


def _pair_geometry(task: PosePair, views: Mapping[tuple[str, int], _View]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intrinsics and pose of a task for its resized, turned images (scaled, then turned: SuperGlue's order)."""
    from descnet.geometry.cameras import rotate_pair, scale_intrinsics

    v0, v1 = views[(task.name0, task.rot0)], views[(task.name1, task.rot1)]
    K0 = scale_intrinsics(task.K0, v0.stored, v0.size)
    K1 = scale_intrinsics(task.K1, v1.stored, v1.size)
    return rotate_pair(PosePair(task.name0, task.name1, task.rot0, task.rot1, K0, K1, task.T_0to1), (v0.size, v1.size))


def evaluate_pose(views: Mapping[tuple[str, int], _View], tasks: Sequence[PosePair], models: Mapping[str, Any],
                  keypoint_options: KeypointOptions = KeypointOptions(),
                  match_options: MatchOptions | Mapping[str, MatchOptions] = POSE_MATCHING,
                  device: str = "cpu", progress: bool = False) -> tuple[dict[str, list[dict[str, Any]]],
                                                                         dict[str, dict[str, Any]]]:
    """Describe, match and score every task with every ``{label: resolved model}`` -> ``({label: [pair rows]},
    {label: {"seconds": {...}, "keypoints": mean per image, "warnings": [...]}})``. Keypoints are detected once per
    view and shared by all models. ``match_options``: every row's, or ``{label: options}`` (each model's own
    recommended matcher: :func:`descnet.features.options.recommended_match_options`)."""
    from descnet.eval.metrics import degenerate_warning
    from descnet.features.description import describe_images
    from descnet.features.keypoints import detect_keypoints
    from descnet.features.matching import match
    from descnet.geometry.pose import evaluate_pair_pose

    kp = keypoint_options
    matching = ({label: match_options for label in models} if isinstance(match_options, MatchOptions)
                else dict(match_options))
    keys = list(views)
    t0 = time.perf_counter()
    keypoints = {key: detect_keypoints(views[key].gray, kp.detector, kp.max_keypoints)[0] for key in keys}
    detect_seconds = time.perf_counter() - t0
    geometry = {i: _pair_geometry(t, views) for i, t in enumerate(tasks)}
    rows: dict[str, list[dict[str, Any]]] = {}
    info: dict[str, dict[str, Any]] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(models) * len(tasks), desc="eval pose", unit="pair")
    for label, model in models.items():
        t0 = time.perf_counter()
        feats = dict(zip(keys, describe_images([views[k].gray for k in keys], [keypoints[k] for k in keys],
                                               model=model, options=kp, device=device)))
        t1 = time.perf_counter()
        seconds = {"detect": detect_seconds, "describe": t1 - t0, "match": 0.0, "pose": 0.0}
        rows[label] = []
        for i, task in enumerate(tasks):
            f0, f1 = feats[(task.name0, task.rot0)], feats[(task.name1, task.rot1)]
            t2 = time.perf_counter()
            mo = matching[label]
            m = match(f0.descriptors, f1.descriptors, matcher=mo.matcher, ratio=mo.ratio).indices
            t3 = time.perf_counter()
            K0, K1, T = geometry[i]
            results = {method: evaluate_pair_pose(f0.keypoints, f1.keypoints, m, K0, K1, T, method=method)
                       for method in POSE_METHODS}
            seconds["match"] += t3 - t2
            seconds["pose"] += time.perf_counter() - t3
            r = results["ransac"]
            row = {"name0": task.name0, "name1": task.name1, "rot0": task.rot0, "rot1": task.rot1,
                   "keypoints": [len(f0), len(f1)], **{k: v for k, v in asdict(r).items()}}
            for method, res in results.items():
                if method != "ransac":
                    row.update({f"error_R_{method}": res.error_R, f"error_t_{method}": res.error_t,
                                f"inliers_{method}": res.inliers})
            rows[label].append(row)
            if bar is not None:
                bar.update(1)
        warning = degenerate_warning(np.concatenate([f.descriptors for f in feats.values()]), label)
        info[label] = {"seconds": seconds, "keypoints": float(np.mean([len(f) for f in feats.values()])),
                       "warnings": [warning] if warning else []}
    if bar is not None:
        bar.close()
    return rows, info


def _errors(rows: Sequence[Mapping[str, Any]], method: str = "ransac") -> np.ndarray:
    suffix = "" if method == "ransac" else f"_{method}"

    def value(x: Any) -> float:
        return float("inf") if x is None else float(x)
    return np.array([max(value(r[f"error_R{suffix}"]), value(r[f"error_t{suffix}"])) for r in rows])


def summarize_pose(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One descriptor's pair rows -> its summary: ``pairs``, ``auc`` and ``auc_magsac`` (percent at
    :data:`~descnet.geometry.pose.AUC_THRESHOLDS`), ``precision`` and ``matching_score`` (percent, means over
    pairs), ``matches``/``inliers`` per pair, ``failed`` pairs, ``median_error`` (degrees; inf -> None)."""
    from descnet.geometry.pose import pose_auc

    out: dict[str, Any] = {"pairs": len(rows)}
    for method in POSE_METHODS:
        key = "auc" if method == "ransac" else f"auc_{method}"
        out[key] = {str(t): 100.0 * a for t, a in zip(AUC_THRESHOLDS, pose_auc(_errors(rows, method), AUC_THRESHOLDS))}
    errors = _errors(rows)
    median = float(np.median(errors)) if len(errors) else float("inf")
    out.update(precision=100.0 * float(np.mean([r["precision"] for r in rows])) if rows else 0.0,
               matching_score=100.0 * float(np.mean([r["matching_score"] for r in rows])) if rows else 0.0,
               matches=float(np.mean([r["matches"] for r in rows])) if rows else 0.0,
               inliers=float(np.mean([r["inliers"] for r in rows])) if rows else 0.0,
               failed=int(np.isinf(errors).sum()), median_error=median if np.isfinite(median) else None)
    return out


def format_pose_table(models: Mapping[str, Mapping[str, Any]], notes: Sequence[str] = ()) -> str:
    """A markdown table, one row per descriptor: AUC@5/10/20 (SuperGlue's protocol, RANSAC), precision, matching
    score, matches per pair, failed pairs, and AUC@5/10/20 with MAGSAC (second column group)."""
    auc = [f"AUC@{t}" for t in AUC_THRESHOLDS]
    headers = ["descriptor", "matcher", *auc, "prec. %", "MScore %", "matches", "failed",
               *(f"{a} MAGSAC" for a in auc)]
    lines = ["| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
    for label, s in models.items():
        lines.append("| " + " | ".join([
            label, _matcher_cell(s.get("matching")), *(f"{s['auc'][str(t)]:.2f}" for t in AUC_THRESHOLDS),
            f"{s['precision']:.2f}",
            f"{s['matching_score']:.2f}", f"{s['matches']:.0f}", f"{s['failed']} / {s['pairs']}",
            *(f"{s['auc_magsac'][str(t)]:.2f}" for t in AUC_THRESHOLDS)]) + " |")
    lines += ["", "AUC of the pose error (max of rotation and translation-direction angle), percent; SuperGlue's "
              "protocol (essential matrix by RANSAC, 1 px / mean focal, confidence 0.99999); MAGSAC: the same with "
              "cv2.USAC_MAGSAC. Precision: matches with normalised symmetric epipolar error < 5e-4."]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines)


def _matcher_cell(matching: Mapping[str, Any] | None) -> str:
    """``smnn 0.9`` (a row's matcher and ratio), ``?`` for a row of an older result file."""
    if not matching:
        return "?"
    return matching["matcher"] + (f" {matching['ratio']:g}" if matching.get("ratio") is not None else "")


def latex_pose_table(models: Mapping[str, Mapping[str, Any]], caption: str) -> str:
    """A LaTeX ``table`` (booktabs) of :func:`format_pose_table`'s numbers."""
    from descnet.eval.report import _tex

    n = len(AUC_THRESHOLDS)
    body = []
    for label, s in models.items():
        cells = [f"{s['auc'][str(t)]:.2f}" for t in AUC_THRESHOLDS] + [f"{s['precision']:.2f}",
                                                                       f"{s['matching_score']:.2f}"]
        cells += [f"{s['auc_magsac'][str(t)]:.2f}" for t in AUC_THRESHOLDS]
        body.append(f"{_tex(label)} & " + " & ".join(cells) + r" \\")
    aucs = " & ".join(f"@{t}" for t in AUC_THRESHOLDS)
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{l{'r' * (2 * n + 2)}}}", r"\toprule",
        rf"Descriptor & \multicolumn{{{n}}}{{c}}{{AUC (RANSAC)}} & P & MS & \multicolumn{{{n}}}{{c}}{{AUC (MAGSAC)}} \\",
        rf" & {aucs} & & & {aucs} \\", r"\midrule", *body, r"\bottomrule", r"\end{tabular}",
        rf"\caption{{{_tex(caption)}}}", r"\label{tab:pose}", r"\end{table}", ""])


def plot_pose_errors(pairs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike, title: str) -> None:
    """Cumulative pose error: share of pairs with error <= x degrees (0..30), one line per descriptor (solid:
    the protocol's RANSAC, dashed: MAGSAC); written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from descnet.io import atomic_path

    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    x = np.linspace(0.0, _CURVE_MAX, 301)
    for i, (label, rows) in enumerate(pairs.items()):
        for method, style in (("ransac", "-"), ("magsac", "--")):
            errors = _errors(rows, method)
            share = (errors[None, :] <= x[:, None]).mean(1) if len(errors) else np.zeros_like(x)
            ax.plot(x, 100 * share, style, color=f"C{i % 10}", label=label if method == "ransac" else None)
    for t in AUC_THRESHOLDS:
        ax.axvline(t, color="gray", linewidth=0.6, linestyle=":")
    ax.set(xlabel="pose error [deg] (max of rotation, translation direction)", ylabel="pairs [%]", title=title,
           xlim=(0, _CURVE_MAX), ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", title="solid: RANSAC (protocol), dashed: MAGSAC", title_fontsize=7)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)


def _finite(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pair rows with infinite errors as None (JSON has no inf)."""
    return [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()} for r in rows]


def benchmark_pose(out: str | os.PathLike, scene: str | os.PathLike | None = None, *,
                   pairs: str | os.PathLike | None = None, cameras: str | os.PathLike | None = None,
                   images: str | os.PathLike | None = None, max_gap: int | None = None, models: Sequence[Any] = (),
                   baselines: bool = True, scale: float = DEFAULT_SCALE,
                   keypoint_options: KeypointOptions = KeypointOptions(), match_options: MatchOptions = POSE_MATCHING,
                   matcher: str | None = None, ratio: float | None = None, device: str = "cpu",
                   overwrite: bool = False, progress: bool = False) -> BenchmarkRun:
    """The whole ``descnet eval pose`` run (module docstring) -> :class:`~descnet.eval.report.BenchmarkRun`.

    Args:
        out: the result folder (``pose.json``, ``pose.md``, ``pose.tex``, ``pose.png``).
        scene, pairs, cameras, images, max_gap: the input (:func:`pose_tasks`).
        models: model SPECs (empty: :data:`descnet.models.pretrained.DEFAULT_MODEL`); ``baselines`` adds OpenCV's
            SIFT and RootSIFT on the same keypoints.
        scale: image scale (intrinsics scaled with it); keypoint_options: every row's.
        match_options, matcher, ratio: ``matcher``/``ratio`` given apply to every row; otherwise each model is
            matched with its own recommended matcher, and ``match_options`` (Lowe's ratio test at 0.8) serves the
            models without one (:func:`descnet.features.options.recommended_match_options`; OpenCV SIFT/RootSIFT
            keep Lowe's 0.8). Each row records its setting and where it came from (``matching``).
        overwrite: replace earlier results in ``out`` instead of adding these models to them.
    """
    from descnet.eval.report import check_earlier_results, merge_earlier_results
    from descnet.eval.sequences import label_models
    from descnet.features.options import recommended_match_options
    from descnet.io import result_set, write_json
    from descnet.models import resolve_model
    from descnet.models.pretrained import DEFAULT_MODEL
    from descnet.runinfo import environment_info

    specs = list(dict.fromkeys([*(models or [DEFAULT_MODEL]), *(["opencv-sift", "opencv-rootsift"] if baselines
                                                                 else [])]))
    labelled = label_models(specs)
    resolved = {label: resolve_model(spec) for label, spec in labelled.items()}  # fail fast on a bad SPEC
    matching = {label: recommended_match_options(net, matcher, ratio, default=match_options)
                for label, net in resolved.items()}
    image_dir, tasks, info = pose_tasks(scene, pairs=pairs, cameras=cameras, images=images, max_gap=max_gap)
    gt_cameras = info.pop("_cameras", None)
    if not tasks:
        raise ValueError("no pairs to evaluate (a scene needs at least two images)")
    kp = keypoint_options
    setting = {**info, "pairs_evaluated": [[t.name0, t.name1] for t in tasks], "scale": scale,
               "detector": kp.detector, "max_keypoints": kp.max_keypoints, "mr_size": kp.mr_size_or_default,
               "matcher": matcher, "ratio": ratio, "threshold_px": 1.0, "confidence": 0.99999}
    out = Path(out)
    path = out / "pose.json"
    check_earlier_results(path, {"setting": setting}, overwrite)  # before any work
    views = load_views(image_dir, tasks, scale, gt_cameras)
    rows, extra = evaluate_pose(views, tasks, resolved, kp, {label: m for label, (m, _) in matching.items()},
                                device=device, progress=progress)
    summaries = {label: {"spec": str(labelled[label]), **summarize_pose(rows[label]), **extra[label],
                         "matching": {"matcher": matching[label][0].matcher, "ratio": matching[label][0].ratio_or_default,
                                      "origin": matching[label][1]}}
                 for label in rows}
    payload = {"evaluation": "pose", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "environment": environment_info(device), "setting": setting, "models": summaries,
               "pairs": {label: _finite(r) for label, r in rows.items()}}
    payload, kept = merge_earlier_results(path, payload, ("setting",), overwrite, ("models", "pairs"))
    notes = [w for s in payload["models"].values() for w in s.get("warnings", [])]
    where = info.get("scene") or info.get("pairs") or info.get("cameras")
    caption = (f"Relative pose on {where}: {len(tasks)} pairs, images at scale {scale:g}, {kp.detector.upper()} "
               f"keypoints (up to {kp.max_keypoints}), each row matched as its matcher column says")
    with result_set(out) as staged:
        write_json(staged.path("pose.json"), payload)
        staged.path("pose.md").write_text(f"{caption}\n\n{format_pose_table(payload['models'], notes)}\n")
        staged.path("pose.tex").write_text(latex_pose_table(payload["models"], " ".join([caption + ".", *notes])))
        plot_pose_errors(payload["pairs"], staged.path("pose.png"), f"{Path(str(where)).name}: {len(tasks)} pairs")
        written = sorted(out / p.name for p in staged.dir.iterdir())
    return BenchmarkRun(payload, path, kept, written)
