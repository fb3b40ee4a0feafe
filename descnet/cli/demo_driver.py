"""The demo: descnet's whole workflow on synthetic data it makes itself, in a few minutes on a CPU.

Every step is a real ``descnet`` command, run in-process and printed as a shell line, so the demo takes the
same code paths as real runs and shows how to run them by hand:

1. ``descnet data synth``       synthetic image sequences with exact homographies (HPatches layout);
2. ``descnet data patches``     HPatches-style patch sets: train sequences, and held-out test sequences
                                (also in the Brown layout, for FPR95);
3. ``descnet train``            ``hardnet`` and ``hardnet-csa``, a few minutes each;
4. ``descnet eval hpatches``    verification, matching and retrieval mAP on the test patches, with ``rootsift``;
5. ``descnet eval brown``       FPR95 on the test patches' Brown-layout pairs;
6. ``descnet eval sequences``   image matching (MMA, homography accuracy) on the held-out sequences;
7. ``descnet match``            one held-out image pair, with a picture;
8. ``descnet eval sequences``   descnet's shipped default model (``descnet-hardnet-csa``) against OpenCV SIFT and
                                RootSIFT on real held-out pairs (graf, boat, EF notredame), when the real data
                                is there (``DESCNET_SHARED_DATA`` or ``../shared/data``): the demo's own models
                                train for minutes, the shipped one shows a descriptor that works;

then ``report.md`` gathers the tables and figures. Finished steps are reused when the demo runs again
(delete the output folder, or a step's folder, to redo it).
"""
from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from descnet.runinfo import LAST_CHECKPOINT, RUN_CONFIG, read_metrics

__all__ = ["DemoOptions", "DemoStepFailed", "run_demo"]

MODELS = ("hardnet", "hardnet-csa")


@dataclass
class DemoOptions:
    """Sizes of the demo. The defaults finish in under 10 minutes on 2 CPU cores."""

    out: Path = Path("results/demo")
    train_sequences: int = 8
    test_sequences: int = 4
    image_size: str = "640x480"
    points_per_sequence: int = 800
    train_steps: int = 120          # optimiser steps per model
    batch_size: int = 128           # pairs per step
    verification_pairs: int = 50000  # per verification file (generated, as the patch set is ours)
    max_keypoints: int = 500        # per image in the sequence-matching evaluation
    real_data: Path | None = field(default_factory=lambda: _find_real_data())  # step 8 (None: skipped)
    real_keypoints: int = 2000      # per image on the real pairs (as in the model card)
    seed: int = 0
    quiet: bool = False
    log: Callable[[str], None] = field(default=print, repr=False)


#: the real held-out sequences of step 8, relative to the shared data folder
REAL_SEQUENCES = (("oxford-affine", "graf"), ("oxford-affine", "boat"), ("ef", "notredame"))


def _find_real_data() -> Path | None:
    """The shared real data: ``$DESCNET_SHARED_DATA``, else ``../shared/data`` next to the working folder."""
    import os

    candidates = [os.environ.get("DESCNET_SHARED_DATA"), Path.cwd().parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and all((Path(candidate) / a / b).is_dir() for a, b in REAL_SEQUENCES):
            return Path(candidate)
    return None


class DemoStepFailed(RuntimeError):
    """A step's command failed (it has printed its own error)."""

    def __init__(self, argv: list[str], status: int) -> None:
        super().__init__(f"the demo stopped: `descnet {' '.join(argv[:2])}` failed with status {status}")
        self.status = status


def _descnet(argv: list[str], log: Callable[[str], None]) -> None:
    """Run one ``descnet`` command in-process; a non-zero status stops the demo."""
    from descnet.cli.main import main

    log("$ descnet " + " ".join(shlex.quote(a) for a in argv))
    status = main(argv)
    if status:
        raise DemoStepFailed(argv, status)


def _done(path: Path) -> bool:
    return path.exists()


#: fixed parts of the demo's training config. amp=auto: bf16 autocast where the CPU computes bf16 natively
#: (AVX512-BF16/AMX: ~1.7x faster), float32 elsewhere (emulated bf16 is 15-20x slower; descnet.precision)
TRAIN_OVERRIDES: dict[str, Any] = {"runtime": {"device": "cpu", "amp": "auto", "log_every": 5, "checkpoint_every": 50}}


def _train_config(opts: DemoOptions, model: str, train_root: Path, test_root: Path) -> dict[str, Any]:
    steps = opts.train_steps
    return {
        "model": {"name": model, "options": {}},
        "data": {"source": "patchset", "root": str(train_root), "holdout": 0},
        "pairs_per_epoch": steps * opts.batch_size // 3,
        "epochs": 3,
        "batch_size": opts.batch_size,
        "augmentation": {"flip": True, "rot90": True},
        "validation": {"pairs": [{"name": "demo", "root": str(test_root)}], "max_pairs": 10000},
        "seed": opts.seed,
        "runtime": {**TRAIN_OVERRIDES["runtime"], "progress": not opts.quiet},
    }


def run_demo(opts: DemoOptions) -> Path:
    """Run every step (reusing finished ones) and write ``OUT/report.md``; returns its path."""
    out, log = Path(opts.out), opts.log
    quiet = ["--quiet"] if opts.quiet else []
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def step(name: str, done: Path, commands: list[list[str]]) -> None:
        t0 = time.perf_counter()
        if _done(done):
            log(f"[{name}] reusing {done}")
        else:
            log(f"[{name}]")
            for argv in commands:
                _descnet(argv, log)
        timings[name] = round(time.perf_counter() - t0, 1)

    # 1. synthetic sequences
    sequences = out / "data" / "sequences"
    count = opts.train_sequences + opts.test_sequences
    step("sequences", sequences / "synth.json",
         [["data", "synth", "--out", str(sequences), "--sequences", str(count), "--seed", str(opts.seed),
           "--size", opts.image_size, *quiet]])
    names = sorted(p.name for p in sequences.iterdir() if p.is_dir())
    test_names = names[-opts.test_sequences:]
    train_names = names[:-opts.test_sequences]

    # 2. patch sets: train sequences; test sequences (+ Brown layout for FPR95)
    split_root = out / "data" / "split"
    for part, members in (("train", train_names), ("test", test_names)):
        folder = split_root / part
        if not folder.exists():
            folder.mkdir(parents=True)
            for name in members:
                (folder / name).symlink_to((sequences / name).resolve(), target_is_directory=True)
    train_patches, test_patches = out / "data" / "train-patches", out / "data" / "test-patches"
    common = ["--max-points", str(opts.points_per_sequence), "--seed", str(opts.seed), *quiet]
    step("train patches", train_patches / "patchify.json",
         [["data", "patches", "--sequences", str(split_root / "train"), "--out", str(train_patches), *common]])
    step("test patches", test_patches / "patchify.json",
         [["data", "patches", "--sequences", str(split_root / "test"), "--out", str(test_patches),
           "--brown", "demo", *common]])

    # 3. training
    runs = out / "runs"
    for model in MODELS:
        config_path = out / "configs" / f"{model}.yaml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(yaml.safe_dump(_train_config(opts, model, train_patches, test_patches),
                                              sort_keys=False))
        run_dir = runs / model
        if (run_dir / LAST_CHECKPOINT).exists() and not _training_finished(run_dir):
            step(f"train {model}", run_dir / ".finished", [["train", "--resume", str(run_dir)]])
        else:
            step(f"train {model}", run_dir / LAST_CHECKPOINT,
                 [["train", str(config_path), "--out", str(run_dir)]])
    specs = [str(runs / m) for m in MODELS]

    # 4-6. evaluation
    evals = out / "eval"
    step("eval hpatches", evals / "hpatches" / "hpatches_full.json",
         [["eval", "hpatches", "--root", str(test_patches / "hpatches-release"), "--split", "full",
           "--model", "rootsift", *sum((["--model", s] for s in specs), []),
           "--verification-pairs", str(opts.verification_pairs), "--out", str(evals / "hpatches"), *quiet]])
    step("eval brown", evals / "brown" / "brown_demo.json",
         [["eval", "brown", "--root", str(test_patches), "--subset", "demo", "--model", "rootsift",
           *sum((["--model", s] for s in specs), []), "--out", str(evals / "brown"), *quiet]])
    step("eval sequences", evals / "sequences" / "sequences.json",
         [["eval", "sequences", "--root", str(split_root / "test"), *sum((["--model", s] for s in specs), []),
           "--max-keypoints", str(opts.max_keypoints), "--out", str(evals / "sequences")]])

    # 7. one held-out image pair
    pair = sequences / test_names[0]
    images = sorted(p for p in pair.iterdir() if p.stem in ("1", "4"))
    step("match", out / "match" / "summary.json",
         [["match", str(images[0]), str(images[1]), "--model", specs[-1], "--out", str(out / "match")]])

    # 8. the shipped default model on real held-out pairs
    if opts.real_data is not None:
        from descnet.models.pretrained import DEFAULT_MODEL

        roots = sorted({str(opts.real_data / a) for a, _ in REAL_SEQUENCES})
        step("real pairs", evals / "real-sequences" / "sequences.json",
             [["eval", "sequences", *sum((["--root", r] for r in roots), []),
               *sum((["--sequence", b] for _, b in REAL_SEQUENCES), []), "--model", DEFAULT_MODEL,
               "--max-keypoints", str(opts.real_keypoints), "--out", str(evals / "real-sequences")]])
    else:
        log("[real pairs] skipped: no real data (set DESCNET_SHARED_DATA to the shared data folder)")

    timings["total"] = round(time.perf_counter() - started, 1)
    report = write_report(out, train_names, test_names, timings)
    log(f"\nreport: {report}")
    return report


def _training_finished(run_dir: Path) -> bool:
    """A run is finished when its metrics file has the final epoch row."""
    config = run_dir / RUN_CONFIG
    rows = read_metrics(run_dir)
    if not rows or not config.is_file():
        return False
    epochs = yaml.safe_load(config.read_text())["epochs"]
    return any(r.get("kind") == "epoch" and r.get("epoch") == epochs for r in rows)


def write_report(out: Path, train_names: list[str], test_names: list[str], timings: dict[str, float]) -> Path:
    """Gather the steps' JSON outputs into ``OUT/report.md`` (and the training-curve figure)."""
    from descnet.eval.report import plot_training_curves
    from descnet.io import atomic_path

    evals = out / "eval"
    lines = ["# descnet demo report", "",
             "**The data is synthetic**: procedurally textured images warped by random homographies with "
             "photometric changes, made by `descnet data synth`. The models trained for a few minutes on a CPU. "
             "The numbers show that the pipeline works end to end and how the models compare *here*; they say "
             "nothing about real-image performance (see the README for the real protocols).", "",
             f"- train sequences: {', '.join(train_names)}",
             f"- held-out test sequences: {', '.join(test_names)}", ""]
    hp = evals / "hpatches" / "hpatches_full.md"
    if hp.is_file():
        lines += ["## HPatches-style tasks on the held-out patches", "", hp.read_text().strip(), "",
                  "![HPatches-style results](eval/hpatches/hpatches_full.png)", ""]
    brown = evals / "brown" / "brown_demo.json"
    if brown.is_file():
        data = json.loads(brown.read_text())
        lines += ["## FPR95 on held-out Brown-layout pairs (lower is better)", "", "| model | FPR95 (%) |", "|---|---|"]
        for name, value in _fpr95_rows(data):
            lines.append(f"| {name} | {100 * value:.2f} |")
        lines.append("")
    seq = evals / "sequences" / "sequences.json"
    if seq.is_file():
        lines += ["## Image matching on the held-out sequences", "", _sequences_table(json.loads(seq.read_text())), "",
                  "![MMA](eval/sequences/mma.png)", ""]
    summary = out / "match" / "summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        lines += ["## One held-out pair", "", "```", json.dumps({k: s[k] for k in s if k in (
            "keypoints", "matches", "inliers", "model", "seconds")}, indent=1), "```", "", "![matches](match/matches.png)", ""]
    real = evals / "real-sequences" / "sequences.json"
    if real.is_file():
        from descnet.models.pretrained import DEFAULT_MODEL

        lines += ["## descnet's shipped model on real held-out pairs", "",
                  "Real images (Oxford graf and boat, EF notredame; never used to train the shipped weights), "
                  f"2000 SIFT keypoints per image, mutual nearest neighbours. `{DEFAULT_MODEL}` is the default "
                  f"model of every command (model card: `descnet/weights/{DEFAULT_MODEL}.md`); the models above "
                  "trained for minutes on synthetic data and are not expected to compete.", "",
                  _sequences_table(json.loads(real.read_text())), "", "![MMA](eval/real-sequences/mma.png)", ""]
    curves = plot_training_curves({m: out / "runs" / m for m in MODELS}, out / "training_curves.png")
    if curves:
        lines += ["## Training curves", "", "![training curves](training_curves.png)", ""]
    lines += ["## Time per step (s)", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in timings.items()]
    path = out / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def _fpr95_rows(data: dict[str, Any]) -> list[tuple[str, float]]:
    return [(label, float(r["fpr95"])) for label, result in data["models"].items() for r in result["pairs"].values()]


def _sequences_table(data: dict[str, Any]) -> str:
    from descnet.eval.sequences import format_summary

    return "```\n" + format_summary(data["summary"]) + "\n```"
