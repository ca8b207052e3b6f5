"""Annotated images, in small composable pieces: boxes, landmarks, labels, and two panels side by side.

A verification: the compared faces green (MATCH), red (NO_MATCH) or amber (REVIEW), the decision and Similarity by
each box, the faces not compared in grey. A detection: every face in blue with its confidence, landmarks in amber.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .faces import AnalyzedImage, Face

GREEN = (0, 200, 70)
RED = (230, 30, 30)
BLUE = (30, 120, 255)
AMBER = (255, 170, 0)
PANEL_HEIGHT = 720


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType
        return ImageFont.load_default()


def fit_height(image: Image.Image, height: int = PANEL_HEIGHT) -> Image.Image:
    scale = height / image.height
    return image.resize((max(1, round(image.width * scale)), height), Image.Resampling.LANCZOS)


def draw_box(draw: ImageDraw.ImageDraw, face: Face, size: tuple[int, int], color: tuple[int, int, int],
             label: str | None = None) -> None:
    """A face box (ratios of the image, as in the responses: ratio times image size) with an optional label."""
    draw_ratio_box(draw, face.bounding_box, size, color, label)


def draw_ratio_box(draw: ImageDraw.ImageDraw, box, size: tuple[int, int], color: tuple[int, int, int],
                   label: str | None = None) -> None:
    """A box given as ratios of the image (anything with left, top, width, height), with an optional label."""
    w, h = size
    x1, y1, x2, y2 = box.left * w, box.top * h, (box.left + box.width) * w, (box.top + box.height) * h
    thickness = max(2, round(min(w, h) / 200))
    draw.rectangle([x1, y1, x2, y2], outline=color, width=thickness)
    if label:
        font = _font(max(14, round(min(w, h) / 32)))
        tx, ty = x1, max(0, y1 - font.size - 8) if hasattr(font, "size") else max(0, y1 - 20)
        left, top, right, bottom = draw.textbbox((tx, ty), label, font=font)
        draw.rectangle([left - 3, top - 3, right + 3, bottom + 3], fill=color)
        draw.text((tx, ty), label, fill=(255, 255, 255), font=font)


def draw_landmarks(draw: ImageDraw.ImageDraw, face: Face, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    w, h = size
    r = max(2, round(min(w, h) / 250))
    for lm in face.landmarks:
        x, y = lm.x * w, lm.y * h
        draw.ellipse([x - r, y - r, x + r, y + r], fill=color)


def panel(decoded, analyzed: AnalyzedImage | None = None) -> Image.Image:
    """A copy of a decoded image big enough for an annotated panel (a reduced JPEG decode when possible); for a
    PDF, of the page ``analyzed`` found its faces on."""
    decoded = decoded.open_page(analyzed.page if analyzed is not None else None)
    return as_pil(decoded.view(decoded.reduction_for_long_side(PANEL_HEIGHT * 2)))


def display_image(data: bytes, long_side: int, page: int | None = None, settings=None) -> Image.Image:
    """Encoded image bytes of any accepted format (HEIC, WebP, AVIF, a PDF's ``page`` too) as an upright RGB copy
    of at least ``long_side`` pixels on its long side (less only when the image is smaller), for display: reports
    and the console show such images converted, never their original bytes."""
    from .images import load_image
    from .settings import Settings

    decoded = load_image(data, settings or Settings.from_env(), max_bytes=len(data) + 1).open_page(page)
    return as_pil(decoded.view(decoded.reduction_for_long_side(long_side)))


def side_by_side(panels: Iterable[Image.Image], gap: int = 16) -> Image.Image:
    panels = list(panels)
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    height = max(p.height for p in panels)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    x = 0
    for p in panels:
        canvas.paste(p, (x, 0))
        x += p.width + gap
    return canvas


def as_pil(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(array)).convert("RGB")


def annotate_detection(image: Image.Image, analyzed: AnalyzedImage) -> Image.Image:
    """Every face with its box, confidence and landmarks."""
    panel = fit_height(image) if image.height > PANEL_HEIGHT * 2 else image.copy()
    draw = ImageDraw.Draw(panel)
    for face in analyzed.faces:
        draw_box(draw, face, panel.size, BLUE, f"{face.confidence:.1f}%")
        draw_landmarks(draw, face, panel.size, AMBER)
    return panel


DECISION_COLORS = {"MATCH": GREEN, "NO_MATCH": RED}  # anything else (REVIEW) is AMBER
OTHER_FACE = (150, 150, 150)


def decision_label(decision: str, similarity: float | None) -> str:
    return decision if similarity is None else f"{decision} {similarity:.1f}"


def verification_panel(image: Image.Image, compared, others: Iterable = (), decision: str = "REVIEW",
                       label: str | None = None) -> Image.Image:
    """One image of a verification at panel height: the compared face's box (``compared``: a box in ratios, or
    None) in the decision's colour with its label, other faces' boxes in grey. Used for ``--annotate`` and by the
    review console."""
    panel = fit_height(image)
    draw = ImageDraw.Draw(panel)
    for box in others:
        draw_ratio_box(draw, box, panel.size, OTHER_FACE)
    if compared is not None:
        draw_ratio_box(draw, compared, panel.size, DECISION_COLORS.get(decision, AMBER), label)
    return panel


def annotate_verification(selfie: Image.Image, document: Image.Image, verification) -> Image.Image:
    """Selfie and document side by side; the compared faces green (MATCH), red (NO_MATCH) or amber (REVIEW)."""
    label = decision_label(verification.decision, verification.similarity)
    panels = []
    for image, analyzed in ((selfie, verification.selfie), (document, verification.document)):
        largest = analyzed.largest if analyzed is not None else None
        others = [face.bounding_box for face in analyzed.faces[1:]] if analyzed is not None else []
        panels.append(verification_panel(image, None if largest is None else largest.bounding_box, others,
                                         verification.decision, label))
    return side_by_side(panels)


def save_png(image: Image.Image, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
