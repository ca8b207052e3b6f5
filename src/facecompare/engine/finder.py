"""The detection plan: where in an image, at which scale and at which turn to look for faces.

Contract: :meth:`FaceFinder.find` takes a :class:`~facecompare.images.DecodedImage` and returns a
:class:`Found`: the quarter turn (0/90/180/270, clockwise) at which the faces are upright and the detections,
in full-resolution pixels of the image turned by it. It never sees recognizers, HTTP or AWS shapes.

The search, cheapest first, each step only when the one before found nothing:

1. **The whole frame at the first size** (640 px). Upright faces: done, completed by windows around small ones
   (ghost portraits, better landmarks) with the face at about 80 px. With the cascade, RetinaFace looks only at
   4 face widths around the face (its landmarks) and YuNet over the window's 8 for the faces beside it, each
   confirmed by RetinaFace in a window of its own (about a third of the detector's work on such a window).
   Faces lying sideways or upside down are kept too: their landmarks give the turn, and only **a window around
   such a face, at that turn** is searched again (about 8 face widths, the face about 80 px), not the whole
   frame at 90/180/270.
2. **Where a face can be**: the first pass's input, in 16 px tiles, tells the textured tiles (a card, a page,
   a head) from the flat ones (a blank image, a plain table, sky). An image without a textured tile holds no
   face and costs nothing more. The finer passes look only at the box around the textured tiles, at the scale
   that box allows within the pixel budget of one small-face pass over the whole frame (1600x1200), so a
   portrait on a card that covers a tenth of the frame is searched at full resolution. A whole frame is never
   enlarged; windows are. With the cascade (``portrait_search="cascade"``, the default; :mod:`.cascade`)
   YuNet proposes faces over that box at 0.6 of that scale and RetinaFace confirms the best in small windows
   (at twice the scale if none is confirmed); when nothing is at any turn, RetinaFace alone runs over the box
   at the image's own turn. ``"retinaface"``: RetinaFace alone over the box.
3. The other turns at those scales, over that box, for a turned face the first passes did not see at all.
4. The last resort: that box at up to full resolution (``max_detection_size``), at most
   ``max_detection_pixels`` of detector input: the bound applies to the box, not the frame. With the cascade,
   YuNet's proposals there are confirmed first (it sees the 35 px faces the bound leaves; RetinaFace does not).

Then, when ``orientation_check`` is on, the largest face's crop is checked in four turns; when another turn is
clearly the upright one, only a window around that face is searched at that turn (the whole frame at that turn
only if the window finds nothing).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..heap import release_freed_memory
from ..images import DecodedImage
from ..memory import note_large_work
from ..models import Detection, Detector
from ..models.nms import nms
from ..models.orientation import OrientationCheck
from ..settings import Settings
from .cascade import CONFIRM_RETRY_SCALE, PROPOSAL_SCALE, PROPOSAL_SCORE, Proposer, chosen_portrait_search, confirm_windows
from .geometry import landmark_turn, overlaps, rotate, square_window, turn_points, unrotate_points  # noqa: F401  (part of the plan's contract)
from .texture import textured_box
from .trace import stage

#: in the first detection pass, a largest face narrower than this (pixels of the detector input)
#: triggers the small-face pass, since faces smaller still may have been missed (a faint ghost portrait beside
#: an ID card's portrait is found only by it). 32 was tried: it saves about 100 ms of CPU on a card that fills
#: a 1 MP frame (face about 50 px here), but loses the ghost portrait of examples/id_card.jpg and one genuine
#: pair of the synthetic ID benchmark (README, Speed); the window scaled to the face (below) got both
SMALL_FACE_PASS_BELOW_PX = 64
#: the small-face pass searches windows this many face widths wide around the (at most this many) largest faces
#: the first pass found
SMALL_FACE_WINDOW_WIDTHS = 8
SMALL_FACE_WINDOWS = 3
#: ... scaled so the face is about this wide (at most the small-face scale). Before: the small-face scale itself,
#: 2.5x the face's first-pass width (a 48 px face at 120 px). At 80: cards 97.35 -> 97.45 % at FMR 1e-3,
#: specimens 96.74 % both, the tests' ghost portraits still found, 0.43x the pixels on a card filling a 1 MP frame
SMALL_FACE_WINDOW_FACE_PX = 80
#: with the cascade, the small-face window is two cheaper passes instead of RetinaFace over all of it: RetinaFace
#: only in a window this many face widths wide (the face's landmarks at about SMALL_FACE_WINDOW_FACE_PX), and
#: YuNet over the whole window at PROPOSAL_SCALE of that scale for the faces beside it (a ghost portrait), each
#: new proposal confirmed by RetinaFace in its own small window (at most GHOST_PROPOSALS, best score first)
SMALL_FACE_LANDMARK_WIDTHS = 4
GHOST_PROPOSALS = 2
#: a face found lying sideways or upside down is searched again at its turn in a window this many face widths
#: wide, scaled so the face is about TURN_WINDOW_FACE_PX wide (at most TURN_WINDOW_MAX_FACTOR x full resolution)
TURN_WINDOW_WIDTHS = 8
TURN_WINDOW_FACE_PX = 80
TURN_WINDOW_MAX_FACTOR = 2.0
TURN_WINDOWS = 2

#: one last-resort detection at a time in the process: its detector input (up to max_detection_pixels, 6 MP)
#: needs about 290 MB of feature maps, and the two images of a comparison (or concurrent requests) each running
#: one took a CompareFaces of two 8000x8000 PNGs to 925 MB over the warm process. The detector already uses both
#: cores of the 2-core machine, so two at once were no faster than one after the other.
_LAST_RESORT_LOCK = threading.Lock()

Box = tuple[float, float, float, float]  # x1, y1, x2, y2


@dataclass
class Found:
    """Faces found in an image: ``rotation`` (degrees, clockwise) turns the image so they are upright;
    ``detections`` are in full-resolution pixels of the image turned by it."""

    rotation: int
    detections: list[Detection]


def _resample(factor: float) -> Image.Resampling:
    """The resampling filter for a detector input scaled by ``factor``: NEAREST for a slight downscale (cheap and
    as good for the detector), BILINEAR otherwise."""
    return Image.Resampling.NEAREST if 0.7 <= factor < 1.0 else Image.Resampling.BILINEAR


def small_for_first_pass(detections: list[Detection], f_first: float) -> list[Detection]:
    """Those too small for a first pass at ``f_first`` to find (larger at a finer scale: the print's pattern)."""
    return [d for d in detections if d.width * f_first < SMALL_FACE_PASS_BELOW_PX]


def merge(first: list[Detection], second: list[Detection], iou_threshold: float = 0.4) -> list[Detection]:
    """Detections of both passes, duplicates (same face found twice) kept once, the higher score winning."""
    both = first + second
    if not both:
        return []
    boxes = np.array([d.box for d in both])
    scores = np.array([d.score for d in both])
    return [both[i] for i in nms(boxes, scores, iou_threshold)]


class FaceFinder:
    """The detection plan over one detector (see the module's docstring). Thread-safe, like the detector."""

    def __init__(self, detector: Detector, settings: Settings, chip_face_px: float,
                 orientation: OrientationCheck | None = None, *, portrait_search: str | None = None,
                 proposer: Detector | None = None) -> None:
        self.detector = detector
        self.settings = settings
        self.chip_face_px = chip_face_px
        self.orientation = orientation or OrientationCheck(detector)
        #: "cascade" (YuNet proposes over a document's box, RetinaFace confirms) or "retinaface" (RetinaFace
        #: alone over the box); see :mod:`facecompare.engine.cascade`
        self.portrait_search = chosen_portrait_search(settings, portrait_search)
        self.proposer = Proposer(settings.model_threads, proposer)

    def warm(self) -> None:
        """Load the models the search runs (the cascade's proposer too)."""
        self.detector.load()
        if self.portrait_search == "cascade":
            self.proposer.load()

    @property
    def threshold(self) -> float:
        t = self.settings.detection_threshold
        return t if t >= 0 else self.detector.default_threshold

    # -- the contract ------------------------------------------------------------------------------------------

    def find(self, decoded: DecodedImage) -> Found:
        """The faces of ``decoded`` and the turn at which they are upright."""
        rotation, detections = self._search(decoded)
        if detections and self.settings.orientation_check:
            rotation, detections = self._make_upright(decoded, rotation, detections)
        return Found(rotation, detections)

    # -- geometry ----------------------------------------------------------------------------------------------

    @staticmethod
    def _size(decoded: DecodedImage, rotation: int) -> tuple[int, int]:
        return (decoded.height, decoded.width) if rotation in (90, 270) else (decoded.width, decoded.height)

    def _to_turn(self, decoded: DecodedImage, box: Box, source: int, target: int) -> Box:
        """A box in full-resolution pixels of the image turned by ``source``, in that turned by ``target``."""
        if source == target:
            return box
        sw, sh = self._size(decoded, source)
        corners = np.array([[box[0], box[1]], [box[2], box[3]]])
        upright = unrotate_points(corners, source, sw, sh)
        turned = turn_points(upright, target, decoded.width, decoded.height)
        (x1, y1), (x2, y2) = turned.min(axis=0), turned.max(axis=0)
        return (float(x1), float(y1), float(x2), float(y2))

    def _pixel_bounded(self, factor: float, box: Box) -> float:
        """``factor`` (detector pixels per full-resolution pixel), smaller if the box would give the detector
        more than ``max_detection_pixels``."""
        limit = self.settings.max_detection_pixels
        area = max(1.0, (box[2] - box[0]) * (box[3] - box[1]))
        if limit > 0 and area * factor * factor > limit:
            factor = math.sqrt(limit / area)
        return factor

    # -- one detector input ------------------------------------------------------------------------------------

    def _detect_box(self, decoded: DecodedImage, rotation: int, factor: float, box: Box, label: str,
                    cache: dict | None = None, forget_view: bool = False, detector: Detector | None = None,
                    threshold: float | None = None
                    ) -> tuple[list[Detection], list[tuple[Detection, int]], np.ndarray]:
        """Detections in ``box`` (full-resolution pixels of the image turned by ``rotation``) with the image
        scaled by ``factor``: (upright ones, (sideways or upside-down one, its turn) pairs, the detector input).
        Coordinates are full-resolution pixels of the image turned by ``rotation``. The crop is cut from the
        smallest JPEG decode that is fine enough, upright, resized, and only then turned. With ``forget_view``
        the decoded view is dropped once resized (the last resort's: up to 48 MB; decoded again if a chip needs
        it). ``detector`` and ``threshold`` default to the finder's (the cascade's proposals pass others)."""
        long_side = max(decoded.width, decoded.height)
        factor = min(factor, TURN_WINDOW_MAX_FACTOR)
        reduction = decoded.reduction_for(factor * long_side, long_side)
        up_box = self._to_turn(decoded, box, rotation, 0)
        key = (reduction, round(factor, 6), tuple(round(v) for v in up_box))
        pixels = cache.get(key) if cache is not None else None
        if pixels is None:
            if not decoded.has_view(reduction, 0):
                with stage(f"decode at 1/{reduction}"):
                    view = decoded.view(reduction, 0)
            else:
                view = decoded.view(reduction, 0)
            s = long_side / max(view.shape[:2])  # full-resolution pixels per view pixel
            x1, y1 = max(0, int(up_box[0] / s)), max(0, int(up_box[1] / s))
            x2, y2 = min(view.shape[1], int(up_box[2] / s)), min(view.shape[0], int(up_box[3] / s))
            if x2 - x1 < 8 or y2 - y1 < 8:
                return [], [], np.zeros((0, 0, 3), np.uint8)
            crop = view[y1:y2, x1:x2]
            f = factor * s
            if abs(f - 1.0) > 0.02:
                with stage(f"resize for {label}"):
                    crop = np.asarray(Image.fromarray(crop).resize(
                        (max(1, round((x2 - x1) * f)), max(1, round((y2 - y1) * f))), _resample(f)))
            resized = abs(f - 1.0) > 0.02
            del view
            if forget_view and resized:
                decoded.forget(reduction)
                release_freed_memory()
            pixels = (crop, (x1 * s, y1 * s, x2 * s, y2 * s))
            if cache is not None:
                cache[key] = pixels
        crop, used_up = pixels
        turned = rotate(crop, rotation)
        with stage(f"detect {label}" + (f", turned {rotation}" if rotation else "")):
            hits = (detector or self.detector).detect(turned, score_threshold=threshold or self.threshold)
        used = self._to_turn(decoded, used_up, 0, rotation)
        sx = (used[2] - used[0]) / max(1, turned.shape[1])
        sy = (used[3] - used[1]) / max(1, turned.shape[0])
        w, h = self._size(decoded, rotation)
        whole = used[0] <= 0 and used[1] <= 0 and used[2] >= w - 0.5 and used[3] >= h - 0.5
        to_full = long_side / max(turned.shape[:2])  # the whole frame: one scale, in the detector's float32
        upright, sideways = [], []
        for det in hits:
            if whole:
                det.box = det.box * to_full
                det.landmarks = det.landmarks * to_full
            else:
                det.box = det.box * [sx, sy, sx, sy] + [used[0], used[1], used[0], used[1]]
                det.landmarks = det.landmarks * [sx, sy] + [used[0], used[1]]
            turn = landmark_turn(det.landmarks)
            if turn == 0:
                upright.append(det)
            elif turn is not None:
                sideways.append((det, turn))
        return upright, sideways, turned

    # -- the plan ----------------------------------------------------------------------------------------------

    def _search(self, decoded: DecodedImage, rotations: tuple[int, ...] | None = None) -> tuple[int, list[Detection]]:
        s = self.settings
        long_side = max(decoded.width, decoded.height)
        if rotations is None:
            rotations = (0, 90, 180, 270) if s.rotation_retry else (0,)
        r0 = rotations[0]
        w0, h0 = self._size(decoded, r0)
        whole: Box = (0.0, 0.0, float(w0), float(h0))
        f_first, f_small_whole, f_window = self._factors(decoded)
        budget = (f_small_whole * w0) * (f_small_whole * h0)  # pixels of one small-face pass over the frame
        full = min(s.max_detection_size, decoded.working_long_side) / long_side

        found, sideways, first_input = self._detect_box(decoded, r0, f_first, whole,
                                                        f"at {round(f_first * long_side)} px")
        if found:
            return r0, self._complete_small(decoded, r0, found, f_first, f_window)
        turned = self._at_their_turn(decoded, r0, sideways)
        if turned is not None:
            return turned
        textured = textured_box(first_input) if first_input.size else None
        if textured is None:
            return 0, []  # every tile is flat: nothing there can hold a face
        box = (textured[0] / f_first, textured[1] / f_first, min(w0, textured[2] / f_first), min(h0, textured[3] / f_first))
        area = max(1.0, (box[2] - box[0]) * (box[3] - box[1]))
        f_small = min(full, max(f_small_whole, math.sqrt(budget / area)))
        f_small = self._pixel_bounded(f_small, box)
        passes: list[float] = [f_small] if f_small > 1.2 * f_first else []
        for factor in passes:
            found, sideways = self._box_pass(decoded, r0, factor, box, first_pass=f_first)
            found = small_for_first_pass(found, f_first)  # at the first pass's turn
            if found:
                return r0, found
            turned = self._at_their_turn(decoded, r0, sideways)
            if turned is not None:
                return turned
        cache: dict = {}
        for r in rotations[1:]:
            for factor in [f_first, *passes]:
                found, _ = self._box_pass(decoded, r, factor, self._to_turn(decoded, box, r0, r), cache,
                                          cascade=factor > f_first)
                if found and self.portrait_search == "cascade":  # the ghost beside a portrait found at this turn
                    return r, self._completed(decoded, r, found)
                if found:
                    return r, found
        cache.clear()
        if self.portrait_search == "cascade":  # a portrait YuNet misses at every turn (31 px on a specimen)
            for factor in passes:
                found = small_for_first_pass(self._box_pass(decoded, r0, factor, box, cascade=False)[0], f_first)
                if found:
                    return r0, found
        f_full = self._pixel_bounded(full, box)
        if f_full <= 1.2 * max([f_first, *passes]):
            return 0, []
        note_large_work()
        if self.portrait_search == "cascade":
            with _LAST_RESORT_LOCK:  # one at a time, as RetinaFace's below: the bound on memory holds per process
                proposed = self._proposed_last_resort(decoded, r0, rotations, f_full, f_first, box)
            if proposed is not None:
                return proposed
        last: dict = {}
        for r in rotations:
            with _LAST_RESORT_LOCK:
                try:
                    found, _, _ = self._detect_box(decoded, r, f_full, self._to_turn(decoded, box, r0, r),
                                                   "last resort", last, forget_view=True)
                finally:
                    release_freed_memory()
            if found:
                return r, found
            decoded.forget_turned(r)
        return 0, []

    def _box_pass(self, decoded: DecodedImage, rotation: int, factor: float, box: Box, cache: dict | None = None,
                  cascade: bool = True, first_pass: float | None = None) -> tuple[list[Detection], list[tuple[Detection, int]]]:
        """One fine pass over the box at ``factor``: RetinaFace over it, or with the cascade (and ``cascade``) YuNet's
        proposals (with ``first_pass``, those too small for that first pass) confirmed by RetinaFace."""
        if not (cascade and self.portrait_search == "cascade"):
            found, sideways, _ = self._detect_box(decoded, rotation, factor, box, "where a portrait can be", cache)
            return found, sideways
        upright, lying, _ = self._detect_box(decoded, rotation, factor * PROPOSAL_SCALE, box,
                                             "proposals where a portrait can be", cache,
                                             detector=self.proposer.detector, threshold=PROPOSAL_SCORE)
        proposals = upright + [d for d, _ in lying]
        if first_pass is not None:
            proposals = small_for_first_pass(proposals, first_pass)
        return self._confirmed(decoded, rotation, proposals, "confirming a proposal")

    def _confirmed(self, decoded: DecodedImage, rotation: int, proposals: list[Detection],
                   label: str) -> tuple[list[Detection], list[tuple[Detection, int]]]:
        """RetinaFace over a window around each of the best proposals, the face about ``CONFIRM_FACE_PX`` wide; if
        none is confirmed, again at twice that scale, upright faces only (a portrait under glare seen at 150 px)."""
        windows = confirm_windows(proposals, self._size(decoded, rotation))
        found: list[Detection] = []
        sideways: list[tuple[Detection, int]] = []
        for enlarge in (1.0, CONFIRM_RETRY_SCALE):
            for window, wanted in windows:
                hits, turned = self._in_confirm_window(decoded, rotation, window, enlarge * wanted, label)
                found = merge(found, hits)
                sideways.extend(turned if enlarge == 1.0 else [])
            if found or sideways:
                break
        return found, sideways

    def _in_confirm_window(self, decoded: DecodedImage, rotation: int, window: Box, wanted: float,
                           label: str) -> tuple[list[Detection], list[tuple[Detection, int]]]:
        """RetinaFace in one of :func:`.cascade.confirm_windows`' windows at the ``wanted`` scale (at most
        ``TURN_WINDOW_MAX_FACTOR``, within the pixel bound): (upright detections, (sideways one, its turn) pairs)."""
        f = self._pixel_bounded(min(TURN_WINDOW_MAX_FACTOR, wanted), window)
        hits, turned, _ = self._detect_box(decoded, rotation, f, window, label)
        return hits, turned

    def _proposed_last_resort(self, decoded: DecodedImage, r0: int, rotations: tuple[int, ...], factor: float,
                              f_first: float, box: Box) -> tuple[int, list[Detection]] | None:
        """The cascade's last resort, before RetinaFace's: YuNet's proposals over the box at its scale that are too
        small for the first pass, confirmed by RetinaFace (a 49 px grayscale portrait); (rotation, faces) or None."""
        cache: dict = {}
        for r in rotations:
            upright, lying, _ = self._detect_box(decoded, r, factor, self._to_turn(decoded, box, r0, r),
                                                 "proposals at the last resort", cache, forget_view=True,
                                                 detector=self.proposer.detector, threshold=PROPOSAL_SCORE)
            release_freed_memory()
            proposals = small_for_first_pass(upright + [d for d, _ in lying], f_first)
            found, _ = self._confirmed(decoded, r, proposals, "confirming a proposal at the last resort")
            if found:
                return r, self._completed(decoded, r, found)
        return None

    def _factors(self, decoded: DecodedImage) -> tuple[float, float, float]:
        """Detector pixels per full-resolution pixel of the first pass, of a small-face pass over the whole frame
        (never an enlargement) and of the small-face windows (which may be enlarged)."""
        s = self.settings
        long_side = max(decoded.width, decoded.height)
        whole: Box = (0.0, 0.0, float(decoded.width), float(decoded.height))
        f_first = self._pixel_bounded(min(s.detection_size, long_side) / long_side, whole)
        f_small_whole = self._pixel_bounded(min(s.small_face_detection_size, long_side) / long_side, whole)
        f_window = min(s.small_face_detection_size, 2 * long_side) / long_side
        return f_first, f_small_whole, f_window

    def _completed(self, decoded: DecodedImage, rotation: int, found: list[Detection]) -> list[Detection]:
        """Faces found by a window at a turn, completed as an upright first pass's are (the small-face windows
        around them when they are small at the first pass's scale: a ghost portrait beside the portrait)."""
        f_first, _, f_window = self._factors(decoded)
        return self._complete_small(decoded, rotation, found, f_first, f_window)

    def _complete_small(self, decoded: DecodedImage, rotation: int, found: list[Detection], factor: float,
                        f_window: float) -> list[Detection]:
        """``found`` merged with the small-face pass around the largest faces, when the largest is small at
        ``factor`` (a coarse first pass gives rough boxes and landmarks, and misses a ghost portrait)."""
        largest = max(d.width for d in found) * factor
        if f_window <= 1.2 * factor or largest >= SMALL_FACE_PASS_BELOW_PX:
            return found
        size, out = self._size(decoded, rotation), []
        for det in sorted(found, key=lambda d: d.width, reverse=True)[:SMALL_FACE_WINDOWS]:
            window = square_window(det.box, SMALL_FACE_WINDOW_WIDTHS, size)
            f = min(f_window, SMALL_FACE_WINDOW_FACE_PX / max(det.width, 1.0))
            if f <= 1.2 * factor:
                continue
            if self.portrait_search != "cascade":
                hits, _, _ = self._detect_box(decoded, rotation, f, window, "around a small face")
                out.extend(hits)
                continue
            tight = square_window(det.box, SMALL_FACE_LANDMARK_WIDTHS, size)
            hits, _, _ = self._detect_box(decoded, rotation, f, tight, "landmarks of a small face")
            out.extend(hits)
            out.extend(self._ghosts(decoded, rotation, window, f, found + out))
        return merge(found, out)

    def _ghosts(self, decoded: DecodedImage, rotation: int, window: Box, factor: float,
                known: list[Detection]) -> list[Detection]:
        """The faces in ``window`` beside those ``known`` (a ghost portrait beside a card's portrait): YuNet's
        proposals over it at ``PROPOSAL_SCALE * factor`` that overlap no known face, each confirmed by RetinaFace
        in a small window (one scale: a proposal it does not see there is not a face)."""
        upright, lying, _ = self._detect_box(decoded, rotation, factor * PROPOSAL_SCALE, window,
                                             "proposals beside a small face", detector=self.proposer.detector,
                                             threshold=PROPOSAL_SCORE)
        new = [d for d in upright + [d for d, _ in lying] if not overlaps(d, known)]
        if not new:
            return []
        confirmed: list[Detection] = []
        for box, wanted in confirm_windows(new, self._size(decoded, rotation))[:GHOST_PROPOSALS]:
            hits, _ = self._in_confirm_window(decoded, rotation, box, wanted, "confirming a face beside a small face")
            confirmed = merge(confirmed, [d for d in hits if not overlaps(d, known)])
        return confirmed

    def _window_at_turn(self, decoded: DecodedImage, rotation: int, det: Detection, turn: int) -> tuple[int, list[Detection]]:
        """Detections in a window around ``det`` (found in the image turned by ``rotation``) in the image turned
        further by ``turn``: (that rotation, its upright detections)."""
        target = (rotation + turn) % 360
        x1, y1, x2, y2 = box = self._to_turn(decoded, tuple(det.box), rotation, target)
        width = max(x2 - x1, y2 - y1, 1.0)
        window = square_window(box, TURN_WINDOW_WIDTHS, self._size(decoded, target))
        factor = self._pixel_bounded(min(TURN_WINDOW_MAX_FACTOR, TURN_WINDOW_FACE_PX / width), window)
        found, _, _ = self._detect_box(decoded, target, factor, window, "around a turned face")
        return target, found

    def _at_their_turn(self, decoded: DecodedImage, rotation: int,
                       sideways: list[tuple[Detection, int]]) -> tuple[int, list[Detection]] | None:
        """The faces found lying sideways or upside down, searched again at their turn in a window around each
        (largest first, at most TURN_WINDOWS); None when none of them is a face at its turn."""
        if not self.settings.rotation_retry:
            return None
        for det, turn in sorted(sideways, key=lambda p: p[0].width * p[0].score, reverse=True)[:TURN_WINDOWS]:
            target, found = self._window_at_turn(decoded, rotation, det, turn)
            if found:
                return target, self._completed(decoded, target, found)
        return None

    # -- the orientation check ---------------------------------------------------------------------------------

    def _make_upright(self, decoded: DecodedImage, rotation: int,
                      detections: list[Detection]) -> tuple[int, list[Detection]]:
        """(rotation, detections), turned further when the largest face is not upright at ``rotation``.

        The detector finds upside-down and sideways faces too, some with plausible landmarks; the
        :class:`OrientationCheck` looks at the largest face's crop in all four turns, and when another turn is
        clearly the upright one, a window around that face is searched at that turn (the whole image at that
        turn only when the window finds nothing)."""
        largest = max(detections, key=lambda d: d.width)
        crop = self._face_crop(decoded, rotation, largest, self.orientation.FACE_PX)
        with stage("orientation check"):
            turn = self.orientation.upright_turn(crop)
        if not turn:
            return rotation, detections
        target, found = self._window_at_turn(decoded, rotation, largest, turn)
        if found:
            found = self._completed(decoded, target, found)
        else:
            target, found = self._search(decoded, rotations=((rotation + turn) % 360,))
        return (target, found) if found else (rotation, detections)

    def _face_crop(self, decoded: DecodedImage, rotation: int, det: Detection, face_px: int) -> np.ndarray:
        """The face with one face width of context on each side, scaled so the face is ``face_px`` wide. Cut
        from the view the face's chip will be cut from (decoded once, cached)."""
        reduction = decoded.reduction_for(self.chip_face_px, det.width, finer_if_cached=True)
        with stage("face crop for the orientation check"):
            vw = decoded.view_shape(reduction, rotation)[1]
        full_w = decoded.height if rotation in (90, 270) else decoded.width
        scale = full_w / vw
        x1, y1, x2, y2 = det.box / scale
        w = x2 - x1
        crop = decoded.region(reduction, rotation, (int(x1 - w), int(y1 - w), int(x2 + w), int(y2 + w)))  # clipped
        factor = face_px / max(w, 1.0)
        size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
        return np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
