#!/usr/bin/env bash
# Regenerate every accuracy figure and plot in the README from ../shared/data, for the default recognizer (SFace)
# and, beside it, the dlib ResNet (about 2.5 hours on 2 cores; the dlib runs need `pip install 'facecompare[dlib]'`,
# which scripts/setup.sh installs).
#   ./scripts/reproduce_results.sh [SHARED_DATA_DIR] [SYNTH_OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared/data}
SYNTH=${2:-/tmp/facecompare-synth-kyc}
. .venv/bin/activate
PAIRS="$SHARED/lfw/pairs.txt"
FACES="$SHARED/lfw/lfw-deepfunneled"
# the synthetic selfie-versus-ID benchmark (about 1.3 GB of images in $SYNTH); the same seed gives the same files
[ -f "$SYNTH/pairs.csv" ] || facecompare synth-kyc --faces "$FACES" --n 2000 --seed 1 --out "$SYNTH"
# the second set: the faces pasted into real specimens' portrait boxes (1,000 pairs, about 0.7 GB)
SPECIMENS=${SPECIMENS:-/tmp/facecompare-synth-kyc-specimens}
[ -f "$SPECIMENS/pairs.csv" ] || facecompare synth-kyc --faces "$FACES" --specimens "$SHARED/id_specimens" --n 1000 \
    --seed 1 --out "$SPECIMENS"
facecompare evaluate "$SPECIMENS/pairs.csv" --out evaluation/synth-kyc-specimens
facecompare evaluate "$SPECIMENS/source-pairs.csv" --root "$FACES" --out evaluation/synth-kyc-specimens-source

for RECOGNIZER in sface dlib; do
    if [ "$RECOGNIZER" = sface ]; then OUT=evaluation; else OUT=evaluation/dlib; fi
    NAME=$(python -c "from facecompare.models import create_recognizer as c; print(c('$RECOGNIZER').name)")
    # LFW, 10 folds (pairs.csv, summary.json, roc.png, det.png, histogram.png)
    facecompare evaluate "$PAIRS" --recognizer "$RECOGNIZER" --out "$OUT/lfw"
    # the distance -> Similarity calibration shipped in the package, and its threshold table; then the LFW
    # summary re-scored with it
    facecompare calibrate "$PAIRS" --from-results "$OUT/lfw/pairs.csv" --out "src/facecompare/data/calibration-$NAME-lfw.json"
    facecompare evaluate "$PAIRS" --from-results "$OUT/lfw/pairs.csv" --out "$OUT/lfw"
    # synthetic selfies against phone photos of ID cards, and the same pairs on the original photos
    facecompare evaluate "$SYNTH/pairs.csv" --recognizer "$RECOGNIZER" --out "$OUT/synth-kyc"
    facecompare evaluate "$SYNTH/source-pairs.csv" --root "$FACES" --recognizer "$RECOGNIZER" --out "$OUT/synth-kyc-source"
    # the real ID-document specimens
    FACECOMPARE_RECOGNIZER=$RECOGNIZER python scripts/eval_id_specimens.py --root "$SHARED/id_specimens" \
        --json "$OUT/id_specimens.json"
done

# SFace variants on LFW fold 1: no flip, the product's face rule (largest) instead of LFW's (centre)
facecompare evaluate "$PAIRS" --from-results evaluation/lfw/pairs.csv --fold 0 --out evaluation/lfw-fold1-flip-center
facecompare evaluate "$PAIRS" --fold 0 --tta none --out evaluation/lfw-fold1-none-center
facecompare evaluate "$PAIRS" --fold 0 --face largest --out evaluation/lfw-fold1-flip-largest
# the faster detector on the synthetic benchmark
FACECOMPARE_DETECTOR=yunet facecompare evaluate "$SYNTH/pairs.csv" --out evaluation/yunet/synth-kyc

# the strict end (README "The strict end"): every cross-identity pair of LFW folds 1-2, of the first 280 synthetic
# pairs (the same images as the first 280 of --n 2000), of 200 pairs on real specimen artwork and of the specimens;
# the levers measured on the saved face tables; crops of the highest impostors
STRICT=${STRICT:-/tmp/facecompare-strict}
mkdir -p "$STRICT"
python scripts/lfw_image_list.py "$PAIRS" 0,1 "$STRICT/lfw-2folds.csv" "$FACES"
facecompare evaluate "$STRICT/lfw-2folds.csv" --all-impostors --embeddings "$STRICT/lfw-faces.npz" --out evaluation/strict/lfw-2folds
[ -f "$STRICT/synth/pairs.csv" ] || facecompare synth-kyc --faces "$FACES" --n 280 --seed 1 --out "$STRICT/synth"
[ -f "$STRICT/synth-specimens/pairs.csv" ] || facecompare synth-kyc --faces "$FACES" --specimens "$SHARED/id_specimens" \
    --n 200 --seed 1 --out "$STRICT/synth-specimens"
facecompare evaluate "$STRICT/synth/pairs.csv" --all-impostors --embeddings "$STRICT/synth-faces.npz" \
    --out evaluation/strict/synth-kyc-280
facecompare evaluate "$STRICT/synth-specimens/pairs.csv" --all-impostors --embeddings "$STRICT/synth-specimens-faces.npz" \
    --out evaluation/strict/synth-kyc-specimens-200
python scripts/specimen_pairs.py "$SHARED/id_specimens" "$STRICT/specimens.csv"
facecompare evaluate "$STRICT/specimens.csv" --all-impostors --embeddings "$STRICT/specimen-faces.npz" \
    --out evaluation/strict/id-specimens
python scripts/strict_levers.py "$STRICT/lfw-2folds.csv" "$STRICT/lfw-faces.npz" --fit-on "$STRICT/synth/pairs.csv" \
    "$STRICT/synth-faces.npz" --json evaluation/strict/lfw-2folds/levers.json
for SET in synth:synth-kyc-280 synth-specimens:synth-kyc-specimens-200; do
    python scripts/strict_levers.py "$STRICT/${SET%%:*}/pairs.csv" "$STRICT/${SET%%:*}-faces.npz" --fit-on "$STRICT/lfw-2folds.csv" \
        "$STRICT/lfw-faces.npz" --cohort "$STRICT/lfw-faces.npz" --json "evaluation/strict/${SET#*:}/levers.json"
done
# the demographic view: FMR of same-sex against all impostor pairs (hand-made labels, evaluation/demographics)
python scripts/demographic_fmr.py "$STRICT/lfw-2folds.csv" "$STRICT/lfw-faces.npz" evaluation/demographics/lfw-sex.csv \
    --json evaluation/demographics/lfw-2folds.json
for SET in lfw-2folds synth-kyc-280 synth-kyc-specimens-200 id-specimens; do
    python scripts/worst_impostor_crops.py "evaluation/strict/$SET/strict.json" "docs/strict/$SET" 4
done
