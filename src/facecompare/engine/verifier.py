"""The engine: CompareFaces / DetectFaces semantics and the KYC decision, on the dataclasses.

Data flow for one image: decode (reduced size for detection) -> the detection plan (:mod:`facecompare.finder`:
where, at which scale and at which turn to look; the faces and their turn) -> per face: aligned chip cut from
a high-resolution copy -> quality and pose -> slightly blurred chip -> embedding. Every surface (library, CLI, HTTP, batch) calls
:class:`Verifier`; none re-implements a step.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from ..checks import check_quality_filter, check_threshold
from ..errors import InvalidParameterException
from ..faces import LANDMARK_TYPES, AnalyzedImage, BoundingBox, Comparison, Embedding, Face, FaceMatch, Landmark, distance
from ..images import DecodedImage, ImageSource, load_image
from ..memory import note_large_work, released_after_large_work
from ..models import Detection, Detector, Recognizer, alignment, create_detector, create_recognizer
from ..models.alignment import upright_landmarks  # noqa: F401
from ..models.onnx_graph import release_freed_memory
from ..models.orientation import OrientationCheck
from ..quality import image_quality, passes_quality_filter, pose_from_landmarks
from ..scoring import Calibration, load_calibration
from ..settings import Settings, jitter_count
from .finder import FaceFinder
from .finder import merge as _merge  # noqa: F401  (re-exported: tests and older callers)
from .geometry import rotate as _rotate  # noqa: F401
from .geometry import unrotate_points as _unrotate_points
from .trace import _trace
from .trace import stage as _stage

MAX_FACES = 100
#: side of the aligned chip quality (brightness, sharpness) is measured on, whatever the recognizer
QUALITY_CHIP_PX = 150
#: a second selfie face at least this fraction of the largest face's width makes the selfie ambiguous
SECOND_FACE_RATIO = 0.5

DECISIONS = ("MATCH", "NO_MATCH", "REVIEW")


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


class Verifier:
    """Holds the loaded models and serves many calls; safe to share between threads.

    Models load lazily on first use (or eagerly with :meth:`warm`), once per process.
    """

    def __init__(self, settings: Settings | None = None, *, detector: Detector | None = None,
                 recognizer: Recognizer | None = None, calibration: Calibration | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.detector = detector or create_detector(self.settings.detector, threads=self.settings.threads)
        self.recognizer = recognizer or create_recognizer(self.settings.recognizer, threads=self.settings.threads)
        self.orientation = OrientationCheck(self.detector)
        #: the detection plan (where, at which scale and at which turn to look)
        self.finder = FaceFinder(self.detector, self.settings, self.recognizer.chip_face_px, self.orientation)
        self._calibration = calibration
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # -- set-up -------------------------------------------------------------------------------------------

    @property
    def _detection_threshold(self) -> float:
        t = self.settings.detection_threshold
        return t if t >= 0 else self.detector.default_threshold

    @property
    def calibration(self) -> Calibration:
        if self._calibration is None:
            with self._lock:
                if self._calibration is None:
                    self._calibration = load_calibration(self.settings.calibration or None, model=self.recognizer.name)
        return self._calibration

    def warm(self, *, calibration: bool = True) -> None:
        """Load every model and run each once, so the first real request is not slow. With ``calibration=False``
        (workers that only embed) the calibration is not loaded: a recognizer not yet calibrated warms too."""
        self.detector.load()
        self.recognizer.load()
        if calibration:
            _ = self.calibration
        blank = np.full((160, 160, 3), 128, dtype=np.uint8)
        self.detector.detect(blank)
        self.recognizer.embed([np.full((self.recognizer.chip_size,) * 2 + (3,), 128, dtype=np.uint8)])

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max(1, self.settings.threads), thread_name_prefix="facecompare")
        return self._pool

    # -- one image ------------------------------------------------------------------------------------------

    def load(self, image: ImageSource | DecodedImage, *, max_bytes: int | None = None) -> DecodedImage:
        """``image`` decoded. ``max_bytes`` overrides the byte limit of its kind of source (bytes: 5 MB, Rekognition's
        limit for inline bytes; a file: the file limit); the service passes 15 MB for bytes read from S3."""
        if isinstance(image, DecodedImage):
            return image
        decoded = load_image(image, self.settings, max_bytes=max_bytes)
        if decoded.base_reduction > 1:  # its full-size decoded raster is garbage now (256 MB at 64 MP RGB)
            note_large_work()
            release_freed_memory()
        return decoded

    def analyze(self, image: ImageSource | DecodedImage, *, embed: int = MAX_FACES,
                max_faces: int = MAX_FACES, trace: list | None = None) -> AnalyzedImage:
        """Detect up to ``max_faces`` faces (largest first); embed the ``embed`` largest of them.

        With ``trace`` (a list), each step appends ``(stage name, seconds)``: where the time goes."""
        token = _trace.set(trace)
        try:
            with released_after_large_work():  # large buffers are given back to the system at the end
                return self._analyze(image, embed, max_faces)
        finally:
            _trace.reset(token)

    def _analyze(self, image: ImageSource | DecodedImage, embed: int, max_faces: int) -> AnalyzedImage:
        with _stage("read, check, decode for detection"):
            decoded = self.load(image)
        try:
            best = self._analyze_decoded(decoded, embed, max_faces)
        finally:
            decoded.release_views()  # freed now, even when the caller keeps the image (they decode again)
        # a PDF: every page is searched (one after the other, each freed after), and the page with the largest
        # usable face is the document; the first such page wins a tie
        for number in range(1, decoded.pages + 1 if decoded.page is not None else 1):
            if number == decoded.page:
                continue
            with _stage("read, check, decode for detection"):
                page = decoded.open_page(number)
            try:
                analyzed = self._analyze_decoded(page, embed, max_faces)
            finally:
                page.release_views()
            if self._page_score(analyzed) > self._page_score(best):
                best = analyzed
        return best

    def _page_score(self, analyzed: AnalyzedImage) -> tuple[bool, float]:
        """How good a PDF page is as the document: a usable largest face (wide enough, LOW quality passed)
        first, then the width of the largest face."""
        face = analyzed.largest
        if face is None:
            return (False, -1.0)
        return (face.width_px >= self.settings.min_face_px and _passes("LOW", face), face.width_px)

    def _analyze_decoded(self, decoded: DecodedImage, embed: int, max_faces: int) -> AnalyzedImage:
        found = self.finder.find(decoded)
        rotation, detections = found.rotation, found.detections
        detections.sort(key=lambda d: d.width * d.height, reverse=True)
        detections = detections[:max_faces]
        with _stage("landmarks to boxes, pose, quality"):
            faces = [self._describe(decoded, rotation, det) for det in detections]
        if embed > 0 and detections:
            with _stage("align"):
                chips = [self._chip(decoded, rotation, det) for det in detections[:embed]]
            with _stage("embed"):
                vectors = self._embed(chips)
            for face, vector in zip(faces, vectors):
                face.embedding = Embedding(vector, self.recognizer.name, self.recognizer.metric)
        return AnalyzedImage(width=decoded.width, height=decoded.height, faces=faces, rotation=rotation,
                             page=decoded.page, pages=decoded.pages)

    def _embed(self, chips: list[np.ndarray]) -> np.ndarray:
        """Embeddings of aligned chips; with ``tta="flip"`` the mean of each chip and its mirror image."""
        blur = self.settings.chip_blur if self.settings.chip_blur >= 0 else self.recognizer.default_chip_blur
        if blur > 0:
            chips = [smooth_chip(c, blur) for c in chips]
        if self.settings.tta == "flip":
            vectors = self.recognizer.embed(chips + [np.ascontiguousarray(c[:, ::-1]) for c in chips])
            vectors = (vectors[: len(chips)] + vectors[len(chips):]) / 2
            if self.recognizer.metric == "cosine":
                vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            return vectors
        jitters = jitter_count(self.settings.tta)
        if jitters:
            return self.recognizer.embed(chips, jitters=jitters)
        return self.recognizer.embed(chips)

    def _chip_view(self, decoded: DecodedImage, rotation: int, det: Detection) -> tuple[np.ndarray, float]:
        """(the image turned by ``rotation`` at the resolution the face's chip is cut from, full-resolution
        pixels per pixel of that view): the smallest decode in which the face is still as wide as the
        recognizer needs for a chip with full detail."""
        view = self._view(decoded, decoded.reduction_for(self.recognizer.chip_face_px, det.width, finer_if_cached=True),
                          rotation)
        full_w = decoded.height if rotation in (90, 270) else decoded.width
        return view, full_w / view.shape[1]

    @staticmethod
    def _view(decoded: DecodedImage, reduction: int, rotation: int) -> np.ndarray:
        if decoded.has_view(reduction, rotation):
            return decoded.view(reduction, rotation)
        with _stage(f"decode at 1/{reduction}" + (f", turned {rotation}" if rotation else "")):
            return decoded.view(reduction, rotation)

    def _chip(self, decoded: DecodedImage, rotation: int, det: Detection) -> np.ndarray:
        """The recognizer's aligned chip of one detection."""
        view, scale = self._chip_view(decoded, rotation, det)
        return self.recognizer.align(view, det.box / scale, det.landmarks / scale)

    def _describe(self, decoded: DecodedImage, rotation: int, det: Detection) -> Face:
        """The Face record of one detection (coordinates in the unrotated image, quality on an aligned chip)."""
        view, scale = self._chip_view(decoded, rotation, det)
        full_w, full_h = (decoded.height, decoded.width) if rotation in (90, 270) else (decoded.width, decoded.height)
        quality_chip = alignment.align(view, det.landmarks / scale, QUALITY_CHIP_PX)
        quality = image_quality(quality_chip, source_face_px=det.width / scale)
        # back to the unrotated image, as ratios
        corners = _unrotate_points(np.array([[det.box[0], det.box[1]], [det.box[2], det.box[3]]]),
                                   rotation, full_w, full_h)
        x1, y1 = corners.min(axis=0)
        x2, y2 = corners.max(axis=0)
        points = _unrotate_points(det.landmarks, rotation, full_w, full_h)
        box = BoundingBox(left=float(x1 / decoded.width), top=float(y1 / decoded.height),
                          width=float((x2 - x1) / decoded.width), height=float((y2 - y1) / decoded.height))
        landmarks = tuple(Landmark(t, float(p[0] / decoded.width), float(p[1] / decoded.height))
                          for t, p in zip(LANDMARK_TYPES, points))
        face = Face(
            bounding_box=box,
            confidence=round(det.score * 100.0, 4),
            landmarks=landmarks,
            pose=pose_from_landmarks(points),
            quality=quality,
            width_px=float(det.width),
            height_px=float(det.height),
            rotation=rotation,
        )
        return face

    # -- two images -------------------------------------------------------------------------------------------

    def analyze_pair(self, first: ImageSource, second: ImageSource, *, embed_first: int = 1,
                     embed_second: int = MAX_FACES,
                     traces: tuple[list, list] | None = None) -> tuple[AnalyzedImage, AnalyzedImage]:
        """Analyse two images in parallel threads (decoding and detection overlap; each is decoded in its
        own thread). ``traces``: two lists that receive each image's ``(stage, seconds)``."""
        # the models first, on their own: loading one briefly needs about 100 MB more than it keeps, and with
        # two 12 MP images decoded beside it a cold process peaked at about 500 MB instead of about 370 MB
        self.detector.load()
        if embed_first > 0 or embed_second > 0:
            self.recognizer.load()
        pool = self._executor()
        first_trace, second_trace = traces or (None, None)
        # in the caller's context, so that its memory.released_after_large_work() hears of large work
        a = pool.submit(contextvars.copy_context().run, self.analyze, first, embed=embed_first, trace=first_trace)
        b = pool.submit(contextvars.copy_context().run, self.analyze, second, embed=embed_second,
                        trace=second_trace)
        return a.result(), b.result()

    def compare(self, source: ImageSource, target: ImageSource, similarity_threshold: float = 80.0,
                quality_filter: str = "NONE") -> Comparison:
        """CompareFaces on the dataclasses: the largest source face against the 100 largest target faces."""
        threshold = check_threshold(similarity_threshold, "SimilarityThreshold")
        quality_filter = check_quality_filter(quality_filter)
        source_image, target_image = self.analyze_pair(source, target,
                                                       embed_first=1, embed_second=MAX_FACES)
        return self.match_faces(source_image, target_image, threshold, quality_filter)

    def match_faces(self, source_image: AnalyzedImage, target_image: AnalyzedImage, threshold: float = 80.0,
                    quality_filter: str = "NONE") -> Comparison:
        """CompareFaces on two analysed images (the source's largest face must be embedded)."""
        source_face = source_image.largest
        if source_face is None:
            raise InvalidParameterException(
                "Request has invalid parameters: no face was found in the source image. "
                "Use a photo with one clearly visible face of at least 40x40 pixels."
            )
        if not _passes(quality_filter, source_face):
            raise InvalidParameterException(
                f"Request has invalid parameters: the source face does not pass QualityFilter {quality_filter}."
            )
        if not target_image.faces:
            raise InvalidParameterException(
                "Request has invalid parameters: no face was found in the target image."
            )
        matches, unmatched = [], []
        for face in target_image.faces:
            if not _passes(quality_filter, face) or face.embedding is None:
                continue  # filtered faces are not compared (and appear in neither list)
            d = distance(source_face.embedding, face.embedding)
            match = FaceMatch(similarity=self.calibration.similarity(d), distance=d, face=face)
            (matches if match.similarity >= threshold else unmatched).append(match)
        matches.sort(key=lambda m: m.similarity, reverse=True)
        return Comparison(source_face=source_face, matches=matches, unmatched=unmatched, threshold=threshold,
                          source_image=source_image, target_image=target_image)

    def verify(self, selfie: ImageSource, document: ImageSource, threshold: float = 80.0) -> Verification:
        """The KYC decision for a selfie and a photo of an identity document.

        The selfie must show one dominant face; the document's portrait is its largest face (a smaller
        ghost portrait is reported, never chosen). "No face" is never a yes or a no: it is REVIEW with a
        reason code.
        """
        threshold = check_threshold(threshold, "threshold")
        selfie_image, document_image = self.analyze_pair(selfie, document,
                                                         embed_first=1, embed_second=1)
        return self.decide(selfie_image, document_image, threshold)

    def decide(self, selfie_image: AnalyzedImage, document_image: AnalyzedImage,
               threshold: float = 80.0) -> Verification:
        """The KYC decision on two analysed images (each one's largest face embedded)."""
        cal = self.calibration
        d_threshold = cal.distance_at(threshold)
        # the band is review_margin log-odds either side of the threshold: the same calibrated width for every
        # model (1.0: Similarity 59.6 to 91.6 around 80)
        margin = self.settings.review_margin / cal.slope
        band = (round(cal.similarity(d_threshold + margin), 2), round(cal.similarity(d_threshold - margin), 2))
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
            if face.width_px < self.settings.min_face_px and "FACE_TOO_SMALL" not in reasons:
                reasons.append("FACE_TOO_SMALL")
            elif not _passes("LOW", face) and "LOW_QUALITY" not in reasons:
                reasons.append("LOW_QUALITY")
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


def smooth_chip(chip: np.ndarray, radius: float) -> np.ndarray:
    """The chip with a Gaussian blur of ``radius`` pixels (see ``Settings.chip_blur``)."""
    return np.asarray(Image.fromarray(chip).filter(ImageFilter.GaussianBlur(radius)))


def _passes(level: str, face: Face) -> bool:
    return passes_quality_filter(level, confidence=face.confidence, width_px=face.width_px,
                                 quality=face.quality, pose=face.pose)


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

