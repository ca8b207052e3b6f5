"""facecompare: offline selfie-versus-ID-document face verification with AWS Rekognition's answer shapes.

Three verbs and one object::

    import facecompare
    facecompare.compare_faces("selfie.jpg", "id_card.jpg")   # Rekognition CompareFaces response
    facecompare.detect_faces("id_card.jpg")                   # Rekognition DetectFaces response
    facecompare.verify("selfie.jpg", "id_card.jpg")           # MATCH / NO_MATCH / REVIEW with reasons
    v = facecompare.Verifier(); v.warm()                      # models loaded once, shared by threads

Images may be bytes, a path, a binary file object, a PIL image or an RGB numpy array.
"""

from __future__ import annotations

import threading

from .checks import check_quality_filter, check_threshold
from .engine import Verification, Verifier
from .errors import (
    AccessDeniedException,
    FaceCompareError,
    ImageTooLargeException,
    InternalServerError,
    InvalidImageFormatException,
    InvalidParameterException,
    InvalidS3ObjectException,
)
from .images import ImageSource
from .native import verification_dict
from .rekognition import check_attributes, compare_faces_response, detect_faces_response
from .settings import Settings

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedException",
    "FaceCompareError",
    "ImageTooLargeException",
    "InternalServerError",
    "InvalidImageFormatException",
    "InvalidParameterException",
    "InvalidS3ObjectException",
    "Settings",
    "Verification",
    "Verifier",
    "compare_faces",
    "default_verifier",
    "detect_faces",
    "verify",
]

_default: Verifier | None = None
_default_lock = threading.Lock()


def default_verifier() -> Verifier:
    """The process-wide :class:`Verifier` the module-level functions use (created on first call)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Verifier()
    return _default


def compare_faces(source: ImageSource, target: ImageSource, similarity_threshold: float = 80.0,
                  quality_filter: str = "NONE", *, verifier: Verifier | None = None) -> dict:
    """Rekognition ``CompareFaces``: the largest source face against up to 100 target faces."""
    comparison = (verifier or default_verifier()).compare(source, target, similarity_threshold, quality_filter)
    return compare_faces_response(comparison)


def detect_faces(image: ImageSource, attributes: tuple[str, ...] | list[str] = ("DEFAULT",), *,
                 verifier: Verifier | None = None) -> dict:
    """Rekognition ``DetectFaces``: up to the 100 largest faces, largest first."""
    attributes = check_attributes(attributes)
    analyzed = (verifier or default_verifier()).analyze(image, embed=0)
    return detect_faces_response(analyzed, attributes)


def verify(selfie: ImageSource, document: ImageSource, threshold: float = 80.0, *,
           verifier: Verifier | None = None) -> Verification:
    """The KYC decision (MATCH / NO_MATCH / REVIEW) for a selfie and an identity-document photo."""
    return (verifier or default_verifier()).verify(selfie, document, threshold)


# re-exported for the protocol layers
__all__ += ["check_attributes", "check_quality_filter", "check_threshold", "verification_dict"]
