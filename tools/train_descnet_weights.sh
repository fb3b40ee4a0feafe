#!/usr/bin/env bash
# The recipe of descnet's shipped weights (descnet/weights/), in two stages:
#   1. planar: synthetic sequences from the real EVD photos plus the real training sequences
#      (configs/descnet-MODEL.yaml), into RUN-planar;
#   2. 3D: stage 1 continued on the same sequences plus rendered 3D scenes (`data synth --kind scene3d`,
#      from the same EVD photos) and the 3D points of the real Strecha Herz-Jesus-P8 scene triangulated with
#      its ground-truth cameras (tools/strecha_reconstruction_patches.py) (configs/descnet-MODEL-3d.yaml),
#      into RUN;
# then the held-out evaluation (tools/eval_heldout.sh) and packing the last checkpoint into the package with
# its model card. About an hour per model on 2 idle CPU cores (both stages).
#
#   tools/train_descnet_weights.sh [SHARED_DATA] [RUN] [MODEL] [-- extra descnet train arguments]
#
#   SHARED_DATA  default $DESCNET_SHARED_DATA or ../shared/data
#   RUN          run directory of stage 2, default runs/descnet-MODEL (resumed when it holds last.pt);
#                stage 1 goes to RUN-planar
#   MODEL        hardnet (default) or hardnet-csa
#   INIT         (environment) what stage 2 starts from, default RUN-planar (trained first when it has no
#                last.pt); any model.init SPEC, e.g. a weights file
#   SYNTH, SYNTH3D, HERZJESU  (environment) the generated data, default runs/synth-evd, runs/synth3d-evd,
#                runs/herzjesu-p8 (made once, then reused)
#   PACK         (environment) 1: put the last checkpoint into the package as descnet/weights/descnet-MODEL.pt,
#                evaluate *that* file (float16, loaded through its registry name), choose its recommended
#                matcher on its training sequences and write its model card descnet/weights/descnet-MODEL.md
#                (default 0: evaluate the run directory only)
#
# Precision follows the CPU (runtime.amp=auto); on CUDA the same command uses the GPU. Never add
# fountain-P11, entry-P10, castle-P19/P30, sfm/sacre_coeur, graf, boat or EF notredame to the training data:
# they judge the models.
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
SYNTH3D=${SYNTH3D:-runs/synth3d-evd}
HERZJESU=${HERZJESU:-runs/herzjesu-p8}
PLANAR="$RUN-planar"
INIT=${INIT:-$PLANAR}
CONFIG="$REPO/configs/descnet-$MODEL.yaml"
CONFIG3D="$REPO/configs/descnet-$MODEL-3d.yaml"
[[ -f "$CONFIG" && -f "$CONFIG3D" ]] || { echo "train_descnet_weights.sh: no config $CONFIG or $CONFIG3D (MODEL is hardnet or hardnet-csa)" >&2; exit 2; }
for d in oxford-affine hpatches/sequences ef evd/1 evd/2 strecha/Herz-Jesus-P8; do
  [[ -d "$DATA/$d" ]] || { echo "train_descnet_weights.sh: no folder '$DATA/$d' (give the shared data folder)" >&2; exit 2; }
done

# scenes: the 28 EVD photos (both views of 14 scenes) without graf, which shows the held-out graf wall
if [[ ! -f "$SYNTH/synth.json" || ! -f "$SYNTH3D/synth.json" ]]; then
  SCENES=$(mktemp -d)
  trap 'rm -rf "$SCENES"' EXIT
  for view in 1 2; do
    for f in "$DATA"/evd/$view/*.png; do
      [[ "$(basename "$f")" == graf.png ]] || ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$SCENES/evd$view-$(basename "$f")"
    done
  done
  [[ -f "$SYNTH/synth.json" ]] || "$DESCNET" data synth --images "$SCENES" --sequences 28 --size 800x600 --seed 0 --out "$SYNTH"
  [[ -f "$SYNTH3D/synth.json" ]] || "$DESCNET" data synth --kind scene3d --images "$SCENES" --sequences 160 \
    --size 800x600 --seed 1 --out "$SYNTH3D"
fi
PYTHON=${PYTHON:-$(dirname "$(command -v "$DESCNET")")/python}
# Herz-Jesus-P8 at full and half resolution: 8000 SIFT keypoints per image, triangulated with the true cameras
for level in full:1.0 half:0.5; do
  [[ -f "$HERZJESU/${level%%:*}/points/info.txt" ]] || "$PYTHON" "$HERE/strecha_reconstruction_patches.py" \
    "$DATA/strecha/Herz-Jesus-P8" "$HERZJESU/${level%%:*}" --scale "${level##*:}" --max-keypoints 8000
done
ROOTS="data.root=[$DATA/oxford-affine, $DATA/hpatches/sequences, $DATA/ef, $SYNTH]"
PATCHSETS="data.patchsets=[$SYNTH3D, $HERZJESU/full/points, $HERZJESU/half/points]"

if [[ "$INIT" == "$PLANAR" ]]; then
  if [[ -f "$PLANAR/last.pt" ]]; then
    "$DESCNET" train --resume "$PLANAR" "$@"
  else
    "$DESCNET" train "$CONFIG" --out "$PLANAR" --set "$ROOTS" "$@"
  fi
fi
if [[ -f "$RUN/last.pt" ]]; then
  "$DESCNET" train --resume "$RUN" "$@"
else
  "$DESCNET" train "$CONFIG3D" --out "$RUN" --set "$ROOTS" --set "$PATCHSETS" --set "model.init=$INIT" "$@"
fi
if [[ "${PACK:-0}" == 1 ]]; then
  "$PYTHON" "$HERE/ship_weights.py" pack "$RUN" "descnet-$MODEL"
  "$HERE/eval_heldout.sh" "$DATA" "$RUN" "descnet-$MODEL"
  "$PYTHON" "$HERE/ship_weights.py" matcher "descnet-$MODEL" "$DATA/oxford-affine" "$DATA/hpatches/sequences" "$SYNTH"
  "$PYTHON" "$HERE/ship_weights.py" card "$RUN" "descnet-$MODEL" "$RUN"
else
  "$HERE/eval_heldout.sh" "$DATA" "$RUN" "$RUN"
fi
