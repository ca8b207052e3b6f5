"""The models layer: one module per detector and recognizer, and a registry that picks one by name.

===============  ==========================================================  ===========================
name             model                                                       weights
===============  ==========================================================  ===========================
``retinaface``   RetinaFace MobileNet-0.25 detector, 5 landmarks (default)   in this package (MIT)
``yunet``        YuNet 2023mar int8bq detector, 5 landmarks                  in this package (MIT)
``sface``        SFace 2021dec int8bq recognizer, 128-d, cosine (default)    in this package (Apache-2.0)
``dlib``         dlib ResNet-29 recognizer, 128-d, Euclidean                 ``facecompare[dlib]``
``onnx:PATH``    a user's ArcFace-style ONNX recognizer (see onnx_recognizer)  the user's file
===============  ==========================================================  ===========================

A new model is one module here plus one entry in ``RECOGNIZERS`` or ``DETECTORS``. What the models share: ``base``
(Detection, the Detector and Recognizer protocols), ``alignment``, ``nms``, ``orientation`` (which turn is
upright), ``onnx_graph`` (sessions, folding), ``weights`` (the shipped files and their hashes).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidParameterException
from .base import Detection, Detector, Recognizer


def _sface(threads: int) -> Recognizer:
    from .sface import SFaceRecognizer

    return SFaceRecognizer(threads=threads)


def _dlib(threads: int) -> Recognizer:
    from .dlib_resnet import DlibResNetRecognizer

    return DlibResNetRecognizer()


def _retinaface(threads: int) -> Detector:
    from .retinaface import RetinaFaceDetector

    return RetinaFaceDetector(threads=threads)


def _yunet(threads: int) -> Detector:
    from .yunet import YuNetDetector

    return YuNetDetector(threads=threads)


RECOGNIZERS: dict[str, Callable[[int], Recognizer]] = {"sface": _sface, "dlib": _dlib}
DETECTORS: dict[str, Callable[[int], Detector]] = {"retinaface": _retinaface, "yunet": _yunet}
DEFAULT_RECOGNIZER = "sface"
DEFAULT_DETECTOR = "retinaface"


def create_recognizer(spec: str = DEFAULT_RECOGNIZER, threads: int = 1) -> Recognizer:
    """A recognizer by registry name (``sface``, ``dlib``) or ``onnx:/path/model.onnx[?options]``."""
    if spec.startswith("onnx:"):
        from .onnx_recognizer import InputFormat, OnnxRecognizer

        path, _, query = spec[len("onnx:"):].partition("?")
        if not path:
            raise InvalidParameterException("recognizer onnx: needs a path, e.g. onnx:/models/w600k_r50.onnx.")
        return OnnxRecognizer(path, input_format=InputFormat.parse(query), threads=threads)
    factory = RECOGNIZERS.get(spec)
    if factory is None:
        raise InvalidParameterException(
            f"Unknown recognizer {spec[:60]!r}: use {', '.join(RECOGNIZERS)} or onnx:/path/model.onnx."
        )
    return factory(threads)


def create_detector(name: str = DEFAULT_DETECTOR, threads: int = 1) -> Detector:
    factory = DETECTORS.get(name)
    if factory is None:
        raise InvalidParameterException(f"Unknown detector {name[:60]!r}: use {', '.join(DETECTORS)}.")
    return factory(threads)


__all__ = ["DETECTORS", "RECOGNIZERS", "Detection", "Detector", "Recognizer", "create_detector", "create_recognizer"]
