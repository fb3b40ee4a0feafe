#!/usr/bin/env bash
# The Brown (UBC Phototour) protocol: train on one subset, report FPR95 on the 100k pairs of the other two.
#
#   tools/train_brown.sh [DATA_ROOT] [OUT] [TRAIN_SUBSET] [CONFIG] [-- extra descnet train arguments]
#
#   DATA_ROOT     folder holding liberty/, notredame/, yosemite/   (default: $DESCNET_BROWN or data/brown;
#                 fill it with `descnet data download brown --root DATA_ROOT`)
#   OUT           runs and results go to OUT/<config>-<subset>/ and OUT/<config>-<subset>/eval/
#                 (default: $DESCNET_OUT or runs)
#   TRAIN_SUBSET  liberty (default), notredame or yosemite
#   CONFIG        default configs/hardnet+.yaml
#
# Example: tools/train_brown.sh data/brown runs notredame configs/hardnet-csa+.yaml -- --set runtime.amp=bf16
# A run that was interrupted is resumed when the script is run again with the same arguments.
set -euo pipefail
DESCNET=${DESCNET:-descnet}
POS=()  # positional arguments up to "--"; the rest goes to descnet train
while [[ $# -gt 0 && "$1" != "--" ]]; do POS+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
ROOT=${POS[0]:-${DESCNET_BROWN:-data/brown}}
OUT=${POS[1]:-${DESCNET_OUT:-runs}}
TRAIN=${POS[2]:-liberty}
CONFIG=${POS[3]:-configs/hardnet+.yaml}
case "$TRAIN" in
  liberty) TEST=(notredame yosemite) ;;
  notredame) TEST=(liberty yosemite) ;;
  yosemite) TEST=(liberty notredame) ;;
  *) echo "train_brown.sh: TRAIN_SUBSET must be liberty, notredame or yosemite, got '$TRAIN'" >&2; exit 2 ;;
esac
[[ -d "$ROOT" ]] || { echo "train_brown.sh: no such data folder '$ROOT'" >&2; exit 2; }
RUN="$OUT/$(basename "$CONFIG" .yaml)-$TRAIN"

if [[ -f "$RUN/last.pt" ]]; then
  "$DESCNET" train --resume "$RUN" "$@"
else
  "$DESCNET" train "$CONFIG" --out "$RUN" --set "data.root=$ROOT" --set "data.name=$TRAIN" \
    --set "validation.pairs=[{name: ${TEST[0]}}, {name: ${TEST[1]}}]" "$@"
fi
for subset in "${TEST[@]}"; do
  "$DESCNET" eval brown --root "$ROOT" --subset "$subset" --model "$RUN" --out "$RUN/eval"
done
