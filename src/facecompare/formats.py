"""The image formats beyond JPEG and PNG that KYC uploads really come in: HEIC/HEIF (iPhones), WebP and AVIF
(browsers' capture components), PDF (back-office scans of documents).

The format is sniffed from the bytes only (:func:`sniff_format`), never from a file name or a content type.
Each format's header is read and checked against the pixel limits before any pixel is decoded:

- HEIF (``pillow-heif``, libheif): the primary image's size, after libheif's own ``irot``/``imir`` transforms
  (a grid image declares its whole size), then one decode of the primary image only. libheif applies the
  transforms and pillow-heif resets the EXIF orientation to 1, so the result is upright as the phone showed it.
- WebP, AVIF (Pillow's own plugins): the canvas size, then the first frame only (an animated file is never
  played); the EXIF orientation (Pillow's AVIF plugin turns ``irot``/``imir`` into it) is applied as for JPEG.
- PDF (``pypdfium2``, PDFium): the page count (at most ``Settings.max_pdf_pages``), each page's size, and the
  page's objects walked (at most :data:`MAX_PDF_OBJECTS`, forms included, and at most ``Settings.max_pixels``
  pixels of embedded images) before it is rendered. A page is rendered at ``Settings.pdf_dpi`` (a smaller DPI
  when the page would be over ``Settings.max_working_pixels``: PDFium renders at any scale, so a large page is
  never rendered at full size first). PDFium is not thread-safe: every call into it holds :data:`_PDFIUM_LOCK`.

None of these libraries can decode HEIF, WebP or AVIF at a reduced size the way libjpeg can (``Image.draft``), so
those are decoded once at full size (within ``max_pixels``) and reduced band by band, as PNG is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

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

#: PDFium may be called from one thread at a time in the whole process (pypdfium2's documentation)
_PDFIUM_LOCK = threading.Lock()


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

class PdfPages:
    """A PDF's pages, checked from its structure; each rendered on demand (:meth:`render`)."""

    def __init__(self, data: bytes, *, max_pages: int, dpi: float, max_pixels: int, max_working_pixels: int,
                 min_side: int) -> None:
        self.data = data
        self.dpi = float(dpi)
        self.max_pixels = max_pixels
        self.max_working_pixels = max_working_pixels
        self.min_side = min_side
        import pypdfium2 as pdfium

        self._pdfium = pdfium
        with _PDFIUM_LOCK:
            document = self._open()
            try:
                self.count = len(document)
                if self.count == 0:
                    raise _invalid("PDF", "the PDF has no pages")
                if self.count > max_pages:
                    raise ImageTooLargeException(
                        f"Image size is too large: the PDF has {self.count:,} pages; at most {max_pages} are read "
                        "(FACECOMPARE_MAX_PDF_PAGES). Send the pages that show the document (its photo page)."
                    )
                self.sizes = [self._page_size(document, i) for i in range(self.count)]
            finally:
                document.close()

    def _open(self):
        try:
            return self._pdfium.PdfDocument(self.data)
        except self._pdfium.PdfiumError as exc:
            reason = "it is password-protected" if "password" in str(exc).lower() else f"cannot read it ({_short(exc)})"
            raise _invalid("PDF", f"the PDF cannot be opened: {reason}") from None

    def _page_size(self, document, index: int) -> tuple[int, int]:
        """The page's size in pixels at ``dpi``, checked against the limits (from the page tree, not its content)."""
        try:
            w_pt, h_pt = document.get_page_size(index)
        except (self._pdfium.PdfiumError, ValueError, OSError) as exc:
            raise _invalid("PDF", f"page {index + 1} of the PDF cannot be read ({_short(exc)})") from None
        if not (w_pt > 0 and h_pt > 0):
            raise _invalid("PDF", f"page {index + 1} of the PDF has no size")
        width, height = round(w_pt * self.dpi / 72), round(h_pt * self.dpi / 72)
        if width * height > self.max_pixels:
            raise ImageTooLargeException(
                f"Image size is too large: page {index + 1} of the PDF is {w_pt / 72:.0f}x{h_pt / 72:.0f} inches, "
                f"{width}x{height} pixels at {self.dpi:g} DPI, over the limit of {self.max_pixels / 1e6:.0f} "
                "megapixels. Scan the document on a page of normal size."
            )
        if min(width, height) < self.min_side:
            raise InvalidParameterException(
                f"Request has invalid parameters: page {index + 1} of the PDF is {width}x{height} pixels at "
                f"{self.dpi:g} DPI; both sides must be at least {self.min_side} pixels."
            )
        return width, height

    def render_scale(self, index: int) -> float:
        """Pixels per point the page is rendered at: ``dpi``, or less to fit ``max_working_pixels``."""
        width, height = self.sizes[index]
        scale = self.dpi / 72
        if self.max_working_pixels > 0 and width * height > self.max_working_pixels:
            scale *= (self.max_working_pixels / (width * height)) ** 0.5
        return scale

    def render(self, index: int) -> Image.Image:
        """Page ``index`` (0-based) as an RGB image, its objects checked first (see the module docstring)."""
        pdfium = self._pdfium
        with _PDFIUM_LOCK:
            document = self._open()
            try:
                try:
                    page = document[index]
                except (pdfium.PdfiumError, ValueError, OSError) as exc:
                    raise _invalid("PDF", f"page {index + 1} of the PDF cannot be read ({_short(exc)})") from None
                try:
                    self._check_objects(page, index)
                    try:
                        bitmap = page.render(scale=self.render_scale(index), may_draw_forms=False)
                        image = bitmap.to_pil().convert("RGB")
                    except MemoryError:
                        raise ImageTooLargeException("Image size is too large: not enough memory to render the PDF "
                                                     "page.") from None
                    except (pdfium.PdfiumError, ValueError, OSError) as exc:
                        raise _invalid("PDF", f"page {index + 1} of the PDF cannot be rendered ({_short(exc)})") from None
                finally:
                    page.close()
            finally:
                document.close()
        return image

    def _check_objects(self, page, index: int) -> None:
        """Walk the page's objects (forms' contents too, each time a form is used), refusing more than
        :data:`MAX_PDF_OBJECTS` of them or more than ``max_pixels`` pixels of embedded images."""
        raw = self._pdfium.raw
        pending = [(page.raw, raw.FPDFPage_CountObjects, raw.FPDFPage_GetObject)]
        objects, pixels = 0, 0
        while pending:
            parent, count_of, get = pending.pop()
            count = count_of(parent)
            objects += max(0, count)
            if objects > MAX_PDF_OBJECTS:
                raise ImageTooLargeException(
                    f"Image size is too large: page {index + 1} of the PDF has more than {MAX_PDF_OBJECTS:,} "
                    "objects to draw, and each costs time. Send a scan of the document (an image per page)."
                )
            for i in range(count):
                obj = get(parent, i)
                kind = raw.FPDFPageObj_GetType(obj)
                if kind == raw.FPDF_PAGEOBJ_FORM:
                    pending.append((obj, raw.FPDFFormObj_CountObjects, raw.FPDFFormObj_GetObject))
                elif kind == raw.FPDF_PAGEOBJ_IMAGE:
                    w, h = self._image_pixels(obj)
                    pixels += w * h
                    if pixels > self.max_pixels:
                        raise ImageTooLargeException(
                            f"Image size is too large: page {index + 1} of the PDF holds images of more than "
                            f"{self.max_pixels / 1e6:.0f} megapixels (one is {w}x{h}). Scan at a lower resolution."
                        )

    def _image_pixels(self, obj) -> tuple[int, int]:
        import ctypes

        raw = self._pdfium.raw
        w, h = ctypes.c_uint(0), ctypes.c_uint(0)
        if raw.FPDFImageObj_GetImagePixelSize(obj, ctypes.byref(w), ctypes.byref(h)):
            return int(w.value), int(h.value)
        return 0, 0


def _short(exc: BaseException) -> str:
    """An exception's text for a message, short and on one line (it never holds pixel data)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]
