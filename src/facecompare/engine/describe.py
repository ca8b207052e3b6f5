"""From the detection plan's detections to :class:`~facecompare.faces.Face` records: box and landmarks in the
unrotated image, pose, quality on an aligned chip, and the embedding of the recognizer's aligned chip.

Every chip is cut from the smallest decode of the image in which the face is still as wide as the recognizer needs
(never from the detector's downscale), turned by the rotation the faces were found at.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from ..faces import LANDMARK_TYPES, BoundingBox, Embedding, Face, Landmark
from ..images import DecodedImage
from ..models import Detection, Recognizer, alignment
from ..quality import image_quality, pose_from_landmarks
from ..settings import Settings, jitter_count
from .geometry import unrotate_points
from .trace import stage

#: side of the aligned chip quality (brightness, sharpness) is measured on, whatever the recognizer
QUALITY_CHIP_PX = 150
#: a chip is cut from a region this many face widths wider than the face on each side (see ``chip_region``)
CHIP_REGION_WIDTHS = 2.0


class FaceDescriber:
    """Describes and embeds the faces of one image for a recognizer; holds no state between images."""

    def __init__(self, recognizer: Recognizer, settings: Settings) -> None:
        self.recognizer = recognizer
        self.settings = settings

    def faces(self, decoded: DecodedImage, rotation: int, detections: list[Detection], embed: int) -> list[Face]:
        """The Face of each detection (found at ``rotation``), the ``embed`` first of them embedded."""
        with stage("landmarks to boxes, pose, quality"):
            faces = [self.describe(decoded, rotation, det) for det in detections]
        if embed > 0 and detections:
            with stage("align"):
                chips = [self.chip(decoded, rotation, det) for det in detections[:embed]]
            with stage("embed"):
                vectors = self.embed(chips)
            for face, vector in zip(faces, vectors):
                face.embedding = Embedding(vector, self.recognizer.name, self.recognizer.metric)
        return faces

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        """Embeddings of aligned chips; with ``tta="flip"`` the mean of each chip and its mirror image."""
        blur = self.settings.chip_blur if self.settings.chip_blur >= 0 else self.recognizer.default_chip_blur
        if blur > 0:
            chips = [smooth_chip(c, blur) for c in chips]
        if self.settings.tta == "flip":
            vectors = self.recognizer.embed(chips + [np.ascontiguousarray(c[:, ::-1]) for c in chips])
            vectors = (vectors[: len(chips)] + vectors[len(chips):]) / 2
            if self.recognizer.metric == "cosine":
                vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            return vectors
        jitters = jitter_count(self.settings.tta)
        if jitters:
            return self.recognizer.embed(chips, jitters=jitters)
        return self.recognizer.embed(chips)

    def chip_region(self, decoded: DecodedImage, rotation: int, det: Detection) -> tuple[np.ndarray, float, np.ndarray]:
        """(the face's region of the image turned by ``rotation``, at the resolution the face's chip is cut from;
        full-resolution pixels per pixel of it; the region's top-left corner in that view, x and y): the
        smallest decode in which the face is still as wide as the recognizer needs for a chip with full detail.

        The region reaches ``CHIP_REGION_WIDTHS`` face widths beyond the face on each side, more than any
        aligned chip (ArcFace's or dlib's, a face turned up to 45 degrees included) takes from around it, so the
        chip is the one the whole view would give; only the region is turned, never the whole image."""
        if self.settings.chips_at_full_resolution:
            reduction = decoded.base_reduction
        else:
            reduction = decoded.reduction_for(self.recognizer.chip_face_px, det.width, finer_if_cached=True)
        if not decoded.has_view(reduction, 0):
            with stage(f"decode at 1/{reduction}"):
                decoded.view(reduction, 0)
        full_w = decoded.height if rotation in (90, 270) else decoded.width
        scale = full_w / decoded.view_shape(reduction, rotation)[1]
        x1, y1, x2, y2 = np.asarray(det.box, dtype=np.float64) / scale
        margin = CHIP_REGION_WIDTHS * max(x2 - x1, y2 - y1, 1.0) + 4
        origin = np.array([max(0, int(x1 - margin)), max(0, int(y1 - margin))])
        region = decoded.region(reduction, rotation, (int(origin[0]), int(origin[1]),
                                                      int(np.ceil(x2 + margin)), int(np.ceil(y2 + margin))))
        return np.ascontiguousarray(region), scale, origin

    def chip(self, decoded: DecodedImage, rotation: int, det: Detection) -> np.ndarray:
        """The recognizer's aligned chip of one detection."""
        region, scale, origin = self.chip_region(decoded, rotation, det)
        return self.recognizer.align(region, det.box / scale - np.tile(origin, 2), det.landmarks / scale - origin)

    def describe(self, decoded: DecodedImage, rotation: int, det: Detection) -> Face:
        """The Face record of one detection (coordinates in the unrotated image, quality on an aligned chip)."""
        region, scale, origin = self.chip_region(decoded, rotation, det)
        full_w, full_h = (decoded.height, decoded.width) if rotation in (90, 270) else (decoded.width, decoded.height)
        quality_chip = alignment.align(region, det.landmarks / scale - origin, QUALITY_CHIP_PX)
        quality = image_quality(quality_chip, source_face_px=det.width / scale)
        # back to the unrotated image, as ratios
        corners = unrotate_points(np.array([[det.box[0], det.box[1]], [det.box[2], det.box[3]]]),
                                  rotation, full_w, full_h)
        x1, y1 = corners.min(axis=0)
        x2, y2 = corners.max(axis=0)
        points = unrotate_points(det.landmarks, rotation, full_w, full_h)
        box = BoundingBox(left=float(x1 / decoded.width), top=float(y1 / decoded.height),
                          width=float((x2 - x1) / decoded.width), height=float((y2 - y1) / decoded.height))
        landmarks = tuple(Landmark(t, float(p[0] / decoded.width), float(p[1] / decoded.height))
                          for t, p in zip(LANDMARK_TYPES, points))
        face = Face(
            bounding_box=box,
            confidence=round(det.score * 100.0, 4),
            landmarks=landmarks,
            pose=pose_from_landmarks(points),
            quality=quality,
            width_px=float(det.width),
            height_px=float(det.height),
            rotation=rotation,
        )
        return face


def smooth_chip(chip: np.ndarray, radius: float) -> np.ndarray:
    """The chip with a Gaussian blur of ``radius`` pixels (see ``Settings.chip_blur``)."""
    return np.asarray(Image.fromarray(chip).filter(ImageFilter.GaussianBlur(radius)))
