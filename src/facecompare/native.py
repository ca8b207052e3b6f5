"""Dataclasses -> the native (non-AWS) JSON shapes: the twin of :mod:`facecompare.rekognition`.

The library, the CLI, the native REST API, batch rows and the review queue show a verification in these shapes;
the engine builds none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .faces import Face

if TYPE_CHECKING:
    from .engine.decision import Verification


def face_summary(face: Face | None) -> dict | None:
    """A face as the native (non-AWS) surfaces show it."""
    if face is None:
        return None
    b = face.bounding_box
    return {
        "bounding_box": {"left": round(b.left, 6), "top": round(b.top, 6),
                         "width": round(b.width, 6), "height": round(b.height, 6)},
        "width_px": round(face.width_px, 1),
        "confidence": round(face.confidence, 4),
        "pose": {"roll": face.pose.roll, "yaw": face.pose.yaw, "pitch": face.pose.pitch},
        "quality": {"brightness": face.quality.brightness, "sharpness": face.quality.sharpness},
        "rotation": face.rotation,
    }


def verification_dict(v: Verification) -> dict:
    """The KYC decision as a JSON-ready dictionary."""
    return {
        "decision": v.decision,
        "similarity": None if v.similarity is None else round(v.similarity, 4),
        "distance": None if v.distance is None else round(v.distance, 6),
        "threshold": v.threshold,
        "review_band": list(v.review_band),
        "reasons": list(v.reasons),
        "notes": list(v.notes),
        "selfie_face": face_summary(v.selfie_face),
        "document_face": face_summary(v.document_face),
        "selfie_faces": len(v.selfie.faces) if v.selfie else 0,
        "document_faces": len(v.document.faces) if v.document else 0,
    }


def other_faces(v: Verification) -> dict[str, list[dict]]:
    """The boxes of the faces that were not compared, per image (the console draws them in grey: a second face in a
    selfie is often why a case is in review)."""
    out: dict[str, list[dict]] = {}
    for role, analyzed in (("selfie", v.selfie), ("document", v.document)):
        faces = analyzed.faces[1:] if analyzed is not None else []
        out[role] = [{"left": round(f.bounding_box.left, 6), "top": round(f.bounding_box.top, 6),
                      "width": round(f.bounding_box.width, 6), "height": round(f.bounding_box.height, 6)}
                     for f in faces]
    return out
