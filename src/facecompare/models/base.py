"""What the engine needs from a detector and a recognizer (structural types: any object that fits works)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Detection:
    """A face found by a detector, in pixels of the array it was given."""

    box: np.ndarray  # x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # 5 x 2: eye (image left), eye (image right), nose, mouth left, mouth right

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


class Detector(Protocol):
    name: str
    default_threshold: float

    def load(self) -> None: ...

    def detect(self, rgb: np.ndarray, score_threshold: float = 0.8) -> list[Detection]: ...


class Recognizer(Protocol):
    """Turns the face at a detection into an embedding.

    ``name`` identifies the model and its weights: embeddings and calibration files carry it, and embeddings
    of two names are never compared. ``metric`` is ``"cosine"`` (distance 1 - cos, vectors L2-normalised) or
    ``"euclidean"``. ``chip_size`` is the side of its aligned chip in pixels; ``chip_face_px`` is how wide (in
    source pixels) a face must be for its chip to get full detail: the engine cuts chips from the
    lowest-resolution decode that still has that. ``default_chip_blur`` is the Gaussian blur (pixels of the
    chip) it gets before embedding unless the settings say otherwise (see ``Settings.chip_blur``).
    """

    name: str
    metric: str
    dimension: int
    chip_size: int
    chip_face_px: float
    default_chip_blur: float

    def load(self) -> None: ...

    def align(self, rgb: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray: ...

    def embed(self, chips: Sequence[np.ndarray], jitters: int = 0) -> np.ndarray: ...
