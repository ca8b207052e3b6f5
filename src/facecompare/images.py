"""Image input: accept many source types, check limits before decoding, fix EXIF orientation,
and decode JPEGs at reduced size when a smaller copy is all that is needed.

The engine asks an :class:`DecodedImage` for *views* at a reduction factor (1, 2, 4 or 8). For JPEG the
reduced views come straight from the decoder (``Image.draft``: DCT scaling, much faster than a full
decode); other formats are decoded once and reduced with ``Image.reduce``.

Work is bounded for any accepted image (``Settings.max_working_pixels``): an image over that many pixels is
never held at full size. Its finest view is the first reduction that fits (a JPEG is decoded at that scale
directly; other formats are converted to RGB and reduced band by band from the decoded raster, so no full-size
RGB copy is made: the 8000x8000 1-bit PNG of 10 KB that cost 192 MB as RGB, 448 MB with its array, costs its
64 MB raster and a 48 MB working copy). JPEGs whose decoder must buffer every coefficient of the image
(progressive and other multi-scan files) are checked from their markers before decoding.
"""

from __future__ import annotations

import io
import os
import re
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, NamedTuple, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import formats
from .errors import (
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
)
from .settings import Settings

ImageSource = Union[bytes, bytearray, memoryview, str, os.PathLike, BinaryIO, Image.Image, np.ndarray]

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REDUCTIONS = (1, 2, 4, 8)
#: most scans a JPEG may have. libjpeg makes a pass over the whole image's coefficients for every scan of a
#: progressive file, whatever scale it decodes at: an 8000x8000 progressive JPEG with 1,000 copies of one of its
#: scans (493 KB) took 5.2 s to decode at 1/8 instead of 0.25 s (about 5 ms per scan at 64 MP), and a 5 MB file
#: can hold 40,000 scans. Encoders write 10 or so (libjpeg's progressive script: 10 for colour, 6 for grey)
MAX_JPEG_SCANS = 100
#: most marker segments a JPEG may have, and most chunks a PNG may have. Pillow reads both in Python, one at a
#: time: 1.2 million empty comment segments (a 4.8 MB JPEG) took 10 s to open, 400,000 empty unknown chunks (a
#: 4.8 MB PNG) 4 s. Real files have a few dozen segments (a progressive JPEG: about 30) and, at libpng's 8 KB
#: per data chunk, about 1,900 chunks in 15 MB; counting stops at the limit, so the check costs at most a few ms
MAX_JPEG_SEGMENTS = 1000
MAX_PNG_CHUNKS = 20_000
#: bytes of coefficient buffer a multi-scan (progressive) JPEG may need, per pixel of the pixel limit: libjpeg
#: holds every DCT coefficient of such a file (2 bytes each) while decoding, at any scale: a 4:2:0 colour image
#: needs 3 bytes per pixel (an 8000x8000 one: 190 MB measured), a 4:4:4 one 6 and a CMYK one 8 (4:4:4 at
#: 8000x8000: 373 MB). 3 admits every 4:2:0 JPEG up to the pixel limit and 4:4:4 ones up to half of it
JPEG_BUFFER_BYTES_PER_PIXEL = 3
#: rows converted to RGB at a time when a large decoded image is reduced to its working size: 16 MB of RGB for
#: a 8000 px wide image (Pillow holds RGB at 4 bytes per pixel), against 256 MB for the whole 8000x8000 image
_BAND_ROWS = 512
#: a JPEG marker in entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart marker or another 0xFF
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_PROGRESSIVE_SOF = {0xC2, 0xC6, 0xCA, 0xCE}

# EXIF orientation tag -> the transpose that makes the image upright (as ImageOps.exif_transpose does)
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError, KeyError)


def sniff_format(data: bytes) -> str | None:
    """JPEG, PNG, HEIF, WEBP, AVIF or PDF from the first bytes (never a file name or content type), or None."""
    return formats.sniff_format(data)


class DecodedImage:
    """An image ready for the engine: oriented size known, views decoded lazily and cached."""

    def __init__(self, *, encoded: bytes | None, pil: Image.Image | None, fmt: str, orientation: int,
                 width: int, height: int, base_reduction: int = 1, page: int | None = None, pages: int = 1,
                 page_opener: Callable[[int], DecodedImage] | None = None) -> None:
        self._encoded = encoded  # JPEG bytes (reduced decodes come from here)
        self._pil = pil  # an already decoded, oriented RGB image (non-JPEG inputs), at ``base_reduction``
        self.format = fmt
        self.orientation = orientation  # EXIF orientation tag that was applied (1 = none)
        self.width = width  # after EXIF correction
        self.height = height
        #: the finest reduction there is (1 unless the image is over ``Settings.max_working_pixels``): views asked
        #: for at a finer one are that one
        self.base_reduction = base_reduction
        #: for a PDF: which page this is (1-based) and how many there are; the engine analyses every page
        #: (:meth:`open_page`) and keeps the one with the largest usable face. None and 1 for an image
        self.page = page
        self.pages = pages
        self._page_opener = page_opener
        self._views: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def open_page(self, page: int | None) -> DecodedImage:
        """Page ``page`` (1-based) of a PDF (rendered with the others when the PDF was read); this image itself
        for its own page, for None, and for an image that is not a PDF."""
        if page is None or page == self.page or self._page_opener is None:
            return self
        if not 1 <= page <= self.pages:
            raise InvalidParameterException(f"Request has invalid parameters: the PDF has no page {page}.")
        return self._page_opener(page)

    @property
    def working_long_side(self) -> int:
        """The long side, in pixels, of the finest view."""
        return -(-max(self.width, self.height) // self.base_reduction)

    def reduction_for(self, needed_width: float, current_width: float, *, finer_if_cached: bool = False) -> int:
        """The largest reduction whose view still has at least ``needed_width`` pixels where the
        full image has ``current_width``. With ``finer_if_cached``, a finer view that is decoded already is
        preferred to decoding the coarser one (more detail than needed costs nothing; a decode does)."""
        best = 1
        for r in REDUCTIONS:
            if current_width / r >= needed_width:
                best = r
        best = max(best, self.base_reduction)
        if finer_if_cached:
            with self._lock:
                cached = {key[0] for key in self._views}
            finer = [r for r in cached if r < best] if best not in cached else []
            if finer:
                return max(finer)
        return best

    def reduction_for_long_side(self, long_side: int) -> int:
        """The largest reduction whose view's long side is still at least ``long_side`` pixels."""
        return self.reduction_for(long_side, max(self.width, self.height))

    def view(self, reduction: int = 1, rotation: int = 0) -> np.ndarray:
        """RGB uint8 array of the oriented image, about ``1/reduction`` of the full size, turned clockwise by
        ``rotation`` degrees (0, 90, 180, 270). Decoded on first use and cached."""
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}")
        if rotation not in (0, 90, 180, 270):
            raise ValueError("rotation must be 0, 90, 180 or 270")
        reduction = max(reduction, self.base_reduction)
        with self._lock:
            cached = self._views.get((reduction, rotation))
            if cached is not None:
                return cached
            upright = self._views.get((reduction, 0))
            if upright is None:
                upright = self._views[(reduction, 0)] = self._decode(reduction)
            if rotation == 0:
                return upright
            turned = np.ascontiguousarray(np.rot90(upright, k=-(rotation // 90)))
            self._views[(reduction, rotation)] = turned
            return turned

    def has_view(self, reduction: int, rotation: int = 0) -> bool:
        """Whether that view is decoded already (for timing traces)."""
        return (max(reduction, self.base_reduction), rotation) in self._views

    def forget(self, reduction: int) -> None:
        """Drop the cached views at ``reduction`` (every turn of it)."""
        reduction = max(reduction, self.base_reduction)
        with self._lock:
            for key in [k for k in self._views if k[0] == reduction]:
                del self._views[key]

    def forget_turned(self, rotation: int) -> None:
        """Drop the cached views turned by ``rotation`` (not the upright ones the turned ones are made from):
        a detection pass that found nothing at that turn will not need them again."""
        if rotation:
            with self._lock:
                for key in [k for k in self._views if k[1] == rotation]:
                    del self._views[key]

    def release_views(self) -> None:
        """Drop every cached view (they are decoded again when asked for): the end of an analysis."""
        with self._lock:
            self._views.clear()

    def scale_of(self, view: np.ndarray) -> float:
        """Full-resolution pixels per pixel of ``view`` (horizontal)."""
        return self.width / view.shape[1]

    def _decode(self, reduction: int) -> np.ndarray:
        if self._pil is not None:
            factor = reduction // self.base_reduction
            pil = self._pil if factor == 1 else self._pil.reduce(factor)
            return np.asarray(pil)
        assert self._encoded is not None
        with Image.open(io.BytesIO(self._encoded)) as im:
            if reduction > 1:
                w, h = im.size
                im.draft("RGB", (max(1, -(-w // reduction)), max(1, -(-h // reduction))))
            return np.asarray(_decode_upright(im, self.format, self.orientation))


def load_image(source: ImageSource, settings: Settings | None = None, *, max_bytes: int | None = None) -> DecodedImage:
    """Check and open an image from bytes, a path, a binary file object, a PIL image or an RGB array.

    Raises :class:`InvalidParameterException` (wrong type, empty, too small, missing file),
    :class:`InvalidImageFormatException` (not JPEG/PNG, corrupt, truncated) or
    :class:`ImageTooLargeException` (over the byte or pixel limit). Header checks run before any pixel
    is decoded, so a decompression bomb is refused in microseconds with no memory spent on it.
    """
    settings = settings or Settings()
    if isinstance(source, Image.Image):
        return _from_pil(source, settings)
    if isinstance(source, np.ndarray):
        return _from_array(source, settings)
    data = read_source_bytes(source, settings, max_bytes=max_bytes)
    return decode_bytes(data, settings)


def read_source_bytes(source: object, settings: Settings, *, max_bytes: int | None = None) -> bytes:
    """The raw bytes of a bytes-like, path or file-object source, within the byte limit."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        limit = max_bytes or settings.max_image_bytes
        data = bytes(source)
        _check_byte_size(len(data), limit, "image bytes")
        return data
    if isinstance(source, (str, os.PathLike)):
        limit = max_bytes or settings.max_file_bytes
        path = Path(source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise InvalidParameterException(f"Image file not found: {path}. Check the path.") from None
        except OSError as exc:
            raise InvalidParameterException(f"Cannot read image file {path}: {exc.strerror}.") from None
        if not path.is_file():
            raise InvalidParameterException(f"{path} is not a file. Give the path of a JPEG or PNG image.")
        _check_byte_size(size, limit, str(path))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise InvalidParameterException(f"Cannot read image file {path}: {exc.strerror}.") from None
    if hasattr(source, "read"):
        limit = max_bytes or settings.max_file_bytes
        try:
            data = source.read(limit + 1)
        except (OSError, ValueError) as exc:
            raise InvalidParameterException(f"Cannot read the image file object: {exc}.") from None
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidParameterException(
                "The image file object returned text; open the file in binary mode ('rb')."
            )
        _check_byte_size(len(data), limit, "image file object", at_least=True)
        return bytes(data)
    raise InvalidParameterException(
        f"Unsupported image type {type(source).__name__}: pass bytes, a file path, a binary file object, "
        "a PIL image or an RGB numpy array."
    )


def _check_byte_size(size: int, limit: int, what: str, *, at_least: bool = False) -> None:
    if size == 0:
        raise InvalidParameterException(f"The {what} is empty: send a JPEG or PNG image.")
    if size > limit:
        shown = "more than " if at_least else ""
        raise ImageTooLargeException(
            f"Image size is too large: {what} has {shown}{size:,} bytes, over the limit of {limit:,}. "
            "Re-encode it smaller (e.g. JPEG quality 90, at most 4000 px on the long side) or raise the limit."
        )


def decode_bytes(data: bytes, settings: Settings, *, page: int = 1) -> DecodedImage:
    """Encoded bytes, checked and decoded (``page``: which page of a PDF this image is; every page is rendered
    at once, and :meth:`DecodedImage.open_page` gives the others)."""
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImageFormatException(
            "Request has invalid image format: the data is not a JPEG or PNG image (nor HEIC/HEIF, WebP, AVIF or "
            f"PDF; it starts with {data[:8]!r}). Convert it to JPEG or PNG."
        )
    if fmt in formats.EXTRA_FORMATS:
        return _decode_extra(data, fmt, settings, page)
    jpeg = _check_structure(data, fmt)
    try:
        im = Image.open(io.BytesIO(data), formats=[fmt])
        w, h = im.size
        _check_dimensions(w, h, settings)
        orientation = 1
        try:
            orientation = int(im.getexif().get(0x0112, 1) or 1)
        except _DECODE_ERRORS:
            orientation = 1  # unreadable EXIF: treat as no orientation tag
        if orientation not in _ORIENTATION_TRANSPOSE:
            orientation = 1
    except (ImageTooLargeException, InvalidParameterException):
        raise
    except Image.DecompressionBombError:
        raise ImageTooLargeException(
            f"Image size is too large: the {fmt} header declares more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} "
            "megapixels (a decompression bomb?). Downscale the image; faces need far fewer pixels."
        ) from None
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise InvalidImageFormatException(
            f"Request has invalid image format: cannot read the {fmt} header ({exc}). "
            "Send a complete, uncorrupted JPEG or PNG file."
        ) from None
    base = working_reduction(w, h, settings)
    if jpeg is not None:
        _check_jpeg_buffer(jpeg, w, h, settings)
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    if fmt == "JPEG":
        image = DecodedImage(encoded=data, pil=None, fmt=fmt, orientation=orientation, width=w, height=h,
                             base_reduction=base)
        image.view(image.reduction_for_long_side(settings.detection_size))  # decode now: errors surface here
        return image
    rgb = _decode_upright(im, fmt, orientation, base)
    return DecodedImage(encoded=None, pil=rgb, fmt=fmt, orientation=orientation, width=w, height=h,
                        base_reduction=base)


def _decode_extra(data: bytes, fmt: str, settings: Settings, page: int) -> DecodedImage:
    """HEIF, WebP, AVIF (decoded once, then reduced as PNG is) and PDF (every page rendered in a bounded child
    process); see :mod:`facecompare.formats` for what is checked before decoding."""
    if fmt == "PDF":
        pdf = formats.PdfPages(data, max_pages=settings.max_pdf_pages, dpi=settings.pdf_dpi,
                               max_pixels=settings.max_pixels, max_working_pixels=settings.max_working_pixels,
                               min_side=settings.min_image_side)
        return _pdf_page(pdf, page)
    if fmt == "HEIF":
        im = formats.open_heif(data, lambda w, h: _check_dimensions(w, h, settings))
        orientation = 1  # libheif applied irot/imir, and pillow-heif set the EXIF orientation to 1
    else:
        try:
            im = Image.open(io.BytesIO(data), formats=[fmt])
            _check_dimensions(*im.size, settings)
            try:
                orientation = int(im.getexif().get(0x0112, 1) or 1)
            except _DECODE_ERRORS:
                orientation = 1
        except (ImageTooLargeException, InvalidParameterException):
            raise
        except Image.DecompressionBombError:
            raise ImageTooLargeException(
                f"Image size is too large: the {formats.NAMES[fmt]} header declares more than "
                f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels. Downscale the image."
            ) from None
        except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
            why = "its decoder refused it" if isinstance(exc, UnidentifiedImageError) else str(exc)[:160]
            raise InvalidImageFormatException(
                f"Request has invalid image format: cannot read the {formats.NAMES[fmt]} header ({why}). "
                f"Send a complete, uncorrupted {formats.NAMES[fmt]} file, or convert it to JPEG or PNG."
            ) from None
    orientation = orientation if orientation in _ORIENTATION_TRANSPOSE else 1
    w, h = im.size
    base = working_reduction(w, h, settings)
    rgb = _decode_upright(im, formats.NAMES[fmt], orientation, base)  # the first frame of an animated file
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return DecodedImage(encoded=None, pil=rgb, fmt=fmt, orientation=orientation, width=w, height=h,
                        base_reduction=base)


def _pdf_page(pdf: formats.PdfPages, page: int) -> DecodedImage:
    """Page ``page`` (1-based) of a PDF, rendered at its DPI (less for a page over the working pixels: it is
    then that smaller image, base reduction 1)."""
    if not 1 <= page <= pdf.count:
        raise InvalidParameterException(f"Request has invalid parameters: the PDF has no page {page}.")
    rgb = pdf.render(page - 1)
    w, h = rgb.size
    return DecodedImage(encoded=None, pil=rgb, fmt="PDF", orientation=1, width=w, height=h, page=page,
                        pages=pdf.count, page_opener=lambda n: _pdf_page(pdf, n))


def working_reduction(width: int, height: int, settings: Settings) -> int:
    """The smallest reduction (1, 2, 4, 8) at which the image fits ``settings.max_working_pixels`` (0: 1)."""
    limit = settings.max_working_pixels
    for r in REDUCTIONS:
        if limit <= 0 or -(-width // r) * -(-height // r) <= limit:
            return r
    return REDUCTIONS[-1]


class _JpegStructure(NamedTuple):
    segments: int
    scans: int
    components: list[tuple[int, int]]  # each component's (horizontal, vertical) sampling factors
    progressive: bool


def _check_structure(data: bytes, fmt: str) -> _JpegStructure | None:
    """Refuse, before Pillow reads anything, a JPEG with more than :data:`MAX_JPEG_SEGMENTS` marker segments or
    :data:`MAX_JPEG_SCANS` scans, or a PNG with more than :data:`MAX_PNG_CHUNKS` chunks (see those constants).
    Returns the JPEG's structure (None for a PNG)."""
    if fmt == "PNG":
        if _png_chunks(data) > MAX_PNG_CHUNKS:
            raise ImageTooLargeException(
                f"Image size is too large: the PNG has more than {MAX_PNG_CHUNKS:,} chunks, and each costs time to "
                "read. Re-encode it (encoders write a few dozen to a few thousand)."
            )
        return None
    jpeg = _jpeg_structure(data)
    if jpeg.segments > MAX_JPEG_SEGMENTS:
        raise ImageTooLargeException(
            f"Image size is too large: the JPEG has more than {MAX_JPEG_SEGMENTS:,} marker segments, and each "
            "costs time to read. Re-encode it (encoders write a few dozen)."
        )
    if jpeg.scans > MAX_JPEG_SCANS:
        raise ImageTooLargeException(
            f"Image size is too large: the JPEG has more than {MAX_JPEG_SCANS} scans (progressive passes), and "
            "each costs a pass over the whole image. Re-encode it (encoders write about 10)."
        )
    return jpeg


def _check_jpeg_buffer(jpeg: _JpegStructure, width: int, height: int, settings: Settings) -> None:
    """Refuse a multi-scan JPEG whose coefficient buffer is over ``JPEG_BUFFER_BYTES_PER_PIXEL * max_pixels``
    bytes (see that constant)."""
    if jpeg.scans > 1 or jpeg.progressive:
        buffer = jpeg_coefficient_bytes(width, height, jpeg.components)
        limit = JPEG_BUFFER_BYTES_PER_PIXEL * settings.max_pixels
        if buffer > limit:
            raise ImageTooLargeException(
                f"Image size is too large: this {width}x{height} progressive (multi-scan) JPEG needs a "
                f"{buffer / 1e6:.0f} MB decoding buffer, over the limit of {limit / 1e6:.0f} MB (what 4:2:0 colour "
                f"needs at {settings.max_pixels / 1e6:.0f} megapixels). Save it as a baseline JPEG or downscale it."
            )


def jpeg_coefficient_bytes(width: int, height: int, components: list[tuple[int, int]]) -> int:
    """Bytes of DCT coefficients (2 bytes each, one per sample of each component at its sampling factors) of a
    JPEG: what libjpeg buffers to decode a multi-scan file (a little more: it pads to whole 8x8 blocks)."""
    h_max = max((c[0] for c in components), default=1) or 1
    v_max = max((c[1] for c in components), default=1) or 1
    return round(sum(2 * width * height * hs * vs / (h_max * v_max) for hs, vs in components))


def _jpeg_structure(data: bytes) -> _JpegStructure:
    """A JPEG's marker segments, scans, components' sampling factors and whether its frame is progressive, from
    its markers: segments are skipped by their lengths, entropy-coded data by searching for the next marker.
    Counting stops past :data:`MAX_JPEG_SEGMENTS` segments or :data:`MAX_JPEG_SCANS` scans. Malformed structure
    is left to the decoder to report."""
    segments, scans, components, progressive = 0, 0, [], False
    i, n = 2, len(data)
    while i + 4 <= n and segments <= MAX_JPEG_SEGMENTS and scans <= MAX_JPEG_SCANS:
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # end of image
            break
        segments += 1
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):  # markers without a length
            i += 2
            continue
        segment_end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _JPEG_SOF and not components and i + 10 <= n:
            progressive = marker in _JPEG_PROGRESSIVE_SOF
            for c in range(data[i + 9]):
                at = i + 11 + 3 * c
                if at < min(segment_end, n):
                    components.append((data[at] >> 4, data[at] & 0x0F))
        if marker == 0xDA:  # start of scan: its entropy-coded data runs to the next marker
            scans += 1
            found = _JPEG_MARKER.search(data, segment_end)
            if found is None:
                break
            i = found.start()
            continue
        i = segment_end
    return _JpegStructure(segments, scans, components, progressive)


def _png_chunks(data: bytes) -> int:
    """How many chunks a PNG has, up to IEND (counting stops past :data:`MAX_PNG_CHUNKS`)."""
    count, i, n = 0, 8, len(data)
    while i + 8 <= n and count <= MAX_PNG_CHUNKS:
        count += 1
        if data[i + 4:i + 8] == b"IEND":
            break
        i += 12 + int.from_bytes(data[i:i + 4], "big")
    return count


def _decode_upright(im: Image.Image, fmt: str, orientation: int, reduction: int = 1) -> Image.Image:
    """Decode the pixels of an opened image to RGB, reduced by ``reduction`` (band by band: no full-size RGB
    copy is made), turned upright by its EXIF orientation; decoding failures become the matching Rekognition
    errors."""
    try:
        im.load()
        rgb = _to_rgb(im) if reduction == 1 else _reduced_rgb(im, reduction)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeException(f"Image size is too large: {exc}") from None
    except MemoryError:
        raise ImageTooLargeException("Image size is too large: not enough memory to decode it.") from None
    except _DECODE_ERRORS as exc:
        raise InvalidImageFormatException(
            f"Request has invalid image format: the {fmt} could not be decoded ({exc}). "
            + ("Send a complete, uncorrupted JPEG or PNG file." if fmt in formats.BASE_FORMATS else
               f"Send a complete, uncorrupted {fmt} file, or convert it to JPEG or PNG.")
        ) from None
    return _upright(rgb, orientation)


def _upright(rgb: Image.Image, orientation: int) -> Image.Image:
    transpose = _ORIENTATION_TRANSPOSE.get(orientation)
    return rgb.transpose(transpose) if transpose is not None else rgb


def _reduced_rgb(im: Image.Image, reduction: int) -> Image.Image:
    """``_to_rgb(im).reduce(reduction)``, made band by band so that only one band is ever held as RGB.

    Bands are whole multiples of ``reduction`` rows, so each output row averages the same source pixels as a
    reduction of the whole image would (16-bit values map to 8 bits by a fixed scale, so bands agree)."""
    return _reduced_bands(lambda y0, y1: _to_rgb(im.crop((0, y0, im.width, y1))), im.width, im.height, reduction)


def _reduced_bands(band, width: int, height: int, reduction: int) -> Image.Image:
    """An RGB image ``reduction`` times smaller, from ``band(y0, y1)``: the RGB rows y0 to y1 of the source."""
    out = Image.new("RGB", (-(-width // reduction), -(-height // reduction)))
    rows = max(1, _BAND_ROWS // reduction) * reduction
    for y in range(0, height, rows):
        out.paste(band(y, min(height, y + rows)).reduce(reduction), (0, y // reduction))
    return out


#: modes holding 16-bit samples (a 16-bit greyscale PNG opens as I;16; older Pillow opened it as I). Their full
#: range 0-65535 maps to 0-255 (divided by 257, as libpng's 16-to-8 reduction does): a value's brightness does not
#: depend on the rest of the image (a uniform 40000 is 156, not 255; a dark scan stays dark)
_INTEGER_MODES = ("I;16", "I;16B", "I;16L", "I")


def _check_dimensions(w: int, h: int, settings: Settings) -> None:
    if w * h > settings.max_pixels:
        raise ImageTooLargeException(
            f"Image size is too large: {w}x{h} = {w * h / 1e6:.1f} megapixels, over the limit of "
            f"{settings.max_pixels / 1e6:.0f}. Downscale the image (faces need far fewer pixels) "
            "or raise FACECOMPARE_MAX_PIXELS."
        )
    if min(w, h) < settings.min_image_side:
        raise InvalidParameterException(
            f"Request has invalid parameters: the image is {w}x{h} pixels; both sides must be at least "
            f"{settings.min_image_side} pixels."
        )


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in _INTEGER_MODES:
        array = np.asarray(im, dtype=np.float64)
        return Image.fromarray(np.rint(np.clip(array, 0, 65535) / 257.0).astype(np.uint8)).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _from_pil(im: Image.Image, settings: Settings) -> DecodedImage:
    w, h = im.size
    _check_dimensions(w, h, settings)
    base = working_reduction(w, h, settings)
    try:
        if base == 1:
            rgb = _to_rgb(ImageOps.exif_transpose(im))
            rgb.load()
        else:  # reduced band by band, then turned: no full-size copy of the caller's image
            orientation = int(im.getexif().get(0x0112, 1) or 1)
            orientation = orientation if orientation in _ORIENTATION_TRANSPOSE else 1
            rgb = _upright(_reduced_rgb(im, base), orientation)
    except _DECODE_ERRORS as exc:
        raise InvalidImageFormatException(
            f"Request has invalid image format: the PIL image cannot be read ({exc})."
        ) from None
    if base == 1:
        width, height = rgb.size
    else:
        width, height = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    return DecodedImage(encoded=None, pil=rgb, fmt=im.format or "PIL", orientation=1,
                        width=width, height=height, base_reduction=base)


def _from_array(array: np.ndarray, settings: Settings) -> DecodedImage:
    if array.dtype != np.uint8:
        raise InvalidParameterException(
            f"Image arrays must be uint8 (got {array.dtype}); scale to 0-255 and use array.astype('uint8')."
        )
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise InvalidParameterException(
            f"Image arrays must have shape (height, width, 3) in RGB order or (height, width); got {array.shape}."
        )
    h, w = array.shape[:2]
    _check_dimensions(w, h, settings)
    base = working_reduction(w, h, settings)
    if base > 1:  # reduced band by band: no full-size copy of the caller's array
        pil = _reduced_bands(lambda y0, y1: _array_rgb(array[y0:y1]), w, h, base)
    else:
        pil = _array_rgb(array)
    return DecodedImage(encoded=None, pil=pil, fmt="ARRAY", orientation=1, width=w, height=h, base_reduction=base)


def _array_rgb(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(array), "RGB")
