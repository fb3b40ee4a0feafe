#!/usr/bin/env bash
# The CSA ablation on Brown: train every configs/ablation-csa-*.yaml (bases 8/16/32/64, groups 1/2/4,
# placement 32/16/both) and the HardNet+ / full self-attention references on one subset, evaluate FPR95 on
# the other two, and collect one table (OUT/csa_ablation.md and .json) with the parameter counts.
#
#   tools/csa_ablation.sh [DATA_ROOT] [OUT] [TRAIN_SUBSET] [-- extra descnet train arguments]
#
# Defaults: DATA_ROOT $DESCNET_BROWN or data/brown, OUT $DESCNET_OUT/csa-ablation or runs/csa-ablation,
# TRAIN_SUBSET liberty. Each run resumes if it was interrupted; finished runs are only re-evaluated.
# Shorter runs for a first look: -- --set epochs=2 --set pairs_per_epoch=1000000
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
DESCNET=${DESCNET:-descnet}
POS=()  # positional arguments up to "--"; the rest goes to descnet train
while [[ $# -gt 0 && "$1" != "--" ]]; do POS+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
ROOT=${POS[0]:-${DESCNET_BROWN:-data/brown}}
OUT=${POS[1]:-${DESCNET_OUT:-runs}/csa-ablation}
TRAIN=${POS[2]:-liberty}
CONFIGS=("$REPO/configs/hardnet+.yaml" "$REPO/configs/hardnet-sa+.yaml" "$REPO"/configs/ablation-csa-*.yaml)
for config in "${CONFIGS[@]}"; do
  DESCNET="$DESCNET" "$HERE/train_brown.sh" "$ROOT" "$OUT" "$TRAIN" "$config" -- "$@"
done
PYTHON=${PYTHON:-$(command -v python3)}
[[ -x "$REPO/.venv/bin/python" ]] && PYTHON="$REPO/.venv/bin/python"
"$PYTHON" - "$OUT" "$TRAIN" <<'PY'
"""Collect OUT/*-TRAIN/eval/brown_*.json into one table."""
import json
import sys
from pathlib import Path

from descnet.io import write_json
from descnet.training import load_checkpoint

out, train = Path(sys.argv[1]), sys.argv[2]
rows = []
for run in sorted(out.glob(f"*-{train}")):
    results = {}
    for path in sorted((run / "eval").glob("brown_*.json")):
        report = json.loads(path.read_text())
        (model,) = report["models"].values()
        results[report["subset"]] = 100 * next(iter(model["pairs"].values()))["fpr95"]
    if not results:
        continue
    ckpt = load_checkpoint(run)  # its last.pt
    params = sum(v.numel() for k, v in ckpt["state_dict"].items() if not k.endswith(("running_mean", "running_var",
                                                                                    "num_batches_tracked")))
    rows.append({"run": run.name[: -len(train) - 1], "model": ckpt["model"]["name"],
                 "options": ckpt["model"]["options"], "params": params, "fpr95": results,
                 "mean": sum(results.values()) / len(results)})
subsets = sorted({s for r in rows for s in r["fpr95"]})
lines = [f"CSA ablation, trained on {train}: FPR95 (%) on the 100k pairs, lower is better", "",
         "| run | params | " + " | ".join(subsets) + " | mean |", "|---|---:|" + "---:|" * (len(subsets) + 1)]
for r in rows:
    lines.append(f"| {r['run']} | {r['params']:,} | " + " | ".join(f"{r['fpr95'].get(s, float('nan')):.2f}"
                                                           for s in subsets) + f" | {r['mean']:.2f} |")
(out / "csa_ablation.md").write_text("\n".join(lines) + "\n")
write_json(out / "csa_ablation.json", {"train": train, "rows": rows})
print("\n".join(lines))
print(f"wrote {out / 'csa_ablation.md'} and {out / 'csa_ablation.json'}")
PY
