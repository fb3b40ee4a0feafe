"""The Brown (UBC Phototour) benchmark: FPR95 of L2 descriptor distances on patch pairs, with ROC curves.

:func:`evaluate_brown` scores one model on pair lists of one patch set held in memory (or memory-mapped):
it describes only the patches the pairs use, block by block, with
:func:`descnet.features.inference.describe_patches`, ranks the pairs by L2 distance (float64) and computes
:func:`descnet.eval.fpr95.fpr95` and the ROC curve. The Trainer's validation calls it too, so a validation
figure and ``descnet eval brown`` agree on the same pairs.

:func:`benchmark_brown` is the whole run of ``descnet eval brown``: a subset on disk
(:class:`descnet.data.phototour.PhotoTour`), several models, earlier results in the output folder kept
(:func:`descnet.eval.report.merge_earlier_results`) and ``OUT/brown_<subset>.json`` plus the ROC figure
``OUT/brown_<subset>_roc.{png,pdf}`` written as one unit (:func:`descnet.io.result_set`)::

    run = benchmark_brown("data/brown", "notredame", ["hardnet:runs/lib/best.pt", "sift"], "results/brown")
    print(brown_table(run.payload))
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from descnet.eval.fpr95 import fpr95
from descnet.eval.metrics import degenerate_warning, roc
from descnet.eval.report import BenchmarkRun
from descnet.io import one_run_per_folder

__all__ = ["pair_distances", "roc_points", "evaluate_brown", "benchmark_brown", "brown_table", "DESCRIBE_BLOCK",
           "PROTOCOL"]

#: patches read (from a memory-mapped subset) and described per block
DESCRIBE_BLOCK = 1 << 15
PROTOCOL = ("FPR95: share of non-matching pairs with L2 distance <= the distance at which 95% of the matching pairs "
            "are accepted (fractions in [0, 1])")


def pair_distances(descriptors: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """L2 distances (float64 ``(M,)``) of the pairs ``(M, >=2)`` of patch indices, from float32 ``(N, D)``
    descriptors."""
    a = descriptors[pairs[:, 0]].astype(np.float64)
    b = descriptors[pairs[:, 1]].astype(np.float64)
    return np.sqrt(np.einsum("ij,ij->i", a - b, a - b))


def roc_points(fpr: np.ndarray, tpr: np.ndarray, count: int = 300) -> dict[str, list[float]]:
    """A few hundred points of a ROC curve ``(M,)``, ``(M,)`` (log-spaced in fpr, plus even steps), to keep
    in the result JSON so that a later run can draw the curves of every model."""
    n = len(fpr)
    if n == 0:
        return {"fpr": [], "tpr": []}
    idx = np.concatenate([np.searchsorted(fpr, np.logspace(-5, 0, count)), np.linspace(0, n - 1, count // 3)])
    idx = np.unique(np.clip(idx.astype(np.int64), 0, n - 1))
    return {"fpr": [float(v) for v in fpr[idx]], "tpr": [float(v) for v in tpr[idx]]}


def _check_pairs(pairs: Mapping[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    if not isinstance(pairs, Mapping) or not pairs:
        raise ValueError("pairs must be a non-empty {name: (M, 3) array of (i, j, is_match)} mapping")
    checked = {}
    for name, p in pairs.items():
        p = np.asarray(p)
        if p.ndim != 2 or p.shape[1] < 3 or not np.issubdtype(p.dtype, np.integer):
            raise ValueError(f"pairs {name}: must be an integer (M, 3) array of (i, j, is_match), got "
                             f"{p.dtype} {tuple(p.shape)}")
        if len(p) and (p[:, :2].min() < 0 or p[:, :2].max() >= count):
            raise ValueError(f"pairs {name}: patch indices must be in [0, {count}), got "
                             f"{p[:, :2].min()}..{p[:, :2].max()}")
        checked[str(name)] = p
    return checked


def evaluate_brown(model: Any, patches: Any, pairs: Mapping[str, np.ndarray], *, batch_size: int | None = None,
                   device: Any = "cpu", progress: bool = False, label: str = "descriptors") -> dict[str, Any]:
    """FPR95 of ``model`` on the pair lists ``pairs`` of the patch set ``patches``.

    Args:
        model: what :func:`descnet.features.inference.describe_patches` takes (an ``nn.Module`` or a resolved
            SPEC, :func:`descnet.models.resolve_model`).
        patches: uint8 ``(N, H, H)`` patches (an array or a memory-mapped one; only the patches the pairs use
            are read, :data:`DESCRIBE_BLOCK` at a time).
        pairs: ``{name: int (M, 3)}`` rows ``(i, j, is_match)`` indexing ``patches``, e.g. the m50 files of a
            subset (:meth:`descnet.data.phototour.PhotoTour.read_pairs`).
        batch_size, device: as :func:`~descnet.features.inference.describe_patches`.
        progress: a progress bar over the blocks; ``label`` names the model in it and in warnings.

    Returns:
        ``{"dim": D, "pairs": {name: {"fpr95", "pairs", "positives"}}, "roc": {"fpr", "tpr"}, "warnings": [...]}``;
        ``roc`` holds :func:`roc_points` of the first pair list; ``warnings`` a
        :func:`~descnet.eval.metrics.degenerate_warning` when the descriptors are degenerate.
    """
    from tqdm.auto import tqdm

    from descnet.features.inference import describe_patches

    pairs = _check_pairs(pairs, len(patches))
    needed = np.unique(np.concatenate([p[:, :2].ravel() for p in pairs.values()]))
    where = np.full(len(patches), -1, np.int64)
    where[needed] = np.arange(len(needed))
    blocks = range(0, len(needed), DESCRIBE_BLOCK)
    desc = np.concatenate([
        describe_patches(model, patches[needed[i:i + DESCRIBE_BLOCK]], batch_size=batch_size, device=device).numpy()
        for i in tqdm(blocks, desc=f"describe {label}", unit="block", disable=not progress, leave=False)])
    warning = degenerate_warning(desc, label)
    result: dict[str, Any] = {"dim": int(desc.shape[1]), "pairs": {}, "warnings": [warning] if warning else []}
    for index, (name, p) in enumerate(pairs.items()):
        dist = pair_distances(desc, where[p[:, :2]])
        matching = p[:, 2] != 0
        result["pairs"][name] = {"fpr95": fpr95(dist, matching), "pairs": int(len(p)),
                                 "positives": int(matching.sum())}
        if index == 0:
            result["roc"] = roc_points(*roc(dist, matching))
    return result


@one_run_per_folder("out")
def benchmark_brown(root: str | os.PathLike, subset: str, models: Sequence[str], out: str | os.PathLike, *,
                    pairs_files: Sequence[str] | None = None, all_pairs: bool = False,
                    cache_dir: str | os.PathLike | None = None, batch_size: int | None = None, device: str = "cpu",
                    overwrite: bool = False, progress: bool = False, verify_cache: bool = False,
                    log: Callable[[str], None] | None = None) -> BenchmarkRun:
    """Run the Brown benchmark of ``models`` on ``subset`` and write its results into ``out``.

    Args:
        root, subset, cache_dir: the patch set (:class:`descnet.data.phototour.PhotoTour`): liberty, notredame,
            yosemite, or a set written by ``descnet data patches --brown NAME``.
        models: model SPECs (:func:`descnet.models.resolve_model`), each resolved before any work; their
            labels (:func:`descnet.models.model_label`) must differ.
        pairs_files: m50 pair file names of the subset (default the 100k pairs,
            :data:`descnet.data.phototour.DEFAULT_PAIRS`); ``all_pairs``: every m50 file of the subset.
        out: the result folder: ``brown_<subset>.json`` and ``brown_<subset>_roc.{png,pdf}``; results of other
            models already there are kept unless ``overwrite`` (earlier results of other pair files are refused
            before any work).
        log: called with one line per model before it is described (``None``: silent).
        verify_cache: hash the subset's source files again before trusting its cache
            (:class:`~descnet.data.phototour.PhotoTour`).

    Returns:
        the :class:`~descnet.eval.report.BenchmarkRun` (payload as written, labels kept, files written).
    """
    from descnet.data.phototour import DEFAULT_PAIRS, PhotoTour
    from descnet.eval.report import check_earlier_results, check_unique_labels, merge_earlier_results, plot_roc
    from descnet.io import check_foreign_files, earlier_result_files, result_set, write_json
    from descnet.models import resolve_model, model_label
    from descnet.runinfo import environment_info

    labels = [model_label(s) for s in models]
    if not labels:
        raise ValueError("give at least one model SPEC")
    check_unique_labels(labels)
    resolved = [resolve_model(spec) for spec in models]  # fail fast on a bad SPEC
    data = PhotoTour(root, subset, cache_dir=cache_dir, progress=progress, verify_cache=verify_cache)
    data.require_labels()
    names = data.available_pairs() if all_pairs else list(pairs_files or [DEFAULT_PAIRS])
    if not names:
        raise FileNotFoundError(f"{data.folder}: no m50_* pair files")
    pairs = {name: data.read_pairs(name) for name in names}
    out = Path(out)
    path = out / f"brown_{subset}.json"
    # refuse up front (before any describing) to mix these results with earlier ones of other pairs files
    check_earlier_results(path, {"subset": subset, "pairs_files": names}, overwrite)
    stem = path.stem
    files = [path.name, f"{stem}_roc.png", f"{stem}_roc.pdf"]
    earlier = earlier_result_files(out, path.name, "descnet_brown", files)
    check_foreign_files(out, files, earlier)
    count = len(np.unique(np.concatenate([p[:, :2].ravel() for p in pairs.values()])))
    results = {}
    for spec, label, model in zip(models, labels, resolved):
        if log is not None:
            log(f"{label}: describing {count:,} patches of {subset}")
        results[label] = {"spec": spec, **evaluate_brown(model, data.patches, pairs, batch_size=batch_size,
                                                         device=device, progress=progress, label=label)}
    payload = {
        "descnet_brown": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "protocol": PROTOCOL, "subset": subset, "root": str(root), "pairs_files": names, "models": results,
        "data_warnings": [f"WARNING: {data.uncovered}"] if data.uncovered else [],
        "environment": environment_info(device),
    }
    payload, kept = merge_earlier_results(path, payload, ("subset", "pairs_files"), overwrite)
    results = payload["models"]
    curves = {lb: (np.asarray(r["roc"]["fpr"]), np.asarray(r["roc"]["tpr"])) for lb, r in results.items() if "roc" in r}
    # all files of this run, or (after a failure or kill) all as before
    with result_set(out, old_staging=[".brown-*"], earlier=earlier) as staged:
        write_json(staged.path(path.name), payload)
        plot_roc(curves, {lb: results[lb]["pairs"][names[0]]["fpr95"] for lb in curves},
                 [staged.path(f"{stem}_roc.png"), staged.path(f"{stem}_roc.pdf")], f"{subset}, {names[0]}")
        written = sorted(out / p.name for p in staged.dir.iterdir())
    return BenchmarkRun(payload, path, kept, written)


def brown_table(payload: Mapping[str, Any]) -> str:
    """The FPR95 table of a Brown result payload (percent; one row per model and pair file), its warnings below."""
    from descnet.eval.report import format_table

    results = payload["models"]
    rows = [[label, name, 100 * r["fpr95"], r["pairs"]] for label, res in results.items()
            for name, r in res["pairs"].items()]
    warnings = [*payload.get("data_warnings", []), *(w for r in results.values() for w in r.get("warnings", []))]
    return "\n".join([f"Brown {payload['subset']}: FPR95 (%), lower is better",
                      format_table(["descriptor", "pairs file", "FPR95 %", "pairs"], rows), *warnings])
