#!/usr/bin/env bash
# The measurements behind the default pipeline's choices (README, "Choices, measured"): each one
# `facecompare evaluate` run with one setting changed, on the synthetic ID benchmark's two sets (drawn cards,
# 2,000 pairs; specimen artwork, 1,000 pairs) and on LFW. About 2 hours on 2 cores, the most telling rows
# first. Run scripts/reproduce_results.sh first: it renders both sets and evaluates the default on each.
#   ./scripts/reproduce_decisions.sh [SHARED_DATA_DIR] [SYNTH_OUT_DIR] [SPECIMENS_OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared/data}
SYNTH=${2:-/tmp/facecompare-synth-kyc}
SPECIMENS=${3:-/tmp/facecompare-synth-kyc-specimens}
. .venv/bin/activate
PAIRS="$SHARED/lfw/pairs.txt"
OUT=evaluation/decisions
run() {  # run NAME PAIRS [evaluate options...], with the environment the caller set
    local name=$1 pairs=$2
    shift 2
    echo "== $name ($(date +%H:%M:%S))"
    facecompare evaluate "$pairs" --no-progress --out "$OUT/$name" "$@"
}
# the most telling rows first, on the drawn cards; then LFW; then the specimen artwork and the blur on either side
# no orientation check: RetinaFace's first hit on a turned card is sometimes the face upside down
FACECOMPARE_ORIENTATION_CHECK=false run synth-kyc-no-orientation-check "$SYNTH/pairs.csv"
# test-time flip: embed once instead of averaging with the mirror image
run synth-kyc-tta-none "$SYNTH/pairs.csv" --tta none
# the detector: YuNet instead of RetinaFace
FACECOMPARE_DETECTOR=yunet run synth-kyc-yunet "$SYNTH/pairs.csv"
# the chip blur that helped the dlib ResNet against guilloche (0.8 px)
FACECOMPARE_CHIP_BLUR=0.8 run synth-kyc-blur-0.8 "$SYNTH/pairs.csv"
# chips cut from the full-resolution decode instead of the smallest sufficient one
FACECOMPARE_CHIPS_AT_FULL_RESOLUTION=true run synth-kyc-chips-full-resolution "$SYNTH/pairs.csv"
# LFW: the default with this code, and the two embedding-side rows
run lfw-default "$PAIRS"
run lfw-tta-none "$PAIRS" --tta none
FACECOMPARE_CHIP_BLUR=0.8 run lfw-blur-0.8 "$PAIRS"
# the specimen artwork
FACECOMPARE_ORIENTATION_CHECK=false run specimens-no-orientation-check "$SPECIMENS/pairs.csv"
run specimens-tta-none "$SPECIMENS/pairs.csv" --tta none
FACECOMPARE_CHIP_BLUR=0.8 run specimens-blur-0.8 "$SPECIMENS/pairs.csv"
# the blur on either side of 0.8
for BLUR in 0.4 1.2; do
    FACECOMPARE_CHIP_BLUR=$BLUR run "synth-kyc-blur-$BLUR" "$SYNTH/pairs.csv"
done
echo "== done ($(date +%H:%M:%S))"
