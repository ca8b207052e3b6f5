"""SFace (OpenCV Zoo, 2021dec, MobileFaceNet backbone, 128-d), int8 block-quantised: the default recognizer.

The weights ship inside this package (``models/weights/face_recognition_sface_2021dec_int8bq.onnx``,
Apache-2.0; see the NOTICE there). Input: the ArcFace-aligned 112x112 chip, float32 NCHW **RGB** 0-255; the
``(x - 127.5) / 128`` normalisation is inside the graph. On LFW, RGB input scores above the BGR input that
OpenCV's own wrapper feeds (99.52 % against 99.48 % without flip, measured when the model was chosen).
What loads is the prepared file beside it (``..._folded.onnx``): the graph's unused inputs dropped and its
int8 weights dequantised into float32, once, by ``scripts/prepare_weights.py`` (see
:mod:`facecompare.models.onnx_graph`), so a process starts without importing ``onnx``.
"""

from __future__ import annotations

from .onnx_recognizer import InputFormat, OnnxRecognizer
from .weights import read_weights

NAME = "sface-2021dec-int8bq"
#: the shipped, prepared file that loads (its outputs are the original's; the embeddings keep NAME)
PREPARED = "sface-2021dec-int8bq-folded"


class SFaceRecognizer(OnnxRecognizer):
    def __init__(self, threads: int = 1) -> None:
        super().__init__(b"", name=NAME, input_format=InputFormat(size=112, channels="rgb", mean=0.0, std=1.0),
                         threads=threads)
        self.dimension = 128

    def _model_bytes(self) -> bytes:
        return read_weights(NAME)

    def _prepared_bytes(self) -> bytes:
        return read_weights(PREPARED)
