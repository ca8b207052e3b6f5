"""The engine: images in, faces, embeddings, comparisons and the KYC decision out.

It knows no AWS shape, no store and no surface (HTTP, CLI): those layers call it. Its results are the dataclasses
of :mod:`facecompare.faces` and :class:`Verification`; :mod:`facecompare.rekognition` and
:mod:`facecompare.native` turn them into JSON.

- ``verifier.py``: :class:`Verifier`, the API class (analyse, compare, verify);
- ``finder.py``: the detection plan (where, at which scale and turn to look for faces); ``cascade.py``: its YuNet
  proposals confirmed by RetinaFace; ``texture.py``: where on the image a face can be (textured tiles);
- ``describe.py``: per face, the record (box, landmarks, pose, quality) and the embedding of its aligned chip;
- ``decision.py``: the KYC decision and CompareFaces' matching, pure functions of analysed images;
- ``geometry.py``: quarter turns of images and points, windows and overlaps of boxes;
- ``trace.py``: stage timing for the benchmarks.
"""

from .decision import Verification, page_from_notes, page_note
from .verifier import MAX_FACES, Verifier

__all__ = ["MAX_FACES", "Verification", "Verifier", "page_from_notes", "page_note"]
