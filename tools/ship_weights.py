#!/usr/bin/env python
"""Put a trained run into the package as descnet's own weights, and write its model card.

    python tools/ship_weights.py pack RUN NAME      # RUN/last.pt -> descnet/weights/NAME.pt (float16)
    python tools/ship_weights.py card RUN NAME EVAL # descnet/weights/NAME.md from RUN and EVAL's results
    python tools/ship_weights.py matcher NAME ROOT...  # choose NAME's recommended matcher on its training
                                                      # sequences under ROOT... (held-out scenes refused)

``pack`` exports the *last* checkpoint (never one chosen on held-out data) with the training provenance
(config, step, code version, machine, training time) and the descriptor of a fixed probe input, which the
tests compare against. ``card`` reads the run (config, environment.json, metrics.jsonl) and the held-out
evaluation that ``tools/eval_heldout.sh`` wrote into EVAL (eval-fpr95/brown_*.json,
eval-sequences/sequences.json), and writes the card as markdown next to the weights (a "Notes" section written
by hand -- comparisons with other runs, caveats about the machine -- has to be added again after a rewrite).
``matcher`` runs :func:`descnet.eval.matcher_choice.recommend_matcher` on the sequences of the training config
(never its held-out ones, never an evaluation scene), stores the result in the file's ``info["matching"]`` (the
tensors stay bit-identical) and writes the card's "Recommended matcher" section; the registry entry in
``descnet/models/pretrained.py`` must then say the same (``matching=``; a test compares them).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from descnet.io import atomic_path, read_json  # noqa: E402
from descnet.models.pretrained import DEFAULT_MODEL  # noqa: E402
from descnet.runinfo import RUN_ENVIRONMENT, read_metrics  # noqa: E402

WEIGHTS = REPO / "descnet" / "weights"
PROBE_DIMS = 8
#: scenes that judge the models: never chosen on (issue 22), whatever a config holds out
EVALUATION_SCENES = ("fountain-P11", "entry-P10", "castle-P19", "castle-P30", "sacre_coeur", "graf", "boat",
                     "notredame")
MATCHER_SECTION = "## Recommended matcher"


def probe_patches():
    """The fixed input of the card's probe: 4 smooth 32x32 patches (no random generator involved)."""
    import torch

    y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    return torch.stack([x, y, (x * y).sqrt(), 0.5 + 0.5 * torch.sin(6.0 * x + 3.0 * y)])[:, None]


def _training(run: Path) -> dict:
    env = read_json(run / RUN_ENVIRONMENT)
    rows = read_metrics(run)
    steps = [r for r in rows if r.get("kind") == "step"]
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    first = env["sessions"][0]
    return {"sessions": len(env["sessions"]), "argv": first["argv"], "precision": first.get("precision"),
            "machine": {k: first["environment"].get(k) for k in ("cpu", "cpu_kind", "cpu_count", "torch_threads")},
            "code": first["environment"].get("code"), "versions": first["environment"].get("versions"),
            "train_seconds": epochs[-1].get("time_s") if epochs else None,
            "pairs_per_s": sum(r["pairs_per_s"] for r in steps[-20:]) / max(1, len(steps[-20:])) if steps else None,
            "validation": [{k: r[k] for k in r if k not in ("kind",)} for r in epochs]}


def pack(run: Path, name: str) -> Path:
    import torch

    from descnet.models import resolve_model
    from descnet.training.checkpoint import export_weights

    out = WEIGHTS / f"{name}.pt"
    info = {"name": name, "training": _training(run)}
    export_weights(run, out, half=True, info=info)  # its last.pt
    model = resolve_model(name)  # the shipped file through the normal resolver
    with torch.inference_mode():
        probe = model(probe_patches())[:, :PROBE_DIMS]
    obj = torch.load(out, map_location="cpu", weights_only=True)
    obj["info"]["probe"] = {"input": "tools/ship_weights.py:probe_patches", "dims": PROBE_DIMS,
                            "values": probe.tolist()}
    with atomic_path(out) as tmp:
        torch.save(obj, tmp)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); probe {probe[0, :4].tolist()}")
    return out


PLANAR_DATA = ("real sequences Oxford bark, trees, ubc, wall and HPatches v_churchill, plus 28 synthetic sequences "
               "rendered by `descnet data synth` from the EVD photos (both views of 14 scenes; EVD's graf is left out, it "
               "shows the held-out graf wall); patches from DoG + Hessian + Harris regions of 12 sigma (what `describe` "
               "cuts for SIFT), ref + HPatches easy/hard jitter, cached by `descnet.training.patch_cache`")


def _init_training(spec: str | None) -> dict | None:
    """The training record of what a run started from (``model.init``): a run directory or a shipped file."""
    import torch

    if not spec:
        return None
    path = Path(spec.split(":", 1)[1] if ":" in spec and not Path(spec).exists() else spec)
    if path.is_dir():
        return _training(path)
    if path.is_file():
        return ((torch.load(path, map_location="cpu", weights_only=True).get("info") or {}).get("training"))
    return None


def _data_lines(config: dict) -> list[str]:
    """The card's training-data lines: stage 1 (planar sequences) and, for a 3D stage, what it added."""
    patchsets = config["data"].get("patchsets") or []
    if not patchsets:
        return [f"- training data: {PLANAR_DATA}"]
    stage1 = _init_training(config["model"].get("init"))
    minutes = (stage1 or {}).get("train_seconds")
    return [
        f"- training, stage 1 (planar; `model.init` of stage 2: `{config['model']['init']}`"
        + (f", {minutes / 60:.1f} min of training" if minutes else "") + f"): {PLANAR_DATA}",
        "- training, stage 2 (3D; the same sequences plus): rendered 3D scenes (`descnet data synth --kind scene3d`, "
        "160 scenes of textured planes and a box at several depths, occluding each other, from the same EVD photos; "
        "HPatches-style patches of DoG regions of view 1 in the other 5 views, exact correspondences) and the real "
        "Strecha **Herz-Jesus-P8** scene (`tools/strecha_reconstruction_patches.py`: 8000 SIFT keypoints per image at "
        "full and half resolution, matched and triangulated with the ground-truth cameras, one patch per observation "
        "of each 3D point at its keypoint, Brown layout); folders: " + ", ".join(f"`{p}`" for p in patchsets),
    ]


def _fpr95(eval_dir: Path) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for path in sorted((eval_dir / "eval-fpr95").glob("brown_*.json")):
        data = read_json(path)
        subset = path.stem[len("brown_"):]
        for label, result in data["models"].items():
            for pairs in result["pairs"].values():
                table.setdefault(label, {})[subset] = 100 * float(pairs["fpr95"])
    return table


def card(run: Path, name: str, eval_dir: Path) -> Path:
    import torch

    obj = torch.load(WEIGHTS / f"{name}.pt", map_location="cpu", weights_only=True)
    info, model = obj["info"], obj["model"]
    training = info["training"]
    config = info["config"]
    seq = read_json(eval_dir / "eval-sequences" / "sequences.json")["summary"]
    fpr = _fpr95(eval_dir)
    order = [label for label in seq if label == name] + [label for label in seq if label != name]
    rows = ["| descriptor | correct matches / pair @1 / @3 / @5 px | MMA@3 | homography acc. @3 px (@5) | "
            "matches / pair | FPR95 % graf / boat / notredame |", "|---|---|---|---|---|---|"]
    for label in order:
        s = seq[label]["all"]
        c, h = s["correct"], s["homography_accuracy"]
        f = fpr.get(label) or fpr.get({"RootSIFT (OpenCV)": "rootsift", "SIFT (OpenCV)": "sift"}.get(label, ""), {})
        fcell = " / ".join(f"{f[k]:.2f}" for k in ("graf", "boat", "notredame") if k in f) or "-"
        if label in ("RootSIFT (OpenCV)", "SIFT (OpenCV)") and f:
            fcell += " (descnet's patch-based " + {"RootSIFT (OpenCV)": "rootsift", "SIFT (OpenCV)": "sift"}[label] + ")"
        bold = "**" if label == name else ""
        rows.append(f"| {bold}{label}{bold} | {c['1']:.0f} / {c['3']:.0f} / {c['5']:.0f} | {s['mma'][2]:.3f} | "
                    f"{h['3']:.3f} ({h['5']:.3f}) | {s['matches']:.0f} | {fcell} |")
    validation = ", ".join(f"{100 * r['fpr95/held-out']:.1f}" for r in training["validation"]
                           if "fpr95/held-out" in r)
    machine = training["machine"]
    minutes = training["train_seconds"] / 60 if training.get("train_seconds") else None
    code = training.get("code") or {}
    lines = [
        f"# Model card: `{name}`", "",
        f"descnet's own trained weights, shipped in the package (`descnet/weights/{name}.pt`, float16, "
        f"{(WEIGHTS / f'{name}.pt').stat().st_size / 1e6:.1f} MB) and registered as `{name}`"
        + (" -- **the default model** of `describe`, `match`, `eval sequences` and the Python API." if
           name == DEFAULT_MODEL else "."), "",
        "## What it is", "",
        f"- architecture: `{model['name']}` {json.dumps(model.get('options') or {})} (32x32 grey patch -> 128-D unit vector)",
        "- input convention: patches cut by `descnet describe` (kornia LAFs, anti-aliased pyramid); HPatches/Brown "
        "patches are resized with anti-aliasing (`resize: antialias`), as in training",
        *_data_lines(config),
        "- held out (never trained on, used for the figures below): Oxford graf, Oxford boat, EF notredame; "
        "`sfm/sacre_coeur` is never used",
        f"- recipe: `{Path(training['argv'][2]).name if len(training['argv']) > 2 else '?'}` (HardNet loss, "
        f"Adam lr {config['optimizer']['lr']} decayed linearly, batch {config['batch_size']}, "
        f"{config['epochs']} x {config['pairs_per_epoch']:,} pairs, seed {config['seed']}, precision "
        f"{(training.get('precision') or {}).get('amp', '?')})",
        f"- command: `PACK=1 tools/train_descnet_weights.sh ../shared/data runs/{name} {model['name']}` (makes the "
        f"data, trains or resumes both stages, packs the last checkpoint here, evaluates this file with "
        f"`tools/eval_heldout.sh`, chooses its matcher and writes this card); the run's own command lines, with any "
        f"runtime options: `runs/{name}/environment.json`",
        f"- code version: commit {code.get('commit', '?')}{' (with uncommitted changes)' if code.get('dirty') else ''}",
        f"- trained on: {machine.get('cpu')} ({machine.get('cpu_kind')}), {machine.get('cpu_count')} cores, no GPU; "
        f"{minutes:.1f} min of training{' in stage 2' if config['data'].get('patchsets') else ''}" if minutes else "",
        f"  at ~{training['pairs_per_s']:.0f} pairs/s; the shipped file is the last checkpoint (step {info['step']}), "
        f"not chosen on held-out data",
        f"- validation FPR95 (%) on 20,000 held-out pairs after each epoch: {validation}" if validation else "", "",
        "## Held-out figures", "",
        "`tools/eval_heldout.sh`: `descnet eval sequences` on graf, boat and EF notredame (15 image pairs 1-k, 2000 "
        "SIFT keypoints per image, the same keypoints for every descriptor, mutual nearest neighbours; correct = "
        "within t px of the ground-truth homography, counted before geometric verification; homography by MAGSAC) "
        "and `descnet eval brown` on 100k-pair Brown-layout sets cut from the same sequences.", "",
        *rows, "",
        "`hardnet-random` is the same architecture untrained (`hardnet:random`, seed 0). RootSIFT and SIFT are "
        "OpenCV's descriptors on the same keypoints in the matching columns.", "",
        "## Probe (checked by the tests)", "",
        f"`{name}` on `tools/ship_weights.py:probe_patches()` gives, for the first patch, "
        f"`{[round(v, 4) for v in info['probe']['values'][0][:4]]}` in its first dimensions.", "",
        "## Licence", "", "MIT, as descnet. The training images keep their own terms (see the shared data's SOURCES.md).",
    ]
    out = WEIGHTS / f"{name}.md"
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(line for line in lines if line is not None) + "\n")
    if info.get("matching"):  # the recommended matcher chosen by `matcher`, kept across rewrites
        write_matcher_section(name, info["matching"])
    print(f"wrote {out}")
    print("\n".join(rows))
    return out


def matcher(name: str, roots: list[Path], max_keypoints: int = 2000) -> dict:
    """Choose NAME's matcher on the training sequences under ``roots`` and record it (module docstring)."""
    import torch

    from descnet.data.sequences import ImageSequences
    from descnet.eval.matcher_choice import recommend_matcher
    from descnet.features.options import KeypointOptions

    path = WEIGHTS / f"{name}.pt"
    obj = torch.load(path, map_location="cpu", weights_only=True)
    holdout = set(((obj.get("info") or {}).get("config") or {}).get("data", {}).get("holdout") or [])
    sequences = [s for root in roots for s in ImageSequences(root)]
    excluded = sorted(s.name for s in sequences if s.name in holdout or s.name in EVALUATION_SCENES)
    sequences = [s for s in sequences if s.name not in holdout and s.name not in EVALUATION_SCENES]
    record = recommend_matcher(sequences, name, KeypointOptions(max_keypoints=max_keypoints), progress=True)
    record["excluded"] = excluded
    before = {k: v.clone() for k, v in obj["state_dict"].items()}
    obj["info"]["matching"] = record
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    again = torch.load(path, map_location="cpu", weights_only=True)
    assert all(torch.equal(again["state_dict"][k], v) for k, v in before.items())  # tensors unchanged
    write_matcher_section(name, record)
    print(json.dumps({k: v for k, v in record.items() if k != "curve"}, indent=1))
    return record


def matcher_section(name: str, record: dict) -> list[str]:
    """The card's "Recommended matcher" section for ``record`` (``info["matching"]``)."""
    setting = record["matcher"] + (f" ratio {record['ratio']:.2f}" if record.get("ratio") is not None else "")
    rows = ["| matcher | matches | correct @3 px | precision |", "|---|---|---|---|"]
    for row in record["curve"]:
        label = row["matcher"] + (f" {row['ratio']:.2f}" if row["ratio"] is not None else "")
        bold = "**" if (row["matcher"], row["ratio"]) == (record["matcher"], record["ratio"]) else ""
        rows.append(f"| {bold}{label}{bold} | {row['matches']:,} | {row['correct']:,} | {row['precision']:.3f} |")
    lowe, own = record["rootsift_lowe"], record["rootsift_choice"]
    own_setting = own["matcher"] + (f" {own['ratio']:.2f}" if own["ratio"] is not None else "")
    return [
        MATCHER_SECTION, "",
        f"**{setting}**: what `match`, `eval sfm` and `eval pose` use with `{name}` when no `--matcher`/`--ratio` "
        "is given (explicit options win; `info[\"matching\"]` of the weights file holds the same).", "",
        f"Rule (`descnet.eval.matcher_choice`, docs/protocols.md): {record['rule']}. Chosen on its training "
        f"sequences ({record['pairs']} pairs 1-k of {len(record['sequences'])} sequences: "
        f"{', '.join(record['sequences'])}; {record['keypoints']['max_keypoints']} SIFT keypoints per image), "
        f"never on held-out or evaluation scenes (left out: {', '.join(record.get('excluded') or []) or 'none present'}). "
        f"Chosen: {record['correct']:,} correct of {record['matches']:,} matches (precision {record['precision']:.3f}). "
        f"OpenCV RootSIFT on the same keypoints and pairs: {lowe['correct']:,} correct of {lowe['matches']:,} "
        f"(precision {lowe['precision']:.3f}) at Lowe's smnn 0.80, which SIFT and RootSIFT keep; the rule would "
        f"give it {own_setting} ({own['correct']:,} of {own['matches']:,}).", "", *rows, ""]


def write_matcher_section(name: str, record: dict) -> Path:
    """Put (or replace) the "Recommended matcher" section of the card, before "Probe"."""
    card_path = WEIGHTS / f"{name}.md"
    text = card_path.read_text()
    lines = text.split("\n")
    if MATCHER_SECTION in lines:  # drop the old section (up to the next "## ")
        start = lines.index(MATCHER_SECTION)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + lines[end:]
    at = next((i for i, line in enumerate(lines) if line.startswith("## Probe")), len(lines))
    lines = lines[:at] + matcher_section(name, record) + lines[at:]
    with atomic_path(card_path) as tmp:
        tmp.write_text("\n".join(lines))
    return card_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="RUN/last.pt -> descnet/weights/NAME.pt")
    p.add_argument("run", type=Path)
    p.add_argument("name")
    c = sub.add_parser("card", help="write descnet/weights/NAME.md")
    c.add_argument("run", type=Path)
    c.add_argument("name")
    c.add_argument("eval", type=Path)
    m = sub.add_parser("matcher", help="choose NAME's recommended matcher on its training sequences")
    m.add_argument("name")
    m.add_argument("roots", type=Path, nargs="+", help="folders of the training sequences")
    m.add_argument("--max-keypoints", type=int, default=2000)
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.run, args.name)
    elif args.command == "matcher":
        matcher(args.name, args.roots, args.max_keypoints)
    else:
        card(args.run, args.name, args.eval)


if __name__ == "__main__":
    main()
