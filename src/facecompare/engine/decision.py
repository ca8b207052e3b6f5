"""The decisions on analysed images: the KYC decision (MATCH, NO_MATCH or REVIEW with reasons) and CompareFaces'
matching. Pure functions of two :class:`~facecompare.faces.AnalyzedImage` and a calibration: no model, no I/O.

The selfie must show one dominant face; the document's portrait is its largest face (a smaller ghost portrait is
reported, never chosen). "No face" is never a yes or a no: it is REVIEW with a reason code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import InvalidParameterException
from ..faces import AnalyzedImage, Comparison, Face, FaceMatch, distance
from ..quality import face_passes
from ..scoring import Calibration

#: a second selfie face at least this fraction of the largest face's width makes the selfie ambiguous
SECOND_FACE_RATIO = 0.5


@dataclass
class Verification:
    """A KYC decision: MATCH, NO_MATCH or REVIEW, with the evidence behind it."""

    decision: str
    similarity: float | None
    distance: float | None
    threshold: float
    review_band: tuple[float, float]
    reasons: list[str]
    selfie: AnalyzedImage | None
    document: AnalyzedImage | None
    notes: list[str] = field(default_factory=list)

    @property
    def selfie_face(self) -> Face | None:
        return self.selfie.largest if self.selfie else None

    @property
    def document_face(self) -> Face | None:
        return self.document.largest if self.document else None


def decide(selfie_image: AnalyzedImage, document_image: AnalyzedImage, calibration: Calibration,
           threshold: float = 80.0, *, min_face_px: float, review_margin: float) -> Verification:
    """The KYC decision on two analysed images (each one's largest face embedded): MATCH below the review band's
    distance, NO_MATCH above it, REVIEW inside it or whenever a reason is found. The band is ``review_margin``
    log-odds either side of ``threshold``; a compared face narrower than ``min_face_px`` is FACE_TOO_SMALL."""
    cal = calibration
    d_threshold = cal.distance_at(threshold)
    # the band is review_margin log-odds either side of the threshold: the same calibrated width for every
    # model (1.0: Similarity 59.6 to 91.6 around 80)
    margin = review_margin / cal.slope
    band = (round(cal.similarity(d_threshold + margin), 2), round(cal.similarity(d_threshold - margin), 2))
    reasons, notes = _reasons_and_notes(selfie_image, document_image, min_face_px)
    s_face, d_face = selfie_image.largest, document_image.largest
    if s_face is None or d_face is None:
        return Verification("REVIEW", None, None, threshold, band, reasons, selfie_image, document_image, notes)
    d = distance(s_face.embedding, d_face.embedding)
    similarity = cal.similarity(d)
    if d <= d_threshold - margin:
        decision = "MATCH"
    elif d > d_threshold + margin:
        decision = "NO_MATCH"
    else:
        decision = "REVIEW"
        reasons.append("SIMILARITY_IN_REVIEW_BAND")
    if reasons:
        decision = "REVIEW"
    return Verification(decision, similarity, d, threshold, band, reasons, selfie_image, document_image, notes)


def _reasons_and_notes(selfie_image: AnalyzedImage, document_image: AnalyzedImage,
                       min_face_px: float) -> tuple[list[str], list[str]]:
    """The reasons for REVIEW that the faces alone give (none, several, too small, low quality) and the notes."""
    reasons: list[str] = []
    notes: list[str] = []
    s_face, d_face = selfie_image.largest, document_image.largest
    if s_face is None:
        reasons.append("NO_FACE_IN_SELFIE")
    if d_face is None:
        reasons.append("NO_FACE_ON_DOCUMENT")
    if len(selfie_image.faces) > 1:
        if selfie_image.faces[1].width_px >= SECOND_FACE_RATIO * selfie_image.faces[0].width_px:
            reasons.append("MULTIPLE_FACES_IN_SELFIE")
        else:
            notes.append("SMALL_BACKGROUND_FACES_IN_SELFIE_IGNORED")
    if len(document_image.faces) > 1:
        notes.append("SECONDARY_FACES_ON_DOCUMENT_IGNORED")
    for role, analyzed in (("DOCUMENT", document_image), ("SELFIE", selfie_image)):
        if analyzed.page is not None:  # a PDF: the page its face is on
            notes.append(page_note(role, analyzed.page, analyzed.pages))
    if document_image.rotation:
        notes.append(f"DOCUMENT_ROTATED_{document_image.rotation}")
    if selfie_image.rotation:
        notes.append(f"SELFIE_ROTATED_{selfie_image.rotation}")
    for face in (s_face, d_face):
        if face is None:
            continue
        if face.width_px < min_face_px and "FACE_TOO_SMALL" not in reasons:
            reasons.append("FACE_TOO_SMALL")
        elif not face_passes("LOW", face) and "LOW_QUALITY" not in reasons:
            reasons.append("LOW_QUALITY")
    return reasons, notes


def match_faces(source_image: AnalyzedImage, target_image: AnalyzedImage, similarity: Callable[[float], float],
                threshold: float = 80.0, quality_filter: str = "NONE") -> Comparison:
    """CompareFaces on two analysed images (the source's largest face must be embedded): the source's largest face
    against every target face that passes ``quality_filter``. ``similarity`` maps a distance to Similarity (the
    calibration's; it is called only once a face is compared)."""
    source_face = source_image.largest
    if source_face is None:
        raise InvalidParameterException(
            "Request has invalid parameters: no face was found in the source image. "
            "Use a photo with one clearly visible face of at least 40x40 pixels."
        )
    if not face_passes(quality_filter, source_face):
        raise InvalidParameterException(
            f"Request has invalid parameters: the source face does not pass QualityFilter {quality_filter}."
        )
    if not target_image.faces:
        raise InvalidParameterException(
            "Request has invalid parameters: no face was found in the target image."
        )
    matches, unmatched = [], []
    for face in target_image.faces:
        if not face_passes(quality_filter, face) or face.embedding is None:
            continue  # filtered faces are not compared (and appear in neither list)
        d = distance(source_face.embedding, face.embedding)
        match = FaceMatch(similarity=similarity(d), distance=d, face=face)
        (matches if match.similarity >= threshold else unmatched).append(match)
    matches.sort(key=lambda m: m.similarity, reverse=True)
    return Comparison(source_face=source_face, matches=matches, unmatched=unmatched, threshold=threshold,
                      source_image=source_image, target_image=target_image)


def page_score(analyzed: AnalyzedImage, min_face_px: float) -> tuple[bool, float]:
    """How good a PDF page is as the document: a usable largest face (at least ``min_face_px`` wide, LOW quality
    passed) first, then the width of the largest face."""
    face = analyzed.largest
    if face is None:
        return (False, -1.0)
    return (face.width_px >= min_face_px and face_passes("LOW", face), face.width_px)


def page_note(role: str, page: int, pages: int) -> str:
    """The note that says which page of a PDF the compared face is on: ``DOCUMENT_PDF_PAGE_2_OF_3``."""
    return f"{role.upper()}_PDF_PAGE_{page}_OF_{pages}"


def page_from_notes(notes: list[str] | None, role: str) -> int | None:
    """The PDF page of ``role`` (selfie, document) that a verification's notes name (:func:`page_note`), or None."""
    prefix = f"{role.upper()}_PDF_PAGE_"
    for note in notes or ():
        if isinstance(note, str) and note.startswith(prefix):
            number = note[len(prefix):].partition("_OF_")[0]
            if number.isdigit():
                return int(number)
    return None
