"""One settings object, read from ``FACECOMPARE_*`` environment variables and overridable by flags."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace

from .errors import ConfigurationError, InvalidParameterException

MIB = 1024 * 1024
#: the portrait searches over a document's box (``Settings.portrait_search``; engine/cascade.py)
PORTRAIT_SEARCHES = ("cascade", "retinaface")


@dataclass(frozen=True)
class Settings:
    #: largest image accepted as raw bytes (Rekognition's ``Image.Bytes`` limit: 5 MiB)
    max_image_bytes: int = 5 * MIB
    #: largest image accepted from a local file or an object store (Rekognition's S3 limit: 15 MB)
    max_file_bytes: int = 15 * 1000 * 1000
    #: largest decoded image, in pixels; bigger headers are refused before decoding (decompression bombs)
    max_pixels: int = 64 * 1000 * 1000
    #: largest image the engine works on, in pixels: a bigger one is analysed at a copy halved (or quartered, ...)
    #: until it fits (decoded at that scale for JPEG; for other formats decoded, then converted and reduced band
    #: by band), its coordinates still those of the full image. 16 MP keeps a 4:3 16 MP phone photo (4608x3456) at
    #: full resolution; an 8000x8000 PNG is analysed at 4000x4000. At full size, decoding the 8000x8000 1-bit PNG
    #: to RGB took 304 MB and each turned copy of it 192 MB more (benchmarks/bench_hostile_images.py). 0 = no bound
    max_working_pixels: int = 16 * 1000 * 1000
    #: most pages a PDF may have (FACECOMPARE_MAX_PDF_PAGES); each is rendered and searched for the document's
    #: portrait, and a longer PDF is ImageTooLargeException before any page is rendered
    max_pdf_pages: int = 4
    #: DPI a PDF page is rendered at (FACECOMPARE_PDF_DPI; less for a page over max_working_pixels). The 29 ID
    #: specimens with a usable portrait printed to A4 PDFs at their physical size (benchmarks/bench_formats.py dpi):
    #: every portrait found at 72 to 300 DPI; narrower than min_face_px: 7 at 72 DPI, 1 at 100, none at 150 but its
    #: smallest 41 px, a pixel over; at 200 the smallest is 53 px (median 130, against 87 in the specimen images).
    #: Seconds per page differed less between 150 and 200 than between two runs on the shared machine
    pdf_dpi: float = 200.0
    #: smallest image side, in pixels (Rekognition: 80)
    min_image_side: int = 80
    #: long side, in pixels, of the copy the detector sees on its first pass
    detection_size: int = 640
    #: long side of the copy for the second pass that looks for small faces (ID-card portraits)
    small_face_detection_size: int = 1600
    #: long side of the last-resort pass at (up to) full resolution, when nothing was found at smaller sizes
    max_detection_size: int = 4096
    #: most pixels the detector is given in one pass (its input's width x height); with the defaults only the
    #: last-resort pass is ever larger, and it is made smaller to fit. RetinaFace needs about 42 MB per megapixel
    #: of input and 0.12-0.2 s per megapixel (2 cores, busy): at 4096x4096 704 MB and 3.7 s per pass, four passes
    #: for an image without a face. At 6 MP (2828x2121 for a 4:3 photo: 290 MB, 0.8 s) the last-resort pass still
    #: found all 24 portraits it had found at 4000x3000 among 100 small-portrait documents of the synthetic ID
    #: benchmark (at 4.2 MP: 21). 0 = no bound
    max_detection_pixels: int = 6 * 1000 * 1000
    #: detector score (0-1) below which a candidate is not a face; -1: the detector's own default (RetinaFace
    #: 0.8, YuNet 0.6: its scores run lower)
    detection_threshold: float = -1.0
    #: try the image turned by 90/180/270 degrees when no face is found
    rotation_retry: bool = True
    #: check that the largest face is upright (the detector's own scores over the four turns of its crop) and turn the
    #: image when the detector's first hit was upside down or sideways; costs about 20 ms per image (four runs of a
    #: 64 px face's crop)
    orientation_check: bool = True
    #: calibration file (distance -> Similarity, operating points); empty = the one shipped with the package
    calibration: str = ""
    #: recognizer: ``sface`` (default), ``dlib`` (needs ``facecompare[dlib]``) or ``onnx:/path/model.onnx[?options]``
    recognizer: str = "sface"
    #: face detector (``retinaface``)
    detector: str = "retinaface"
    #: the portrait search over a document's box: "retinaface" (RetinaFace alone) or "cascade" (YuNet proposes,
    #: RetinaFace confirms in small windows; engine/cascade.py). The default: on both synthetic sets it finds more
    #: portraits and matches more of them (README, Accuracy), down to about 20 px, at 0.96-1.13x the time
    portrait_search: str = "cascade"
    #: half-width of the REVIEW band around the threshold, in calibrated log-odds (the logit of Similarity / 100):
    #: the same width for every model; 1.0 is Similarity 59.6 to 91.6 around the default threshold 80
    review_margin: float = 1.0
    #: faces narrower than this (pixels of the full image) make a KYC decision FACE_TOO_SMALL
    min_face_px: int = 40
    #: test-time augmentation of the embedding: "flip" averages each face with its mirror image (twice the
    #: embedding time), "none" embeds each face once, "jitter:N" averages N randomly jittered copies (dlib's
    #: num_jitters; N times the embedding time)
    tta: str = "flip"
    #: Gaussian blur radius, in pixels of the recognizer's aligned chip, applied before embedding (0 = off;
    #: -1 = the recognizer's own default). Printed portraits carry guilloche lines, microprint and halftone that
    #: the dlib ResNet reads as facial texture, and a slight blur helps it (synthetic ID benchmark, TAR at FMR
    #: 1e-3: 83.7 % -> 86.0 % at 0.8 px); SFace does better without (`evaluate` on the drawn
    #: cards: 97.45 % at 0 and 0.4, 97.15 % at 0.8, 96.66 % at 1.2), so its default is 0
    chip_blur: float = -1.0
    #: cut each face's chip from the full-resolution decode instead of the smallest decode in which the face is
    #: still as wide as the recognizer needs (slower; README, "Choices, measured")
    chips_at_full_resolution: bool = False
    #: worker threads for analysing the two images of a comparison in parallel
    threads: int = 2
    #: threads each model's inference runs on (onnxruntime's intra-op threads). 0 (automatic): one, and two for a
    #: detector input of 1.5 MP or more (a 1600 px pass, the last resort) and, while fewer images are being analysed
    #: in this process than it has cores (``models/cpu.py``: a pair's other image is done, a DetectFaces alone), for
    #: a detector input of 0.1 MP or more; a recognizer that takes one chip per run then runs a face and its mirror
    #: image at once. At two for every input an image took 20-28 % more CPU, and a comparison's two images already
    #: run in parallel (``threads``); at one for every input a faceless 12 MP photo analysed alone took 1.4x as long,
    #: and the bench pair's document, whose search runs on after the selfie is done, waited on one core (README, Speed)
    model_threads: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.detection_threshold < 1 or self.detection_threshold == -1):
            raise InvalidParameterException(
                f"detection_threshold={self.detection_threshold} (FACECOMPARE_DETECTION_THRESHOLD): use a score "
                "between 0 and 1, or -1 for the detector's default."
            )
        if not (0 <= self.chip_blur <= 5 or self.chip_blur == -1):
            raise InvalidParameterException(
                f"chip_blur={self.chip_blur} (FACECOMPARE_CHIP_BLUR): use 0 (off) to 5, or -1 for the recognizer's default."
            )
        if not (1 <= self.max_pdf_pages <= 100):
            raise InvalidParameterException(
                f"max_pdf_pages={self.max_pdf_pages} (FACECOMPARE_MAX_PDF_PAGES): use 1 to 100 pages."
            )
        if not (36 <= self.pdf_dpi <= 600):
            raise InvalidParameterException(f"pdf_dpi={self.pdf_dpi} (FACECOMPARE_PDF_DPI): use 36 to 600 DPI.")
        if self.portrait_search not in PORTRAIT_SEARCHES:
            raise InvalidParameterException(
                f"portrait_search={self.portrait_search[:40]!r} (FACECOMPARE_PORTRAIT_SEARCH): "
                f"use {' or '.join(PORTRAIT_SEARCHES)}."
            )
        if not (0 <= self.model_threads <= 64):
            raise InvalidParameterException(
                f"model_threads={self.model_threads} (FACECOMPARE_MODEL_THREADS): use 1 to 64 threads, or 0 for "
                "automatic (two while a core is spare and for large detector inputs, else one)."
            )
        if self.tta not in ("none", "flip") and not _is_jitter(self.tta):
            raise InvalidParameterException(
                f"tta={self.tta!r} (FACECOMPARE_TTA): use 'flip', 'none' or 'jitter:N' (N from 2 to 100)."
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``FACECOMPARE_<FIELD>`` variables (e.g. ``FACECOMPARE_MAX_IMAGE_BYTES``)."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = environ.get("FACECOMPARE_" + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        settings = cls(**values)
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **clean) if clean else settings


def _is_jitter(value: str) -> bool:
    prefix, _, count = value.partition(":")
    return prefix == "jitter" and count.isdigit() and 2 <= int(count) <= 100


def jitter_count(value: str) -> int:
    """N of a ``jitter:N`` test-time augmentation, 0 for the others."""
    return int(value.partition(":")[2]) if _is_jitter(value) else 0


def _parse(name: str, type_name: object, raw: str) -> object:
    type_name = str(type_name)
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError:
        raise InvalidParameterException(
            f"FACECOMPARE_{name.upper()}={raw!r} is not a valid {type_name}; fix or unset the variable."
        ) from None
    return raw


def env_number(environ, name: str, default: float, kind=int, minimum: float = 0, allow_none: bool = False):
    """A numeric setting from the environment; a value that is not a number of ``kind`` at least ``minimum``
    is :class:`~facecompare.errors.ConfigurationError` naming the variable (the CLI prints it and exits 2). Empty
    or unset is ``default``; with ``allow_none``, ``none`` or ``off`` is None (no limit)."""
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    if allow_none and raw.lower() in ("none", "off"):
        return None
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        kind_name = "an integer" if kind is int else "a number"
        raise ConfigurationError(f"{name}={raw[:40]!r} is not valid: it must be {kind_name} >= {minimum:g}"
                                 + (" (or 'none')" if allow_none else "") + ".", setting=name)
    return value
