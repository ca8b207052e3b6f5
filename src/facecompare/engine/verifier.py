"""The engine's API class: :class:`Verifier`, CompareFaces / DetectFaces semantics and the KYC decision.

Data flow for one image: decode (reduced size for detection) -> the detection plan (:mod:`.finder`: where, at
which scale and at which turn to look; the faces and their turn) -> per face (:mod:`.describe`): aligned chip cut
from a high-resolution copy -> quality and pose -> slightly blurred chip -> embedding. The decisions on analysed
images are :mod:`.decision`'s. Every surface (library, CLI, HTTP, batch) calls :class:`Verifier`; none
re-implements a step.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..checks import check_quality_filter, check_threshold
from ..faces import AnalyzedImage, Comparison
from ..heap import release_freed_memory
from ..images import DecodedImage, ImageSource, load_image
from ..memory import note_large_work, released_after_large_work
from ..models import Detector, Recognizer, cpu, create_detector, create_recognizer
from ..models.orientation import OrientationCheck
from ..scoring import Calibration, load_calibration
from ..settings import Settings
from .decision import Verification, decide, match_faces, page_score
from .describe import FaceDescriber
from .finder import FaceFinder
from .trace import collecting, stage

MAX_FACES = 100


class Verifier:
    """Holds the loaded models and serves many calls; safe to share between threads.

    Models load lazily on first use (or eagerly with :meth:`warm`), once per process.
    """

    def __init__(self, settings: Settings | None = None, *, detector: Detector | None = None,
                 recognizer: Recognizer | None = None, calibration: Calibration | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.detector = detector or create_detector(self.settings.detector, threads=self.settings.model_threads)
        self.recognizer = recognizer or create_recognizer(self.settings.recognizer, threads=self.settings.model_threads)
        self.orientation = OrientationCheck(self.detector)
        #: the detection plan (where, at which scale and at which turn to look)
        self.finder = FaceFinder(self.detector, self.settings, self.recognizer.chip_face_px, self.orientation)
        #: per face: the record (box, landmarks, pose, quality) and the embedding
        self.describer = FaceDescriber(self.recognizer, self.settings)
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
        self.finder.warm()
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
        # counted while it runs: a model call takes a second core only while fewer analyses run than cores
        with collecting(trace), released_after_large_work(), cpu.analysis():  # large buffers given back at the end
            return self._analyze(image, embed, max_faces)

    def _analyze(self, image: ImageSource | DecodedImage, embed: int, max_faces: int) -> AnalyzedImage:
        with stage("read, check, decode for detection"):
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
            with stage("read, check, decode for detection"):
                page = decoded.open_page(number)
            try:
                analyzed = self._analyze_decoded(page, embed, max_faces)
            finally:
                page.release_views()
            if page_score(analyzed, self.settings.min_face_px) > page_score(best, self.settings.min_face_px):
                best = analyzed
        return best

    def _analyze_decoded(self, decoded: DecodedImage, embed: int, max_faces: int) -> AnalyzedImage:
        found = self.finder.find(decoded)
        rotation, detections = found.rotation, found.detections
        detections.sort(key=lambda d: d.width * d.height, reverse=True)
        detections = detections[:max_faces]
        faces = self.describer.faces(decoded, rotation, detections, embed)
        return AnalyzedImage(width=decoded.width, height=decoded.height, faces=faces, rotation=rotation,
                             page=decoded.page, pages=decoded.pages)

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
        return match_faces(source_image, target_image, lambda d: self.calibration.similarity(d), threshold,
                           quality_filter)

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
        return decide(selfie_image, document_image, self.calibration, threshold,
                      min_face_px=self.settings.min_face_px, review_margin=self.settings.review_margin)
