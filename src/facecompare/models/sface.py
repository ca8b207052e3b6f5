"""SFace (OpenCV Zoo, 2021dec, MobileFaceNet backbone, 128-d), int8 block-quantised: the default recognizer.

The weights ship inside this package (``models/weights/face_recognition_sface_2021dec_int8bq.onnx``,
Apache-2.0; see the NOTICE there). Input: the ArcFace-aligned 112x112 chip, float32 NCHW **RGB** 0-255; the
``(x - 127.5) / 128`` normalisation is inside the graph. On LFW, RGB input scores above the BGR input that
OpenCV's own wrapper feeds (99.52 % against 99.48 % without flip, measured when the model was chosen).
At load time the graph's unused inputs are dropped and its int8 weights dequantised (see
:mod:`facecompare.models.onnx_graph`).
"""

from __future__ import annotations

from .onnx_recognizer import InputFormat, OnnxRecognizer
from .weights import read_weights

NAME = "sface-2021dec-int8bq"


class SFaceRecognizer(OnnxRecognizer):
    def __init__(self, threads: int = 1) -> None:
        super().__init__(b"", name=NAME, input_format=InputFormat(size=112, channels="rgb", mean=0.0, std=1.0),
                         threads=threads)
        self.dimension = 128

    def _model_bytes(self) -> bytes:
        return read_weights(NAME)
