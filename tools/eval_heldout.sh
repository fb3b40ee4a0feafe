#!/usr/bin/env bash
# Held-out evaluation of trained runs on the real sequences graf, boat (Oxford) and notredame (EF) of the
# shared data: FPR95 on Brown-style 100k-pair sets cut from each sequence (cut like the training data of
# configs/shared-sequences.yaml: DoG + Hessian + Harris regions, 12 sigma, ref + e + h) and real matching
# (`descnet eval sequences`: 2000 SIFT keypoints, correct matches per pair, MMA, homography accuracy),
# against the untrained network (hardnet:random), RootSIFT and SIFT.
#
#   tools/eval_heldout.sh SHARED_DATA OUT RUN [RUN ...]
#
#   OUT  results folder: OUT/heldout/ (the patch sets, reused), OUT/eval-fpr95/, OUT/eval-sequences/
set -euo pipefail
DESCNET=${DESCNET:-descnet}
[[ $# -ge 3 ]] || { echo "usage: tools/eval_heldout.sh SHARED_DATA OUT RUN [RUN ...]" >&2; exit 2; }
DATA=$1; OUT=$2; shift 2
MODELS=()
for run in "$@"; do MODELS+=(--model "$run"); done
for seq in oxford-affine/graf oxford-affine/boat ef/notredame; do
  name=$(basename "$seq")
  [[ -d "$OUT/heldout/$name/$name" ]] || "$DESCNET" data patches --sequences "$DATA/$seq" --out "$OUT/heldout/$name" \
    --brown "$name" --detectors dog,hessian,harris --max-points 6000 --mr-size 6 --max-overlap 0.8 \
    --brown-types ref,e,h --quiet
  "$DESCNET" eval brown --root "$OUT/heldout/$name" --subset "$name" "${MODELS[@]}" --model hardnet:random \
    --model rootsift --model sift --out "$OUT/eval-fpr95" --quiet
done
"$DESCNET" eval sequences --root "$DATA/oxford-affine" --root "$DATA/ef" \
  --sequence graf --sequence boat --sequence notredame "${MODELS[@]}" --model hardnet:random \
  --out "$OUT/eval-sequences"
