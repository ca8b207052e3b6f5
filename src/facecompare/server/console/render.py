"""The pictures of a review case: each image at panel height with its compared face boxed by the same drawing code
as ``--annotate`` (:func:`facecompare.draw.verification_panel`), and an enlarged crop of the face for zoom."""

from __future__ import annotations

import io
from types import SimpleNamespace

from PIL import Image

from ...draw import as_pil, decision_label, fit_height, verification_panel
from ...engine import page_from_notes
from ...images import load_image
from ...review.store import ReviewCase
from ...settings import Settings

ZOOM_LONG_SIDE = 640  # the zoomed face's longer side, in pixels
ZOOM_MARGIN = 0.35  # room around the face box, as a share of its size on each side


def face_box(case: ReviewCase, role: str):
    """The compared face's box (ratios) from the case's evidence, or None when that image had no face."""
    face = case.evidence.get(f"{role}_face")
    if not face:
        return None
    box = face["bounding_box"]
    return SimpleNamespace(left=float(box["left"]), top=float(box["top"]), width=float(box["width"]),
                           height=float(box["height"]))


def other_boxes(case: ReviewCase, role: str) -> list:
    return [SimpleNamespace(**{k: float(box[k]) for k in ("left", "top", "width", "height")})
            for box in (case.evidence.get("other_faces") or {}).get(role, [])]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=3)
    return buffer.getvalue()


def decoded_image(case: ReviewCase, role: str, data: bytes, settings: Settings):
    """A case's stored image decoded (any accepted format: shown converted, never as its original bytes); for a
    PDF, the page whose face was compared (the verification's notes name it)."""
    decoded = load_image(data, settings, max_bytes=len(data) + 1)
    return decoded.open_page(page_from_notes(case.evidence.get("notes"), role))


def annotated_panel(case: ReviewCase, role: str, data: bytes, settings: Settings) -> bytes:
    decoded = decoded_image(case, role, data, settings)
    image = as_pil(decoded.view(decoded.reduction_for_long_side(1440)))
    panel = verification_panel(image, face_box(case, role), other_boxes(case, role), case.engine_decision,
                               decision_label(case.engine_decision, case.similarity))
    return png(panel)


def zoomed_face(case: ReviewCase, role: str, data: bytes, settings: Settings) -> bytes | None:
    box = face_box(case, role)
    if box is None:
        return None
    decoded = decoded_image(case, role, data, settings)
    needed = ZOOM_LONG_SIDE / max(box.width * (1 + 2 * ZOOM_MARGIN), 1e-3)  # image width that gives the zoom size
    image = as_pil(decoded.view(decoded.reduction_for(needed, decoded.width)))
    w, h = image.size
    left = max(0, (box.left - ZOOM_MARGIN * box.width) * w)
    top = max(0, (box.top - ZOOM_MARGIN * box.height) * h)
    right = min(w, (box.left + box.width * (1 + ZOOM_MARGIN)) * w)
    bottom = min(h, (box.top + box.height * (1 + ZOOM_MARGIN)) * h)
    crop = image.crop((round(left), round(top), max(round(left) + 1, round(right)), max(round(top) + 1, round(bottom))))
    scale = ZOOM_LONG_SIDE / max(crop.size)
    if scale > 1:  # a small document portrait is enlarged; a large selfie face is only reduced to the same size
        return png(fit_height(crop, round(crop.height * scale)))
    crop.thumbnail((ZOOM_LONG_SIDE, ZOOM_LONG_SIDE), Image.Resampling.LANCZOS)
    return png(crop)
