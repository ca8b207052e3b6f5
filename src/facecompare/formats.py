"""The image formats beyond JPEG and PNG that KYC uploads really come in: HEIC/HEIF (iPhones), WebP and AVIF
(browsers' capture components), PDF (back-office scans of documents).

The format is sniffed from the bytes only (:func:`sniff_format`), never from a file name or a content type.
Each format's header is read and checked against the pixel limits before any pixel is decoded:

- HEIF (``pillow-heif``, libheif): the primary image's size, after libheif's own ``irot``/``imir`` transforms
  (a grid image declares its whole size), then one decode of the primary image only. libheif applies the
  transforms and pillow-heif resets the EXIF orientation to 1, so the result is upright as the phone showed it.
- WebP, AVIF (Pillow's own plugins): the canvas size, then the first frame only (an animated file is never
  played); the EXIF orientation (Pillow's AVIF plugin turns ``irot``/``imir`` into it) is applied as for JPEG.
- PDF (``pypdfium2``, PDFium), in a child process bounded in time and memory (:data:`PDF_RENDER_TIMEOUT`,
  :mod:`facecompare.pdf_worker`): the page count (at most ``Settings.max_pdf_pages``) and every page's size
  before any page is loaded, then each page's objects walked (at most :data:`MAX_PDF_OBJECTS`, forms included,
  and at most ``Settings.max_pixels`` pixels of embedded images) before it is rendered. A page is rendered at
  ``Settings.pdf_dpi`` (a smaller DPI when the page would be over ``Settings.max_working_pixels``: PDFium renders
  at any scale, so a large page is never rendered at full size first).

None of these libraries can decode HEIF, WebP or AVIF at a reduced size the way libjpeg can (``Image.draft``), so
those are decoded once at full size (within ``max_pixels``) and reduced band by band, as PNG is.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from .errors import ImageTooLargeException, InvalidImageFormatException, InvalidParameterException

#: what Rekognition accepts (and the AWS endpoint, by default)
BASE_FORMATS = ("JPEG", "PNG")
#: what facecompare accepts beyond them
EXTRA_FORMATS = ("HEIF", "WEBP", "AVIF", "PDF")
FORMATS = BASE_FORMATS + EXTRA_FORMATS
#: a format's media type (the review queue stores it with the image)
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "HEIF": "image/heic", "WEBP": "image/webp",
               "AVIF": "image/avif", "PDF": "application/pdf"}
#: names people know the formats by, for messages
NAMES = {"JPEG": "JPEG", "PNG": "PNG", "HEIF": "HEIC/HEIF", "WEBP": "WebP", "AVIF": "AVIF", "PDF": "PDF"}

#: ISO base media file brands (the ``ftyp`` box): AVIF's, and HEIF's (HEVC-coded images and sequences, and the
#: generic image brands that libheif reads)
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"heif", b"mif1", b"msf1",
                b"mif2"}

#: most page objects (text runs, paths, images, forms and what forms hold, counted each time a form is used) a
#: PDF page may have. A scanned page has one image, a printed form a few thousand; every object costs parsing and
#: rendering time, and a form drawn 1,000 times that draws another 1,000 times is a million (a PDF "billion laughs")
MAX_PDF_OBJECTS = 20_000


def sniff_format(data: bytes) -> str | None:
    """The format of encoded image bytes from their first bytes: one of :data:`FORMATS`, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith(b"%PDF-"):
        return "PDF"
    if data[4:8] == b"ftyp":
        size = int.from_bytes(data[:4], "big")
        end = min(len(data), size if 16 <= size <= 4096 else 64)
        major = data[8:12]
        brands = {major} | {data[i:i + 4] for i in range(16, end - 3, 4)}
        if major in _AVIF_BRANDS or (major not in _HEIF_BRANDS - {b"mif1", b"msf1", b"mif2"} and brands & _AVIF_BRANDS):
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
    return None


def media_type(data: bytes) -> str | None:
    fmt = sniff_format(data)
    return MEDIA_TYPES.get(fmt) if fmt else None


def _invalid(fmt: str, what: str) -> InvalidImageFormatException:
    return InvalidImageFormatException(
        f"Request has invalid image format: {what}. Send a complete, uncorrupted {NAMES[fmt]} file, or convert it "
        "to JPEG or PNG."
    )


# -- HEIF ------------------------------------------------------------------------------------------------------

def open_heif(data: bytes, check_size: Callable[[int, int], None]) -> Image.Image:
    """The primary image of a HEIF file as a PIL image (RGB or RGBA, 8 bits), upright. ``check_size(w, h)``
    is called with the declared size before anything is decoded."""
    try:
        import pillow_heif
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise InvalidImageFormatException(
            "Request has invalid image format: HEIC/HEIF support is not installed (pip install pillow-heif)."
        ) from None
    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        width, height = heif.size
    except (ValueError, RuntimeError, OSError, EOFError, TypeError, KeyError, IndexError) as exc:
        raise _invalid("HEIF", f"cannot read the HEIC/HEIF header ({_short(exc)})") from None
    check_size(width, height)
    try:
        image = heif.to_pillow()
        image.load()
    except MemoryError:
        raise ImageTooLargeException("Image size is too large: not enough memory to decode it.") from None
    except (ValueError, RuntimeError, OSError, EOFError, TypeError, KeyError, IndexError) as exc:
        raise _invalid("HEIF", f"the HEIC/HEIF could not be decoded ({_short(exc)})") from None
    return image


# -- PDF -------------------------------------------------------------------------------------------------------

#: a PDF is rendered in a child process (:mod:`facecompare.pdf_worker`) given at most this long (seconds) and
#: this much address space: PDFium parses a page's whole content before anything can be counted (a form drawn 100
#: times that draws another 100 times, three levels deep, kept it busy over 300 s), and a crash in it must not take
#: the server down. Starting the child costs about 0.5 s (measured on 2 shared cores)
PDF_RENDER_TIMEOUT = 10.0
PDF_RENDER_MEMORY = 1024 ** 3
_WORKER = str(Path(__file__).with_name("pdf_worker.py"))
_ERRORS = {"ImageTooLargeException": ImageTooLargeException, "InvalidParameterException": InvalidParameterException,
           "InvalidImageFormatException": InvalidImageFormatException}


class PdfPages:
    """Every page of a PDF, checked (page count, page sizes, objects and embedded images; see the module
    docstring) and rendered to RGB in a bounded child process."""

    def __init__(self, data: bytes, *, max_pages: int, dpi: float, max_pixels: int, max_working_pixels: int,
                 min_side: int) -> None:
        limits = {"max_pages": max_pages, "dpi": float(dpi), "max_pixels": max_pixels,
                  "max_working_pixels": max_working_pixels, "min_side": min_side, "max_objects": MAX_PDF_OBJECTS,
                  "max_memory": PDF_RENDER_MEMORY}
        try:
            done = subprocess.run([sys.executable, "-I", _WORKER, json.dumps(limits)], input=data,
                                  capture_output=True, timeout=PDF_RENDER_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise ImageTooLargeException(
                f"Image size is too large: the PDF took more than {PDF_RENDER_TIMEOUT:g} s to render. Send a scan of "
                "the document (an image per page) or a JPEG."
            ) from None
        head, _, pixels = done.stdout.partition(b"\n")
        try:
            result = json.loads(head)
        except ValueError:
            result = None
        if not isinstance(result, dict) and done.returncode == -signal.SIGABRT:
            # PDFium aborts when an allocation fails: over the address space it is given (its stderr is dropped)
            raise ImageTooLargeException(
                f"Image size is too large: the PDF needs more than {PDF_RENDER_MEMORY / 2 ** 30:g} GiB to render. "
                "Send a scan of the document (an image per page) or a JPEG."
            )
        if not isinstance(result, dict):  # crashed: PDFium's stderr is dropped, never logged
            raise InvalidImageFormatException(
                "Request has invalid image format: the PDF could not be rendered (the renderer stopped). Send a "
                "complete, uncorrupted PDF file, or convert it to JPEG or PNG."
            )
        if "error" in result:
            kind = _ERRORS.get(result["error"], InvalidImageFormatException)
            prefix = {ImageTooLargeException: "Image size is too large", InvalidParameterException:
                      "Request has invalid parameters"}.get(kind, "Request has invalid image format")
            raise kind(f"{prefix}: {result['message']}.")
        self.count = int(result["pages"])
        self.pages: list[Image.Image] = []
        at = 0
        for w, h in result["sizes"]:
            size = 3 * w * h
            self.pages.append(Image.frombytes("RGB", (w, h), pixels[at:at + size]))
            at += size

    def render(self, index: int) -> Image.Image:
        """Page ``index`` (0-based), rendered."""
        return self.pages[index]


def _short(exc: BaseException) -> str:
    """An exception's text for a message, short and on one line (it never holds pixel data)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]
