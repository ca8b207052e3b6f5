#!/usr/bin/env bash
# Regenerate every accuracy figure and plot in the README from ../shared/data (about 45 minutes on 2 cores).
#   ./scripts/reproduce_results.sh [SHARED_DATA_DIR] [SYNTH_OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared/data}
SYNTH=${2:-/tmp/facecompare-synth-kyc}
. .venv/bin/activate
PAIRS="$SHARED/lfw/pairs.txt"
# LFW, 10 folds (pairs.csv, summary.json, roc.png, det.png, histogram.png)
facecompare evaluate "$PAIRS" --out evaluation/lfw
# the distance -> Similarity calibration shipped in the package, and the threshold table
facecompare calibrate "$PAIRS" --from-results evaluation/lfw/pairs.csv \
    --out src/facecompare/data/calibration-dlib-resnet-v1-lfw.json
facecompare evaluate "$PAIRS" --from-results evaluation/lfw/pairs.csv --out evaluation/lfw
# variants on fold 1
facecompare evaluate "$PAIRS" --from-results evaluation/lfw/pairs.csv --fold 0 --out evaluation/lfw-fold1-flip-center
facecompare evaluate "$PAIRS" --fold 0 --tta none --out evaluation/lfw-fold1-none-center
facecompare evaluate "$PAIRS" --fold 0 --face largest --out evaluation/lfw-fold1-flip-largest
facecompare evaluate "$PAIRS" --fold 0 --tta jitter:5 --out evaluation/lfw-fold1-jitter5-center
# the synthetic selfie-versus-ID benchmark (about 1.3 GB of images in $SYNTH)
facecompare synth-kyc --faces "$SHARED/lfw/lfw-deepfunneled" --n 2000 --seed 1 --out "$SYNTH"
facecompare evaluate "$SYNTH/pairs.csv" --out evaluation/synth-kyc
facecompare evaluate "$SYNTH/source-pairs.csv" --root "$SHARED/lfw/lfw-deepfunneled" --out evaluation/synth-kyc-source
# the real ID-document specimens
python scripts/eval_id_specimens.py --root "$SHARED/id_specimens" --json evaluation/id_specimens.json
