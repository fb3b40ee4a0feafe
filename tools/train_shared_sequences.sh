#!/usr/bin/env bash
# The CPU learning check on the real image sequences of the shared data (configs/shared-sequences.yaml):
# train HardNet on patches cut from bark, trees, ubc, wall and v_churchill with HPatches-style e/h/t
# jitter, validate FPR95 on pairs of the held-out graf, boat and notredame; then compare, on those held-out
# sequences, FPR95 on Brown-style 100k-pair sets cut the same way (against the untrained network, SIFT and
# RootSIFT) and real matching (SIFT keypoints, MMA@1..10, homography accuracy) against OpenCV SIFT and
# RootSIFT.
#
#   tools/train_shared_sequences.sh [SHARED_DATA] [OUT] [-- extra descnet train arguments]
#
#   SHARED_DATA  default $DESCNET_SHARED_DATA or ../shared/data (needs oxford-affine/, hpatches/sequences/, ef/)
#   OUT          run directory, default runs/shared-sequences; held-out patch sets in OUT/heldout/,
#                FPR95 in OUT/eval-fpr95/, matching results in OUT/eval-sequences/ (tools/eval_heldout.sh)
#
# Quick check of the set-up (a few hundred steps): -- --set epochs=1 --set pairs_per_epoch=51200
# Precision: runtime.amp=auto (bf16 where the CPU computes it natively, else float32); the log says which
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
DESCNET=${DESCNET:-descnet}
POS=()  # positional arguments up to "--"; the rest goes to descnet train
while [[ $# -gt 0 && "$1" != "--" ]]; do POS+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
DATA=${POS[0]:-${DESCNET_SHARED_DATA:-$REPO/../shared/data}}
RUN=${POS[1]:-runs/shared-sequences}
for d in oxford-affine hpatches/sequences ef; do
  [[ -d "$DATA/$d" ]] || { echo "train_shared_sequences.sh: no folder '$DATA/$d' (give the shared data folder)" >&2; exit 2; }
done

if [[ -f "$RUN/last.pt" ]]; then
  "$DESCNET" train --resume "$RUN" "$@"
else
  "$DESCNET" train "$REPO/configs/shared-sequences.yaml" --out "$RUN" \
    --set "data.root=[$DATA/oxford-affine, $DATA/hpatches/sequences, $DATA/ef]" "$@"
fi
# held-out FPR95 (Brown-layout 100k-pair sets cut like the training data) and real matching, against the
# untrained network, RootSIFT and SIFT
"$HERE/eval_heldout.sh" "$DATA" "$RUN" "$RUN"
