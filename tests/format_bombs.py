"""Decompression bombs of the formats beyond JPEG and PNG, built at test time from the committed fixtures (small
files that declare huge images, or PDFs that declare absurd work); used by test_format_bombs.py and
test_hostile_input.py. Each maps to the error type it must be refused with."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

FORMATS = Path(__file__).parent / "fixtures" / "formats"


def patch_ispe(data: bytes, width: int, height: int) -> bytes:
    """An HEIF/AVIF file whose 'ispe' (image spatial extents) boxes declare width x height: a grid image's
    header declares its whole size in the same box."""
    out = bytearray(data)
    at = out.find(b"ispe")
    assert at != -1
    while at != -1:
        out[at + 8:at + 16] = struct.pack(">II", width, height)  # after the full box's version and flags
        at = out.find(b"ispe", at + 4)
    return bytes(out)


def webp_canvas(data: bytes, width: int, height: int) -> bytes:
    """An extended (VP8X) WebP declaring a width x height canvas: an animation's frames may be far smaller than
    its canvas, which the decoder allocates whole."""
    assert data[12:16] == b"VP8X"
    out = bytearray(data)
    out[24:30] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return bytes(out)


def pdf(objects: list[bytes]) -> bytes:
    """A PDF of these objects (numbered from 1 in order; object 1 is the catalog) with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


_CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"


def pdf_pages(count: int) -> bytes:
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(count))
    return pdf([_CATALOG, b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count,
                *[b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"] * count])


def pdf_huge_page(width_pt: int = 14400, height_pt: int = 14400) -> bytes:
    """One page of 200 x 200 inches (the largest PDF allows): 40000x40000 pixels at 200 DPI."""
    return pdf([_CATALOG, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] >>" % (width_pt, height_pt)])


def pdf_huge_image(width: int = 30000, height: int = 30000) -> bytes:
    """A letter page drawing one embedded image that declares 900 megapixels (its 1.7 KB of Flate data would
    inflate to 1 MB; PDFium would allocate the declared size)."""
    return pdf([_CATALOG, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                b"/Resources << /XObject << /Im0 5 0 R >> >> >>",
                _stream(b"", b"q 612 0 0 792 0 0 cm /Im0 Do Q"),
                _stream(b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                        b"/BitsPerComponent 8 /Filter /FlateDecode" % (width, height), zlib.compress(b"\x80" * (1 << 20), 9))])


def pdf_nested_forms(fanout: int, levels: int) -> bytes:
    """A page drawing a form ``fanout`` times, which draws the next form ``fanout`` times, ``levels`` deep, the
    last drawing ``fanout`` rectangles: fanout ** (levels + 1) objects in a file of about 1 KB."""
    objects = [_CATALOG, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /XObject << /F 5 0 R >> >> >>",
               _stream(b"", b"/F Do\n" * fanout)]
    for level in range(levels):
        number = 5 + level
        if level == levels - 1:
            content, resources = b"0 0 1 1 re f\n" * fanout, b""
        else:
            content, resources = b"/F Do\n" * fanout, b" /Resources << /XObject << /F %d 0 R >> >>" % (number + 1)
        objects.append(_stream(b"/Type /XObject /Subtype /Form /BBox [0 0 612 792]" + resources, content))
    return pdf(objects)


def bombs() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, the error type it must get). The slow PDF ones (PDFium busy for seconds) are apart:
    :func:`slow_bombs`."""
    heic = (FORMATS / "obama_rotated.heic").read_bytes()
    avif = (FORMATS / "obama_rotated.avif").read_bytes()
    animated = (FORMATS / "obama_then_biden.webp").read_bytes()
    return {
        "heif declaring 30000x30000": (patch_ispe(heic, 30000, 30000), "ImageTooLargeException"),
        "heif declaring 9000x9000": (patch_ispe(heic, 9000, 9000), "ImageTooLargeException"),
        "avif declaring 9000x9000": (patch_ispe(avif, 9000, 9000), "ImageTooLargeException"),
        "animated webp on a 9000x9000 canvas": (webp_canvas(animated, 9000, 9000), "ImageTooLargeException"),
        "webp on a 16000x16000 canvas": (webp_canvas(animated, 16000, 16000), "ImageTooLargeException"),
        "pdf of 5000 pages": (pdf_pages(5000), "ImageTooLargeException"),
        "pdf page of 200x200 inches": (pdf_huge_page(), "ImageTooLargeException"),
        "pdf image declaring 30000x30000": (pdf_huge_image(), "ImageTooLargeException"),
        "pdf truncated": ((FORMATS / "id_card_2pages.pdf").read_bytes()[:4000], "InvalidImageFormatException"),
        "heif truncated": (heic[: len(heic) // 3], "InvalidImageFormatException"),
        # 27,000 objects in 1.5 KB: PDFium loads the page (0.6 s on 2 shared cores), then the count refuses it
        "pdf of nested forms, 27000 objects": (pdf_nested_forms(30, 2), "ImageTooLargeException"),
    }


def slow_bombs() -> dict[str, tuple[bytes, str]]:
    return {
        # 810,000 objects: PDFium loads the page in about 4 s, then the count refuses it
        "pdf of nested forms, 810000 objects": (pdf_nested_forms(30, 3), "ImageTooLargeException"),
        # 100 million objects: PDFium would load the page for many minutes; the render timeout (or, on a busy
        # machine, the renderer's address space, 1 GiB: it aborts) refuses it
        "pdf of nested forms, 100000000 objects": (pdf_nested_forms(100, 3), "ImageTooLargeException"),
    }
