"""The HPatches benchmark run: descriptors of several models (cached) or CSV folders, the three tasks, the result files.

:func:`benchmark_hpatches` is the whole run of ``descnet eval hpatches``. For every model SPEC it describes the
patches of the split's test sequences once (:func:`describe_hpatches_cached`: an HDF5 file per model under the
cache folder, keyed by :func:`model_signature` and the content of each sequence's patch files, grown sequence by
sequence; :func:`descnet.data.download.cached_digests` keeps the files' digests in ``<cache>/.sources.json``
with their sizes and times, hashed again when one changes, or always with ``verify_cache``); descriptors in
the official CSV layout are read as they are. Each set is scored by :func:`descnet.eval.hpatches.evaluate_hpatches`
on the official task files; verification pairs missing from the task folder are generated
(:func:`descnet.eval.hpatches.generate_verification_pairs`, seeded) and every output says so, as it says when the
split and retrieval files were generated for a custom patch set (``GENERATED.json``, ``descnet data patches``).

Output folder ``out``: ``hpatches_<split>.{json,md,tex,png,pdf}`` (and ``tasks/`` with generated verification
pairs), written as one unit (:func:`descnet.io.result_set`); results of other models already there are kept.
Caching from Python::

    run = benchmark_hpatches("results/hpatches", root="data/hpatches/hpatches-release",
                             models=["rootsift", "hardnet:hardnet.pth"], split="a")
    run.payload["models"]["hardnet"]["matching"]
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from descnet.eval.descriptors import HPatchesDescriptors
from descnet.eval.hpatches import TASKS
from descnet.eval.report import BenchmarkRun
from descnet.io import one_run_per_folder

__all__ = ["benchmark_hpatches", "describe_hpatches_cached", "model_signature", "PROTOCOL"]

PROTOCOL = ("HPatches patch benchmark, python protocol of hpatches-benchmark (commit e0c993c), L2 distance; all "
            "values are fractions in [0, 1]")


def model_signature(spec: str) -> str | None:
    """What the descriptors of a model SPEC depend on (the cache key), or ``None`` when they are not
    reproducible (an untrained registry model: random initial weights). The model's content digest
    (:func:`descnet.models.model_digest`: architecture options and weights, the one identity features files
    record too); for a built-in model without weights of its own also descnet's and OpenCV's versions (its
    code is its definition)."""
    import cv2

    import descnet
    from descnet.models import list_models, model_digest, model_entry, resolve_model

    names = list_models()
    if spec in names:
        if model_entry(spec).trainable:
            return None  # random initial weights
        return f"builtin:{spec}:descnet-{descnet.__version__}:opencv-{cv2.__version__}:" \
               f"{model_digest(resolve_model(spec))}"
    name, sep, weights = spec.partition(":")
    if sep and name in names and not Path(weights).is_file():
        return None  # name:random and the like
    try:
        return f"sha256:{model_digest(resolve_model(spec))}"
    except (OSError, ValueError, KeyError):
        return None  # not a model: resolving it again reports why


def describe_hpatches_cached(spec: str, dataset: Any, sequences: Sequence[str], cache_dir: str | os.PathLike, *,
                             label: str, use_cache: bool = True, batch_size: int | None = None, device: str = "cpu",
                             progress: bool = False, log: Callable[[str], None] | None = None,
                             verify_cache: bool = False, signature: str | None = ...) -> HPatchesDescriptors:
    """Descriptors of ``sequences`` for a model SPEC: from ``cache_dir/<label>.h5`` when valid, else described.

    Args:
        spec: a model SPEC (:func:`descnet.models.resolve_model`).
        dataset: a :class:`descnet.data.hpatches.HPatches` (its ``root`` is part of the cache key).
        sequences: the sequences wanted; those the cache lacks are described and added to it.
        cache_dir: the cache folder. The file is used only when it was made with the same
            :func:`model_signature`; a sequence of it only when its patch files have the content (sha256) they
            had when it was described, and the same number of patches.
        label: the descriptor set's name (and the cache file's).
        use_cache: ``False`` describes again (and rewrites the cache).
        verify_cache: hash every patch file again instead of trusting digests recorded with unchanged sizes and
            times.
        log: called with a line saying where the descriptors come from (``None``: silent).
        signature: ``model_signature(spec)`` when the caller has it already (it builds the model and hashes
            every weight); by default it is computed here.

    Returns:
        float32 ``(N, D)`` descriptors per sequence and type, of ``sequences`` in that order. Untrained models
        (no signature) are never cached.
    """
    from descnet.eval.descriptors import read_descriptor_h5, write_descriptor_h5
    from descnet.eval.hpatches import describe_hpatches
    from descnet.models import resolve_model

    say = log or (lambda line: None)
    lengths = dataset.check(sequences)
    if signature is ...:
        signature = model_signature(spec)
    path = Path(cache_dir) / f"{label}.h5"
    cached, meta, digests = None, {}, {}
    if signature and use_cache and path.is_file():
        try:
            cached, meta = read_descriptor_h5(path, name=label)
        except ValueError:
            cached, meta = None, {}
        if cached is not None and meta.get("signature") != signature:
            cached = None
    if signature:
        digests = _sequence_digests(dataset, sequences, Path(cache_dir) / ".sources.json", verify_cache)
    held = (meta.get("sequence_sha256") or {}) if cached is not None else {}
    todo = [s for s in sequences if cached is None or s not in cached or held.get(s) != digests.get(s)
            or cached.lengths.get(s) != lengths[s]]
    if not todo:
        say(f"{label}: descriptors from the cache {path}")
        return HPatchesDescriptors.from_mapping(cached, sequences, name=label)
    model = resolve_model(spec)
    say(f"{label}: describing {len(todo)} sequences ({sum(lengths[s] for s in todo) * 16:,} patches)"
        + ("" if signature else " (untrained model: not cached)"))
    fresh = describe_hpatches(model, dataset, todo, batch_size=batch_size, device=device, progress=progress,
                              name=label)
    if cached is not None:  # keep what the cache had for other sequences
        keep = [s for s in cached.sequences if s not in fresh]
        merged = {**{s: cached[s] for s in keep}, **{s: fresh[s] for s in fresh.sequences}}
        fresh = HPatchesDescriptors.from_mapping(merged, keep + list(fresh.sequences), name=label)
    if signature:
        write_descriptor_h5(path, fresh, {"spec": spec, "label": label, "signature": signature,
                                          "patches": str(dataset.root.resolve()),
                                          "sequence_sha256": {s: digests.get(s) or held.get(s)
                                                              for s in fresh.sequences}})
    return HPatchesDescriptors.from_mapping(fresh, sequences, name=label)


def _sequence_digests(dataset: Any, sequences: Sequence[str], book: Path, verify: bool) -> dict[str, str]:
    """``{sequence: sha256 over its patch files' sha256}`` (:func:`descnet.data.download.cached_digests`)."""
    import hashlib

    from descnet.data.download import cached_digests

    files = {f"{s}/{t}": dataset.root / s / f"{t}.png" for s in sequences for t in dataset.types}
    found = cached_digests(files, book, verify)
    return {s: hashlib.sha256("".join(f"{t}:{found[f'{s}/{t}']};" for t in dataset.types).encode()).hexdigest()
            for s in sequences}


def _check_tasks(tasks: Sequence[str]) -> list[str]:
    tasks = [t.strip() for t in tasks if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"tasks: unknown task(s) {', '.join(unknown) or '(none given)'}; tasks are {', '.join(TASKS)}")
    return tasks


@one_run_per_folder("out")
def benchmark_hpatches(out: str | os.PathLike, *, root: str | os.PathLike | None = None, models: Sequence[str] = (),
                       descriptors: Sequence[str | os.PathLike] = (), split: str = "a", tasks: Sequence[str] = TASKS,
                       tasks_dir: str | os.PathLike | None = None, export_csv: str | os.PathLike | None = None,
                       cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                       verification_pairs: int = 1_000_000, seed: int = 42, batch_size: int | None = None,
                       device: str = "cpu", overwrite: bool = False, progress: bool = False,
                       log: Callable[[str], None] | None = None, verify_cache: bool = False) -> BenchmarkRun:
    """Evaluate the HPatches tasks for model SPECs and CSV descriptor folders and write the results into ``out``.

    Args:
        out: the result folder (module docstring); earlier results of another split or tasks are refused before
            any work, results of other models are kept unless ``overwrite``.
        root: the ``hpatches-release`` folder, needed for ``models``.
        models: model SPECs, described with :func:`describe_hpatches_cached` (cache ``cache_dir``, default
            ``out/descriptors``; ``use_cache=False`` describes again; ``verify_cache`` hashes the patch files again).
        descriptors: folders in the official CSV layout ``DIR/<sequence>/<type>.csv``; the folder name is the label.
        split, tasks, tasks_dir: the split of ``splits.json`` and the tasks (:data:`descnet.eval.hpatches.TASKS`);
            task files from ``tasks_dir`` (default :func:`descnet.data.hpatches.find_tasks_dir` of ``root``).
        export_csv: also write each model's descriptors to ``export_csv/<label>/`` in the official layout.
        verification_pairs, seed: pairs per file and seed when verification pairs must be generated.
        batch_size, device, progress: describing (:func:`descnet.features.inference.describe_patches`).
        log: called with progress lines, notes and each model's tables (``None``: silent).

    Returns:
        the :class:`~descnet.eval.report.BenchmarkRun` (payload as written, labels kept, files written).
    """
    from descnet.data.hpatches import (GENERATED_FILE, TASKS_HINT, HPatches, find_tasks_dir, read_generated_tasks,
                                       read_retrieval_task, read_split, read_verification_pairs,
                                       verification_pairs_paths, write_verification_pairs)
    from descnet.eval.descriptors import read_descriptor_csvs, write_descriptor_csvs
    from descnet.eval.hpatches import evaluate_hpatches, generate_verification_pairs
    from descnet.eval.metrics import degenerate_warning
    from descnet.eval.report import (HEADLINE_NOTES, check_earlier_results, check_unique_labels, hpatches_tables,
                                     latex_table, markdown_table, merge_earlier_results, model_notes, plot_hpatches)
    from descnet.io import earlier_result_files, result_set, write_json
    from descnet.models import model_label
    from descnet.runinfo import environment_info

    say = log or (lambda line: None)
    tasks = _check_tasks(tasks)
    models, descriptors = list(models), list(descriptors)
    if not models and not descriptors:
        raise ValueError("give at least one model SPEC or descriptors folder")
    if models and not root:
        raise ValueError("root (the hpatches-release folder) is needed to describe patches with a model")
    if verification_pairs <= 0:
        raise ValueError(f"verification_pairs must be positive, got {verification_pairs}")
    tasks_dir = Path(tasks_dir) if tasks_dir else find_tasks_dir(root)
    if tasks_dir is None:
        raise FileNotFoundError(f"no task folder: {TASKS_HINT}")
    if not tasks_dir.is_dir():
        raise FileNotFoundError(f"tasks folder {tasks_dir}: no such folder; {TASKS_HINT}")
    split = read_split(tasks_dir, split)
    retrieval = read_retrieval_task(tasks_dir, split.name) if "retrieval" in tasks else None
    verification = read_verification_pairs(tasks_dir, split.name) if "verification" in tasks else None
    generated_tasks = read_generated_tasks(tasks_dir)
    out = Path(out)
    path = out / f"hpatches_{split.name}.json"
    # refuse up front (before any describing) to mix these results with earlier ones of another setting
    check_earlier_results(path, {"split": {"name": split.name, "test_sequences": list(split.test)}, "tasks": tasks},
                          overwrite)

    labels = [model_label(s) for s in models] + [Path(d).name for d in descriptors]
    check_unique_labels(labels, "descriptors", "; rename a descriptors folder or a weight file")
    jobs = [(label, "model", spec) for label, spec in zip(labels, models)]
    jobs += [(label, "csv", folder) for label, folder in zip(labels[len(models):], descriptors)]
    lengths = dataset = None
    if models:
        dataset = HPatches(root, tasks_dir)
        lengths = dataset.check(split.test)  # all sequences, types and row counts, from the PNG headers
    cache_dir = Path(cache_dir) if cache_dir else out / "descriptors"
    notes, generated, results = [], None, {}
    if generated_tasks is not None:
        notes.append(f"Split {split.name} and retrieval files GENERATED for a custom patch set (descnet.data."
                     f"hpatches.write_custom_tasks, seed {generated_tasks.get('seed')}; see "
                     f"{tasks_dir / GENERATED_FILE}): numbers are not comparable with published HPatches ones.")
        say(f"NOTE: {notes[-1]}")
    for label, kind, source in jobs:  # one descriptor set in memory at a time
        if kind == "model":
            signature = model_signature(source)
            ds = describe_hpatches_cached(source, dataset, list(split.test), cache_dir, label=label,
                                          use_cache=use_cache, batch_size=batch_size, device=device,
                                          progress=progress, log=log, verify_cache=verify_cache,
                                          signature=signature)
            origin = {"kind": "model", "spec": source, "signature": signature}
        else:
            ds = read_descriptor_csvs(source, split.test, name=label, progress=progress)
            origin = {"kind": "csv", "folder": str(source)}
        ds.name = label
        if lengths is None:
            lengths = ds.lengths
        bad = next((s for s in split.test if ds.lengths[s] != lengths[s]), None)
        if bad is not None:
            raise ValueError(f"{label}: {ds.lengths[bad]} descriptors for sequence {bad}, but it has "
                             f"{lengths[bad]} patches (or another descriptor set has that many)")
        if "verification" in tasks and verification is None:
            generated = verification = generate_verification_pairs(lengths, split.test, verification_pairs, seed)
            official = verification_pairs_paths(tasks_dir, split.name)["pos"].name
            notes.append(f"Verification pairs GENERATED (seeded procedure of descnet.eval.hpatches."
                         f"generate_verification_pairs, seed {seed}, {verification_pairs} pairs per file) "
                         f"because the official files ({official}, ...) are not in {tasks_dir}: verification "
                         f"numbers are not comparable with published ones; the pairs are saved in {out / 'tasks'}.")
            say(f"NOTE: {notes[-1]}")
        if kind == "model" and export_csv:
            written = write_descriptor_csvs(Path(export_csv) / label, ds, progress=progress)
            say(f"{label}: descriptors exported to {written}")
        say(f"{label}: evaluating {', '.join(tasks)} on split {split.name} ({len(split.test)} sequences)")
        results[label] = evaluate_hpatches(ds, split, tasks, retrieval=retrieval, verification=verification,
                                           progress=progress)
        results[label].update(dim=ds.dim, source=origin)
        warning = degenerate_warning(ds.data.reshape(-1, ds.dim), label)
        results[label]["warnings"] = [warning] if warning else []
        say(hpatches_tables(label, results[label], split.name))
        if warning:
            say(warning)
        del ds

    task_files: dict[str, Any] = {"directory": str(tasks_dir)}
    if generated_tasks is not None:
        task_files["generated"] = {"file": str(tasks_dir / GENERATED_FILE), "seed": generated_tasks.get("seed"),
                                   "procedure": generated_tasks.get("procedure"),
                                   "split": generated_tasks.get("splits", {}).get(split.name)}
    if retrieval:
        task_files.update(retrieval=[retrieval[0].source, retrieval[1].source],
                          retrieval_source="generated" if generated_tasks is not None else "official files")
    if verification is not None:
        task_files["verification"] = {"source": "generated" if generated else "official files",
                                      "files": sorted({p.source for p in verification.values()}),
                                      "pairs_per_file": {k: len(p) for k, p in verification.items()}}
        if generated:
            task_files["verification"].update(
                seed=seed, files=[str(p) for p in verification_pairs_paths(out / "tasks", split.name).values()])
    payload = {
        "descnet_hpatches": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "protocol": PROTOCOL,
        "split": {"name": split.name, "test_sequences": list(split.test)},
        "tasks": tasks,
        "task_files": task_files,
        "headline_definitions": {t: HEADLINE_NOTES[t] for t in tasks},
        "notes": notes,
        "models": results,
        "environment": environment_info(device),
    }
    payload, kept = merge_earlier_results(path, payload, ("split", "tasks", "task_files"), overwrite)
    results, notes = payload["models"], model_notes(payload)
    stem = path.stem
    earlier = earlier_result_files(out, path.name, "descnet_hpatches",
                                   [path.name, *(f"{stem}{ext}" for ext in (".md", ".tex", ".png", ".pdf")), "tasks"])
    # all files of this run, or (after a failure or kill) all as before
    with result_set(out, old_staging=[".hpatches-*"], earlier=earlier) as staged:
        write_json(staged.path(path.name), payload)
        staged.path(f"{stem}.md").write_text(markdown_table(results, split.name, notes))
        staged.path(f"{stem}.tex").write_text(latex_table(results, split.name, notes))
        plot_hpatches(results, [staged.path(f"{stem}.png"), staged.path(f"{stem}.pdf")], split.name,
                      note=", ".join(n for n, on in (("split and retrieval files generated",
                                                      generated_tasks is not None),
                                                     ("verification pairs generated", generated)) if on))
        if generated:
            write_verification_pairs(staged.path("tasks"), split.name, generated)
        written = sorted(out / p.name for p in staged.dir.iterdir())
    return BenchmarkRun(payload, path, kept, written)
