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
#                FPR95 in OUT/eval-fpr95/, matching results in OUT/eval-sequences/
#
# Quick check of the set-up (a few hundred steps): -- --set epochs=1 --set pairs_per_epoch=51200
# Without bf16 support in the CPU: -- --set runtime.amp=none (the config asks for bf16 autocast)
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
# held-out FPR95: each held-out sequence cut like the training data (the data.patchify options of
# configs/shared-sequences.yaml), in the Brown layout with 100k pairs
for seq in oxford-affine/graf oxford-affine/boat ef/notredame; do
  name=$(basename "$seq")
  [[ -d "$RUN/heldout/$name/$name" ]] || "$DESCNET" data patches --sequences "$DATA/$seq" --out "$RUN/heldout/$name" \
    --brown "$name" --detectors dog,hessian,harris --max-points 6000 --mr-size 6 --max-overlap 0.8 \
    --brown-types ref,e,h --overwrite --quiet
  "$DESCNET" eval brown --root "$RUN/heldout/$name" --subset "$name" --model "$RUN" --model hardnet \
    --model rootsift --model sift --out "$RUN/eval-fpr95" --quiet
done
"$DESCNET" eval sequences --root "$DATA/oxford-affine" --root "$DATA/ef" \
  --sequence graf --sequence boat --sequence notredame --model "$RUN" --model hardnet --out "$RUN/eval-sequences"
