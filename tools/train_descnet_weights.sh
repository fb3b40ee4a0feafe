#!/usr/bin/env bash
# The recipe of descnet's shipped weights (descnet/weights/): synthetic sequences from the real EVD photos,
# training on them and the real training sequences (configs/descnet-<MODEL>.yaml), the held-out evaluation
# (tools/eval_heldout.sh) and packing the last checkpoint into the package with its model card.
#
#   tools/train_descnet_weights.sh [SHARED_DATA] [RUN] [MODEL] [-- extra descnet train arguments]
#
#   SHARED_DATA  default $DESCNET_SHARED_DATA or ../shared/data
#   RUN          run directory, default runs/descnet-MODEL (resumed when it holds last.pt)
#   MODEL        hardnet (default) or hardnet-csa
#   SYNTH        (environment) the synthetic sequences, default runs/synth-evd (made once, then reused)
#   PACK         (environment) 1: put the last checkpoint into the package as descnet/weights/descnet-MODEL.pt,
#                evaluate *that* file (float16, loaded through its registry name) and write its model card
#                descnet/weights/descnet-MODEL.md (default 0: evaluate the run directory only)
#
# Precision follows the CPU (runtime.amp=auto); on CUDA the same command uses the GPU.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
DESCNET=${DESCNET:-descnet}
POS=()
while [[ $# -gt 0 && "$1" != "--" ]]; do POS+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
DATA=${POS[0]:-${DESCNET_SHARED_DATA:-$REPO/../shared/data}}
MODEL=${POS[2]:-hardnet}
RUN=${POS[1]:-runs/descnet-$MODEL}
SYNTH=${SYNTH:-runs/synth-evd}
CONFIG="$REPO/configs/descnet-$MODEL.yaml"
[[ -f "$CONFIG" ]] || { echo "train_descnet_weights.sh: no config $CONFIG (MODEL is hardnet or hardnet-csa)" >&2; exit 2; }
for d in oxford-affine hpatches/sequences ef evd/1 evd/2; do
  [[ -d "$DATA/$d" ]] || { echo "train_descnet_weights.sh: no folder '$DATA/$d' (give the shared data folder)" >&2; exit 2; }
done

# scenes: the 28 EVD photos (both views of 14 scenes) without graf, which shows the held-out graf wall
if [[ ! -f "$SYNTH/synth.json" ]]; then
  SCENES=$(mktemp -d)
  trap 'rm -rf "$SCENES"' EXIT
  for view in 1 2; do
    for f in "$DATA"/evd/$view/*.png; do
      [[ "$(basename "$f")" == graf.png ]] || ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$SCENES/evd$view-$(basename "$f")"
    done
  done
  "$DESCNET" data synth --images "$SCENES" --sequences 28 --size 800x600 --seed 0 --out "$SYNTH"
fi

if [[ -f "$RUN/last.pt" ]]; then
  "$DESCNET" train --resume "$RUN" "$@"
else
  "$DESCNET" train "$CONFIG" --out "$RUN" \
    --set "data.root=[$DATA/oxford-affine, $DATA/hpatches/sequences, $DATA/ef, $SYNTH]" "$@"
fi
PYTHON=${PYTHON:-$(dirname "$(command -v "$DESCNET")")/python}
if [[ "${PACK:-0}" == 1 ]]; then
  "$PYTHON" "$HERE/ship_weights.py" pack "$RUN" "descnet-$MODEL"
  "$HERE/eval_heldout.sh" "$DATA" "$RUN" "descnet-$MODEL"
  "$PYTHON" "$HERE/ship_weights.py" card "$RUN" "descnet-$MODEL" "$RUN"
else
  "$HERE/eval_heldout.sh" "$DATA" "$RUN" "$RUN"
fi
