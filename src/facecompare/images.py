"""Image input: accept many source types, check limits before decoding, fix EXIF orientation,
and decode JPEGs at reduced size when a smaller copy is all that is needed.

The engine asks an :class:`DecodedImage` for *views* at a reduction factor (1, 2, 4 or 8). For JPEG the
reduced views come straight from the decoder (``Image.draft``: DCT scaling, much faster than a full
decode); other formats are decoded once and reduced with ``Image.reduce``.

Work is bounded for any accepted image (``Settings.max_working_pixels``): an image over that many pixels is
never held at full size. Its finest view is the first reduction that fits (a JPEG is decoded at that scale
directly; other formats are converted to RGB and reduced band by band from the decoded raster:
:mod:`facecompare.image_pixels`). The byte, pixel and structure limits are checked before any pixel is decoded
(:mod:`facecompare.image_limits`).
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import formats
from .errors import (
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
)
from .heap import release_freed_memory
from .image_limits import (
    REDUCTIONS,
    check_byte_size,
    check_dimensions,
    check_jpeg_buffer,
    check_structure,
    working_reduction,
)
from .image_pixels import (
    DECODE_ERRORS,
    ORIENTATION_TRANSPOSE,
    apply_orientation,
    array_rgb,
    decode_upright,
    reduced_bands,
    reduced_rgb,
    to_rgb,
)
from .settings import Settings

ImageSource = Union[bytes, bytearray, memoryview, str, os.PathLike, BinaryIO, Image.Image, np.ndarray]



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

    @property
    def encoded(self) -> bytes | None:
        """The encoded JPEG bytes the views are decoded from, when the image kept them (a JPEG); else None."""
        return self._encoded

    @property
    def raster(self) -> Image.Image | None:
        """The decoded, oriented RGB image at ``base_reduction`` the views are reduced from (every format but JPEG;
        else None). Shared, not a copy: read it, do not change it."""
        return self._pil

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

    def view_shape(self, reduction: int = 1, rotation: int = 0) -> tuple[int, int]:
        """(height, width) of ``view(reduction, rotation)``, without turning a view to learn it."""
        h, w = self.view(reduction, 0).shape[:2]
        return (w, h) if rotation in (90, 270) else (h, w)

    def region(self, reduction: int, rotation: int, box: tuple[int, int, int, int]) -> np.ndarray:
        """``view(reduction, rotation)[y1:y2, x1:x2]`` for ``box`` = (x1, y1, x2, y2), clipped to the view: the
        same pixels, cut from the upright view and only that cut turned, so a face's crop or chip at a turn
        never turns the whole image (a 12 MP view costs 60-250 ms to turn)."""
        reduction = max(reduction, self.base_reduction)
        with self._lock:
            turned = self._views.get((reduction, rotation))
        if turned is not None:
            x1, y1, x2, y2 = box
            return turned[max(0, y1):max(0, y2), max(0, x1):max(0, x2)]
        upright = self.view(reduction, 0)
        h, w = upright.shape[:2]
        th, tw = (w, h) if rotation in (90, 270) else (h, w)
        x1, y1 = min(max(0, box[0]), tw), min(max(0, box[1]), th)
        x2, y2 = min(max(x1, box[2]), tw), min(max(y1, box[3]), th)
        # where the turned view's rows [y1, y2) and columns [x1, x2) lie in the upright view (turned clockwise)
        if rotation == 90:  # turned[y, x] = upright[h - 1 - x, y]
            cut = upright[h - x2:h - x1, y1:y2]
        elif rotation == 180:  # turned[y, x] = upright[h - 1 - y, w - 1 - x]
            cut = upright[h - y2:h - y1, w - x2:w - x1]
        elif rotation == 270:  # turned[y, x] = upright[x, w - 1 - y]
            cut = upright[x1:x2, w - y2:w - y1]
        else:
            return upright[y1:y2, x1:x2]
        return np.ascontiguousarray(np.rot90(cut, k=-(rotation // 90)))

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
            return np.asarray(decode_upright(im, self.format, self.orientation))


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
        check_byte_size(len(data), limit, "image bytes")
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
        check_byte_size(size, limit, str(path))
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
        check_byte_size(len(data), limit, "image file object", at_least=True)
        return bytes(data)
    raise InvalidParameterException(
        f"Unsupported image type {type(source).__name__}: pass bytes, a file path, a binary file object, "
        "a PIL image or an RGB numpy array."
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
    jpeg = check_structure(data, fmt)
    try:
        im = Image.open(io.BytesIO(data), formats=[fmt])
        w, h = im.size
        (check_dimensions if fmt == "JPEG" else _check_before_full_decode)(w, h, settings)
        orientation = 1
        try:
            orientation = int(im.getexif().get(0x0112, 1) or 1)
        except DECODE_ERRORS:
            orientation = 1  # unreadable EXIF: treat as no orientation tag
        if orientation not in ORIENTATION_TRANSPOSE:
            orientation = 1
    except (ImageTooLargeException, InvalidParameterException):
        raise
    except Image.DecompressionBombError:
        raise ImageTooLargeException(
            f"Image size is too large: the {fmt} header declares more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} "
            "megapixels (a decompression bomb?). Downscale the image; faces need far fewer pixels."
        ) from None
    except (UnidentifiedImageError, *DECODE_ERRORS) as exc:
        raise InvalidImageFormatException(
            f"Request has invalid image format: cannot read the {fmt} header ({exc}). "
            "Send a complete, uncorrupted JPEG or PNG file."
        ) from None
    base = working_reduction(w, h, settings)
    if jpeg is not None:
        check_jpeg_buffer(jpeg, w, h, settings)
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    if fmt == "JPEG":
        image = DecodedImage(encoded=data, pil=None, fmt=fmt, orientation=orientation, width=w, height=h,
                             base_reduction=base)
        image.view(image.reduction_for_long_side(settings.detection_size))  # decode now: errors surface here
        return image
    rgb = decode_upright(im, fmt, orientation, base)
    return DecodedImage(encoded=None, pil=rgb, fmt=fmt, orientation=orientation, width=w, height=h,
                        base_reduction=base)


def _check_before_full_decode(width: int, height: int, settings: Settings) -> None:
    """``check_dimensions`` for an image that decodes at full size before it is reduced (PNG, HEIF, WebP, AVIF;
    a JPEG is DCT-scaled instead). When it is over the working size, the heap that ordinary calls freed and glibc
    kept (about 130 MB after a few 12 MP pairs) goes back first, so that it is not held beside the decode's fresh
    pages (4 bytes a pixel: 256 MB at 8000x8000; benchmarks/bench_finder.py's peak memory)."""
    check_dimensions(width, height, settings)
    if working_reduction(width, height, settings) > 1:
        release_freed_memory()


def _decode_extra(data: bytes, fmt: str, settings: Settings, page: int) -> DecodedImage:
    """HEIF, WebP, AVIF (decoded once, then reduced as PNG is) and PDF (every page rendered in a bounded child
    process); see :mod:`facecompare.formats` for what is checked before decoding."""
    if fmt == "PDF":
        pdf = formats.PdfPages(data, max_pages=settings.max_pdf_pages, dpi=settings.pdf_dpi,
                               max_pixels=settings.max_pixels, max_working_pixels=settings.max_working_pixels,
                               min_side=settings.min_image_side)
        return _pdf_page(pdf, page)
    if fmt == "HEIF":
        im = formats.open_heif(data, lambda w, h: _check_before_full_decode(w, h, settings))
        orientation = 1  # libheif applied irot/imir, and pillow-heif set the EXIF orientation to 1
    else:
        try:
            im = Image.open(io.BytesIO(data), formats=[fmt])
            _check_before_full_decode(*im.size, settings)
            try:
                orientation = int(im.getexif().get(0x0112, 1) or 1)
            except DECODE_ERRORS:
                orientation = 1
        except (ImageTooLargeException, InvalidParameterException):
            raise
        except Image.DecompressionBombError:
            raise ImageTooLargeException(
                f"Image size is too large: the {formats.NAMES[fmt]} header declares more than "
                f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels. Downscale the image."
            ) from None
        except (UnidentifiedImageError, *DECODE_ERRORS) as exc:
            why = "its decoder refused it" if isinstance(exc, UnidentifiedImageError) else str(exc)[:160]
            raise InvalidImageFormatException(
                f"Request has invalid image format: cannot read the {formats.NAMES[fmt]} header ({why}). "
                f"Send a complete, uncorrupted {formats.NAMES[fmt]} file, or convert it to JPEG or PNG."
            ) from None
    orientation = orientation if orientation in ORIENTATION_TRANSPOSE else 1
    w, h = im.size
    base = working_reduction(w, h, settings)
    rgb = decode_upright(im, formats.NAMES[fmt], orientation, base)  # the first frame of an animated file
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



def _from_pil(im: Image.Image, settings: Settings) -> DecodedImage:
    w, h = im.size
    check_dimensions(w, h, settings)
    base = working_reduction(w, h, settings)
    try:
        if base == 1:
            rgb = to_rgb(ImageOps.exif_transpose(im))
            rgb.load()
        else:  # reduced band by band, then turned: no full-size copy of the caller's image
            orientation = int(im.getexif().get(0x0112, 1) or 1)
            orientation = orientation if orientation in ORIENTATION_TRANSPOSE else 1
            rgb = apply_orientation(reduced_rgb(im, base), orientation)
    except DECODE_ERRORS as exc:
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
    check_dimensions(w, h, settings)
    base = working_reduction(w, h, settings)
    if base > 1:  # reduced band by band: no full-size copy of the caller's array
        pil = reduced_bands(lambda y0, y1: array_rgb(array[y0:y1]), w, h, base)
    else:
        pil = array_rgb(array)
    return DecodedImage(encoded=None, pil=pil, fmt="ARRAY", orientation=1, width=w, height=h, base_reduction=base)

