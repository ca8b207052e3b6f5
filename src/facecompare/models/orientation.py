"""Which quarter turn shows a face upright.

RetinaFace finds upside-down and sideways faces too, and for some it returns landmarks in an upright
arrangement (eyes above the mouth), so a landmark check cannot tell that the face is upside down; the first
rotation at which anything is found then decides, and the aligned chip comes out upside down. The check
looks at a crop around the largest face in all four turns and asks which turn looks most like an upright
face; when another turn clearly wins, the engine searches the image again at that turn.
"""

from __future__ import annotations

import math

import numpy as np

from .alignment import upright_landmarks
from .base import Detector


class DetectorOrientationCheck:
    """The turn at which the detector itself is most confident of an upright face in the middle of the crop.

    Score of a turn: the logit of the best detection's score whose landmarks are upright and whose centre is in
    the middle third of the crop (the face the crop was cut around). Measured on the 2,000 documents of the
    synthetic benchmark (``facecompare synth-kyc --n 2000 --seed 1``; 718 photographed turned without an EXIF
    tag): the rotation is right for 1,998 (dlib's HOG detector, the previous check, which needs dlib: 2,000;
    without a check: 1,929); at margin 0.25-0.75 the same, at 1.0 one more wrong, at 1.5 two more.
    """

    #: the face is scaled to this width in the crop (a crop 3 faces wide: 192 px, four detector runs of it). 96
    #: before: at 96, 72 and 64 the same turn, the right one, for every one of 1,600 documents and 400 selfies of
    #: the two synthetic sets (1,000 drawn cards, 600 specimen artworks, seed 1; 72 of them found at a wrong turn
    #: by the search and put right by the check); at 48 one more wrong per set (scripts/orientation_crop_sizes.py,
    #: evaluation/decisions/orientation-crop-sizes-*.json). 64 costs 0.44x the pixels of 96
    FACE_PX = 64
    #: another turn must score this much (logit) above the current one to be chosen
    MARGIN = 0.5

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def scores(self, crop: np.ndarray) -> list[float]:
        out = []
        for k in range(4):
            turned = np.ascontiguousarray(np.rot90(crop, -k))
            h, w = turned.shape[:2]
            best = -math.inf
            for det in self.detector.detect(turned, score_threshold=0.3):
                cx, cy = (det.box[0] + det.box[2]) / 2, (det.box[1] + det.box[3]) / 2
                if not (w / 3 <= cx <= 2 * w / 3 and h / 3 <= cy <= 2 * h / 3):
                    continue
                if not upright_landmarks(det.landmarks):
                    continue
                p = min(max(det.score, 1e-6), 1 - 1e-6)
                best = max(best, math.log(p / (1 - p)))
            out.append(best)
        return out

    def upright_turn(self, crop: np.ndarray) -> int:
        """Degrees (0, 90, 180, 270) to turn ``crop`` clockwise so the face in its centre is upright."""
        scores = self.scores(crop)
        best = int(np.argmax(scores))
        if best and scores[best] > scores[0] + self.MARGIN:
            return 90 * best
        return 0


OrientationCheck = DetectorOrientationCheck
