#!/usr/bin/env bash
# The HPatches protocol: train on the train sequences of split a, b or c (a 3D point = a patch row, its
# patches the 16 image types), then evaluate verification, matching and retrieval on the split's test
# sequences with the official task definitions.
#
#   tools/train_hpatches.sh [HPATCHES_RELEASE] [OUT] [SPLIT] [CONFIG] [-- extra descnet train arguments]
#
#   HPATCHES_RELEASE  the hpatches-release folder; the task files are looked up in ../tasks
#                     (default: $DESCNET_HPATCHES or data/hpatches/hpatches-release;
#                     `descnet data download hpatches --root data/hpatches` and `... hpatches-tasks ...`)
#   OUT               default $DESCNET_OUT or runs; the run is OUT/<config>-split<S>/
#   SPLIT             a (default), b or c
#   CONFIG            default configs/hardnet+-hpatches.yaml
set -euo pipefail
DESCNET=${DESCNET:-descnet}
POS=()  # positional arguments up to "--"; the rest goes to descnet train
while [[ $# -gt 0 && "$1" != "--" ]]; do POS+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
ROOT=${POS[0]:-${DESCNET_HPATCHES:-data/hpatches/hpatches-release}}
OUT=${POS[1]:-${DESCNET_OUT:-runs}}
SPLIT=${POS[2]:-a}
CONFIG=${POS[3]:-configs/hardnet+-hpatches.yaml}
case "$SPLIT" in a|b|c) ;; *) echo "train_hpatches.sh: SPLIT must be a, b or c, got '$SPLIT'" >&2; exit 2 ;; esac
[[ -d "$ROOT" ]] || { echo "train_hpatches.sh: no such hpatches-release folder '$ROOT'" >&2; exit 2; }
RUN="$OUT/$(basename "$CONFIG" .yaml)-split$SPLIT"

if [[ -f "$RUN/last.pt" ]]; then
  "$DESCNET" train --resume "$RUN" "$@"
else
  "$DESCNET" train "$CONFIG" --out "$RUN" --set "data.root=$ROOT" --set "data.split=$SPLIT" "$@"
fi
"$DESCNET" eval hpatches --root "$ROOT" --split "$SPLIT" --model "$RUN" --model rootsift --out "$RUN/eval"
