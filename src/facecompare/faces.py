"""The engine's internal representation: plain typed dataclasses.

Coordinates are ratios of the (EXIF-corrected) image width and height, as in Rekognition.
They become Rekognition dictionaries only in :mod:`facecompare.rekognition`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InvalidParameterException

LANDMARK_TYPES = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")


@dataclass(frozen=True, eq=False)
class Embedding:
    """A face embedding and the model that made it. Embeddings of two models are never compared."""

    vector: np.ndarray = field(repr=False)
    model: str
    metric: str = "cosine"  # "cosine": 1 - cos of L2-normalised vectors; "euclidean": dlib's metric

    def to_dict(self) -> dict:
        return {"model": self.model, "metric": self.metric, "vector": [float(v) for v in self.vector]}

    @classmethod
    def from_dict(cls, raw: dict) -> Embedding:
        return cls(np.asarray(raw["vector"], dtype=np.float32), str(raw["model"]), str(raw["metric"]))


def distance(a: Embedding, b: Embedding) -> float:
    """The distance between two embeddings of the same model, in that model's metric.

    Raises :class:`InvalidParameterException` for embeddings of different models (their distances mean nothing).
    """
    if a.model != b.model or a.metric != b.metric:
        raise InvalidParameterException(
            f"Cannot compare an embedding of {a.model} with one of {b.model}: embeddings of different models are "
            "not comparable. Embed both faces with the same recognizer (FACECOMPARE_RECOGNIZER)."
        )
    x = np.asarray(a.vector, dtype=np.float64)
    y = np.asarray(b.vector, dtype=np.float64)
    if a.metric == "euclidean":
        return float(np.linalg.norm(x - y))
    return float(1.0 - x @ y / max(np.linalg.norm(x) * np.linalg.norm(y), 1e-12))


@dataclass(frozen=True)
class BoundingBox:
    left: float
    top: float
    width: float
    height: float

    @property
    def area(self) -> float:
        return self.width * self.height


@dataclass(frozen=True)
class Landmark:
    type: str
    x: float
    y: float


@dataclass(frozen=True)
class Pose:
    roll: float
    yaw: float
    pitch: float


@dataclass(frozen=True)
class Quality:
    brightness: float
    sharpness: float


@dataclass
class Face:
    """One detected face.

    ``bounding_box`` and ``landmarks`` are ratios of the image; ``width_px`` is the face box width in
    pixels of the full-resolution image (what "too small" is judged on). ``embedding`` is filled when
    the face was embedded (``None`` for faces that were only detected).
    """

    bounding_box: BoundingBox
    confidence: float
    landmarks: tuple[Landmark, ...]
    pose: Pose
    quality: Quality
    width_px: float
    height_px: float
    rotation: int = 0  # degrees clockwise the image was turned before this face was found
    embedding: Embedding | None = field(default=None, repr=False, compare=False)


@dataclass
class AnalyzedImage:
    """All faces found in one image, largest first."""

    width: int
    height: int
    faces: list[Face]
    rotation: int = 0  # 0, 90, 180 or 270: the rotation retry that found the faces
    #: for a PDF: the page (1-based) these faces are on (the one with the largest usable face) and the page count
    page: int | None = None
    pages: int = 1

    @property
    def largest(self) -> Face | None:
        return self.faces[0] if self.faces else None


@dataclass
class FaceMatch:
    similarity: float
    distance: float
    face: Face


@dataclass
class Comparison:
    """CompareFaces semantics on the dataclasses."""

    source_face: Face
    matches: list[FaceMatch]  # similarity >= threshold, highest first
    unmatched: list[FaceMatch]  # the other compared target faces (similarity kept for reports)
    threshold: float
    source_image: AnalyzedImage
    target_image: AnalyzedImage
