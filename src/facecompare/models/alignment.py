"""Face alignment: a similarity transform (rotation, uniform scale, shift) that puts the 5 detector landmarks
on a template, and the warp that cuts the aligned chip.

The template is ArcFace's 112x112 5-point template (InsightFace's ``arcface_dst``), which SFace and the
ArcFace-family models were trained on. The transform is the least-squares similarity (Umeyama 1991), as
InsightFace estimates it. The warp is Pillow's affine transform, bilinear; when the face is much larger than
the chip the region is first shrunk with an antialiasing resize, so the chip does not alias (a plain bilinear
warp samples only 4 pixels per output pixel).

Coordinates follow the usual convention that the centre of the top-left pixel is (0, 0).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: eye (image left), eye (image right), nose tip, mouth corner (image left), mouth corner (image right)
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def template(size: int) -> np.ndarray:
    """The ArcFace template for a square chip of ``size`` pixels (scaled about the pixel grid)."""
    return (ARCFACE_TEMPLATE_112 + 0.5) * (size / 112.0) - 0.5


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of the similarity transform that best maps ``src`` points onto ``dst`` (least squares)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    covariance = d.T @ s / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(covariance) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    variance = s.var(axis=0).sum()
    scale = float((singular * sign).sum() / variance) if variance > 0 else 1.0
    shift = mu_d - scale * rotation @ mu_s
    return np.hstack([scale * rotation, shift[:, None]])


def warp(rgb: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` x ``size`` chip of ``rgb`` under ``matrix`` (source -> chip pixels), bilinear, antialiased.

    Only the region the chip covers is touched (a chip from a 12 MP photo costs what one from a thumbnail
    does); when that region is much larger than the chip it is first shrunk with an antialiasing resize."""
    matrix = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64)
    corners = corners @ np.linalg.inv(matrix)[:2].T
    x1, y1 = np.floor(corners.min(axis=0)).astype(int) - 2
    x2, y2 = np.ceil(corners.max(axis=0)).astype(int) + 2
    x1, y1 = min(max(x1, 0), rgb.shape[1] - 1), min(max(y1, 0), rgb.shape[0] - 1)
    x2, y2 = max(min(x2, rgb.shape[1]), x1 + 1), max(min(y2, rgb.shape[0]), y1 + 1)
    image = Image.fromarray(np.ascontiguousarray(rgb[y1:y2, x1:x2]))
    # region pixel (u, v) has its centre at source (u * sx + (sx - 1) / 2 + x1, ...); start with sx = sy = 1
    to_source = np.array([[1.0, 0, x1], [0, 1.0, y1], [0, 0, 1]])
    if scale < 0.7 and x2 - x1 >= 2 and y2 - y1 >= 2:
        # the chip is much smaller than the face: shrink the region first (antialiased), then warp at about
        # 1:1 (a slight enlargement: no aliasing, little blur)
        factor = scale / 0.9
        w, h = max(1, round((x2 - x1) * factor)), max(1, round((y2 - y1) * factor))
        image = image.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
        sx, sy = (x2 - x1) / w, (y2 - y1) / h
        to_source = np.array([[sx, 0, 0.5 * sx - 0.5 + x1], [0, sy, 0.5 * sy - 0.5 + y1], [0, 0, 1]])
    inverse = np.linalg.inv(matrix @ to_source)  # chip -> region pixels
    a, b, c = inverse[0]
    d, e, f = inverse[1]
    # Pillow samples output pixel (x, y) at source (a (x + .5) + b (y + .5) + c, ...) in a grid whose pixel
    # centres sit at +0.5; shift both ends so that centres sit at integers, as the matrix assumes
    c_pil = c + 0.5 - 0.5 * (a + b)
    f_pil = f + 0.5 - 0.5 * (d + e)
    chip = image.transform((size, size), Image.Transform.AFFINE, (a, b, c_pil, d, e, f_pil),
                           resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(chip)


def align(rgb: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """The ArcFace-aligned ``size`` x ``size`` chip of the face whose 5 landmarks (pixels of ``rgb``) are given."""
    return warp(rgb, similarity_transform(landmarks, template(size)), size)


def upright_landmarks(points: np.ndarray) -> bool:
    """Whether 5 landmarks look like an upright face: the mouth below the eyes, at a plausible distance.

    Rejects detections in patterns (guilloche, text) whose landmarks collapse onto a line, and faces lying
    on their side or upside down in this orientation, so that the rotation retry finds them upright.
    """
    p = np.asarray(points, dtype=np.float64)
    eye_mid, mouth_mid = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    eye_dist = float(np.hypot(*(p[1] - p[0])))
    down = mouth_mid - eye_mid
    length = float(np.hypot(*down))
    # eyes to mouth is about 1.0-1.3 eye distances on a frontal face (more when turned, about 0.8 when
    # looking down 45 degrees); far less is a pattern, not a face
    if eye_dist <= 0 or length < 0.65 * eye_dist:
        return False
    return down[1] > 0.5 * length  # within 60 degrees of straight down
