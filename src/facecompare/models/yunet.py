"""YuNet 2023mar (OpenCV Zoo, int8 block-quantised, 5 landmarks): a small, fast face detector.

The weights ship inside this package (``models/weights/face_detection_yunet_2023mar_int8bq.onnx``, MIT; see
the NOTICE there). The graph is exported for 640x640 inputs; its outputs are reshaped with -1, so the input's
height and width are made symbolic (offline, in the prepared file that loads) and any multiple of 32 runs.
Input: float32 NCHW **BGR** 0-255 (OpenCV's ``FaceDetectorYN`` feeds ``blobFromImage`` without scaling). Post-processing follows
``FaceDetectorYN``: one prior per cell at strides 8, 16 and 32; score = sqrt(class * objectness).
"""

from __future__ import annotations

import numpy as np

from .base import Detection
from .nms import nms
from .weights import read_weights

_STRIDES = (8, 16, 32)
#: the shipped file the session loads: the original with its int8 weights folded and its input size made
#: symbolic, once, by ``scripts/prepare_weights.py``
PREPARED = "yunet-2023mar-int8bq-prepared"


class YuNetDetector:
    """YuNet. Thread-safe; the ONNX session is created on first use."""

    #: score below which a candidate is not a face (``Settings.detection_threshold`` = -1)
    default_threshold = 0.6
    name = "yunet-2023mar-int8bq"

    def __init__(self, threads: int = 1) -> None:
        """``threads``: onnxruntime intra-op threads; 0: automatic (two for large inputs and while a core is spare, else one)
        (:class:`~facecompare.models.onnx_graph.DetectorSessions`)."""
        from .onnx_graph import DetectorSessions

        # prepared offline (int8 weights folded, input size symbolic; scripts/prepare_weights.py)
        self._sessions = DetectorSessions(lambda: read_weights(PREPARED), threads)

    def load(self) -> None:
        self._sessions.load()

    def detect(self, rgb: np.ndarray, score_threshold: float = 0.8, nms_threshold: float = 0.4) -> list[Detection]:
        """Faces in an RGB uint8 array, in its pixel coordinates, highest score first."""
        height, width = rgb.shape[:2]
        ph, pw = -(-height // 32) * 32, -(-width // 32) * 32
        blob = np.zeros((1, 3, ph, pw), dtype=np.float32)
        for channel in range(3):  # BGR
            blob[0, channel, :height, :width] = rgb[:, :, 2 - channel]
        loaded = self._sessions.for_pixels(ph * pw)
        outputs = dict(zip([o.name for o in loaded.get_outputs()], loaded.run(None, {"input": blob})))
        boxes, scores, points = [], [], []
        for stride in _STRIDES:
            cols = pw // stride
            score = np.sqrt(np.clip(outputs[f"cls_{stride}"][0, :, 0], 0, 1) * np.clip(outputs[f"obj_{stride}"][0, :, 0], 0, 1))
            keep = np.flatnonzero(score > score_threshold)
            if keep.size == 0:
                continue
            col, row = (keep % cols).astype(np.float32), (keep // cols).astype(np.float32)
            bbox = outputs[f"bbox_{stride}"][0, keep]
            kps = outputs[f"kps_{stride}"][0, keep].reshape(-1, 5, 2)
            cx, cy = (col + bbox[:, 0]) * stride, (row + bbox[:, 1]) * stride
            w, h = np.exp(bbox[:, 2]) * stride, np.exp(bbox[:, 3]) * stride
            boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
            points.append(np.stack([(kps[:, :, 0] + col[:, None]) * stride, (kps[:, :, 1] + row[:, None]) * stride],
                                   axis=2))
            scores.append(score[keep])
        if not boxes:
            return []
        all_boxes, all_scores, all_points = np.vstack(boxes), np.concatenate(scores), np.vstack(points)
        return [Detection(all_boxes[i].astype(np.float64), float(all_scores[i]), all_points[i].astype(np.float64))
                for i in nms(all_boxes, all_scores, nms_threshold)]
