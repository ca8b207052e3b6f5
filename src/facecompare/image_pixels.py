"""Opened images to upright RGB: EXIF orientation, alpha on white, 16-bit samples to 8 bits, and reduction band by
band, so that no full-size RGB copy of an image over the working size is ever made (the 8000x8000 1-bit PNG of
10 KB that cost 192 MB as RGB, 448 MB with its array, costs its 64 MB raster and a 48 MB working copy). Decoding
failures become the matching Rekognition errors.
"""

from __future__ import annotations

import struct

import numpy as np
from PIL import Image

from . import formats
from .errors import ImageTooLargeException, InvalidImageFormatException

#: rows converted to RGB at a time when a large decoded image is reduced to its working size: 16 MB of RGB for
#: a 8000 px wide image (Pillow holds RGB at 4 bytes per pixel), against 256 MB for the whole 8000x8000 image
_BAND_ROWS = 512

# EXIF orientation tag -> the transpose that makes the image upright (as ImageOps.exif_transpose does)
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError, KeyError)


def decode_upright(im: Image.Image, fmt: str, orientation: int, reduction: int = 1) -> Image.Image:
    """Decode the pixels of an opened image to RGB, reduced by ``reduction`` (band by band: no full-size RGB
    copy is made), turned upright by its EXIF orientation; decoding failures become the matching Rekognition
    errors."""
    try:
        im.load()
        rgb = to_rgb(im) if reduction == 1 else reduced_rgb(im, reduction)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeException(f"Image size is too large: {exc}") from None
    except MemoryError:
        raise ImageTooLargeException("Image size is too large: not enough memory to decode it.") from None
    except DECODE_ERRORS as exc:
        raise InvalidImageFormatException(
            f"Request has invalid image format: the {fmt} could not be decoded ({exc}). "
            + ("Send a complete, uncorrupted JPEG or PNG file." if fmt in formats.BASE_FORMATS else
               f"Send a complete, uncorrupted {fmt} file, or convert it to JPEG or PNG.")
        ) from None
    return apply_orientation(rgb, orientation)


def apply_orientation(rgb: Image.Image, orientation: int) -> Image.Image:
    transpose = ORIENTATION_TRANSPOSE.get(orientation)
    return rgb.transpose(transpose) if transpose is not None else rgb


def reduced_rgb(im: Image.Image, reduction: int) -> Image.Image:
    """``to_rgb(im).reduce(reduction)``, made band by band so that only one band is ever held as RGB.

    Bands are whole multiples of ``reduction`` rows, so each output row averages the same source pixels as a
    reduction of the whole image would (16-bit values map to 8 bits by a fixed scale, so bands agree)."""
    return reduced_bands(lambda y0, y1: to_rgb(im.crop((0, y0, im.width, y1))), im.width, im.height, reduction)


def reduced_bands(band, width: int, height: int, reduction: int) -> Image.Image:
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


def to_rgb(im: Image.Image) -> Image.Image:
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


def array_rgb(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(array), "RGB")
