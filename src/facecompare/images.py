"""Image input: accept many source types, check limits before decoding, fix EXIF orientation,
and decode JPEGs at reduced size when a smaller copy is all that is needed.

The engine asks an :class:`DecodedImage` for *views* at a reduction factor (1, 2, 4 or 8). For JPEG the
reduced views come straight from the decoder (``Image.draft``: DCT scaling, much faster than a full
decode); other formats are decoded once and reduced with ``Image.reduce``.
"""

from __future__ import annotations

import io
import os
import struct
import threading
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    if data.startswith(PNG_MAGIC):
        return "PNG"
    return None


class DecodedImage:
    """An image ready for the engine: oriented size known, views decoded lazily and cached."""

    def __init__(self, *, encoded: bytes | None, pil: Image.Image | None, fmt: str, orientation: int,
                 width: int, height: int) -> None:
        self._encoded = encoded  # JPEG bytes (reduced decodes come from here)
        self._pil = pil  # an already decoded, oriented RGB image (non-JPEG inputs)
        self.format = fmt
        self.orientation = orientation  # EXIF orientation tag that was applied (1 = none)
        self.width = width  # after EXIF correction
        self.height = height
        self._views: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def reduction_for(self, needed_width: float, current_width: float, *, finer_if_cached: bool = False) -> int:
        """The largest reduction whose view still has at least ``needed_width`` pixels where the
        full image has ``current_width``. With ``finer_if_cached``, a finer view that is decoded already is
        preferred to decoding the coarser one (more detail than needed costs nothing; a decode does)."""
        best = 1
        for r in REDUCTIONS:
            if current_width / r >= needed_width:
                best = r
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
        return (reduction, rotation) in self._views

    def scale_of(self, view: np.ndarray) -> float:
        """Full-resolution pixels per pixel of ``view`` (horizontal)."""
        return self.width / view.shape[1]

    def _decode(self, reduction: int) -> np.ndarray:
        if self._pil is not None:
            pil = self._pil if reduction == 1 else self._pil.reduce(reduction)
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


def decode_bytes(data: bytes, settings: Settings) -> DecodedImage:
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImageFormatException(
            "Request has invalid image format: the data is not a JPEG or PNG image "
            f"(it starts with {data[:8]!r}). Convert it to JPEG or PNG."
        )
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
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    if fmt == "JPEG":
        image = DecodedImage(encoded=data, pil=None, fmt=fmt, orientation=orientation, width=w, height=h)
        image.view(image.reduction_for_long_side(settings.detection_size))  # decode now: errors surface here
        return image
    rgb = _decode_upright(im, fmt, orientation)
    return DecodedImage(encoded=None, pil=rgb, fmt=fmt, orientation=orientation, width=w, height=h)


def _decode_upright(im: Image.Image, fmt: str, orientation: int) -> Image.Image:
    """Decode the pixels of an opened image to RGB, turned upright by its EXIF orientation; decoding failures
    become the matching Rekognition errors."""
    try:
        im.load()
        rgb = _to_rgb(im)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeException(f"Image size is too large: {exc}") from None
    except MemoryError:
        raise ImageTooLargeException("Image size is too large: not enough memory to decode it.") from None
    except _DECODE_ERRORS as exc:
        raise InvalidImageFormatException(
            f"Request has invalid image format: the {fmt} could not be decoded ({exc}). "
            "Send a complete, uncorrupted JPEG or PNG file."
        ) from None
    transpose = _ORIENTATION_TRANSPOSE.get(orientation)
    return rgb.transpose(transpose) if transpose is not None else rgb


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
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(im, dtype=np.float64)
        top = array.max() or 1.0
        return Image.fromarray(np.clip(array * (255.0 / top), 0, 255).astype(np.uint8)).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _from_pil(im: Image.Image, settings: Settings) -> DecodedImage:
    w, h = im.size
    _check_dimensions(w, h, settings)
    try:
        oriented = ImageOps.exif_transpose(im)
        rgb = _to_rgb(oriented)
        rgb.load()
    except _DECODE_ERRORS as exc:
        raise InvalidImageFormatException(
            f"Request has invalid image format: the PIL image cannot be read ({exc})."
        ) from None
    return DecodedImage(encoded=None, pil=rgb, fmt=im.format or "PIL", orientation=1,
                        width=rgb.size[0], height=rgb.size[1])


def _from_array(array: np.ndarray, settings: Settings) -> DecodedImage:
    if array.dtype != np.uint8:
        raise InvalidParameterException(
            f"Image arrays must be uint8 (got {array.dtype}); scale to 0-255 and use array.astype('uint8')."
        )
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] != 3:
        raise InvalidParameterException(
            f"Image arrays must have shape (height, width, 3) in RGB order or (height, width); got {array.shape}."
        )
    h, w = array.shape[:2]
    _check_dimensions(w, h, settings)
    pil = Image.fromarray(np.ascontiguousarray(array), "RGB")
    return DecodedImage(encoded=None, pil=pil, fmt="ARRAY", orientation=1, width=w, height=h)
