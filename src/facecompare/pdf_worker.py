"""Renders the pages of one PDF in a child process (``python -I pdf_worker.py LIMITS_JSON < file.pdf``), so that
PDFium's work is bounded in time (the parent kills it after a timeout) and in memory (``RLIMIT_AS``), and a PDFium
crash is a refused image, not a dead server. PDFium parses a page's whole content, forms included, when the page
is loaded, before any of it can be counted: a form drawn 100 times that draws another 100 times, and so on three
levels deep, kept ``FPDF_LoadPage`` busy for more than 300 s. Run by :mod:`facecompare.formats`; imports only
pypdfium2 and Pillow (never facecompare, whose import loads the models' runtime).

Output on stdout: one JSON line, ``{"pages": n, "sizes": [[w, h], ...]}`` (the rendered pages' sizes; their RGB
bytes follow, one page after the other) or ``{"error": TYPE, "message": TEXT}``. Messages never hold page content.
"""

from __future__ import annotations

import ctypes
import json
import resource
import sys


class Refused(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _short(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:160]


def _check_objects(pdfium, page, number: int, limits: dict) -> None:
    """Refuse more than ``max_objects`` objects to draw (forms' contents counted each time a form is used) or
    more than ``max_pixels`` pixels of embedded images."""
    raw = pdfium.raw
    pending = [(page.raw, raw.FPDFPage_CountObjects, raw.FPDFPage_GetObject)]
    objects, pixels = 0, 0
    while pending:
        parent, count_of, get = pending.pop()
        count = max(0, count_of(parent))
        objects += count
        if objects > limits["max_objects"]:
            raise Refused("ImageTooLargeException",
                          f"page {number} of the PDF has more than {limits['max_objects']:,} objects to draw, and each "
                          "costs time. Send a scan of the document (an image per page)")
        for i in range(count):
            obj = get(parent, i)
            kind = raw.FPDFPageObj_GetType(obj)
            if kind == raw.FPDF_PAGEOBJ_FORM:
                pending.append((obj, raw.FPDFFormObj_CountObjects, raw.FPDFFormObj_GetObject))
            elif kind == raw.FPDF_PAGEOBJ_IMAGE:
                w, h = ctypes.c_uint(0), ctypes.c_uint(0)
                if raw.FPDFImageObj_GetImagePixelSize(obj, ctypes.byref(w), ctypes.byref(h)):
                    pixels += w.value * h.value
                if pixels > limits["max_pixels"]:
                    raise Refused("ImageTooLargeException",
                                  f"page {number} of the PDF holds images of more than "
                                  f"{limits['max_pixels'] / 1e6:.0f} megapixels (one is {w.value}x{h.value}). Scan at "
                                  "a lower resolution")


def render(data: bytes, limits: dict) -> tuple[list[tuple[int, int]], list[bytes]]:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        why = "it is password-protected" if "password" in str(exc).lower() else f"cannot read it ({_short(exc)})"
        raise Refused("InvalidImageFormatException", f"the PDF cannot be opened: {why}") from None
    count = len(document)
    if count == 0:
        raise Refused("InvalidImageFormatException", "the PDF has no pages")
    if count > limits["max_pages"]:
        raise Refused("ImageTooLargeException",
                      f"the PDF has {count:,} pages; at most {limits['max_pages']} are read (FACECOMPARE_MAX_PDF_PAGES). "
                      "Send the pages that show the document (its photo page)")
    dpi = float(limits["dpi"])
    scales = []
    for index in range(count):  # every page's size from the page tree, before any page is loaded
        try:
            w_pt, h_pt = document.get_page_size(index)
        except (pdfium.PdfiumError, ValueError, OSError) as exc:
            raise Refused("InvalidImageFormatException", f"page {index + 1} of the PDF cannot be read ({_short(exc)})") \
                from None
        if not (w_pt > 0 and h_pt > 0):
            raise Refused("InvalidImageFormatException", f"page {index + 1} of the PDF has no size")
        width, height = w_pt * dpi / 72, h_pt * dpi / 72
        if width * height > limits["max_pixels"]:
            raise Refused("ImageTooLargeException",
                          f"page {index + 1} of the PDF is {w_pt / 72:.0f}x{h_pt / 72:.0f} inches, {width:.0f}x{height:.0f} "
                          f"pixels at {dpi:g} DPI, over the limit of {limits['max_pixels'] / 1e6:.0f} megapixels. Scan "
                          "the document on a page of normal size")
        scale = dpi / 72
        if limits["max_working_pixels"] > 0 and width * height > limits["max_working_pixels"]:
            scale *= (limits["max_working_pixels"] / (width * height)) ** 0.5  # rendered smaller, never full size
        if min(w_pt, h_pt) * scale < limits["min_side"]:
            raise Refused("InvalidParameterException",
                          f"page {index + 1} of the PDF is {width:.0f}x{height:.0f} pixels at {dpi:g} DPI; both sides "
                          f"must be at least {limits['min_side']} pixels")
        scales.append(scale)
    sizes, pixels = [], []
    for index, scale in enumerate(scales):
        page = document[index]
        _check_objects(pdfium, page, index + 1, limits)
        bitmap = page.render(scale=scale, may_draw_forms=False)
        image = bitmap.to_pil().convert("RGB")
        sizes.append(image.size)
        pixels.append(image.tobytes())
        page.close()
    document.close()
    return sizes, pixels


def main() -> None:
    limits = json.loads(sys.argv[1])
    memory = int(limits.get("max_memory") or 0)
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    data = sys.stdin.buffer.read()
    out = sys.stdout.buffer
    try:
        sizes, pixels = render(data, limits)
    except Refused as exc:
        out.write(json.dumps({"error": exc.kind, "message": exc.message}).encode() + b"\n")
        return
    except MemoryError:
        out.write(json.dumps({"error": "ImageTooLargeException",
                              "message": "not enough memory to render the PDF"}).encode() + b"\n")
        return
    except Exception as exc:  # PDFium's own errors on a broken file
        out.write(json.dumps({"error": "InvalidImageFormatException",
                              "message": f"the PDF cannot be rendered ({type(exc).__name__})"}).encode() + b"\n")
        return
    out.write(json.dumps({"pages": len(sizes), "sizes": sizes}).encode() + b"\n")
    for chunk in pixels:
        out.write(chunk)
    out.flush()


if __name__ == "__main__":
    main()
