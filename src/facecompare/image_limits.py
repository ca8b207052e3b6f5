"""The checks made before any pixel is decoded: byte size, pixel size, and the structure of JPEG and PNG files.

Each is measured in microseconds to milliseconds from the bytes or the header alone, so a decompression bomb or a
file built to make the decoder slow is refused with no memory spent on it (:mod:`facecompare.images` runs them;
:mod:`facecompare.formats` checks HEIF, WebP, AVIF and PDF). JPEGs whose decoder must buffer every coefficient of the
image (progressive and other multi-scan files) are checked from their markers.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import ImageTooLargeException, InvalidParameterException
from .settings import Settings

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
#: a JPEG marker in entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart marker or another 0xFF
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_PROGRESSIVE_SOF = {0xC2, 0xC6, 0xCA, 0xCE}


def check_byte_size(size: int, limit: int, what: str, *, at_least: bool = False) -> None:
    if size == 0:
        raise InvalidParameterException(f"The {what} is empty: send a JPEG or PNG image.")
    if size > limit:
        shown = "more than " if at_least else ""
        raise ImageTooLargeException(
            f"Image size is too large: {what} has {shown}{size:,} bytes, over the limit of {limit:,}. "
            "Re-encode it smaller (e.g. JPEG quality 90, at most 4000 px on the long side) or raise the limit."
        )


def working_reduction(width: int, height: int, settings: Settings) -> int:
    """The smallest reduction (1, 2, 4, 8) at which the image fits ``settings.max_working_pixels`` (0: 1)."""
    limit = settings.max_working_pixels
    for r in REDUCTIONS:
        if limit <= 0 or -(-width // r) * -(-height // r) <= limit:
            return r
    return REDUCTIONS[-1]


class JpegStructure(NamedTuple):
    segments: int
    scans: int
    components: list[tuple[int, int]]  # each component's (horizontal, vertical) sampling factors
    progressive: bool


def check_structure(data: bytes, fmt: str) -> JpegStructure | None:
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
    jpeg = jpeg_structure(data)
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


def check_jpeg_buffer(jpeg: JpegStructure, width: int, height: int, settings: Settings) -> None:
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


def jpeg_structure(data: bytes) -> JpegStructure:
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
    return JpegStructure(segments, scans, components, progressive)


def _png_chunks(data: bytes) -> int:
    """How many chunks a PNG has, up to IEND (counting stops past :data:`MAX_PNG_CHUNKS`)."""
    count, i, n = 0, 8, len(data)
    while i + 8 <= n and count <= MAX_PNG_CHUNKS:
        count += 1
        if data[i + 4:i + 8] == b"IEND":
            break
        i += 12 + int.from_bytes(data[i:i + 4], "big")
    return count


def check_dimensions(w: int, h: int, settings: Settings) -> None:
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
