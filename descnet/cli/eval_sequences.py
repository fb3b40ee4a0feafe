"""Image matching on full-image sequences with ground-truth homographies (HPatches or Oxford layout).

Every model describes the same keypoints (detected once per image, SIFT by default) of image 1 and of
each image k = 2..n of every sequence; their matches are scored with the ground-truth H_1_k:
  MMA@t      share of matches within t px (t = 1..10), averaged over pairs (before verification)
  correct@t  number of matches within t px (t = 1, 3, 5) = MMA@t x matches, averaged over pairs; MMA alone
             rewards matching less (a few safe matches score high), so a descriptor must win here too
  H@e        share of pairs whose estimated homography (MAGSAC) moves the image corners by <= e px (1, 3, 5)
  matches    matches and inliers per pair
split by sequence kind: illumination (i_*), viewpoint (v_*), other (e.g. Oxford graf).
OpenCV's own SIFT and RootSIFT on the same keypoints are included as baselines unless --no-baselines.

Writes --out DIR/sequences.json (settings, environment, summaries, every pair) and DIR/mma.png
(MMA and correct matches per pair against the threshold).

examples:
  descnet eval sequences --root data/hpatches-sequences-release --model tfeat:tfeat-liberty.params --model runs/csa
  descnet eval sequences --root ../shared/data/oxford-affine --root ../shared/data/hpatches/sequences \\
      --model tfeat:tfeat-liberty.params --max-keypoints 1000 --out results/eval/sequences
"""
from __future__ import annotations

import argparse
import json

from descnet.features.options import ESTIMATOR_NAMES, MATCHERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", action="append", required=True, metavar="DIR",
                        help="a folder of sequence folders, or one sequence folder (repeat for several)")
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="model SPEC to compare (repeat; default: descnet-hardnet-csa, the shipped default); "
                             "opencv-sift / opencv-rootsift name the baselines")
    parser.add_argument("--no-baselines", action="store_true",
                        help="do not add OpenCV SIFT and RootSIFT to the models")
    parser.add_argument("--kind", choices=("illumination", "viewpoint"), help="only these sequences")
    parser.add_argument("--sequence", action="append", metavar="NAME", help="only these sequences (repeat)")
    parser.add_argument("--detector", default="sift", help="OpenCV detector for the keypoints (default: sift)")
    parser.add_argument("--max-keypoints", type=int, default=2000, metavar="N",
                        help="strongest N keypoints per image (default: 2000; 0 = all)")
    parser.add_argument("--mr-size", type=float, default=None, metavar="X",
                        help="region half-side per unit of keypoint size (default: the detector's, 6 for sift)")
    parser.add_argument("--matcher", choices=MATCHERS, default="mnn", help="matcher (default: mnn)")
    parser.add_argument("--ratio", type=float, default=None, help="ratio-test threshold for snn/smnn")
    parser.add_argument("--estimator", choices=ESTIMATOR_NAMES, default="magsac",
                        help="OpenCV robust estimator (default: magsac)")
    parser.add_argument("--threshold", type=float, default=None, metavar="PX",
                        help="homography inlier threshold in pixels (default: 3)")
    parser.add_argument("--device", default="cpu", help="torch device for the models (default: cpu)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the earlier results in --out (default: add these models to them; results of "
                             "other models are kept)")
    parser.add_argument("--out", default="results/eval/sequences", metavar="DIR",
                        help="folder for sequences.json and mma.png (default: results/eval/sequences)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check_earlier_settings(path, settings: dict, overwrite: bool) -> None:
    """Refuse to add to an earlier ``sequences.json`` made with other settings (models aside)."""
    try:
        earlier = json.loads(path.read_text()).get("settings") if path.is_file() and not overwrite else None
    except (OSError, ValueError, AttributeError):
        return  # unreadable: merge_earlier_results refuses it
    if isinstance(earlier, dict):
        drop = ("models",)
        differ = sorted(k for k in {*earlier, *settings} - set(drop) if earlier.get(k) != settings.get(k))
        if differ:
            raise ValueError(f"{path}: holds results of other settings ({', '.join(differ)} differ), which cannot "
                             f"share a table; pass --overwrite to replace them, or use another --out")


def run(args: argparse.Namespace) -> int:
    import datetime as dt
    from pathlib import Path

    from descnet.cli.common import output_dir
    from descnet.features.inference import check_device
    from descnet.cli.common import keypoint_options
    from descnet.models import resolve_model
    from descnet.data.sequences import ImageSequences
    from descnet.eval.sequences import (evaluate_sequences, format_summary, model_label, pair_rows, plot_mma,
                                        summarize)
    from descnet.eval.report import merge_earlier_results
    from descnet.io import result_set, write_json
    from descnet.features.matching import ESTIMATORS
    from descnet.runinfo import environment_info

    check_device(args.device, "--device")
    output_dir(args.out)  # a file there, or a file on its path: refused before any work
    keypoint_options(args)
    if args.estimator not in ESTIMATORS:
        raise ValueError(f"--estimator {args.estimator}: unknown; choose one of: {', '.join(ESTIMATORS)}")
    from descnet.models.pretrained import DEFAULT_MODEL

    models_given = args.model or [DEFAULT_MODEL]  # the shipped default when no model is named
    specs = list(dict.fromkeys(([] if args.no_baselines else ["opencv-sift", "opencv-rootsift"]) + models_given))
    models = {}
    for spec in specs:
        label = model_label(spec)
        if label in models:
            raise ValueError(f"--model {spec}: two models share the table name {label!r}")
        models[label] = resolve_model(spec)
    sequences = []
    for root in args.root:
        sequences.extend(ImageSequences(root, kind=args.kind))
    if args.sequence:
        known = {s.name for s in sequences}
        missing = [n for n in args.sequence if n not in known]
        if missing:
            raise ValueError(f"--sequence {missing[0]}: not found under {', '.join(args.root)}")
        sequences = [s for s in sequences if s.name in args.sequence]
    if not sequences:
        raise ValueError(f"no sequences to evaluate under {', '.join(args.root)}"
                         + (f" of kind {args.kind}" if args.kind else ""))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")

    settings = {"roots": args.root, "sequences": [s.name for s in sequences], "models": dict(zip(models, specs)),
                "detector": args.detector, "max_keypoints": args.max_keypoints, "mr_size": args.mr_size,
                "matcher": args.matcher, "ratio": args.ratio, "estimator": args.estimator,
                "threshold": args.threshold}
    _check_earlier_settings(out / "sequences.json", settings, args.overwrite)  # before any work
    results = evaluate_sequences(sequences, models, detector=args.detector, max_keypoints=args.max_keypoints or None,
                                 mr_size=args.mr_size, method=args.matcher, ratio=args.ratio,
                                 estimator=args.estimator, threshold=args.threshold, device=args.device,
                                 progress=not args.quiet)
    payload = {"evaluation": "sequences", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "environment": environment_info(args.device), "settings": settings, "summary": summarize(results),
               "pairs": pair_rows(results)}
    payload, kept = merge_earlier_results(out / "sequences.json", payload, (), args.overwrite, ("summary", "pairs"))
    if kept:
        earlier = json.loads((out / "sequences.json").read_text())["settings"].get("models", {})
        payload["settings"] = {**settings, "models": {**{k: earlier.get(k) for k in kept}, **settings["models"]}}
        print(f"kept the earlier results of {', '.join(kept)} in {out / 'sequences.json'} (--overwrite replaces them)")
    summary = payload["summary"]
    print(format_summary(summary))
    with result_set(out) as staged:  # both files, or (after a failure or kill) both as before
        write_json(staged.path("sequences.json"), payload)
        plot_mma(summary, staged.path("mma.png"))
    print(f"wrote {out / 'sequences.json'}, {out / 'mma.png'}")
    return 0
