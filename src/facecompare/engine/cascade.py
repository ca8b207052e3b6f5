"""The cascade of the portrait search: YuNet proposes faces at low resolution, RetinaFace confirms each proposal in
a small window at the scale it needs (the face about ``CONFIRM_FACE_PX`` wide) and gives the landmarks.

Where the finder (:mod:`facecompare.engine.finder`) would run RetinaFace over the box around a document's textured
tiles at a fine scale (up to full resolution), the cascade runs YuNet over that box at ``PROPOSAL_SCALE`` times
that scale instead (YuNet finds 14-22 px faces RetinaFace misses, at about half its cost per pixel), then
RetinaFace in a window of ``CONFIRM_WINDOW_WIDTHS`` face widths around each of the best ``PROPOSALS``
proposals. A proposal RetinaFace does not confirm is not a face: YuNet's boxes and landmarks are never returned.

The choice is ``portrait_search``: ``"cascade"`` (the default) or ``"retinaface"`` (RetinaFace alone over the box,
the default before);
the setting ``FACECOMPARE_PORTRAIT_SEARCH`` when the settings carry it, else a :class:`FaceFinder` argument.
This module holds the parts that need no image: the choice, the proposer and the confirmation windows.
"""

from __future__ import annotations

import threading

from ..errors import ConfigurationError
from ..models import Detection, Detector, create_detector
from ..settings import PORTRAIT_SEARCHES, Settings
from .geometry import square_window

#: YuNet looks at the box at this share of the scale RetinaFace alone would use there (a face RetinaFace needs
#: about 24 px for is about 17 px to YuNet, which finds 97 % of 20 px faces)
PROPOSAL_SCALE = 0.6
#: YuNet's score above which a candidate is a proposal (its own default is 0.6; RetinaFace confirms). At 0.5
#: the faint ghost portrait beside the card's portrait in tests/test_bounded_work.py's id_12mp (YuNet: 0.41) was lost
PROPOSAL_SCORE = 0.3
#: at most this many proposals are confirmed, best score first
PROPOSALS = 4
#: a proposal is confirmed in a window this many face widths wide, scaled so the face is about CONFIRM_FACE_PX
CONFIRM_WINDOW_WIDTHS = 4
CONFIRM_FACE_PX = 80
#: when no proposal is confirmed at CONFIRM_FACE_PX, each is tried once more at this many times that scale
CONFIRM_RETRY_SCALE = 2.0

Box = tuple[float, float, float, float]  # x1, y1, x2, y2


def chosen_portrait_search(settings: Settings, chosen: str | None = None) -> str:
    """The portrait search to run: ``chosen`` (the finder's argument), else the settings' ``portrait_search``
    (whose default, the cascade, is explained in settings.py). ConfigurationError for a name that is none of
    ``PORTRAIT_SEARCHES``."""
    name = chosen if chosen is not None else settings.portrait_search
    if name not in PORTRAIT_SEARCHES:
        raise ConfigurationError(
            f"portrait_search={str(name)[:40]!r} (FACECOMPARE_PORTRAIT_SEARCH): use {' or '.join(PORTRAIT_SEARCHES)}.",
            setting="FACECOMPARE_PORTRAIT_SEARCH")
    return name


class Proposer:
    """The cascade's proposing detector (YuNet unless one is given), created and loaded on first use.
    Thread-safe."""

    def __init__(self, threads: int, detector: Detector | None = None) -> None:
        self._threads = threads
        self._detector = detector
        self._lock = threading.Lock()

    @property
    def detector(self) -> Detector:
        with self._lock:
            if self._detector is None:
                self._detector = create_detector("yunet", threads=self._threads)
            return self._detector

    def load(self) -> None:
        self.detector.load()


def confirm_windows(proposals: list[Detection], size: tuple[int, int]) -> list[tuple[Box, float]]:
    """(window, wanted scale) for the best ``PROPOSALS`` proposals (full-resolution pixels of an image ``size``
    wide and high): a square ``CONFIRM_WINDOW_WIDTHS`` face widths wide around each, clipped to the image, and the
    detector pixels per image pixel that make the face about ``CONFIRM_FACE_PX`` wide (the finder bounds it)."""
    return [(square_window(det.box, CONFIRM_WINDOW_WIDTHS, size), CONFIRM_FACE_PX / max(det.width, det.height, 1.0))
            for det in sorted(proposals, key=lambda d: d.score, reverse=True)[:PROPOSALS]]
