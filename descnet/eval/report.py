"""Tables and figures of benchmark results: terminal tables laid out like the official HPatches results
printer, markdown and LaTeX tables with the models side by side, the HPatches-style three-panel figure and
Brown ROC curves.

Inputs are the result dicts of :mod:`descnet.eval.hpatches` (fractions); everything shown is in percent.
Functions return text or write files (atomically); none computes a metric.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from descnet.data.hpatches import LEVEL_NAMES, LEVELS
from descnet.io import atomic_path

__all__ = ["BenchmarkRun", "merge_earlier_results", "check_earlier_results", "check_unique_labels", "model_notes", "format_table", "hpatches_tables",
           "markdown_table", "latex_table", "plot_hpatches", "plot_roc",
           "HEADLINE_NOTES", "LEVEL_COLOURS"]

#: Colours of the official figure (hpatches-benchmark/python/utils/config.py).
LEVEL_COLOURS = {"e": "green", "h": "purple", "t": "red"}
HEADLINE_NOTES = {
    "verification": "mean imbalanced AP over easy/hard/tough x inter/intra negatives",
    "matching": "mean mAP over easy/hard/tough",
    "retrieval": "mean mAP over easy/hard/tough, pool of 20,000 distractors",
}


@dataclass
class BenchmarkRun:
    """What a benchmark run wrote: the result ``payload`` as written to ``path`` (its JSON file), the labels of
    the earlier results it ``kept`` beside the new ones, and every file ``written`` (sorted)."""

    payload: dict[str, Any]
    path: Path
    kept: list[str]
    written: list[Path]

    def kept_note(self) -> str | None:
        """The line that says which earlier results were kept (``None`` when none were)."""
        if not self.kept:
            return None
        return f"kept the earlier results of {', '.join(self.kept)} in {self.path} (--overwrite replaces them)"

    def written_note(self) -> str:
        """``wrote FILE, FILE, ...``."""
        return "wrote " + ", ".join(str(p) for p in self.written)


def merge_earlier_results(path: str | os.PathLike, payload: Mapping[str, Any], same: Sequence[str],
                          overwrite: bool = False, labelled: Sequence[str] = ("models",)
                          ) -> tuple[dict[str, Any], list[str]]:
    """``payload`` with the ``models`` of an earlier result file ``path`` that it does not hold (a rerun
    into the same folder adds models; a model rerun replaces its own entry). Returns ``(merged payload,
    labels kept from the file)``. ``overwrite`` (or no file) keeps ``payload`` as is.

    The earlier file must agree on the keys ``same`` (split, tasks, pairs files: what makes figures
    comparable); otherwise a ``ValueError`` names the file and ``--overwrite``. Notes are merged.
    ``labelled``: the sections keyed by model label (the first one decides which labels are kept).
    """
    from descnet.io import read_json

    path = Path(path)
    if overwrite or not path.is_file():
        return dict(payload), []
    try:
        old = read_json(path)
    except ValueError as err:
        raise ValueError(f"{err}; pass --overwrite to replace it, or use another --out") from None
    if not isinstance(old, Mapping) or not all(isinstance(old.get(k), Mapping) for k in labelled):
        raise ValueError(f"{path}: not a descnet result file; pass --overwrite to replace it, or use another --out")
    differ = [k for k in same if old.get(k) != payload.get(k)]
    if differ:
        raise ValueError(_other_setting(path, differ))
    kept = [label for label in old[labelled[0]] if label not in payload[labelled[0]]]
    merged = dict(payload)
    for key in labelled:
        merged[key] = {**{label: old[key][label] for label in kept if label in old[key]}, **payload[key]}
    if "notes" in payload:
        merged["notes"] = list(dict.fromkeys([*old.get("notes", []), *payload["notes"]]))
    return merged, kept


def _other_setting(path: Path, differ: Sequence[str]) -> str:
    return (f"{path}: holds results of another setting ({', '.join(differ)} differ), which cannot share a table; "
            f"pass --overwrite to replace them, or use another --out")


def check_earlier_results(path: str | os.PathLike, setting: Mapping[str, Any], overwrite: bool = False) -> None:
    """Refuse up front (before any work) when the earlier result file ``path`` holds another ``setting``
    (keys and values as in the payload). An unreadable file is left to :func:`merge_earlier_results`."""
    import json

    path = Path(path)
    if overwrite or not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(old, Mapping):
        differ = [k for k in setting if old.get(k) != setting[k]]
        if differ:
            raise ValueError(_other_setting(path, differ))


def check_unique_labels(labels: Sequence[str], what: str = "model SPECs", hint: str = "") -> None:
    """Refuse a run whose result tables would have two rows of one name: ``two <what> are both named X<hint>``."""
    dupes = sorted({label for label in labels if list(labels).count(label) > 1})
    if dupes:
        raise ValueError(f"two {what} are both named {', '.join(dupes)}{hint}")


def model_notes(payload: Mapping[str, Any]) -> list[str]:
    """The notes of a result payload followed by the warnings of its models (degenerate descriptors)."""
    return [*payload.get("notes", []), *(w for res in payload["models"].values() for w in res.get("warnings", []))]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], floatfmt: str = ".2f") -> str:
    """A plain table like tabulate's default ("simple") format: text left, numbers right aligned."""
    def cell(v: Any) -> str:
        return format(v, floatfmt) if isinstance(v, (float, np.floating)) else str(v)

    body = [[cell(v) for v in row] for row in rows]
    numeric = [all(isinstance(r[i], (int, float, np.number)) for r in rows) for i in range(len(headers))]
    widths = [max([len(str(h))] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line([str(h) for h in headers]), line(["-" * w for w in widths])] + [line(r) for r in body])


def _pc(x: float) -> float:
    return 100.0 * float(x)


def hpatches_tables(label: str, results: Mapping[str, Any], split: str) -> str:
    """The official printer's tables for one descriptor, in percent, each titled with split and variant."""
    out = []
    name = label.upper()
    if "verification" in results:
        v = results["verification"]
        for variant, metric, key in (("Balanced", "auc", "balanced_auc"), ("Imbalanced", "ap", "imbalanced_ap")):
            rows = [[LEVEL_NAMES[lv].capitalize(), _pc(v[lv]["inter"][key]), _pc(v[lv]["intra"][key])]
                    for lv in LEVELS]
            out.append(f">> {name} - verification, {variant} variant ({metric}, %), split {split}")
            out.append(format_table(["Noise", "Inter", "Intra"], rows))
    if "matching" in results:
        m = results["matching"]
        out.append(f">> {name} - matching mAP (%), split {split}")
        out.append(format_table([LEVEL_NAMES[lv].capitalize() for lv in LEVELS] + ["mean"],
                                [[_pc(m["mAP"][lv]) for lv in LEVELS] + [_pc(m["mean"])]]))
    if "retrieval" in results:
        r = results["retrieval"]
        pools = [str(p) for p in r["pool_sizes"]]
        out.append(f">> {name} - retrieval mAP (%), {r['queries']} queries, pool = 5 positives + k - 5 "
                   f"distractors, split {split}")
        rows = [[LEVEL_NAMES[lv].capitalize()] + [_pc(r["mAP"][lv][p]) for p in pools] for lv in LEVELS]
        rows.append(["mean"] + [_pc(r["mean"][p]) for p in pools])
        out.append(format_table(["Noise"] + pools, rows))
    return "\n".join(out)


def _level_values(results: Mapping[str, Any], task: str) -> dict[str, float]:
    """Per-level numbers behind each headline (fractions)."""
    r = results[task]
    if task == "verification":
        return {lv: float(np.mean([r[lv][k]["imbalanced_ap"] for k in ("inter", "intra")])) for lv in LEVELS}
    if task == "matching":
        return dict(r["mAP"])
    last = str(r["pool_sizes"][-1])
    return {lv: r["mAP"][lv][last] for lv in LEVELS}


def _present_tasks(models: Mapping[str, Mapping[str, Any]]) -> list[str]:
    tasks = ("verification", "matching", "retrieval")
    return [t for t in tasks if all(t in res for res in models.values())]


def markdown_table(models: Mapping[str, Mapping[str, Any]], split: str, notes: Sequence[str] = ()) -> str:
    """Markdown: the three headline mAPs side by side, then easy/hard/tough per task (percent)."""
    tasks = _present_tasks(models)
    lines = [f"HPatches, split `{split}`, mAP (%)", ""]
    lines.append("| descriptor | " + " | ".join(t.capitalize() for t in tasks) + " |")
    lines.append("|---|" + "---:|" * len(tasks))
    for label, res in models.items():
        lines.append(f"| {label} | " + " | ".join(f"{_pc(res['headline'][t]):.2f}" for t in tasks) + " |")
    lines += ["", "Per noise level (easy / hard / tough):", ""]
    lines.append("| descriptor | " + " | ".join(f"{t.capitalize()} {LEVEL_NAMES[lv]}" for t in tasks
                                                 for lv in LEVELS) + " |")
    lines.append("|---|" + "---:|" * (3 * len(tasks)))
    for label, res in models.items():
        cells = [f"{_pc(_level_values(res, t)[lv]):.2f}" for t in tasks for lv in LEVELS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [""] + [f"- {t.capitalize()}: {HEADLINE_NOTES[t]}." for t in tasks] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(a, b)
    return text


def latex_table(models: Mapping[str, Mapping[str, Any]], split: str, notes: Sequence[str] = ()) -> str:
    """A LaTeX ``table`` (booktabs): per task easy / hard / tough and the headline mAP, in percent."""
    tasks = _present_tasks(models)
    cols = "l" + "rrrr" * len(tasks)
    head1 = " & ".join(rf"\multicolumn{{4}}{{c}}{{{t.capitalize()}}}" for t in tasks)
    rules = " ".join(rf"\cmidrule(lr){{{2 + 4 * i}-{5 + 4 * i}}}" for i in range(len(tasks)))
    head2 = " & ".join("E & H & T & mAP" for _ in tasks)
    body = []
    for label, res in models.items():
        cells = []
        for t in tasks:
            per = _level_values(res, t)
            cells += [f"{_pc(per[lv]):.2f}" for lv in LEVELS] + [rf"\textbf{{{_pc(res['headline'][t]):.2f}}}"]
        body.append(f"{_tex(label)} & " + " & ".join(cells) + r" \\")
    caption = (f"HPatches results (mAP, \\%), split {_tex(split)}. E/H/T: easy, hard, tough. "
               + " ".join(f"{t.capitalize()}: {_tex(HEADLINE_NOTES[t])}." for t in tasks)
               + "".join(f" {_tex(n)}" for n in notes))
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
        rf"Descriptor & {head1} \\", rules, rf" & {head2} \\", r"\midrule", *body, r"\bottomrule",
        r"\end{tabular}", rf"\caption{{{caption}}}", r"\label{tab:hpatches}", r"\end{table}", ""])


def _save_figure(fig: Any, paths: Sequence[str | os.PathLike]) -> list[Path]:
    written = []
    for path in paths:
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".").lower(), bbox_inches="tight")
        written.append(path)
    return written


def plot_hpatches(models: Mapping[str, Mapping[str, Any]], paths: Sequence[str | os.PathLike],
                  split: str, note: str = "") -> list[Path]:
    """The HPatches figure: one panel per task, a bar per descriptor (headline mAP) with easy / hard /
    tough markers (verification: inter and intra; matching: viewpoint and illumination sequences)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    tasks = _present_tasks(models)
    labels = list(models)
    height = 1.4 + 0.4 * len(labels) + 0.8  # header, bars, axis labels (inches)
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), height), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        order = sorted(labels, key=lambda lb: models[lb]["headline"][task])
        y = np.arange(len(order))
        values = [_pc(models[lb]["headline"][task]) for lb in order]
        ax.barh(y, values, color="lightsteelblue", edgecolor="k", linewidth=1.0, alpha=0.9)
        for lv in LEVELS:
            if task == "verification":
                for neg, marker in (("inter", "d"), ("intra", ".")):
                    ax.plot([_pc(models[lb][task][lv][neg]["imbalanced_ap"]) for lb in order], y, marker=marker,
                            linestyle="", color=LEVEL_COLOURS[lv], alpha=0.8)
            elif task == "matching":
                for kind, marker in (("view", "*"), ("illum", "D")):
                    vals = [models[lb][task]["by_sequence_type"].get(kind, {}).get(lv) for lb in order]
                    if all(v is not None for v in vals):
                        ax.plot([_pc(v) for v in vals], y, marker=marker, markersize=5, linestyle="",
                                color=LEVEL_COLOURS[lv], alpha=0.8)
            else:
                ax.plot([_pc(_level_values(models[lb], task)[lv]) for lb in order], y, marker="o", markersize=4,
                        linestyle="", color=LEVEL_COLOURS[lv], alpha=0.8)
        for yi, v in zip(y, values):
            ax.text(103, yi, f"{v:.2f}", va="center", fontsize=9, clip_on=False)
        ax.set_yticks(y)
        ax.set_yticklabels(order)
        ax.set_xlim(0, 100)
        ax.grid(axis="x", linestyle="dashed", color="gray", alpha=0.6)
        ax.set_axisbelow(True)
        ax.set_xlabel({"verification": "Patch verification mAP [%]", "matching": "Image matching mAP [%]",
                       "retrieval": "Patch retrieval mAP [%]"}[task])
    handles = [Line2D([], [], color=LEVEL_COLOURS[lv], marker="s", linestyle="", label=LEVEL_NAMES[lv].capitalize())
               for lv in LEVELS]
    handles += [Line2D([], [], color="k", marker=m, linestyle="", label=t) for m, t in
                (("d", "inter"), (".", "intra"), ("*", "viewpoint"), ("D", "illumination"))]
    fig.suptitle(f"HPatches results, split {split}" + (f" ({note})" if note else ""), y=1 - 0.15 / height)
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.5 / height), ncol=len(handles),
               frameon=False, fontsize=9)
    fig.subplots_adjust(left=0.08, right=0.95, wspace=0.45, top=1 - 1.2 / height, bottom=0.8 / height)
    try:
        return _save_figure(fig, paths)
    finally:
        plt.close(fig)


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], fpr95: Mapping[str, float],
             paths: Sequence[str | os.PathLike], title: str) -> list[Path]:
    """ROC curves (true positive rate over false positive rate, log x axis) with FPR95 in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for label, (fpr, tpr) in curves.items():
        ax.plot(np.maximum(fpr, 1e-5), tpr, label=f"{label} (FPR95 {_pc(fpr95[label]):.2f}%)")
    ax.axhline(0.95, color="gray", linestyle="dashed", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    try:
        return _save_figure(fig, paths)
    finally:
        plt.close(fig)


def plot_training_curves(runs: Mapping[str, str | os.PathLike], path: str | os.PathLike) -> Path | None:
    """Loss per step and validation FPR95 per epoch of training runs (their ``metrics.jsonl``), one line per
    run; written atomically as PNG. Returns the path, or ``None`` when no run has metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from descnet.runinfo import read_metrics

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.8))
    drawn = False
    for label, run in runs.items():
        rows = read_metrics(run)
        steps = [r for r in rows if r.get("kind") == "step"]
        epochs = [r for r in rows if r.get("kind") == "epoch"]
        if steps:
            ax_loss.plot([r["step"] for r in steps], [r["loss"] for r in steps], label=label)
            drawn = True
        pts = [(r["step"], 100 * r["fpr95"]) for r in epochs if "fpr95" in r]  # mean over the pair sets
        if pts:
            ax_val.plot(*zip(*pts), marker="o", label=label)
    if not drawn:
        plt.close(fig)
        return None
    ax_loss.set(xlabel="step", ylabel="triplet loss", title="training loss")
    ax_val.set(xlabel="step", ylabel="FPR95 (%)", title="validation FPR95 (lower is better)")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
