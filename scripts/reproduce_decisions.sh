#!/usr/bin/env bash
# The measurements behind the default pipeline's choices for SFace (README, "Choices, measured"): each one
# `facecompare evaluate` run with one setting changed, on LFW (small clean photos) and on the synthetic ID
# benchmark (printed portraits). About 2 hours on 2 cores. Run scripts/reproduce_results.sh first (it makes
# the synthetic set).
#   ./scripts/reproduce_decisions.sh [SHARED_DATA_DIR] [SYNTH_OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared/data}
SYNTH=${2:-/tmp/facecompare-synth-kyc}
. .venv/bin/activate
PAIRS="$SHARED/lfw/pairs.txt"
OUT=evaluation/decisions
# test-time flip: embed once instead of averaging with the mirror image
facecompare evaluate "$PAIRS" --tta none --out "$OUT/lfw-tta-none"
facecompare evaluate "$SYNTH/pairs.csv" --tta none --out "$OUT/synth-kyc-tta-none"
# the chip blur that helped the dlib ResNet against guilloche (0.8 px)
FACECOMPARE_CHIP_BLUR=0.8 facecompare evaluate "$PAIRS" --out "$OUT/lfw-blur-0.8"
FACECOMPARE_CHIP_BLUR=0.8 facecompare evaluate "$SYNTH/pairs.csv" --out "$OUT/synth-kyc-blur-0.8"
# no orientation check
FACECOMPARE_ORIENTATION_CHECK=false facecompare evaluate "$SYNTH/pairs.csv" --out "$OUT/synth-kyc-no-orientation-check"
