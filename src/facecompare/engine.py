"""The engine: CompareFaces / DetectFaces semantics and the KYC decision, on the dataclasses.

Data flow for one image: decode (reduced size for detection) -> detect on a downscaled copy, a second
pass for small faces, rotation retries when nothing is found -> the largest face checked upright (turned when
not) -> per face: aligned chip cut from a high-resolution copy -> quality and pose -> slightly blurred chip
-> embedding. Every surface (library, CLI, HTTP, batch) calls
:class:`Verifier`; none re-implements a step.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from .detection import Detection, OrientationCheck, RetinaFaceDetector
from .embedding import DlibResNetRecognizer, Recognizer, distance
from .errors import InvalidParameterException
from .faces import LANDMARK_TYPES, AnalyzedImage, BoundingBox, Comparison, Face, FaceMatch, Landmark
from .images import DecodedImage, ImageSource, load_image
from .quality import QUALITY_FILTERS, image_quality, passes_quality_filter, pose_from_landmarks
from .rekognition import ATTRIBUTES
from .scoring import Calibration, load_calibration
from .settings import Settings, jitter_count

MAX_FACES = 100
#: a face this wide (pixels of the view it is cut from) gives a chip with full detail
CHIP_SOURCE_FACE_PX = 200
#: in the first detection pass, a largest face narrower than this (pixels of the detector input)
#: triggers the small-face pass, since faces smaller still may have been missed
SMALL_FACE_PASS_BELOW_PX = 64
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

    def __init__(self, settings: Settings | None = None, *, detector: RetinaFaceDetector | None = None,
                 recognizer: Recognizer | None = None, calibration: Calibration | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.detector = detector or RetinaFaceDetector(threads=self.settings.threads)
        self.recognizer = recognizer or DlibResNetRecognizer()
        self.orientation = OrientationCheck()
        self._calibration = calibration
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # -- set-up -------------------------------------------------------------------------------------------

    @property
    def calibration(self) -> Calibration:
        if self._calibration is None:
            with self._lock:
                if self._calibration is None:
                    self._calibration = load_calibration(self.settings.calibration or None)
        return self._calibration

    def warm(self) -> None:
        """Load every model and run each once, so the first real request is not slow."""
        self.detector.load()
        self.recognizer.load()
        _ = self.calibration
        blank = np.full((160, 160, 3), 128, dtype=np.uint8)
        self.detector.detect(blank)
        self.recognizer.embed([np.full((150, 150, 3), 128, dtype=np.uint8)])

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max(1, self.settings.threads), thread_name_prefix="facecompare")
        return self._pool

    # -- one image ------------------------------------------------------------------------------------------

    def load(self, image: ImageSource | DecodedImage) -> DecodedImage:
        return image if isinstance(image, DecodedImage) else load_image(image, self.settings)

    def analyze(self, image: ImageSource | DecodedImage, *, embed: int = MAX_FACES,
                max_faces: int = MAX_FACES) -> AnalyzedImage:
        """Detect up to ``max_faces`` faces (largest first); embed the ``embed`` largest of them."""
        decoded = self.load(image)
        rotation, detections = self._find_faces(decoded)
        if detections and self.settings.orientation_check:
            rotation, detections = self._make_upright(decoded, rotation, detections)
        detections.sort(key=lambda d: d.width * d.height, reverse=True)
        detections = detections[:max_faces]
        faces: list[Face] = []
        chips: list[np.ndarray] = []
        for index, det in enumerate(detections):
            face, chip = self._describe(decoded, rotation, det)
            faces.append(face)
            if index < embed:
                chips.append(chip)
        if chips:
            for face, vector in zip(faces, self._embed(chips)):
                face.embedding = vector
        return AnalyzedImage(width=decoded.width, height=decoded.height, faces=faces, rotation=rotation)

    def _embed(self, chips: list[np.ndarray]) -> np.ndarray:
        """Embeddings of aligned chips; with ``tta="flip"`` the mean of each chip and its mirror image."""
        if self.settings.chip_blur > 0:
            chips = [smooth_chip(c, self.settings.chip_blur) for c in chips]
        if self.settings.tta == "flip":
            vectors = self.recognizer.embed(chips + [np.ascontiguousarray(c[:, ::-1]) for c in chips])
            return (vectors[: len(chips)] + vectors[len(chips):]) / 2
        jitters = jitter_count(self.settings.tta)
        if jitters:
            return self.recognizer.embed(chips, jitters=jitters)
        return self.recognizer.embed(chips)

    def _make_upright(self, decoded: DecodedImage, rotation: int,
                      detections: list[Detection]) -> tuple[int, list[Detection]]:
        """(rotation, detections), turned further when the largest face is not upright at ``rotation``.

        The detector finds upside-down and sideways faces too, some with plausible landmarks, and its
        first hit decides the rotation; :class:`OrientationCheck` looks at the largest face's crop in all four
        turns, and when another turn is clearly the upright one the image is searched again at that turn.
        """
        largest = max(detections, key=lambda d: d.width)
        turn = self.orientation.upright_turn(self._face_crop(decoded, rotation, largest, OrientationCheck.FACE_PX))
        if not turn:
            return rotation, detections
        turned, found = self._find_faces(decoded, rotations=((rotation + turn) % 360,))
        return (turned, found) if found else (rotation, detections)

    def _face_crop(self, decoded: DecodedImage, rotation: int, det: Detection, face_px: int) -> np.ndarray:
        """The face with one face width of context on each side, scaled so the face is ``face_px`` wide.

        Cut from the view the face's chip will be cut from (decoded once, cached)."""
        view, scale = self._chip_view(decoded, rotation, det)
        x1, y1, x2, y2 = det.box / scale
        w = x2 - x1
        h, vw = view.shape[:2]
        crop = view[int(max(0, y1 - w)):int(min(h, y2 + w)), int(max(0, x1 - w)):int(min(vw, x2 + w))]
        factor = face_px / max(w, 1.0)
        size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
        return np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))

    def _find_faces(self, decoded: DecodedImage, rotations: tuple[int, ...] | None = None) -> tuple[int, list[Detection]]:
        """(rotation, detections in full-resolution pixels of the image turned by ``rotation`` clockwise).

        Upright first, cheap sizes first: the downscaled copy, then the small-face size (ID-card portraits in a
        phone photo), then the other rotations at those sizes, and only when nothing was found anywhere, full
        resolution (up to ``max_detection_size``). A first pass whose largest face is small at that scale is
        completed by the small-face pass (more small faces, better boxes), merged with what it found.
        """
        s = self.settings
        long_side = max(decoded.width, decoded.height)
        first = min(s.detection_size, long_side)
        small = min(s.small_face_detection_size, 2 * long_side)
        small = small if small > 1.2 * first else None
        full = min(s.max_detection_size, long_side)
        full = full if full > 1.2 * (small or first) else None
        if rotations is None:
            rotations = (0, 90, 180, 270) if s.rotation_retry else (0,)
        plan = [(first, rotations[0]), (small, rotations[0])]
        plan += [(size, r) for size in (first, small) for r in rotations[1:]]
        plan += [(full, r) for r in rotations]
        for size, rotation in plan:
            if size is None:
                continue
            found = self._detect_at(decoded, rotation, size)
            if not found:
                continue
            largest = max(d.width for d in found) * size / long_side
            if size == first and small is not None and largest < SMALL_FACE_PASS_BELOW_PX:
                found = _merge(found, self._detect_at(decoded, rotation, small))
            return rotation, found
        return 0, []

    def _detect_at(self, decoded: DecodedImage, rotation: int, size: int) -> list[Detection]:
        """Detections at a detector input whose long side is ``size`` (full-resolution pixel units).

        Passes above the first size look for small faces, whose chips will need the full-resolution decode
        anyway, so they start from it rather than from a second reduced decode."""
        reduction = 1 if size > self.settings.detection_size else decoded.reduction_for_long_side(size)
        view = decoded.view(reduction)
        view = _rotate(view, rotation)
        h, w = view.shape[:2]
        factor = size / max(h, w)
        if abs(factor - 1.0) > 0.02:
            view = np.asarray(Image.fromarray(view).resize((max(1, round(w * factor)), max(1, round(h * factor))),
                                                          Image.Resampling.BILINEAR))
        found = [d for d in self.detector.detect(view, score_threshold=self.settings.detection_threshold)
                 if upright_landmarks(d.landmarks)]
        to_full = max(decoded.width, decoded.height) / max(view.shape[:2])
        for det in found:
            det.box = det.box * to_full
            det.landmarks = det.landmarks * to_full
        return found

    @staticmethod
    def _chip_view(decoded: DecodedImage, rotation: int, det: Detection) -> tuple[np.ndarray, float]:
        """(the image turned by ``rotation`` at the resolution the face's chip is cut from, full-resolution
        pixels per pixel of that view)."""
        view = _rotate(decoded.view(decoded.reduction_for(CHIP_SOURCE_FACE_PX, det.width)), rotation)
        full_w = decoded.height if rotation in (90, 270) else decoded.width
        return view, full_w / view.shape[1]

    def _describe(self, decoded: DecodedImage, rotation: int, det: Detection) -> tuple[Face, np.ndarray]:
        """The Face record (coordinates in the unrotated image) and the aligned chip of one detection."""
        view, scale = self._chip_view(decoded, rotation, det)
        full_w, full_h = (decoded.height, decoded.width) if rotation in (90, 270) else (decoded.width, decoded.height)
        chip = self.recognizer.align(view, det.box / scale)
        quality = image_quality(chip, source_face_px=det.width / scale)
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
        return face, chip

    # -- two images -------------------------------------------------------------------------------------------

    def analyze_pair(self, first: ImageSource, second: ImageSource, *, embed_first: int = 1,
                     embed_second: int = MAX_FACES) -> tuple[AnalyzedImage, AnalyzedImage]:
        """Analyse two images in parallel threads (decoding and detection overlap; each is decoded in its
        own thread)."""
        pool = self._executor()
        a = pool.submit(self.analyze, first, embed=embed_first)
        b = pool.submit(self.analyze, second, embed=embed_second)
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
        margin = self.settings.review_margin
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


def smooth_chip(chip: np.ndarray, radius: float) -> np.ndarray:
    """The chip with a Gaussian blur of ``radius`` pixels (see ``Settings.chip_blur``)."""
    return np.asarray(Image.fromarray(chip).filter(ImageFilter.GaussianBlur(radius)))


def upright_landmarks(points: np.ndarray) -> bool:
    """Whether 5 landmarks look like an upright face: the mouth below the eyes, at a plausible distance.

    Rejects detections in patterns (guilloche, text) whose landmarks collapse onto a line, and faces lying
    on their side or upside down in this orientation, so that the rotation retry finds them upright.
    """
    p = np.asarray(points, dtype=np.float64)
    eye_mid, mouth_mid = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    eye_dist = float(np.hypot(*(p[1] - p[0])))
    down = mouth_mid - eye_mid
    length = float(np.hypot(*down))
    # eyes to mouth is about 1.0-1.3 eye distances on a frontal face (more when turned, about 0.8 when
    # looking down 45 degrees); far less is a pattern, not a face
    if eye_dist <= 0 or length < 0.65 * eye_dist:
        return False
    return down[1] > 0.5 * length  # within 60 degrees of straight down


def check_threshold(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= float(value) <= 100.0):
        raise InvalidParameterException(
            f"Request has invalid parameters: {name} must be a number from 0 to 100 (got {value!r})."
        )
    return float(value)


def check_attributes(attributes: object) -> tuple[str, ...]:
    if isinstance(attributes, str) or not isinstance(attributes, (list, tuple)):
        raise InvalidParameterException(
            f"Request has invalid parameters: Attributes must be a list such as ['DEFAULT'] or ['ALL'] "
            f"(got {attributes!r})."
        )
    for a in attributes:
        if a not in ATTRIBUTES:
            raise InvalidParameterException(
                f"Request has invalid parameters: unknown attribute {a!r} in Attributes; use one of "
                f"{', '.join(ATTRIBUTES)}."
            )
    return tuple(attributes) or ("DEFAULT",)


def check_quality_filter(value: object) -> str:
    if value not in QUALITY_FILTERS:
        raise InvalidParameterException(
            "Request has invalid parameters: QualityFilter must be one of "
            f"{', '.join(QUALITY_FILTERS)} (got {value!r})."
        )
    return str(value)


def _passes(level: str, face: Face) -> bool:
    return passes_quality_filter(level, confidence=face.confidence, width_px=face.width_px,
                                 quality=face.quality, pose=face.pose)


def _rotate(view: np.ndarray, rotation: int) -> np.ndarray:
    """The view turned clockwise by ``rotation`` degrees."""
    if rotation == 0:
        return view
    return np.ascontiguousarray(np.rot90(view, k=-(rotation // 90)))


def _unrotate_points(points: np.ndarray, rotation: int, rotated_w: float, rotated_h: float) -> np.ndarray:
    """Map points of the image turned clockwise by ``rotation`` back to the unturned image."""
    p = np.asarray(points, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    if rotation == 0:
        return p.copy()
    if rotation == 90:  # unturned size is (rotated_h, rotated_w); x' = H - y, y' = x
        return np.stack([y, rotated_w - x], axis=1)
    if rotation == 180:
        return np.stack([rotated_w - x, rotated_h - y], axis=1)
    if rotation == 270:  # x' = y, y' = W - x
        return np.stack([rotated_h - y, x], axis=1)
    raise ValueError(rotation)


def _merge(first: list[Detection], second: list[Detection], iou_threshold: float = 0.4) -> list[Detection]:
    """Detections of both passes, duplicates (same face found twice) kept once, the higher score winning."""
    from .detection import nms

    both = first + second
    if not both:
        return []
    boxes = np.array([d.box for d in both])
    scores = np.array([d.score for d in both])
    return [both[i] for i in nms(boxes, scores, iou_threshold)]


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
