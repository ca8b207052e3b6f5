"""Dataclasses -> Rekognition response dictionaries (the only place that knows the AWS shapes)."""

from __future__ import annotations

from .faces import AnalyzedImage, Comparison, Face
from .quality import QUALITY_FILTERS  # noqa: F401  (re-exported for the protocol layers)

ATTRIBUTES = ("DEFAULT", "ALL", "AGE_RANGE", "BEARD", "EMOTIONS", "EYE_DIRECTION", "EYEGLASSES", "EYES_OPEN",
              "GENDER", "MOUTH_OPEN", "MUSTACHE", "FACE_OCCLUDED", "SMILE", "SUNGLASSES")


def _r(value: float, digits: int = 6) -> float:
    return round(float(value), digits)


def bounding_box(face: Face) -> dict:
    b = face.bounding_box
    return {"Width": _r(b.width), "Height": _r(b.height), "Left": _r(b.left), "Top": _r(b.top)}


def compared_face(face: Face) -> dict:
    """A ``ComparedFace`` / default ``FaceDetail``: box, confidence, 5 landmarks, pose, quality."""
    return {
        "BoundingBox": bounding_box(face),
        "Confidence": _r(face.confidence, 4),
        "Landmarks": [{"Type": lm.type, "X": _r(lm.x), "Y": _r(lm.y)} for lm in face.landmarks],
        "Pose": {"Roll": _r(face.pose.roll, 2), "Yaw": _r(face.pose.yaw, 2), "Pitch": _r(face.pose.pitch, 2)},
        "Quality": {"Brightness": _r(face.quality.brightness, 2), "Sharpness": _r(face.quality.sharpness, 2)},
    }


def compare_faces_response(comparison: Comparison) -> dict:
    return {
        "SourceImageFace": {
            "BoundingBox": bounding_box(comparison.source_face),
            "Confidence": _r(comparison.source_face.confidence, 4),
        },
        "FaceMatches": [{"Similarity": _r(m.similarity, 4), "Face": compared_face(m.face)} for m in comparison.matches],
        "UnmatchedFaces": [compared_face(m.face) for m in comparison.unmatched],
    }


def detect_faces_response(image: AnalyzedImage, attributes: tuple[str, ...] = ("DEFAULT",)) -> dict:
    """DetectFaces. Every attribute set returns the default fields: this engine estimates no age, gender,
    emotion, eyewear, facial hair, eye or mouth state, occlusion or gaze, and the 30-point landmark set needs a
    landmark model whose licence allows commercial use, so those fields are omitted rather than invented."""
    return {"FaceDetails": [compared_face(face) for face in image.faces]}
