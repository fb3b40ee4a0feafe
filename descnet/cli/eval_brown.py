"""Brown (UBC Phototour) benchmark: FPR95 of descriptor distances on the test pairs, with ROC curves.

Describes the patches of the pairs of --subset (liberty, notredame or yosemite under --root, or a set
written by `descnet data patches --brown NAME`) with each --model, ranks the pairs by L2 distance and
reports the false positive rate at 95% recall on the 100k pairs (m50_100000_100000_0.txt) or on the given
--pairs files. Writes OUT/brown_<subset>.json and the ROC figure OUT/brown_<subset>_roc.{png,pdf}.

examples:
  descnet eval brown --root data/brown --subset notredame --model hardnet:runs/lib/best.pt --model sift
  descnet eval brown --root data/brown --subset yosemite --model tfeat:tfeat-liberty.params --all-pairs
  descnet eval brown --root data/my-patches --subset mine --model hardnet-csa:run/best.pt --model rootsift
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="folder holding the subset (<root>/<subset>/ or <subset>.pt)")
    parser.add_argument("--subset", required=True,
                        help="liberty, notredame, yosemite, or the NAME of a 'descnet data patches --brown NAME' set")
    parser.add_argument("--model", action="append", required=True, metavar="SPEC",
                        help="model SPEC (repeatable): registry name, NAME:WEIGHTS, checkpoint, run directory, "
                             "or sift / rootsift / pixels")
    parser.add_argument("--pairs", action="append", default=[], metavar="FILE",
                        help="m50_*.txt pair file name inside the subset (repeatable; default the 100k pairs)")
    parser.add_argument("--all-pairs", action="store_true", help="evaluate every m50_* file of the subset")
    parser.add_argument("--out", default="results/brown", help="output folder (default results/brown)")
    parser.add_argument("--cache-dir", help="where the subset's HDF5 cache goes (default ROOT; use it when ROOT "
                                            "is read-only)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="patches per forward pass (default: chosen by descnet.features.inference.describe_patches)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the earlier results in --out (default: add these models to them; results of "
                             "other models are kept)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def pair_distances(descriptors, pairs):
    """L2 distances (float64) of the pairs ``(M, >=2)`` of patch indices, from float32 ``(N, D)`` descriptors."""
    import numpy as np

    a = descriptors[pairs[:, 0]].astype(np.float64)
    b = descriptors[pairs[:, 1]].astype(np.float64)
    return np.sqrt(np.einsum("ij,ij->i", a - b, a - b))


def roc_points(fpr, tpr, count: int = 300) -> dict[str, list[float]]:
    """A few hundred points of a ROC curve ``(M,)``, ``(M,)`` (log-spaced in fpr, plus even steps), to keep
    in the result JSON so that a later run can draw the curves of every model."""
    import numpy as np

    n = len(fpr)
    if n == 0:
        return {"fpr": [], "tpr": []}
    idx = np.concatenate([np.searchsorted(fpr, np.logspace(-5, 0, count)), np.linspace(0, n - 1, count // 3)])
    idx = np.unique(np.clip(idx.astype(np.int64), 0, n - 1))
    return {"fpr": [float(v) for v in fpr[idx]], "tpr": [float(v) for v in tpr[idx]]}


def run(args: argparse.Namespace) -> int:
    import datetime as dt
    from pathlib import Path

    import numpy as np
    from tqdm.auto import tqdm

    from descnet.cli.common import output_dir
    from descnet.features.inference import check_device
    from descnet.data.phototour import DEFAULT_PAIRS, PhotoTour
    from descnet.eval.fpr95 import fpr95
    from descnet.eval.metrics import roc
    from descnet.eval.metrics import degenerate_warning
    from descnet.eval.report import check_earlier_results, format_table, merge_earlier_results, plot_roc
    from descnet.features.inference import describe_patches
    from descnet.io import result_set, write_json
    from descnet.models import model_label, resolve_model
    from descnet.runinfo import environment_info

    check_device(args.device, "--device")
    output_dir(args.out)  # a file there, or a file on its path: refused before any work
    labels = [model_label(s) for s in args.model]
    dupes = sorted({lb for lb in labels if labels.count(lb) > 1})
    if dupes:
        raise ValueError(f"two --model SPECs are both named {', '.join(dupes)}")
    models = [resolve_model(spec) for spec in args.model]  # fail fast on a bad SPEC
    data = PhotoTour(args.root, args.subset, cache_dir=args.cache_dir, progress=not args.quiet)
    data.require_labels()
    names = data.available_pairs() if args.all_pairs else (args.pairs or [DEFAULT_PAIRS])
    if not names:
        raise FileNotFoundError(f"{data.folder}: no m50_* pair files")
    pairs = {name: data.read_pairs(name) for name in names}
    # refuse up front (before any describing) to mix these results with earlier ones of other pairs files
    check_earlier_results(Path(args.out) / f"brown_{args.subset}.json",
                          {"subset": args.subset, "pairs_files": names}, args.overwrite)
    needed = np.unique(np.concatenate([p[:, :2].ravel() for p in pairs.values()]))
    where = np.full(len(data), -1, np.int64)
    where[needed] = np.arange(len(needed))

    results = {}
    for spec, label, model in zip(args.model, labels, models):
        print(f"{label}: describing {len(needed):,} patches of {args.subset}")
        blocks = range(0, len(needed), 1 << 15)  # read the (memory-mapped) patches block by block
        desc = np.concatenate([
            describe_patches(model, data.patches[needed[i:i + (1 << 15)]], batch_size=args.batch_size,
                             device=args.device).numpy()
            for i in tqdm(blocks, desc=f"describe {label}", unit="block", disable=args.quiet, leave=False)])
        warning = degenerate_warning(desc, label)
        results[label] = {"spec": spec, "dim": int(desc.shape[1]), "pairs": {},
                          "warnings": [warning] if warning else []}
        for name, p in pairs.items():
            dist = pair_distances(desc, where[p[:, :2]])
            labels_ = p[:, 2] != 0
            value = fpr95(dist, labels_)
            results[label]["pairs"][name] = {"fpr95": value, "pairs": int(len(p)),
                                             "positives": int(labels_.sum())}
            if name == names[0]:
                results[label]["roc"] = roc_points(*roc(dist, labels_))
    payload = {
        "descnet_brown": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "protocol": "FPR95: share of non-matching pairs with L2 distance <= the distance at which 95% of the "
                    "matching pairs are accepted (fractions in [0, 1])",
        "subset": args.subset, "root": str(args.root), "pairs_files": names, "models": results,
        "data_warnings": [f"WARNING: {data.uncovered}"] if data.uncovered else [],
        "environment": environment_info(args.device),
    }
    out = Path(args.out)
    stem = f"brown_{args.subset}"
    payload, kept = merge_earlier_results(out / f"{stem}.json", payload, ("subset", "pairs_files"), args.overwrite)
    results = payload["models"]
    rows = [[label, name, 100 * r["fpr95"], r["pairs"]] for label, res in results.items()
            for name, r in res["pairs"].items()]
    print(f"Brown {args.subset}: FPR95 (%), lower is better")
    print(format_table(["descriptor", "pairs file", "FPR95 %", "pairs"], rows))
    for warning in [*payload["data_warnings"], *(w for r in results.values() for w in r.get("warnings", []))]:
        print(warning)
    if kept:
        print(f"kept the earlier results of {', '.join(kept)} in {out / (stem + '.json')} (--overwrite replaces them)")
    curves = {lb: (np.asarray(r["roc"]["fpr"]), np.asarray(r["roc"]["tpr"])) for lb, r in results.items() if "roc" in r}
    with result_set(out, old_staging=[".brown-*"]) as staged:  # all files of this run, or (after a failure or kill) all as before
        write_json(staged.path(f"{stem}.json"), payload)
        plot_roc(curves, {lb: results[lb]["pairs"][names[0]]["fpr95"] for lb in curves},
                 [staged.path(f"{stem}_roc.png"), staged.path(f"{stem}_roc.pdf")], f"{args.subset}, {names[0]}")
        written = sorted(str(out / p.name) for p in staged.dir.iterdir())
    print("wrote " + ", ".join(written))
    return 0
