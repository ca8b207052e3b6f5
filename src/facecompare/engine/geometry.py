"""Quarter turns of images and of points, windows and overlaps of boxes: the geometry the detection plan and the
engine share."""

from __future__ import annotations

import numpy as np

from ..models.alignment import upright_landmarks
from ..models.nms import iou


def rotate(view: np.ndarray, rotation: int) -> np.ndarray:
    """The view turned clockwise by ``rotation`` degrees."""
    if rotation == 0:
        return view
    return np.ascontiguousarray(np.rot90(view, k=-(rotation // 90)))


def unrotate_points(points: np.ndarray, rotation: int, rotated_w: float, rotated_h: float) -> np.ndarray:
    """Map points of the image turned clockwise by ``rotation`` back to the unturned image."""
    p = np.asarray(points, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    if rotation == 0:
        return p.copy()
    if rotation == 90:  # unturned size is (rotated_h, rotated_w); x' = H - y, y' = x
        return np.stack([y, rotated_w - x], axis=1)
    if rotation == 180:
        return np.stack([rotated_w - x, rotated_h - y], axis=1)
    if rotation == 270:  # x' = y, y' = W - x
        return np.stack([rotated_h - y, x], axis=1)
    raise ValueError(rotation)


def turn_points(points: np.ndarray, rotation: int, width: float, height: float) -> np.ndarray:
    """Map points of an image (``width`` x ``height``) to the same image turned clockwise by ``rotation``."""
    p = np.asarray(points, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    if rotation == 0:
        return p.copy()
    if rotation == 90:
        return np.stack([height - y, x], axis=1)
    if rotation == 180:
        return np.stack([width - x, height - y], axis=1)
    if rotation == 270:
        return np.stack([y, width - x], axis=1)
    raise ValueError(rotation)


def square_window(box, widths: float, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """A square ``widths`` times the box's larger side, centred on ``box`` (x1, y1, x2, y2), clipped to an image
    ``size`` (width, height) wide and high."""
    x1, y1, x2, y2 = (float(v) for v in box)
    half = widths / 2 * max(x2 - x1, y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return max(0.0, cx - half), max(0.0, cy - half), min(float(size[0]), cx + half), min(float(size[1]), cy + half)


def landmark_turn(points: np.ndarray) -> int | None:
    """The quarter turn (clockwise) after which these 5 landmarks look upright (0 if they already do), or None
    when they look upright at no turn (a pattern, not a face). Turning about the origin is enough: the check
    looks at directions only."""
    for turn in (0, 90, 180, 270):
        if upright_landmarks(turn_points(points, turn, 0.0, 0.0)):
            return turn
    return None


def overlaps(det, others, iou_threshold: float = 0.3) -> bool:
    """Whether the box (``.box``: x1, y1, x2, y2) of detection ``det`` overlaps that of one of ``others`` by at least
    ``iou_threshold`` (intersection over union)."""
    if not others:
        return False
    return bool((iou(det.box[:4], np.array([o.box[:4] for o in others])) >= iou_threshold).any())
