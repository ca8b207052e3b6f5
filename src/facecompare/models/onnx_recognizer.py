"""An ArcFace-style recognizer in an ONNX file: 5-point alignment to the ArcFace template, one forward pass,
an L2-normalised embedding compared by cosine.

This is how a user brings a stronger model they have licensed (InsightFace's ``w600k_r50.onnx``,
``glintr100.onnx``, an AdaFace or MagFace export, ...): ``FACECOMPARE_RECOGNIZER=onnx:/path/model.onnx``,
with options after ``?`` when the model's input differs from the ArcFace convention::

    onnx:/models/w600k_r50.onnx                                 # 112 px, RGB, (x - 127.5) / 127.5 (InsightFace)
    onnx:/models/face_recognition_sface_2021dec.onnx?mean=0&std=1   # SFace: normalisation inside the graph
    onnx:/models/other.onnx?size=112&channels=bgr&mean=127.5&std=128

``size``: chip side in pixels (the template is scaled to it); ``channels``: ``rgb`` or ``bgr``; ``mean`` and
``std``: the chip is fed as ``(pixel - mean) / std``, float32, NCHW. Output: the first output, one vector per
chip. Its calibration comes from ``facecompare calibrate`` on the user's pairs; embeddings carry the name
``onnx-<file stem>-<first 12 hex digits of the file's sha256>``, so a changed file is a different model.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

from ..errors import InvalidParameterException, ModelNotAvailableError
from . import alignment
from .cpu import map_spread


@dataclass(frozen=True)
class InputFormat:
    size: int = 112
    channels: str = "rgb"
    mean: float = 127.5
    std: float = 127.5

    @classmethod
    def parse(cls, query: str) -> InputFormat:
        known = {"size", "channels", "mean", "std"}
        values: dict[str, object] = {}
        for key, raw in parse_qsl(query, keep_blank_values=True):
            if key not in known:
                raise InvalidParameterException(
                    f"Unknown ONNX recognizer option {key[:40]!r}: use size, channels, mean and std "
                    "(e.g. onnx:/path/model.onnx?size=112&channels=rgb&mean=127.5&std=127.5)."
                )
            try:
                values[key] = raw.lower() if key == "channels" else (int(raw) if key == "size" else float(raw))
            except ValueError:
                raise InvalidParameterException(f"ONNX recognizer option {key}={raw[:40]!r} is not a number.") from None
        fmt = cls(**values)
        if fmt.channels not in ("rgb", "bgr"):
            raise InvalidParameterException(f"ONNX recognizer option channels={fmt.channels[:10]!r}: use rgb or bgr.")
        if not 32 <= fmt.size <= 512:
            raise InvalidParameterException(f"ONNX recognizer option size={fmt.size}: use 32 to 512 pixels.")
        if fmt.std == 0:
            raise InvalidParameterException("ONNX recognizer option std must not be 0.")
        return fmt


class OnnxRecognizer:
    """Any ArcFace-template ONNX face recognizer. Thread-safe; the session is created on first use."""

    metric = "cosine"
    #: SFace scores best on printed portraits without a blur (see ``Settings.chip_blur``)
    default_chip_blur = 0.0

    def __init__(self, model: bytes | str | Path, *, name: str | None = None, input_format: InputFormat | None = None,
                 threads: int = 1) -> None:
        self._source = model
        self.input_format = input_format or InputFormat()
        self.chip_size = self.input_format.size
        # a RetinaFace box is about 0.8 chip sizes wide on the ArcFace template; a chip cut from a face 0.6 chip
        # sizes wide (67 px for 112 px chips) is enlarged a little, which costs no accuracy (chips from the
        # full-resolution photo scored no better on the synthetic ID benchmark), and spares a full decode
        self.chip_face_px = 0.6 * self.chip_size
        self.name = name or self._name_from_file(model)
        self.dimension = 0  # known after load()
        #: onnxruntime intra-op threads; 0: automatic (one, and two chips at once while a core is spare)
        self._threads = threads
        self._session = None
        self._input = ""
        self._batch_one = True
        self._lock = threading.Lock()

    @staticmethod
    def _name_from_file(model: bytes | str | Path) -> str:
        if isinstance(model, bytes):
            return "onnx-" + hashlib.sha256(model).hexdigest()[:12]
        path = Path(model)
        return f"onnx-{path.stem}-{_file_sha256(path)[:12]}"

    def _model_bytes(self) -> bytes:
        if isinstance(self._source, bytes):
            return self._source
        path = Path(self._source)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ModelNotAvailableError(f"Cannot read the recognizer model {path}: {exc.strerror}.") from None

    def _prepared_bytes(self) -> bytes:
        """The graph to load: a user's model prepared in memory (unused inputs dropped, constant int8 weights
        folded) when ``onnx`` is installed (``facecompare[onnx]``), else as it is (onnxruntime then runs it
        unfolded, or refuses a model that needs the fixes, with a message saying so)."""
        from .onnx_graph import have_onnx, prepare

        data = self._model_bytes()
        if not have_onnx():
            return data
        return prepare(data)

    def load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            from ..heap import release_freed_memory
            from .onnx_graph import session

            try:
                loaded = session(self._prepared_bytes(), self._threads or 1)
            except ModelNotAvailableError:
                raise
            except Exception as exc:  # onnx / onnxruntime raise many types for a file that is not a usable model
                from .onnx_graph import have_onnx

                hint = "" if have_onnx() else " (pip install 'facecompare[onnx]' lets facecompare fix unused inputs first)"
                raise ModelNotAvailableError(
                    f"The recognizer model {self.name} cannot be loaded{hint}: {exc}"[:500]) from None
            inputs = loaded.get_inputs()
            if len(inputs) != 1 or len(inputs[0].shape) != 4:
                raise ModelNotAvailableError(
                    f"The recognizer model {self.name} must take one NCHW image input; it takes "
                    f"{[(i.name, i.shape) for i in inputs]}."[:500]
                )
            shape = inputs[0].shape
            if isinstance(shape[2], int) and shape[2] != self.chip_size:
                raise ModelNotAvailableError(
                    f"The recognizer model {self.name} takes {shape[2]} px chips; set ?size={shape[2]} after its path."
                )
            self._input = inputs[0].name
            self._batch_one = shape[0] == 1
            out = loaded.get_outputs()[0].shape
            self.dimension = int(out[-1]) if isinstance(out[-1], int) else 0
            self._session = loaded
        release_freed_memory()

    def align(self, rgb: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The ArcFace-aligned chip (``size`` x ``size``, RGB uint8) of the face with these 5 landmarks."""
        return alignment.align(rgb, landmarks, self.chip_size)

    def embed(self, chips: Sequence[np.ndarray], jitters: int = 0) -> np.ndarray:
        """L2-normalised embeddings of aligned chips, one row per chip."""
        if jitters:
            raise InvalidParameterException(
                f"tta=jitter:{jitters} is dlib's num_jitters and works only with the dlib recognizer; "
                "use tta=flip or tta=none."
            )
        self.load()
        if not len(chips):
            return np.zeros((0, self.dimension), dtype=np.float32)
        blob = self._blob(chips)
        if self._batch_one:  # one chip per run; with automatic threads, two runs at once while a core is spare
            def run(i: int) -> np.ndarray:
                return self._session.run(None, {self._input: blob[i:i + 1]})[0].reshape(1, -1)

            indices = range(len(blob))
            rows = map_spread(run, indices) if self._threads == 0 else [run(i) for i in indices]
            vectors = np.vstack(rows)
        else:
            vectors = self._session.run(None, {self._input: blob})[0].reshape(len(blob), -1)
        vectors = vectors.astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def _blob(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        fmt = self.input_format
        batch = np.stack([np.asarray(c) for c in chips]).astype(np.float32)  # N, H, W, 3 RGB
        if fmt.channels == "bgr":
            batch = batch[..., ::-1]
        if fmt.mean or fmt.std != 1:
            batch = (batch - fmt.mean) / fmt.std
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise ModelNotAvailableError(f"The recognizer model file {path} does not exist.") from None
    except OSError as exc:
        raise ModelNotAvailableError(f"Cannot read the recognizer model {path}: {exc.strerror}.") from None
    return digest.hexdigest()
