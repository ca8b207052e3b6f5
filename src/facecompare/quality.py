"""Face quality (brightness, sharpness) and head pose (roll, yaw, pitch) from the 5 detector landmarks.

These are estimates, documented as such: pose comes from the geometry of eyes, nose and mouth corners
(no 3-D model), so yaw and pitch are approximate beyond about 30 degrees. Brightness and sharpness are on
Rekognition's 0-100 scale (higher is brighter / sharper), measured on the aligned face chip.
"""

from __future__ import annotations

import math

import numpy as np

from .faces import Face, Pose, Quality

# how quality filter levels are defined (Rekognition leaves the bar to the service; these are ours): every check of
# them is below (passes_quality_filter, face_passes, quality_reasons)
QUALITY_BARS = {
    #          min confidence, min face px, min sharpness, brightness range, max |yaw|, max |pitch|
    "LOW": (50.0, 20, 5.0, (5.0, 98.0), 80.0, 70.0),
    "MEDIUM": (80.0, 32, 15.0, (10.0, 95.0), 60.0, 50.0),
    "HIGH": (95.0, 48, 30.0, (20.0, 90.0), 40.0, 35.0),
}
QUALITY_BARS["AUTO"] = QUALITY_BARS["MEDIUM"]
QUALITY_FILTERS = ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH")

# Laplacian variance of a 150-px chip that maps to sharpness 50 (a mildly soft but usable face)
_SHARPNESS_HALF = 120.0


def pose_from_landmarks(points: np.ndarray) -> Pose:
    """Roll, yaw and pitch in degrees from 5 points (eye L, eye R, nose, mouth L, mouth R; image left/right).

    Roll is the tilt of the eye line (positive: clockwise in the image). Yaw comes from how far the nose sits
    off the midline between the eyes and mouth, relative to the eye distance; pitch from where the nose sits
    between the eye line and the mouth line. Rekognition's sign conventions: positive yaw turns the face to
    the image's left, positive pitch tilts it up.
    """
    p = np.asarray(points, dtype=np.float64)
    eye_l, eye_r, nose, mouth_l, mouth_r = p
    roll = math.degrees(math.atan2(eye_r[1] - eye_l[1], eye_r[0] - eye_l[0]))
    # undo roll so the eye line is horizontal
    c, s = math.cos(-math.radians(roll)), math.sin(-math.radians(roll))
    rot = np.array([[c, -s], [s, c]])
    q = (p - p[:2].mean(axis=0)) @ rot.T
    eye_l, eye_r, nose, mouth_l, mouth_r = q
    eye_dist = max(abs(eye_r[0] - eye_l[0]), 1e-6)
    mid_x = (eye_l[0] + eye_r[0] + mouth_l[0] + mouth_r[0]) / 4
    offset = (nose[0] - mid_x) / eye_dist  # about +-0.5 at 45 degrees of yaw
    yaw = -math.degrees(math.asin(max(-1.0, min(1.0, offset / 0.7))))
    eye_y = (eye_l[1] + eye_r[1]) / 2
    mouth_y = (mouth_l[1] + mouth_r[1]) / 2
    span = max(mouth_y - eye_y, 1e-6)
    ratio = (nose[1] - eye_y) / span  # about 0.55 for a frontal face
    pitch = -math.degrees(math.atan((ratio - 0.55) / 0.45))
    return Pose(roll=round(_wrap(roll), 2), yaw=round(yaw, 2), pitch=round(pitch, 2))


def _wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


#: face width inside a 150 px chip with padding 0.25, in pixels
CHIP_FACE_PX = 100.0


def image_quality(chip: np.ndarray, source_face_px: float | None = None) -> Quality:
    """Brightness and sharpness (0-100) of an aligned face chip (RGB uint8).

    Sharpness is judged at the face's own resolution: a chip enlarged from a small face is shrunk back to that
    size first, so a small but crisp ID portrait is not called blurry for having been enlarged.
    """
    if source_face_px is not None and source_face_px < CHIP_FACE_PX * 0.9:
        from PIL import Image

        side = max(32, round(chip.shape[1] * source_face_px / CHIP_FACE_PX))
        chip = np.asarray(Image.fromarray(chip).resize((side, side), Image.Resampling.BILINEAR))
    gray = chip.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    h, w = gray.shape
    # the central part of the chip: the face without the background the padding adds
    core = gray[h // 5 : h - h // 6, w // 5 : w - w // 5]
    brightness = float(core.mean()) / 255.0 * 100.0
    lap = (
        core[1:-1, :-2] + core[1:-1, 2:] + core[:-2, 1:-1] + core[2:, 1:-1] - 4.0 * core[1:-1, 1:-1]
    )
    variance = float(lap.var())
    sharpness = 100.0 * variance / (variance + _SHARPNESS_HALF)
    return Quality(brightness=round(brightness, 2), sharpness=round(sharpness, 2))


def passes_quality_filter(level: str, *, confidence: float, width_px: float, quality: Quality, pose: Pose) -> bool:
    """Whether a face passes Rekognition's ``QualityFilter`` level (NONE always passes)."""
    if level == "NONE":
        return True
    min_conf, min_px, min_sharp, (lo, hi), max_yaw, max_pitch = QUALITY_BARS[level]
    return (
        confidence >= min_conf
        and width_px >= min_px
        and quality.sharpness >= min_sharp
        and lo <= quality.brightness <= hi
        and abs(pose.yaw) <= max_yaw
        and abs(pose.pitch) <= max_pitch
    )


def face_passes(level: str, face: Face) -> bool:
    """Whether a detected face passes ``QualityFilter`` ``level``: the filter CompareFaces, the KYC decision and the
    collections apply."""
    return passes_quality_filter(level, confidence=face.confidence, width_px=face.width_px,
                                 quality=face.quality, pose=face.pose)


def quality_reasons(level: str, face: Face, min_face_px: float) -> list[str]:
    """Why a face fails QualityFilter ``level`` (empty when it passes), in Rekognition's Reason enum. The bars
    are :data:`QUALITY_BARS` (the ones CompareFaces uses); a face narrower than the engine's minimum face size
    (``Settings.min_face_px``) is SMALL_BOUNDING_BOX at every level but NONE."""
    if level == "NONE":
        return []
    min_conf, min_px, min_sharp, (lo, hi), max_yaw, max_pitch = QUALITY_BARS[level]
    reasons = []
    if face.confidence < min_conf:
        reasons.append("LOW_CONFIDENCE")
    if face.width_px < max(min_px, min_face_px):
        reasons.append("SMALL_BOUNDING_BOX")
    if abs(face.pose.yaw) > max_yaw or abs(face.pose.pitch) > max_pitch:
        reasons.append("EXTREME_POSE")
    if face.quality.sharpness < min_sharp:
        reasons.append("LOW_SHARPNESS")
    if not lo <= face.quality.brightness <= hi:
        reasons.append("LOW_BRIGHTNESS")
    if not reasons and not face_passes(level, face):  # the filter has a bar the list above does not name
        reasons.append("LOW_FACE_QUALITY")
    return reasons


def strictest_level_passed(face: Face) -> int:
    """3 when the face passes HIGH, 2 MEDIUM, 1 LOW, 0 none: IndexFaces' order when there are more faces than
    MaxFaces."""
    return next((rank for rank, level in ((3, "HIGH"), (2, "MEDIUM"), (1, "LOW")) if face_passes(level, face)), 0)
