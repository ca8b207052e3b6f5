"""The engine: images in, faces, embeddings, comparisons and the KYC decision out.

It knows no AWS shape, no store and no surface (HTTP, CLI): those layers call it.

- ``verifier.py``: :class:`Verifier`, the API class (analyse, compare, verify);
- ``finder.py``: the detection plan (where, at which scale and turn to look for faces);
- ``geometry.py``: quarter turns of images and points;
- ``trace.py``: stage timing for the benchmarks.
"""

from .verifier import (  # noqa: F401
    MAX_FACES,
    Verification,
    Verifier,
    _passes,
    _rotate,
    _unrotate_points,
    face_summary,
    other_faces,
    page_from_notes,
    page_note,
    smooth_chip,
    upright_landmarks,
    verification_dict,
)
