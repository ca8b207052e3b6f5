"""Prepare the shipped ONNX graphs once, offline, so that no process imports ``onnx`` at start (1.3 s).

    python scripts/prepare_weights.py            # write the prepared files beside the originals, print digests
    python scripts/prepare_weights.py --check    # prepare in memory and compare with the shipped files

Needs ``pip install 'facecompare[onnx]'`` (the ``onnx`` package); run by hand when a weight file changes, never at
install time. What it writes (src/facecompare/models/weights/, listed with their sha256 in ``__init__.py`` and in
NOTICE):

- ``face_recognition_sface_2021dec_int8bq_folded.onnx``: SFace with its 29 unused graph inputs dropped and its
  int8 block-quantised weights (``DequantizeLinear`` of constants) folded into float32 initializers
  (``facecompare.models.onnx_graph.prepare``), and each of its 27 PRelu written as ``Max(x, slope * x)`` or
  ``Relu(x) + slope * Min(x, 0)`` (``split_prelu``: the same numbers, about 1.9x faster per face); outputs
  equal to the original's to about 2e-6.
- ``face_detection_yunet_2023mar_int8bq_prepared.onnx``: YuNet folded the same way, with its input's height and
  width made symbolic (``symbolic_image_size``) so that any multiple of 32 runs.

The output is deterministic (the same bytes from the same original and the same ``onnx`` serializer), which
``--check`` and ``tests/test_models.py`` verify.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from facecompare.models.onnx_graph import prepare, symbolic_image_size  # noqa: E402
from facecompare.models.weights import WEIGHTS, read_weights  # noqa: E402

#: prepared key -> (original key, preparation)
PREPARATIONS = {
    "sface-2021dec-int8bq-folded": ("sface-2021dec-int8bq", prepare),
    "yunet-2023mar-int8bq-prepared": ("yunet-2023mar-int8bq", lambda data: symbolic_image_size(prepare(data))),
}


def prepared(key: str) -> bytes:
    """The prepared bytes for a prepared key, made from its shipped original."""
    original, step = PREPARATIONS[key]
    return step(read_weights(original))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    args = parser.parse_args()
    folder = Path(str(resources.files("facecompare.models.weights")))
    failures = 0
    for key in PREPARATIONS:
        data = prepared(key)
        digest = hashlib.sha256(data).hexdigest()
        entry = WEIGHTS.get(key)
        filename = entry.filename if entry else f"{key}.onnx"
        if args.check:
            shipped = (folder / filename).read_bytes() if (folder / filename).is_file() else b""
            same = shipped == data and entry is not None and entry.sha256 == digest and entry.size == len(data)
            failures += not same
            print(f"{filename}: {'matches' if same else 'DIFFERS from'} a fresh preparation (sha256 {digest})")
        else:
            (folder / filename).write_bytes(data)
            print(f"wrote {filename}: sha256 {digest}, {len(data):,} bytes")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
