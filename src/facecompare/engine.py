"""The engine: CompareFaces / DetectFaces semantics and the KYC decision, on the dataclasses.

Data flow for one image: decode (reduced size for detection) -> detect on a downscaled copy, a second
pass for small faces, rotation retries when nothing is found -> the largest face checked upright (turned when
not) -> per face: aligned chip cut from a high-resolution copy -> quality and pose -> slightly blurred chip
-> embedding. Every surface (library, CLI, HTTP, batch) calls
:class:`Verifier`; none re-implements a step.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from .errors import InvalidParameterException, quote_input
from .faces import LANDMARK_TYPES, AnalyzedImage, BoundingBox, Comparison, Embedding, Face, FaceMatch, Landmark, distance
from .images import DecodedImage, ImageSource, load_image
from .memory import note_large_work, released_after_large_work
from .models import Detection, Detector, Recognizer, alignment, create_detector, create_recognizer
from .models.alignment import upright_landmarks
from .models.onnx_graph import release_freed_memory
from .models.orientation import OrientationCheck
from .models.retinaface import nms
from .quality import QUALITY_FILTERS, image_quality, passes_quality_filter, pose_from_landmarks
from .rekognition import ATTRIBUTES
from .scoring import Calibration, load_calibration
from .settings import Settings, jitter_count

MAX_FACES = 100
#: side of the aligned chip quality (brightness, sharpness) is measured on, whatever the recognizer
QUALITY_CHIP_PX = 150
#: in the first detection pass, a largest face narrower than this (pixels of the detector input)
#: triggers the small-face pass, since faces smaller still may have been missed (a faint ghost portrait beside
#: an ID card's portrait is found only by it). 32 was tried: it saves about 100 ms of CPU on a card that fills
#: a 1 MP frame (face about 50 px here), but loses the ghost portrait of examples/id_card.jpg and one genuine
#: pair of the synthetic ID benchmark (README, Speed); a cheaper window for such faces is the way to get both
SMALL_FACE_PASS_BELOW_PX = 64
#: the small-face pass searches windows this many face widths wide around the (at most this many) largest faces
#: the first pass found
SMALL_FACE_WINDOW_WIDTHS = 8
SMALL_FACE_WINDOWS = 3
#: a second selfie face at least this fraction of the largest face's width makes the selfie ambiguous
SECOND_FACE_RATIO = 0.5

DECISIONS = ("MATCH", "NO_MATCH", "REVIEW")

#: one last-resort detection at a time in the process: its detector input (up to max_detection_pixels, 6 MP)
#: needs about 290 MB of feature maps, and the two images of a comparison (or concurrent requests) each running
#: one took a CompareFaces of two 8000x8000 PNGs to 925 MB over the warm process. The detector already uses both
#: cores of the 2-core machine, so two at once were no faster than one after the other.
_LAST_RESORT_LOCK = threading.Lock()

#: when set (by ``analyze(..., trace=[])``), each step appends ``(stage, seconds)``: the benchmark's breakdown
_trace: ContextVar[list | None] = ContextVar("facecompare_trace", default=None)


@contextmanager
def _stage(name: str) -> Iterator[None]:
    trace = _trace.get()
    if trace is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        trace.append((name, time.perf_counter() - started))


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
        rotation, detections = self._find_faces(decoded)
        if detections and self.settings.orientation_check:
            rotation, detections = self._make_upright(decoded, rotation, detections)
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

    def _make_upright(self, decoded: DecodedImage, rotation: int,
                      detections: list[Detection]) -> tuple[int, list[Detection]]:
        """(rotation, detections), turned further when the largest face is not upright at ``rotation``.

        The detector finds upside-down and sideways faces too, some with plausible landmarks, and its
        first hit decides the rotation; :class:`OrientationCheck` looks at the largest face's crop in all four
        turns, and when another turn is clearly the upright one the image is searched again at that turn.
        """
        largest = max(detections, key=lambda d: d.width)
        crop = self._face_crop(decoded, rotation, largest, self.orientation.FACE_PX)
        with _stage("orientation check"):
            turn = self.orientation.upright_turn(crop)
        if not turn:
            return rotation, detections
        turned, found = self._find_faces(decoded, rotations=((rotation + turn) % 360,))
        return (turned, found) if found else (rotation, detections)

    def _face_crop(self, decoded: DecodedImage, rotation: int, det: Detection, face_px: int) -> np.ndarray:
        """The face with one face width of context on each side, scaled so the face is ``face_px`` wide.

        Cut from the view the face's chip will be cut from (decoded once, cached)."""
        with _stage("face crop for the orientation check"):
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
        first = self._within_pixel_bound(decoded, min(s.detection_size, long_side))
        small = self._within_pixel_bound(decoded, min(s.small_face_detection_size, 2 * long_side))
        small = small if small > 1.2 * first else None
        # the last resort: up to the finest view there is (see Settings.max_working_pixels), and no larger than
        # max_detection_pixels (with the defaults the only pass that bound makes smaller)
        full = self._within_pixel_bound(decoded, min(s.max_detection_size, decoded.working_long_side))
        full = full if full > 1.2 * (small or first) else None
        if rotations is None:
            rotations = (0, 90, 180, 270) if s.rotation_retry else (0,)
        plan = [(first, rotations[0], False), (small, rotations[0], False)]
        plan += [(size, r, False) for size in (first, small) for r in rotations[1:]]
        plan += [(full, r, True) for r in rotations]
        last_resort_input: dict[int, np.ndarray] = {}
        for size, rotation, last_resort in plan:
            if size is None:
                continue
            if last_resort:
                found, used = self._detect_turned(decoded, rotation, size, last_resort_input)
            else:
                found, used = self._detect_at(decoded, rotation, size)
            if not found:
                decoded.forget_turned(rotation)  # a turned view no later pass needs (1600 px: up to 30 MB)
                continue
            largest = max(d.width for d in found) * used / long_side
            if size == first and small is not None and used < small and largest < SMALL_FACE_PASS_BELOW_PX:
                found = _merge(found, self._detect_around(decoded, rotation, small, found))
            return rotation, found
        return 0, []

    def _detect_at(self, decoded: DecodedImage, rotation: int, size: int) -> tuple[list[Detection], int]:
        """(detections in full-resolution pixels, the long side the detector saw) at a detector input whose long
        side is ``size``, resized from the smallest JPEG decode that is at least that large (DCT scaling: a
        12 MP photo decodes at 1/2 scale in about 32 ms instead of 77 ms at full size)."""
        reduction = decoded.reduction_for_long_side(size)
        view = self._resized(self._view(decoded, reduction, rotation), size)
        return self._detect_in(decoded, view, size, rotation)

    def _detect_turned(self, decoded: DecodedImage, rotation: int, size: int,
                       upright_input: dict[int, np.ndarray]) -> tuple[list[Detection], int]:
        """:meth:`_detect_at` for the last-resort pass: the upright view is resized to the detector input once
        (kept in ``upright_input`` for the other turns) and that input is turned, instead of turning the
        full-resolution view and resizing each turn (an 8000x8000 view turned is another 192 MB, and its resize
        took 0.6 s per turn)."""
        upright = upright_input.get(size)
        if upright is None:
            reduction = decoded.reduction_for_long_side(size)
            view = self._view(decoded, reduction, 0)
            upright = upright_input[size] = self._resized(view, size)
            if upright is not view:
                decoded.forget(reduction)  # decoded again if a chip needs it (48 MB for 8000x8000 at 1/2)
            del view
            # the earlier passes and the resize left freed heap behind (on an 8000x8000 image about 150 MB and
            # 90 MB: the peak of the first last-resort detection was 526 MB over the start, 400 MB without it);
            # the largest detector input comes next
            release_freed_memory()
        note_large_work()
        with _LAST_RESORT_LOCK:
            try:
                return self._detect_in(decoded, _rotate(upright, rotation), size, rotation)
            finally:
                release_freed_memory()  # its feature maps (up to 290 MB); a few ms against 0.4 s or more

    def _within_pixel_bound(self, decoded: DecodedImage, size: int) -> int:
        """``size`` (a detector input's long side), made smaller if the input would have more pixels than
        ``max_detection_pixels``."""
        limit = self.settings.max_detection_pixels
        if limit <= 0:
            return size
        long_side, short_side = max(decoded.width, decoded.height), min(decoded.width, decoded.height)
        return min(size, int(math.sqrt(limit * long_side / short_side)))

    @staticmethod
    def _resized(view: np.ndarray, size: int) -> np.ndarray:
        """``view`` resized so its long side is ``size`` (unchanged when within 2 %)."""
        h, w = view.shape[:2]
        factor = size / max(h, w)
        if abs(factor - 1.0) > 0.02:
            with _stage(f"resize to {size} px"):
                view = np.asarray(Image.fromarray(view).resize((max(1, round(w * factor)), max(1, round(h * factor))),
                                                               _detection_resample(factor)))
        return view

    def _detect_in(self, decoded: DecodedImage, view: np.ndarray, size: int,
                   rotation: int) -> tuple[list[Detection], int]:
        """(detections in full-resolution pixels, the long side the detector saw) in one detector input."""
        with _stage(f"detect at {size} px" + (f", turned {rotation}" if rotation else "")):
            found = [d for d in self.detector.detect(view, score_threshold=self._detection_threshold)
                     if upright_landmarks(d.landmarks)]
        to_full = max(decoded.width, decoded.height) / max(view.shape[:2])
        for det in found:
            det.box = det.box * to_full
            det.landmarks = det.landmarks * to_full
        return found, max(view.shape[:2])

    def _chip_view(self, decoded: DecodedImage, rotation: int, det: Detection) -> tuple[np.ndarray, float]:
        """(the image turned by ``rotation`` at the resolution the face's chip is cut from, full-resolution
        pixels per pixel of that view): the smallest decode in which the face is still as wide as the
        recognizer needs for a chip with full detail."""
        view = self._view(decoded, decoded.reduction_for(self.recognizer.chip_face_px, det.width, finer_if_cached=True),
                          rotation)
        full_w = decoded.height if rotation in (90, 270) else decoded.width
        return view, full_w / view.shape[1]

    def _detect_around(self, decoded: DecodedImage, rotation: int, size: int,
                       found: list[Detection]) -> list[Detection]:
        """Detections at the small-face scale ``size``, searched only around the faces a coarser pass found.

        A first pass that finds only small faces (an ID card's portrait in a phone photo) gives rough boxes
        and landmarks; searching a window of a few face widths around each of them at a larger scale gives
        good ones, and finds a ghost portrait or a second card beside it, at a fraction of the cost of the
        whole frame at that scale (12 MP ID photo: about 15 ms instead of 250 ms)."""
        long_side = max(decoded.width, decoded.height)
        reduction = decoded.reduction_for_long_side(size)
        view = self._view(decoded, reduction, rotation)
        to_view = max(view.shape[:2]) / long_side  # full-resolution pixels -> view pixels
        factor = size / max(view.shape[:2])  # view pixels -> detector pixels
        out: list[Detection] = []
        for det in sorted(found, key=lambda d: d.width, reverse=True)[:SMALL_FACE_WINDOWS]:
            cx, cy = (det.box[0] + det.box[2]) / 2 * to_view, (det.box[1] + det.box[3]) / 2 * to_view
            half = SMALL_FACE_WINDOW_WIDTHS / 2 * max(det.width, det.height) * to_view
            x1, y1 = int(max(0, cx - half)), int(max(0, cy - half))
            x2, y2 = int(min(view.shape[1], cx + half)), int(min(view.shape[0], cy + half))
            if x2 - x1 < 16 or y2 - y1 < 16:
                continue
            window = view[y1:y2, x1:x2]
            with _stage(f"detect around a small face at {size} px"):
                if abs(factor - 1.0) > 0.02:
                    window = np.asarray(Image.fromarray(window).resize(
                        (max(1, round((x2 - x1) * factor)), max(1, round((y2 - y1) * factor))),
                        _detection_resample(factor)))
                hits = [d for d in self.detector.detect(window, score_threshold=self._detection_threshold)
                        if upright_landmarks(d.landmarks)]
            sx, sy = (x2 - x1) / window.shape[1], (y2 - y1) / window.shape[0]
            for hit in hits:
                hit.box = (hit.box * [sx, sy, sx, sy] + [x1, y1, x1, y1]) / to_view
                hit.landmarks = (hit.landmarks * [sx, sy] + [x1, y1]) / to_view
                out.append(hit)
        return out

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


def _detection_resample(factor: float) -> Image.Resampling:
    """How to resize a copy for the detector: nearest-neighbour for mild reductions (2 ms instead of 49 ms for
    2000 -> 1600 px; RetinaFace was trained with random interpolation methods, nearest among them, and aliasing
    is slight at these factors), bilinear with antialiasing for larger ones and for enlargements."""
    return Image.Resampling.NEAREST if 0.7 <= factor < 1.0 else Image.Resampling.BILINEAR


def smooth_chip(chip: np.ndarray, radius: float) -> np.ndarray:
    """The chip with a Gaussian blur of ``radius`` pixels (see ``Settings.chip_blur``)."""
    return np.asarray(Image.fromarray(chip).filter(ImageFilter.GaussianBlur(radius)))


def check_threshold(value: object, name: str) -> float:
    """``value`` as a float from 0 to 100; anything else (a boolean, a string, NaN, an infinity, an integer too
    large for a float) is InvalidParameterException."""
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits (JSON allows it)
            number = None
    if number is None or not 0.0 <= number <= 100.0:  # NaN fails the comparison too
        raise InvalidParameterException(
            f"Request has invalid parameters: {name} must be a number from 0 to 100 (got {quote_input(value)})."
        )
    return number


def check_attributes(attributes: object) -> tuple[str, ...]:
    if isinstance(attributes, str) or not isinstance(attributes, (list, tuple)):
        raise InvalidParameterException(
            f"Request has invalid parameters: Attributes must be a list such as ['DEFAULT'] or ['ALL'] "
            f"(got {quote_input(attributes)})."
        )
    for a in attributes:
        if a not in ATTRIBUTES:
            raise InvalidParameterException(
                f"Request has invalid parameters: unknown attribute {quote_input(a)} in Attributes; use one of "
                f"{', '.join(ATTRIBUTES)}."
            )
    return tuple(attributes) or ("DEFAULT",)


def check_quality_filter(value: object) -> str:
    if value not in QUALITY_FILTERS:
        raise InvalidParameterException(
            "Request has invalid parameters: QualityFilter must be one of "
            f"{', '.join(QUALITY_FILTERS)} (got {quote_input(value)})."
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

