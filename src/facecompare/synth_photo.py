"""Phone photos of a card (:func:`photograph`): the card placed on a desk in a large frame, tilted in perspective,
turned 0/90/180/270 degrees (with or without an EXIF tag that undoes the turn), blurred, given glare, and saved as
JPEG, with the portrait's box in the upright frame. Part of :mod:`facecompare.synth`, which re-exports it."""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageFilter


@dataclass
class PhotoConditions:
    """How a card is photographed. ``portrait_fraction``: portrait width / frame width."""

    portrait_fraction: float = 0.05
    rotation: int = 0  # degrees the camera was turned (clockwise)
    exif: bool = False  # write an EXIF orientation tag that undoes ``rotation``
    tilt: float = 0.0  # perspective strength, 0 (flat) to about 0.25
    blur: float = 0.0  # Gaussian blur radius in pixels of the frame
    glare: float = 0.0  # 0 (none) to 1 (a strong highlight)
    jpeg_quality: int = 85
    grayscale: bool = False
    ghost: bool = False
    frame: tuple[int, int] = (4000, 3000)

    def as_dict(self) -> dict:
        return asdict(self)


def _perspective_coefficients(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> list[float]:
    """Coefficients for ``Image.transform(PERSPECTIVE)``, which maps output points ``dst`` to input ``src``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    return np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64)).tolist()


def photograph(card: Image.Image, card_info: dict, rng: np.random.Generator,
               conditions: PhotoConditions) -> tuple[bytes, dict]:
    """A JPEG "phone photo" of the card under ``conditions``; also the portrait's box in the upright frame."""
    fw, fh = conditions.frame
    portrait_w_card = card_info["portrait"][2]
    card_w = conditions.portrait_fraction * fw * card.width / portrait_w_card
    card_h = card_w * card.height / card.width
    if card_w > 0.92 * fw or card_h > 0.92 * fh:
        raise ValueError("portrait_fraction too large for the frame")
    # the card's corners in the frame: centred at a random place, tilted in perspective
    cx = rng.uniform(card_w / 2 + 0.03 * fw, fw - card_w / 2 - 0.03 * fw)
    cy = rng.uniform(card_h / 2 + 0.03 * fh, fh - card_h / 2 - 0.03 * fh)
    angle = math.radians(rng.uniform(-8, 8))
    t = conditions.tilt
    corners = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        shrink = 1 - t * (0.5 + 0.5 * sx) * rng.uniform(0.6, 1.0)  # far edge smaller
        x, y = sx * card_w / 2, sy * card_h / 2 * shrink
        corners.append((cx + x * math.cos(angle) - y * math.sin(angle), cy + x * math.sin(angle) + y * math.cos(angle)))
    # desk background
    desk_color = rng.integers(60, 200, size=3)
    noise = rng.normal(0, 6, size=(fh // 8, fw // 8, 1))
    desk = np.clip(desk_color[None, None, :] + noise, 0, 255).astype(np.uint8)
    frame = Image.fromarray(desk, "RGB").resize((fw, fh), Image.Resampling.BILINEAR)
    src = [(0, 0), (card.width, 0), (card.width, card.height), (0, card.height)]
    # warp only the region the card covers (plus a margin for blur), not the whole 12 MP frame
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    pad = 8 + int(3 * conditions.blur)
    x0, y0 = max(0, int(min(xs)) - pad), max(0, int(min(ys)) - pad)
    x1, y1 = min(fw, int(max(xs)) + pad + 1), min(fh, int(max(ys)) + pad + 1)
    local = [(x - x0, y - y0) for x, y in corners]
    coeffs = _perspective_coefficients(src, local)
    region = (x1 - x0, y1 - y0)
    warped = card.transform(region, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    mask = Image.new("L", card.size, 255).transform(region, Image.Transform.PERSPECTIVE, coeffs,
                                                    Image.Resampling.BILINEAR)
    frame.paste(warped, (x0, y0), mask)
    if conditions.glare > 0:  # a soft highlight centred near the card
        gx, gy = (x0 + x1) / 2 + rng.uniform(-0.5, 0.5) * region[0], (y0 + y1) / 2 + rng.uniform(-0.5, 0.5) * region[1]
        yy, xx = np.mgrid[0:fh:8, 0:fw:8]
        spot = np.exp(-(((xx - gx) / (0.6 * region[0] + 1)) ** 2 + ((yy - gy) / (0.5 * region[1] + 1)) ** 2))
        spot_img = Image.fromarray((spot * 255 * conditions.glare).astype(np.uint8), "L").resize((fw, fh))
        frame = Image.composite(Image.new("RGB", (fw, fh), (255, 255, 250)), frame, spot_img)
    if conditions.blur > 0:  # camera shake or focus blur, on the card and its surroundings
        box = (x0, y0, x1, y1)
        frame.paste(frame.crop(box).filter(ImageFilter.GaussianBlur(conditions.blur)), box)
    # where the portrait landed (upright frame), for tests
    px, py, pw, ph = card_info["portrait"]
    pts = np.array([[px, py], [px + pw, py], [px + pw, py + ph], [px, py + ph]], dtype=np.float64)
    portrait_pts = _map_points(pts, src, corners)
    meta = {"portrait_box": _bbox(portrait_pts), "frame": [fw, fh], **conditions.as_dict()}
    if card_info.get("ghost"):
        gx, gy, gw, gh = card_info["ghost"]
        gpts = np.array([[gx, gy], [gx + gw, gy], [gx + gw, gy + gh], [gx, gy + gh]], dtype=np.float64)
        meta["ghost_box"] = _bbox(_map_points(gpts, src, corners))
    rotated = frame
    if conditions.rotation:
        # the camera turned clockwise by r: the stored pixels are the scene turned counter-clockwise by r
        rotated = frame.rotate(conditions.rotation, expand=True)
    buffer = io.BytesIO()
    save_kwargs: dict = {"format": "JPEG", "quality": int(conditions.jpeg_quality)}
    if conditions.rotation and conditions.exif:
        exif = Image.Exif()
        exif[0x0112] = {90: 6, 180: 3, 270: 8}[conditions.rotation]
        save_kwargs["exif"] = exif.tobytes()
    rotated.save(buffer, **save_kwargs)
    return buffer.getvalue(), meta


def _map_points(points: np.ndarray, src: list, dst: list) -> np.ndarray:
    """Apply the homography taking ``src`` corners to ``dst`` corners."""
    c = _perspective_coefficients(dst, src)  # maps src -> dst
    a, b, cc, d, e, f, g, h = c
    x, y = points[:, 0], points[:, 1]
    den = g * x + h * y + 1
    return np.stack([(a * x + b * y + cc) / den, (d * x + e * y + f) / den], axis=1)


def _bbox(points: np.ndarray) -> list[float]:
    x1, y1 = points.min(axis=0)
    x2, y2 = points.max(axis=0)
    return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]


# -- a reproducible selfie-versus-document benchmark ------------------------------------------------------------
