"""HPatches patch benchmark: verification, matching and retrieval mAP with the official protocol's numbers.

Describes the patches of the split's test sequences once per model (cached as HDF5 under
OUT/descriptors/, keyed by the model and its weights), or reads descriptors in the official CSV layout
(--descriptors DIR/<name>), evaluates the tasks exactly as hpatches-benchmark's python code does and writes
OUT/hpatches_<split>.{json,md,tex,png,pdf}. Verification and retrieval pairs come from the official task
files (--tasks-dir, default <root>/../tasks); when the verification files are missing, pairs are generated
by a seeded procedure that follows the official definition, and every output says so. A task folder
written by `descnet data patches` for a custom patch set (it holds GENERATED.json) is used the same way
(--split custom or full), and every output says that its split and retrieval files are generated.

examples:
  descnet eval hpatches --root data/hpatches/hpatches-release --model rootsift --model hardnet:hardnet.pth \\
      --split a --out results/hpatches
  descnet eval hpatches --descriptors my_descs/hardnet --tasks-dir data/hpatches/tasks --split full
  descnet eval hpatches --root data/hpatches/hpatches-release --model sift --export-csv csv_out
  descnet eval hpatches --root data/my-patches/hpatches-release --split custom --model pixels
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", help="the hpatches-release folder (needed to describe patches with --model)")
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="model SPEC to describe the patches with (repeatable): a registry name, NAME:WEIGHTS, "
                             "a descnet checkpoint or run directory, or sift / rootsift / pixels")
    parser.add_argument("--descriptors", action="append", default=[], metavar="DIR",
                        help="descriptors in the official layout DIR/<sequence>/<type>.csv (repeatable); the "
                             "folder name is the descriptor's name")
    parser.add_argument("--split", default="a", help="split of splits.json: a, b, c, full, illum or view (default a); custom or full for a "
                                               "patch set built by `descnet data patches`")
    parser.add_argument("--tasks", default="verification,matching,retrieval",
                        help="comma-separated tasks (default all three)")
    parser.add_argument("--tasks-dir", help="official task files (splits/splits.json, task CSVs); default "
                                            "<root>/../tasks or <root>/tasks")
    parser.add_argument("--out", default="results/hpatches", help="output folder (default results/hpatches)")
    parser.add_argument("--export-csv", metavar="DIR",
                        help="also write each model's descriptors of the split's test sequences to "
                             "DIR/<name>/<sequence>/<type>.csv (the official layout; use --split full for all)")
    parser.add_argument("--cache-dir", help="descriptor cache folder (default OUT/descriptors)")
    parser.add_argument("--no-cache", action="store_true",
                        help="describe again, ignoring cached descriptors (the cache is keyed by the model, its "
                             "weights and the --root folder; use this after changing the patches in place)")
    parser.add_argument("--verification-pairs", type=int, default=1_000_000,
                        help="pairs per file when the verification files must be generated (default 1e6)")
    parser.add_argument("--seed", type=int, default=42, help="seed of generated verification pairs (default 42)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="patches per forward pass (default: chosen by descnet.features.inference.describe_patches)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the earlier results in --out (default: add these models to them; results of "
                             "other models are kept)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _sha256(path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_signature(spec: str) -> str | None:
    """What the descriptors of ``spec`` depend on, or None when they are not reproducible (untrained)."""
    from pathlib import Path

    import cv2

    import descnet
    from descnet.models import list_models, model_entry
    from descnet.models.spec import RUN_CHECKPOINTS

    names = list_models()
    if spec in names:
        if model_entry(spec).trainable:
            return None  # random initial weights
        return f"builtin:{spec}:descnet-{descnet.__version__}:opencv-{cv2.__version__}"
    name, sep, weights = spec.partition(":")
    if sep and name in names:
        return f"{name}:sha256:{_sha256(weights)}" if Path(weights).is_file() else None
    path = Path(spec)
    if path.is_dir():
        path = next((path / n for n in RUN_CHECKPOINTS if (path / n).is_file()), path)
    return f"checkpoint:sha256:{_sha256(path)}" if path.is_file() else None


def _load_or_describe(spec: str, label: str, dataset, sequences, lengths, args, cache_dir):
    """Descriptors of ``sequences`` for a model SPEC: from the HDF5 cache when valid, else described."""
    from descnet.eval.descriptors import HPatchesDescriptors, read_descriptor_h5, write_descriptor_h5
    from descnet.eval.hpatches import describe_hpatches
    from descnet.models import resolve_model

    signature = model_signature(spec)
    path = cache_dir / f"{label}.h5"
    cached = None
    if signature and not args.no_cache and path.is_file():
        try:
            cached, meta = read_descriptor_h5(path, name=label)
        except ValueError:
            cached, meta = None, {}
        if cached is not None and (meta.get("signature") != signature
                                   or meta.get("patches") != str(dataset.root.resolve())
                                   or any(cached.lengths.get(s, n) != n for s, n in lengths.items())):
            cached = None
    todo = [s for s in sequences if cached is None or s not in cached]
    if not todo:
        print(f"{label}: descriptors from the cache {path}")
        return HPatchesDescriptors.from_mapping(cached, sequences, name=label)
    model = resolve_model(spec)
    print(f"{label}: describing {len(todo)} sequences ({sum(lengths[s] for s in todo) * 16:,} patches)"
          + ("" if signature else " (untrained model: not cached)"))
    fresh = describe_hpatches(model, dataset, todo, batch_size=args.batch_size, device=args.device,
                              progress=not args.quiet, name=label)
    if cached is not None:  # keep what the cache had for other sequences
        keep = [s for s in cached.sequences if s not in fresh]
        merged = {**{s: cached[s] for s in keep}, **{s: fresh[s] for s in fresh.sequences}}
        fresh = HPatchesDescriptors.from_mapping(merged, keep + list(fresh.sequences), name=label)
    if signature:
        write_descriptor_h5(path, fresh, {"spec": spec, "label": label, "signature": signature,
                                          "patches": str(dataset.root.resolve())})
    return HPatchesDescriptors.from_mapping(fresh, sequences, name=label)


def run(args: argparse.Namespace) -> int:
    import datetime as dt
    from pathlib import Path

    from descnet.cli.common import output_dir
    from descnet.features.inference import check_device
    from descnet.data.hpatches import (GENERATED_FILE, TASKS_HINT, HPatches, find_tasks_dir,
                                       read_generated_tasks, read_retrieval_task, read_split,
                                       read_verification_pairs, verification_pairs_paths,
                                       write_verification_pairs)
    from descnet.eval.descriptors import read_descriptor_csvs, write_descriptor_csvs
    from descnet.eval.hpatches import TASKS, evaluate_hpatches, generate_verification_pairs
    from descnet.eval.metrics import degenerate_warning
    from descnet.eval.report import (HEADLINE_NOTES, check_earlier_results, hpatches_tables, latex_table,
                                     markdown_table, merge_earlier_results, model_notes, plot_hpatches)
    from descnet.io import result_set, write_json
    from descnet.models import model_label
    from descnet.runinfo import environment_info

    check_device(args.device, "--device")
    output_dir(args.out)  # a file there, or a file on its path: refused before any work
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"--tasks: unknown task(s) {', '.join(unknown) or '(none given)'}; tasks are "
                         f"{', '.join(TASKS)}")
    if not args.model and not args.descriptors:
        raise ValueError("give at least one --model SPEC or --descriptors DIR")
    if args.model and not args.root:
        raise ValueError("--root (the hpatches-release folder) is needed to describe patches with --model")
    if args.verification_pairs <= 0:
        raise ValueError(f"--verification-pairs must be positive, got {args.verification_pairs}")
    tasks_dir = Path(args.tasks_dir) if args.tasks_dir else find_tasks_dir(args.root)
    if tasks_dir is None:
        raise FileNotFoundError(f"no task folder: {TASKS_HINT}")
    if not tasks_dir.is_dir():
        raise FileNotFoundError(f"--tasks-dir {tasks_dir}: no such folder; {TASKS_HINT}")
    split = read_split(tasks_dir, args.split)
    retrieval = read_retrieval_task(tasks_dir, split.name) if "retrieval" in tasks else None
    verification = read_verification_pairs(tasks_dir, split.name) if "verification" in tasks else None
    generated_tasks = read_generated_tasks(tasks_dir)
    # refuse up front (before any describing) to mix these results with earlier ones of another setting
    check_earlier_results(Path(args.out) / f"hpatches_{split.name}.json",
                          {"split": {"name": split.name, "test_sequences": list(split.test)}, "tasks": tasks},
                          args.overwrite)

    labels = [model_label(s) for s in args.model] + [Path(d).name for d in args.descriptors]
    dupes = sorted({lb for lb in labels if labels.count(lb) > 1})
    if dupes:
        raise ValueError(f"two descriptors are both named {', '.join(dupes)}; rename a --descriptors folder or "
                         f"a weight file")
    out = Path(args.out)
    jobs = [(label, "model", spec) for label, spec in zip(labels, args.model)]
    jobs += [(label, "csv", folder) for label, folder in zip(labels[len(args.model):], args.descriptors)]
    lengths = dataset = None
    if args.model:
        dataset = HPatches(args.root, tasks_dir)
        lengths = dataset.check(split.test)  # all sequences, types and row counts, from the PNG headers
    cache_dir = Path(args.cache_dir) if args.cache_dir else out / "descriptors"
    notes, generated, results = [], None, {}
    if generated_tasks is not None:
        notes.append(f"Split {split.name} and retrieval files GENERATED for a custom patch set (descnet.data."
                     f"hpatches.write_custom_tasks, seed {generated_tasks.get('seed')}; see "
                     f"{tasks_dir / GENERATED_FILE}): numbers are not comparable with published HPatches ones.")
        print(f"NOTE: {notes[-1]}")
    for label, kind, source in jobs:  # one descriptor set in memory at a time
        if kind == "model":
            ds = _load_or_describe(source, label, dataset, list(split.test), lengths, args, cache_dir)
            origin = {"kind": "model", "spec": source, "signature": model_signature(source)}
        else:
            ds = read_descriptor_csvs(source, split.test, name=label, progress=not args.quiet)
            origin = {"kind": "csv", "folder": str(source)}
        ds.name = label
        if lengths is None:
            lengths = ds.lengths
        bad = next((s for s in split.test if ds.lengths[s] != lengths[s]), None)
        if bad is not None:
            raise ValueError(f"{label}: {ds.lengths[bad]} descriptors for sequence {bad}, but it has "
                             f"{lengths[bad]} patches (or another descriptor set has that many)")
        if "verification" in tasks and verification is None:
            generated = verification = generate_verification_pairs(lengths, split.test, args.verification_pairs,
                                                                   args.seed)
            official = verification_pairs_paths(tasks_dir, split.name)["pos"].name
            notes.append(f"Verification pairs GENERATED (seeded procedure of descnet.eval.hpatches."
                         f"generate_verification_pairs, seed {args.seed}, {args.verification_pairs} pairs per file) "
                         f"because the official files ({official}, ...) are not in {tasks_dir}: verification "
                         f"numbers are not comparable with published ones; the pairs are saved in {out / 'tasks'}.")
            print(f"NOTE: {notes[-1]}")
        if kind == "model" and args.export_csv:
            path = write_descriptor_csvs(Path(args.export_csv) / label, ds, progress=not args.quiet)
            print(f"{label}: descriptors exported to {path}")
        print(f"{label}: evaluating {', '.join(tasks)} on split {split.name} ({len(split.test)} sequences)")
        results[label] = evaluate_hpatches(ds, split, tasks, retrieval=retrieval, verification=verification,
                                           progress=not args.quiet)
        results[label].update(dim=ds.dim, source=origin)
        warning = degenerate_warning(ds.data.reshape(-1, ds.dim), label)
        results[label]["warnings"] = [warning] if warning else []
        print(hpatches_tables(label, results[label], split.name))
        if warning:
            print(warning)
        del ds

    if verification is not None:
        verif_info = {"source": "generated" if generated else "official files",
                      "files": sorted({p.source for p in verification.values()}),
                      "pairs_per_file": {k: len(p) for k, p in verification.items()}}
        if generated:
            verif_info.update(seed=args.seed, files=[str(p) for p in
                                                     verification_pairs_paths(out / "tasks", split.name).values()])
    payload = {
        "descnet_hpatches": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "protocol": "HPatches patch benchmark, python protocol of hpatches-benchmark (commit e0c993c), L2 "
                    "distance; all values are fractions in [0, 1]",
        "split": {"name": split.name, "test_sequences": list(split.test)},
        "tasks": tasks,
        "task_files": {"directory": str(tasks_dir),
                       **({"generated": {"file": str(tasks_dir / GENERATED_FILE), "seed": generated_tasks.get("seed"),
                                         "procedure": generated_tasks.get("procedure"),
                                         "split": generated_tasks.get("splits", {}).get(split.name)}}
                          if generated_tasks is not None else {}),
                       **({"retrieval": [retrieval[0].source, retrieval[1].source],
                           "retrieval_source": "generated" if generated_tasks is not None else "official files"}
                          if retrieval else {}),
                       **({"verification": verif_info} if verification is not None else {})},
        "headline_definitions": {t: HEADLINE_NOTES[t] for t in tasks},
        "notes": notes,
        "models": results,
        "environment": environment_info(args.device),
    }
    stem = f"hpatches_{split.name}"
    payload, kept = merge_earlier_results(out / f"{stem}.json", payload, ("split", "tasks", "task_files"),
                                          args.overwrite)
    if kept:
        print(f"kept the earlier results of {', '.join(kept)} in {out / (stem + '.json')} (--overwrite replaces them)")
    results, notes = payload["models"], model_notes(payload)
    with result_set(out, old_staging=[".hpatches-*"]) as staged:  # all files of this run, or (after a failure or kill) all as before
        write_json(staged.path(f"{stem}.json"), payload)
        staged.path(f"{stem}.md").write_text(markdown_table(results, split.name, notes))
        staged.path(f"{stem}.tex").write_text(latex_table(results, split.name, notes))
        plot_hpatches(results, [staged.path(f"{stem}.png"), staged.path(f"{stem}.pdf")], split.name,
                      note=", ".join(n for n, on in (("split and retrieval files generated",
                                                      generated_tasks is not None),
                                                     ("verification pairs generated", generated)) if on))
        if generated:
            write_verification_pairs(staged.path("tasks"), split.name, generated)
        written = sorted(str(out / p.name) for p in staged.dir.iterdir())
    print("wrote " + ", ".join(written))
    return 0
