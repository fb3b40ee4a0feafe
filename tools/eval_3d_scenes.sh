#!/usr/bin/env bash
# The 3D-scene figures of the shipped weights' model cards (issue 22), on scenes no descnet model trains on:
#   * relative pose (SuperGlue's AUC) over all pairs of strecha/fountain-P11 and strecha/entry-P10
#     (`descnet eval pose`: half resolution, the same 2000 SIFT keypoints for every row, each row with its
#     recommended matcher; OpenCV SIFT and RootSIFT added);
#   * camera errors of structure from motion on fountain-P11 (`descnet eval sfm`, ground truth found beside the
#     images; COLMAP's SIFT keypoints, RootSIFT and COLMAP's own pipeline added);
#   * the Sacre Coeur SfM table (points, registered images, reprojection error; no ground truth).
#
#   tools/eval_3d_scenes.sh SHARED_DATA OUT MODEL [MODEL ...]
#
#   MODEL  model SPECs, e.g. descnet-hardnet-csa descnet-hardnet hardtfeat tfeat-liberty; published weights are
#          resolved by name (DESCNET_MIRROR may point at a folder holding them, e.g. SHARED_DATA/weights/*)
#   OUT    results folder: OUT/pose-fountain, OUT/pose-entry, OUT/sfm-fountain, OUT/sfm-sacre-coeur
#   SFM_MODELS  (environment) the models of the two SfM runs (default: the first MODEL and every MODEL named
#          hardtfeat); SfM takes ~2 min per row
set -euo pipefail
DESCNET=${DESCNET:-descnet}
[[ $# -ge 3 ]] || { echo "usage: tools/eval_3d_scenes.sh SHARED_DATA OUT MODEL [MODEL ...]" >&2; exit 2; }
DATA=$1; OUT=$2; shift 2
for d in strecha/fountain-P11 strecha/entry-P10 sfm/sacre_coeur; do
  [[ -d "$DATA/$d" ]] || { echo "eval_3d_scenes.sh: no folder '$DATA/$d' (give the shared data folder)" >&2; exit 2; }
done
MODELS=()
for m in "$@"; do MODELS+=(--model "$m"); done
SFM=()
for m in ${SFM_MODELS:-$1 $(printf '%s\n' "$@" | grep -x hardtfeat || true)}; do SFM+=(--model "$m"); done
for scene in fountain-P11 entry-P10; do
  "$DESCNET" eval pose "$DATA/strecha/$scene" "${MODELS[@]}" --out "$OUT/pose-${scene%-*}" --quiet
done
"$DESCNET" eval sfm "$DATA/strecha/fountain-P11/images" "${SFM[@]}" --out "$OUT/sfm-fountain" --quiet
"$DESCNET" eval sfm "$DATA/sfm/sacre_coeur" "${SFM[@]}" --out "$OUT/sfm-sacre-coeur" --quiet
