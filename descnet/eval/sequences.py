"""Image matching on full-image sequences with ground-truth homographies (HPatches or Oxford layout).

For every sequence and every target image ``k = 2..n``, the reference image 1 and image ``k`` are matched
with each descriptor on the *same* keypoints (detected once per image), and:

* **MMA@t** (mean matching accuracy, as in D2-Net's HPatches evaluation): the share of matches whose
  image-1 keypoint, mapped by the ground truth ``H_1_k``, lands within ``t`` pixels of its matched
  keypoint in image ``k``; a pair with no match scores 0. Averaged over pairs, for ``t = 1..10`` px.
  Computed on all matches, before geometric verification.
* **correct@t**: the number of those matches within ``t`` pixels (``t = 1, 3, 5``), i.e. MMA@t x matches
  of the pair, from the same reprojection errors; averaged over pairs. MMA alone rewards a descriptor for
  matching less (a few safe matches score high), so a better descriptor must win on correct matches too.
* **Homography accuracy@e** (as in SuperPoint's HPatches evaluation): a homography is estimated from
  the matches (:func:`descnet.features.matching.verify`, MAGSAC by default); its *corner error* is the mean
  distance between the four corners ``(0, 0), (W-1, 0), (W-1, H-1), (0, H-1)`` of image 1 mapped by it
  and by ``H_1_k``; accuracy@e = share of pairs with corner error ``<= e`` px (``e = 1, 3, 5``); a
  pair without a homography fails.
* Matches and inliers per pair.

Every number is reported over all pairs and split by sequence kind (``illumination`` for ``i_*``,
``viewpoint`` for ``v_*``, ``other`` for names without that prefix, e.g. Oxford's ``graf``).
The OpenCV baselines ``opencv-sift`` and ``opencv-rootsift`` are labelled "SIFT (OpenCV)" and
"RootSIFT (OpenCV)" (:mod:`descnet.features.description`).

:func:`evaluate_sequences` scores models in memory; :func:`benchmark_sequences` is the whole run of
``descnet eval sequences`` (sequence folders, the baselines, earlier results kept, ``OUT/sequences.json`` and
``OUT/mma.png`` written as one unit)::

    run = benchmark_sequences(["data/hpatches-sequences-release"], "results/eval/sequences",
                              models=["runs/csa"], keypoint_options=KeypointOptions(max_keypoints=1000))
    print(format_summary(run.payload["summary"]))
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import cv2
import numpy as np

from descnet.eval.metrics import DEGENERATE_SAMPLE
from descnet.eval.report import BenchmarkRun
from descnet.features.options import KeypointOptions, MatchOptions
from descnet.io import one_run_per_folder

__all__ = ["MMA_THRESHOLDS", "CORRECT_THRESHOLDS", "HOMOGRAPHY_THRESHOLDS", "PairResult", "reprojection_errors",
           "correct_matches", "matching_accuracy", "corner_error", "evaluate_sequences", "summarize",
           "format_summary", "plot_mma", "table_label", "label_models", "pair_rows", "select_sequences",
           "benchmark_sequences"]

MMA_THRESHOLDS = tuple(range(1, 11))
CORRECT_THRESHOLDS = (1, 3, 5)
HOMOGRAPHY_THRESHOLDS = (1, 3, 5)
KINDS = ("illumination", "viewpoint", "other")
_BASELINE_LABELS = {"opencv-sift": "SIFT (OpenCV)", "opencv-rootsift": "RootSIFT (OpenCV)"}


@dataclass(frozen=True)
class PairResult:
    """Scores of one image pair (reference image 1, target image ``target``) for one descriptor."""

    sequence: str
    kind: str                    # 'illumination', 'viewpoint' or 'other'
    target: int
    keypoints: tuple[int, int]   # keypoints in image 1 and image k
    matches: int
    inliers: int
    mma: tuple[float, ...]       # accuracy at each of MMA_THRESHOLDS
    correct: tuple[int, ...]     # matches within t px at each of CORRECT_THRESHOLDS (= MMA@t x matches)
    corner_error: float          # px; inf when no homography was found


def table_label(spec: Any) -> str:
    """Table name of a model SPEC: the OpenCV baselines get readable names ("SIFT (OpenCV)"), the rest
    :func:`descnet.models.model_label`."""
    if str(spec) in _BASELINE_LABELS:
        return _BASELINE_LABELS[str(spec)]
    from descnet.models import model_label

    return model_label(spec)


def label_models(specs: Iterable[Any]) -> dict[str, Any]:
    """``{table label: SPEC}`` for model SPECs (:func:`table_label`); two SPECs with one label are refused."""
    models: dict[str, Any] = {}
    for spec in specs:
        label = table_label(spec)
        if label in models:
            raise ValueError(f"model {spec}: two models share the table name {label!r}")
        models[label] = spec
    return models


def reprojection_errors(points1: np.ndarray, points2: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """``(M, 2)`` points of image 1 mapped by ``homography`` vs ``(M, 2)`` points of image 2 -> ``(M,)`` px."""
    p1 = np.asarray(points1, np.float64).reshape(-1, 2)
    p2 = np.asarray(points2, np.float64).reshape(-1, 2)
    if len(p1) == 0:
        return np.zeros(0)
    mapped = cv2.perspectiveTransform(p1[None], np.asarray(homography, np.float64))[0]
    return np.linalg.norm(mapped - p2, axis=1)


def correct_matches(errors: np.ndarray, thresholds: Iterable[float] = CORRECT_THRESHOLDS) -> np.ndarray:
    """Number of matches with reprojection error ``<= t`` for each threshold: ``(M,)`` px -> ``(T,)`` int."""
    errors = np.asarray(errors, np.float64).ravel()
    t = np.asarray(list(thresholds), np.float64)
    return (errors[None, :] <= t[:, None]).sum(axis=1)


def matching_accuracy(errors: np.ndarray, thresholds: Iterable[float] = MMA_THRESHOLDS) -> np.ndarray:
    """Share of matches with reprojection error ``<= t`` for each threshold: ``(M,)`` px -> ``(T,)``; 0 if M = 0."""
    counts = correct_matches(errors, thresholds)
    return counts / max(np.size(errors), 1)


def corner_error(estimated: np.ndarray | None, truth: np.ndarray, image_size: tuple[int, int]) -> float:
    """Mean distance between the image-1 corners mapped by ``estimated`` and by ``truth`` (px; inf if None).

    ``image_size`` is ``(H, W)`` of image 1; corners ``(0, 0), (W-1, 0), (W-1, H-1), (0, H-1)``.
    """
    if estimated is None:
        return float("inf")
    h, w = image_size
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    with np.errstate(all="ignore"):
        err = reprojection_errors(corners, cv2.perspectiveTransform(corners[None], truth)[0], estimated)
    err = float(err.mean())
    return err if np.isfinite(err) else float("inf")


def _kind(kind: str | None) -> str:
    return kind if kind in ("illumination", "viewpoint") else "other"


def evaluate_sequences(sequences: Iterable[Any], models: Mapping[str, Any],
                       keypoint_options: KeypointOptions = KeypointOptions(),
                       match_options: MatchOptions = MatchOptions(), device: str = "cpu",
                       progress: bool = False,
                       descriptor_sample: dict[str, list[np.ndarray]] | None = None) -> dict[str, list[PairResult]]:
    """Score every pair (1, k) of every sequence with every model -> ``{label: [PairResult, ...]}``.

    ``sequences``: :class:`descnet.data.sequences.Sequence` objects (or anything with ``name``, ``kind``,
    ``targets``, ``image(k, gray=True)`` and ``homographies[k]``). ``models``: ``{label: model}`` where a
    model is an ``nn.Module``, a SPEC, or ``"opencv-sift"`` / ``"opencv-rootsift"``. Keypoints are
    detected once per image (``keypoint_options``) and shared by all models; matches and the estimated
    homography follow ``match_options`` (its geometry must be ``homography``). ``descriptor_sample``: when
    given, filled with ``{label: [(N, D) descriptors, ...]}``, the first
    :data:`descnet.eval.metrics.DEGENERATE_SAMPLE` of each model (for :func:`descnet.eval.metrics.degenerate_warning`).
    """
    from descnet.features.description import describe_images
    from descnet.features.keypoints import detect_keypoints
    from descnet.features.matching import match, verify
    from descnet.models import resolve_model

    if match_options.geometry != "homography":
        raise ValueError(f"match_options.geometry must be homography (sequences are scored against ground-truth "
                         f"homographies), got {match_options.geometry!r}")
    kp, mo = keypoint_options, match_options
    models = {label: resolve_model(m) for label, m in models.items()}  # resolve each SPEC once
    sequences = list(sequences)
    results: dict[str, list[PairResult]] = {label: [] for label in models}
    total = sum(len(s.targets) for s in sequences)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total * len(models), desc="eval sequences", unit="pair")
    for seq in sequences:
        images = {1: seq.image(1, gray=True)}
        keypoints = {1: detect_keypoints(images[1], detector=kp.detector, max_keypoints=kp.max_keypoints)[0]}
        for k in seq.targets:
            images[k] = seq.image(k, gray=True)
            keypoints[k] = detect_keypoints(images[k], detector=kp.detector, max_keypoints=kp.max_keypoints)[0]
        for label, model in models.items():
            feats = dict(zip(images, describe_images(list(images.values()), list(keypoints.values()), model=model,
                                                     options=kp, device=device)))
            if descriptor_sample is not None:
                kept = descriptor_sample.setdefault(label, [])
                for f in feats.values():
                    if sum(len(d) for d in kept) < DEGENERATE_SAMPLE:
                        kept.append(f.descriptors)
            for k in seq.targets:
                f1, fk = feats[1], feats[k]
                m = match(f1.descriptors, fk.descriptors, matcher=mo.matcher, ratio=mo.ratio)
                p1, pk = f1.keypoints[m.indices[:, 0], :2], fk.keypoints[m.indices[:, 1], :2]
                errors = reprojection_errors(p1, pk, seq.homographies[k])
                v = verify(p1, pk, geometry=mo.geometry, estimator=mo.estimator, threshold=mo.threshold)
                results[label].append(PairResult(
                    sequence=seq.name, kind=_kind(seq.kind), target=int(k), keypoints=(len(f1), len(fk)),
                    matches=len(m.indices), inliers=int(v.inliers.sum()),
                    mma=tuple(float(a) for a in matching_accuracy(errors)),
                    correct=tuple(int(n) for n in correct_matches(errors)),
                    corner_error=corner_error(v.geometry_matrix, seq.homographies[k], images[1].shape[:2])))
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    return results


def summarize(results: Mapping[str, list[PairResult]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{label: {split: summary}}`` for splits ``all`` and each kind present.

    A summary has ``pairs``, ``mma`` (list over :data:`MMA_THRESHOLDS`), ``correct`` (mean correct matches
    per pair, ``{"1": .., "3": .., "5": ..}`` over :data:`CORRECT_THRESHOLDS`), ``homography_accuracy``
    (``{"1": .., "3": .., "5": ..}``), ``mean_corner_error`` (over pairs with a finite error),
    ``matches`` and ``inliers`` (means per pair) and ``keypoints`` (mean per image).
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for label, pairs in results.items():
        out[label] = {}
        for split in ("all", *KINDS):
            chosen = [p for p in pairs if split == "all" or p.kind == split]
            if not chosen:
                continue
            errors = np.array([p.corner_error for p in chosen])
            finite = errors[np.isfinite(errors)]
            out[label][split] = {
                "pairs": len(chosen),
                "mma": np.mean([p.mma for p in chosen], axis=0).tolist(),
                "correct": dict(zip(map(str, CORRECT_THRESHOLDS),
                                    np.mean([p.correct for p in chosen], axis=0).tolist())),
                "homography_accuracy": {str(e): float((errors <= e).mean()) for e in HOMOGRAPHY_THRESHOLDS},
                "mean_corner_error": float(finite.mean()) if len(finite) else None,
                "matches": float(np.mean([p.matches for p in chosen])),
                "inliers": float(np.mean([p.inliers for p in chosen])),
                "keypoints": float(np.mean([np.mean(p.keypoints) for p in chosen])),
            }
    return out


def format_summary(summary: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """A plain text table: one row per model and split.

    ``correct@t`` is the mean number of correct matches per pair; "-" for summaries written before it existed.
    """
    headers = ["model", "split", "pairs", "MMA@1", "MMA@3", "MMA@5", "MMA@10",
               *(f"correct@{t}" for t in CORRECT_THRESHOLDS), "H@1", "H@3", "H@5", "matches", "inliers"]
    rows = []
    for label, splits in summary.items():
        for split, s in splits.items():
            h, correct = s["homography_accuracy"], s.get("correct", {})
            rows.append([label, split, str(s["pairs"]), *(f"{s['mma'][t - 1]:.3f}" for t in (1, 3, 5, 10)),
                         *(f"{correct[str(t)]:.1f}" if str(t) in correct else "-" for t in CORRECT_THRESHOLDS),
                         *(f"{h[str(e)]:.3f}" for e in HOMOGRAPHY_THRESHOLDS), f"{s['matches']:.0f}",
                         f"{s['inliers']:.0f}"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def plot_mma(summary: Mapping[str, Mapping[str, Mapping[str, Any]]], path: str | os.PathLike) -> None:
    """Plot MMA (top row) and correct matches per pair (bottom row) against the pixel threshold.

    One column per split, one line (same colour in both rows) per model; written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from descnet.io import atomic_path

    splits = [s for s in ("all", *KINDS) if any(s in v for v in summary.values())]
    colors = {label: f"C{i % 10}" for i, label in enumerate(summary)}
    fig, axes = plt.subplots(2, len(splits), figsize=(4.2 * len(splits), 7.2), squeeze=False)
    for column, split in enumerate(splits):
        models = {label: v[split] for label, v in summary.items() if split in v}
        pairs = max(s["pairs"] for s in models.values())
        _plot_mma_panel(axes[0][column], models, colors, f"{split} ({pairs} pairs)")
        _plot_correct_panel(axes[1][column], models, colors)
    axes[0][0].set_ylabel("MMA")
    axes[0][0].legend(fontsize=8, loc="lower right")
    axes[1][0].set_ylabel("correct matches per pair")
    axes[1][0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=os.path.splitext(str(path))[1][1:] or "png")
    finally:
        plt.close(fig)


def _plot_mma_panel(ax: Any, models: Mapping[str, Mapping[str, Any]], colors: Mapping[str, str], title: str) -> None:
    """MMA over :data:`MMA_THRESHOLDS`, one line per ``{label: split summary}``."""
    for label, s in models.items():
        ax.plot(MMA_THRESHOLDS, s["mma"], marker="o", markersize=3, color=colors[label], label=label)
    ax.set_title(title)
    ax.set_xlabel("threshold [px]")
    ax.set_xlim(1, MMA_THRESHOLDS[-1])
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)


def _plot_correct_panel(ax: Any, models: Mapping[str, Mapping[str, Any]], colors: Mapping[str, str]) -> None:
    """Mean correct matches per pair at :data:`CORRECT_THRESHOLDS`, one line per ``{label: split summary}``."""
    for label, s in models.items():
        ax.plot(CORRECT_THRESHOLDS, [s["correct"][str(t)] for t in CORRECT_THRESHOLDS], marker="o", markersize=4,
                color=colors[label], label=label)
    ax.set_xlabel("threshold [px]")
    ax.set_xticks(CORRECT_THRESHOLDS)
    ax.set_xlim(CORRECT_THRESHOLDS[0] - 0.5, CORRECT_THRESHOLDS[-1] + 0.5)
    top = max(s["correct"][str(t)] for s in models.values() for t in CORRECT_THRESHOLDS)
    ax.set_ylim(0, 1.1 * top if top > 0 else 1)
    ax.grid(alpha=0.3)


def pair_rows(results: Mapping[str, list[PairResult]]) -> dict[str, list[dict[str, Any]]]:
    """``{label: [PairResult as a JSON-ready dict]}`` (inf corner errors become None)."""
    rows = {}
    for label, pairs in results.items():
        rows[label] = []
        for p in pairs:
            d = asdict(p)
            d["corner_error"] = p.corner_error if np.isfinite(p.corner_error) else None
            rows[label].append(d)
    return rows


def select_sequences(roots: Sequence[str | os.PathLike], kind: str | None = None,
                     names: Sequence[str] | None = None) -> list[Any]:
    """The sequences of ``roots`` (:class:`descnet.data.sequences.ImageSequences`), of ``kind`` and named in
    ``names`` when given; a name not found, or nothing left, is an error naming the roots."""
    from descnet.data.sequences import ImageSequences

    where = ", ".join(str(r) for r in roots)
    sequences = [seq for root in roots for seq in ImageSequences(root, kind=kind)]
    if names:
        known = {s.name for s in sequences}
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(f"sequence {missing[0]}: not found under {where}" + (f" of kind {kind}" if kind else ""))
        sequences = [s for s in sequences if s.name in names]
    if not sequences:
        raise ValueError(f"no sequences to evaluate under {where}" + (f" of kind {kind}" if kind else ""))
    return sequences


def _check_earlier_settings(path: Path, settings: Mapping[str, Any], overwrite: bool) -> None:
    """Refuse to add to an earlier ``sequences.json`` made with other settings (models aside)."""
    try:
        earlier = json.loads(path.read_text()).get("settings") if path.is_file() and not overwrite else None
    except (OSError, ValueError, AttributeError):
        return  # unreadable: merge_earlier_results refuses it
    if isinstance(earlier, dict):
        differ = sorted(k for k in {*earlier, *settings} - {"models"} if earlier.get(k) != settings.get(k))
        if differ:
            raise ValueError(f"{path}: holds results of other settings ({', '.join(differ)} differ), which cannot "
                             f"share a table; pass --overwrite to replace them, or use another --out")


@one_run_per_folder("out")
def benchmark_sequences(roots: Sequence[str | os.PathLike], out: str | os.PathLike, *, models: Sequence[Any] = (),
                        baselines: bool = True, kind: str | None = None, names: Sequence[str] | None = None,
                        keypoint_options: KeypointOptions = KeypointOptions(),
                        match_options: MatchOptions = MatchOptions(), device: str = "cpu", overwrite: bool = False,
                        progress: bool = False) -> BenchmarkRun:
    """Evaluate model SPECs on the sequences of ``roots`` and write ``out/sequences.json`` and ``out/mma.png``.

    Args:
        roots: folders of sequence folders, or sequence folders; ``kind`` and ``names`` select among them
            (:func:`select_sequences`).
        out: the result folder; results of other models already there are kept unless ``overwrite`` (earlier
            results of other settings are refused before any work).
        models: model SPECs (empty: the shipped default, :data:`descnet.models.pretrained.DEFAULT_MODEL`), each
            resolved before any work; ``baselines`` puts OpenCV's SIFT and RootSIFT first.
        keypoint_options, match_options, device, progress: as :func:`evaluate_sequences`.

    Returns:
        the :class:`~descnet.eval.report.BenchmarkRun` (payload as written, labels kept, files written).
    """
    from descnet.eval.metrics import degenerate_warning
    from descnet.eval.report import merge_earlier_results
    from descnet.io import earlier_result_files, result_set, write_json
    from descnet.models import resolve_model
    from descnet.models.pretrained import DEFAULT_MODEL
    from descnet.runinfo import environment_info

    specs = list(dict.fromkeys([*(["opencv-sift", "opencv-rootsift"] if baselines else []),
                                *(models or [DEFAULT_MODEL])]))
    labelled = label_models(specs)
    resolved = {label: resolve_model(spec) for label, spec in labelled.items()}  # fail fast on a bad SPEC
    sequences = select_sequences(roots, kind, names)
    out = Path(out)
    path = out / "sequences.json"
    kp, mo = keypoint_options, match_options
    settings = {"roots": [str(r) for r in roots], "sequences": [s.name for s in sequences],
                "models": {label: str(spec) for label, spec in labelled.items()}, "detector": kp.detector,
                "max_keypoints": kp.max_keypoints, "mr_size": kp.mr_size, "matcher": mo.matcher, "ratio": mo.ratio,
                "estimator": mo.estimator, "threshold": mo.threshold}
    _check_earlier_settings(path, settings, overwrite)  # before any work
    sample: dict[str, list[np.ndarray]] = {}
    results = evaluate_sequences(sequences, resolved, keypoint_options=kp, match_options=mo, device=device,
                                 progress=progress, descriptor_sample=sample)
    warnings = {}
    for label, parts in sample.items():  # constant descriptors: the figures mean nothing (as eval hpatches says)
        warning = degenerate_warning(np.concatenate(parts)[:DEGENERATE_SAMPLE], label) if parts else None
        if warning:
            warnings[label] = warning
    payload = {"evaluation": "sequences", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "environment": environment_info(device), "settings": settings, "summary": summarize(results),
               "pairs": pair_rows(results), "warnings": warnings}
    payload, kept = merge_earlier_results(path, payload, (), overwrite, ("summary", "pairs"))
    if kept:
        old = json.loads(path.read_text())
        earlier = old["settings"].get("models", {})
        payload["settings"] = {**settings, "models": {**{k: earlier.get(k) for k in kept}, **settings["models"]}}
        old_warnings = old.get("warnings") if isinstance(old.get("warnings"), dict) else {}
        payload["warnings"] = {**{k: v for k, v in old_warnings.items() if k in kept}, **warnings}
    earlier = earlier_result_files(out, path.name, "evaluation", [path.name, "mma.png"], "sequences")
    with result_set(out, earlier=earlier) as staged:  # both files, or (after a failure or kill) both as before
        write_json(staged.path(path.name), payload)
        plot_mma(payload["summary"], staged.path("mma.png"))
        written = sorted(out / p.name for p in staged.dir.iterdir())
    return BenchmarkRun(payload, path, kept, written)
