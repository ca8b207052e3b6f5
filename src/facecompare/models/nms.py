"""Non-maximum suppression: the post-processing every detector (RetinaFace, YuNet) and the detection plan share."""

from __future__ import annotations

import numpy as np


def iou(box: np.ndarray, boxes: np.ndarray, box_area=None, areas=None) -> np.ndarray:
    """The intersection over union of ``box`` (x1, y1, x2, y2) with each of ``boxes`` (n x 4); ``box_area`` and
    ``areas``, when the caller has them, are their areas."""
    box, boxes = np.asarray(box), np.asarray(boxes)
    if box_area is None:
        box_area = (box[2] - box[0]) * (box[3] - box[1])
    if areas is None:
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    xx1 = np.maximum(box[0], boxes[:, 0])
    yy1 = np.maximum(box[1], boxes[:, 1])
    xx2 = np.minimum(box[2], boxes[:, 2])
    yy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
    return inter / (box_area + areas - inter + 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices of the boxes (x1, y1, x2, y2) kept, highest score first: each box overlapping a kept one by more
    than ``iou_threshold`` (intersection over union) is dropped."""
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        order = rest[iou(boxes[i], boxes[rest], areas[i], areas[rest]) <= iou_threshold]
    return keep
