"""The detection plan (``facecompare.engine.finder``): turned, small, ghosted and blank documents, and what the search
costs (the pixels the detector is given, counted on the real detector)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecompare import Settings, Verifier
from facecompare.engine.cascade import chosen_portrait_search
from facecompare.engine.finder import FaceFinder, Found, landmark_turn, turn_points, unrotate_points
from facecompare.engine.texture import textured_box
from facecompare.errors import ConfigurationError
from facecompare.models.alignment import upright_landmarks
from facecompare.models.retinaface import RetinaFaceDetector
from facecompare.models.yunet import YuNetDetector
from facecompare.synth import PhotoConditions, photograph, render_card

EXAMPLES = Path(__file__).parent.parent / "examples"


class CountingDetector:
    """The real RetinaFace detector, counting the pixels of every input it is given."""

    def __init__(self) -> None:
        self.inner = RetinaFaceDetector(threads=2)
        self.default_threshold = self.inner.default_threshold
        self.name = self.inner.name
        self.pixels = 0
        self.calls = 0
        self.inputs: list[tuple[int, int]] = []

    def load(self) -> None:
        self.inner.load()

    def detect(self, rgb, **kwargs):
        self.pixels += rgb.shape[0] * rgb.shape[1]
        self.largest = max(getattr(self, "largest", 0), rgb.shape[0] * rgb.shape[1])
        self.calls += 1
        self.inputs.append(rgb.shape[:2])
        return self.inner.detect(rgb, **kwargs)


@pytest.fixture(scope="module")
def counting():
    """RetinaFace alone over the document's box (``portrait_search="retinaface"``); the cascade, the default, has
    its own fixture below, so both searches stay covered."""
    detector = CountingDetector()
    verifier = Verifier(Settings(portrait_search="retinaface"), detector=detector)
    verifier.warm()
    return verifier, detector


def _document(fixtures, *, rotation=0, fraction=0.03, ghost=True, seed=12) -> tuple[bytes, dict]:
    rng = np.random.default_rng(seed)
    face = Image.open(fixtures / "obama.jpg").convert("RGB")
    card, info = render_card(face, rng, width=1200, ghost=ghost, face_box=(200, 80, 440, 380))
    return photograph(card, info, rng, PhotoConditions(portrait_fraction=fraction, tilt=0.1, glare=0.2,
                                                       rotation=rotation, frame=(4000, 3000)))


def _analyze(counting, data):
    verifier, detector = counting
    detector.pixels = detector.calls = detector.largest = 0
    detector.inputs = []
    analyzed = verifier.analyze(data, embed=1)
    return analyzed, detector.pixels


def _turned_id_card(rotation: int, *, half: bool = False) -> bytes:
    """examples/id_card.jpg (portrait and a faint ghost portrait) turned in its pixels (no EXIF), as a JPEG; with
    ``half``, at half size in the middle of a frame three card widths square."""
    image = Image.open(EXAMPLES / "id_card.jpg")
    if half:
        image = image.resize((image.width // 2, image.height // 2))
        canvas = Image.new("RGB", (image.width * 3, image.width * 3), (120, 110, 100))
        canvas.paste(image, (image.width, image.width))
        image = canvas
    buffer = io.BytesIO()
    image.rotate(rotation, expand=True).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def _assert_portrait_and_ghost(analyzed, rotation: int, portrait_px: tuple[int, int]) -> None:
    """Two faces at ``rotation`` (PIL turns counter-clockwise): the portrait, the largest, ``portrait_px`` wide, and
    the ghost less than half as wide."""
    assert analyzed.rotation == rotation and len(analyzed.faces) == 2
    portrait, ghost = analyzed.faces
    assert portrait_px[0] < portrait.width_px < portrait_px[1] and ghost.width_px < 0.5 * portrait.width_px


#: one detection pass over a 4000x3000 frame at the small-face size (1600x1200): the whole-frame passes the
#: old search repeated at each turn, and then at up to 6 MP each
SMALL_PASS_PIXELS = 1600 * 1200


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_turned_card_is_found_at_its_turn_without_searching_every_turn_of_the_frame(counting, fixtures, rotation):
    """A card photographed turned (no EXIF tag), its portrait 3 % of the frame: found, at the turn that makes it
    upright, and embedded upright (the same person as the card's photo); the detector saw less than two
    small-face passes over the frame in all (the old search: 4 whole-frame passes at 1600 px and 2 at 6 MP)."""
    verifier, _ = counting
    data, meta = _document(fixtures, rotation=rotation)
    analyzed, pixels = _analyze(counting, data)
    assert analyzed.faces and analyzed.rotation == rotation
    comparison = verifier.match_faces(verifier.analyze(fixtures / "obama.jpg", embed=1), analyzed)
    assert comparison.matches and comparison.matches[0].similarity >= 90
    assert pixels < 2 * SMALL_PASS_PIXELS, pixels


def test_a_2_percent_portrait_is_found_and_is_the_largest_face_not_the_ghost(counting, fixtures):
    """A portrait 2 % of a 12 MP frame (the face about 30 px): found (the old search lost it: the 6 MP bound on its
    last pass), where the card's portrait is, with the smaller ghost never the largest face."""
    data, meta = _document(fixtures, fraction=0.02, ghost=True)
    analyzed, pixels = _analyze(counting, data)
    assert analyzed.faces
    face = analyzed.largest
    fw, fh = meta["frame"]
    cx = (face.bounding_box.left + face.bounding_box.width / 2) * fw
    cy = (face.bounding_box.top + face.bounding_box.height / 2) * fh
    px, py, pw, ph = meta["portrait_box"]
    assert px <= cx <= px + pw and py <= cy <= py + ph
    gx, gy, gw, gh = meta["ghost_box"]
    assert not (gx <= cx <= gx + gw and gy <= cy <= gy + gh)
    assert pixels < 2 * SMALL_PASS_PIXELS, pixels


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_a_ghosted_card_gives_the_portrait_and_the_ghost_at_every_turn(counting, rotation):
    """examples/id_card.jpg (portrait and a faint ghost portrait) turned in its pixels (no EXIF): at every turn
    both are found, the portrait as the largest face, the ghost less than half as wide (found by the small-face
    windows after the turn window, as upright)."""
    analyzed, _ = _analyze(counting, _turned_id_card(rotation))
    _assert_portrait_and_ghost(analyzed, rotation, (170, 210))


def test_a_card_filling_a_1mp_frame_gets_a_window_scaled_to_its_face(counting, fixtures):
    """A 1280x960 photo that the card fills (portrait 22 % of the width, the face about 100 px: 50 px at the first
    pass). The small-face window around it is scaled so the face is about 80 px (SMALL_FACE_WINDOW_FACE_PX), not
    to the 1600 px scale (125 px): the portrait is found, the same person, and the detector sees the first pass,
    a window 8 face heights square with the face at 80 px, and the orientation check's four crops 3 faces of 64 px
    wide (at the 1600 px scale and with 96 px faces: about 1.9 MP in all). The ghost of this card lies 6 face
    widths away, outside any window; ghosts the windows do find are in
    test_a_ghosted_card_gives_the_portrait_and_the_ghost_at_every_turn."""
    rng = np.random.default_rng(13)
    face = Image.open(fixtures / "obama.jpg").convert("RGB")
    card, info = render_card(face, rng, width=1200, ghost=True, face_box=(200, 80, 440, 380))
    data, _ = photograph(card, info, rng, PhotoConditions(portrait_fraction=0.22, tilt=0.05, glare=0.1,
                                                          jpeg_quality=85, frame=(1280, 960)))
    verifier, detector = counting
    analyzed, pixels = _analyze(counting, data)
    assert len(analyzed.faces) == 1 and 80 < analyzed.faces[0].width_px < 120
    assert detector.calls == 6  # the first pass, one window, four turns of the orientation check
    window = (8 * 1.35 * 82) ** 2  # 8 face heights (a face box is about 1.3 widths high), the face 80 px wide
    assert detector.largest <= window, detector.largest  # at the 1600 px scale: 1040x960 x 1.25^2, 1.56 MP
    assert all(max(shape) <= 225 for shape in detector.inputs[-4:]), detector.inputs  # 3.3 x 64 px (317 at 96)
    assert pixels <= 640 * 480 + window + 4 * 225 * 200, pixels
    comparison = verifier.match_faces(verifier.analyze(fixtures / "obama.jpg", embed=1), analyzed)
    assert comparison.matches and comparison.matches[0].similarity >= 90


def test_a_blank_8000px_png_costs_one_small_pass(counting):
    """A flat image holds no face: after the first pass (640 px) nothing else is searched (the old search ran 8
    more passes, 4 of them at 6 MP)."""
    buffer = io.BytesIO()
    Image.new("RGB", (8000, 8000), (250, 250, 250)).save(buffer, "PNG")
    analyzed, pixels = _analyze(counting, buffer.getvalue())
    assert analyzed.faces == []
    assert pixels <= 640 * 640


def test_find_contract_on_the_examples(verifier, fixtures):
    """``FaceFinder.find``: image in, detections and their turn out; the Verifier's faces are the finder's."""
    decoded = verifier.load(fixtures / "two_people.jpg")
    found = FaceFinder(verifier.detector, verifier.settings, verifier.recognizer.chip_face_px).find(decoded)
    assert isinstance(found, Found) and found.rotation == 0 and len(found.detections) >= 2
    assert all(upright_landmarks(d.landmarks) for d in found.detections)
    assert len(verifier.analyze(fixtures / "two_people.jpg", embed=0).faces) == len(found.detections)


def test_a_textured_image_without_a_face_is_searched_to_the_last_resort_within_the_pixel_bound(fixtures):
    """Texture everywhere and no face (guilloche-like stripes over a 4000x3000 frame): every pass runs, the last
    resort in all four turns, and no detector input is larger than ``max_detection_pixels`` (here 4 MP, so the
    bound is what decides)."""
    detector = CountingDetector()
    verifier = Verifier(Settings(max_detection_pixels=4_000_000), detector=detector)
    yy, xx = np.mgrid[0:750, 0:1000]
    stripes = (127 + 100 * np.sin(xx / 3.0 + 4 * np.sin(yy / 17.0))).astype(np.uint8)
    image = Image.fromarray(np.stack([stripes, stripes[::-1], stripes[:, ::-1]], axis=2)).resize((4000, 3000))
    trace: list = []
    detector.largest = 0
    analyzed = verifier.analyze(image, embed=0, trace=trace)
    assert analyzed.faces == []
    assert 3_900_000 < detector.largest <= 4_000_000
    assert sum(name.startswith("detect last resort") for name, _ in trace) == 4


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_turn_points_inverts_unrotate_points_and_landmarks_give_the_turn(rotation):
    upright = np.array([[40.0, 50.0], [70.0, 50.0], [55.0, 65.0], [44.0, 80.0], [66.0, 80.0]])  # eyes, nose, mouth
    w, h = 200.0, 120.0
    # the image turned by -rotation shows the face lying; turning it by ``rotation`` makes it upright
    lying = turn_points(upright, (360 - rotation) % 360, w, h)
    lw, lh = (h, w) if rotation in (90, 270) else (w, h)
    assert np.allclose(unrotate_points(lying, (360 - rotation) % 360, lw, lh), upright)
    assert landmark_turn(lying) == rotation
    collapsed = np.array([[10.0, 10.0], [20.0, 10.0], [15.0, 10.0], [12.0, 10.0], [18.0, 10.0]])
    assert landmark_turn(collapsed) is None  # a pattern: upright at no turn


def test_textured_box_skips_flat_tiles():
    flat = np.full((480, 640, 3), 200, np.uint8)
    assert textured_box(flat) is None
    noisy_table = np.clip(flat + np.random.default_rng(1).normal(0, 4, flat.shape), 0, 255).astype(np.uint8)
    card = noisy_table.copy()
    stripes = (np.indices((80, 120)).sum(axis=0) % 6 < 3)[..., None] * 120
    card[300:380, 100:220] = stripes.astype(np.uint8)
    x1, y1, x2, y2 = textured_box(card)
    assert x1 <= 100 and y1 <= 300 and x2 >= 220 and y2 >= 380  # the card is in the box
    assert (x2 - x1) * (y2 - y1) < 0.2 * 640 * 480  # and the table around it is not


# -- the cascade: YuNet proposes over the document's box, RetinaFace confirms in a window around each proposal --


class CountingYuNet(CountingDetector):
    """The real YuNet detector (the cascade's proposer), counting its inputs the same way."""

    def __init__(self) -> None:
        self.inner = YuNetDetector(threads=2)
        self.default_threshold = self.inner.default_threshold
        self.name = self.inner.name
        self.pixels = self.calls = self.largest = 0
        self.inputs: list[tuple[int, int]] = []


@pytest.fixture(scope="module")
def cascading():
    detector, proposer = CountingDetector(), CountingYuNet()
    verifier = Verifier(Settings(), detector=detector)
    verifier.finder = FaceFinder(detector, verifier.settings, verifier.recognizer.chip_face_px, verifier.orientation,
                                 portrait_search="cascade", proposer=proposer)
    verifier.finder.warm()
    return verifier, detector, proposer


def _cascade(cascading, data):
    verifier, detector, proposer = cascading
    for d in (detector, proposer):
        d.pixels = d.calls = d.largest = 0
        d.inputs = []
    return verifier.analyze(data, embed=1)


#: the first pass's input over a 4:3 frame (640x480) and the largest window the cascade gives RetinaFace (a turned
#: face's window, 8 face widths at 80 px): with the cascade RetinaFace never sees the document's box at a fine scale
FIRST_PASS_PIXELS = 640 * 480
TURN_WINDOW_PIXELS = 640 * 640


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_the_cascade_finds_a_turned_card_at_its_turn(cascading, fixtures, rotation):
    """A card turned 90/180/270 (no EXIF), portrait 3 % of a 12 MP frame: YuNet proposes it over the card's box,
    RetinaFace confirms it in a window, and it is embedded upright (the same person); RetinaFace never sees more
    than a 640 px input (RetinaFace alone: the card's box at up to full resolution, 0.6 MP here)."""
    verifier, detector, proposer = cascading
    data, _ = _document(fixtures, rotation=rotation)
    analyzed = _cascade(cascading, data)
    assert analyzed.faces and analyzed.rotation == rotation
    comparison = verifier.match_faces(verifier.analyze(fixtures / "obama.jpg", embed=1), analyzed)
    assert comparison.matches and comparison.matches[0].similarity >= 90
    assert proposer.calls >= 1
    assert detector.largest <= TURN_WINDOW_PIXELS and detector.pixels < 2 * SMALL_PASS_PIXELS, detector.pixels


def test_the_cascade_finds_a_2_percent_portrait_not_the_ghost(cascading, fixtures):
    """A portrait 2 % of a 12 MP frame (face about 30 px; about 18 px in YuNet's input): found where the card's
    portrait is, not on the ghost, with RetinaFace given nothing larger than the first pass."""
    _, detector, proposer = cascading
    data, meta = _document(fixtures, fraction=0.02, ghost=True)
    analyzed = _cascade(cascading, data)
    assert analyzed.faces and proposer.calls >= 1
    face = analyzed.largest
    fw, fh = meta["frame"]
    cx = (face.bounding_box.left + face.bounding_box.width / 2) * fw
    cy = (face.bounding_box.top + face.bounding_box.height / 2) * fh
    px, py, pw, ph = meta["portrait_box"]
    assert px <= cx <= px + pw and py <= cy <= py + ph
    gx, gy, gw, gh = meta["ghost_box"]
    assert not (gx <= cx <= gx + gw and gy <= cy <= gy + gh)
    assert detector.largest <= FIRST_PASS_PIXELS, detector.largest


@pytest.mark.parametrize("rotation", [0, 180])
def test_the_cascade_gives_the_portrait_and_its_ghost_on_a_small_card(cascading, rotation):
    """examples/id_card.jpg at half size in a 3600x3600 frame (portrait about 95 px, its faint ghost about 40 px;
    too small for the 640 px pass), turned in its pixels: YuNet proposes both, RetinaFace confirms both, the
    portrait the largest. (At 90 and 270 neither search finds the ghost: the portrait only.)"""
    analyzed = _cascade(cascading, _turned_id_card(rotation, half=True))
    _assert_portrait_and_ghost(analyzed, rotation, (85, 115))
    assert cascading[1].largest <= TURN_WINDOW_PIXELS


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_the_cascade_gives_the_ghosted_card_s_portrait_and_ghost_at_every_turn(cascading, rotation):
    """examples/id_card.jpg turned in its pixels (no EXIF), with the cascade: both faces at every turn, the
    portrait the largest; the ghost is found by YuNet over the small-face window and confirmed by RetinaFace in a
    window of its own, while RetinaFace looks at the portrait only in a window 4 face widths wide."""
    analyzed = _cascade(cascading, _turned_id_card(rotation))
    _assert_portrait_and_ghost(analyzed, rotation, (170, 210))
    assert cascading[2].calls >= 1


def test_the_cascade_completes_a_small_face_with_a_landmark_window_and_yunet_beside_it(cascading, fixtures):
    """The 1280x960 photo that the card fills (face about 100 px, 50 px at the first pass), with the cascade: the
    small-face window 8 face heights wide is searched by YuNet at 0.6 of its scale (the face about 48 px), and
    RetinaFace gets only the first pass, a window 4 face widths wide with the face at about 80 px, and the
    orientation check's crops: about 0.5 MP in all, against 1.1 MP with RetinaFace over the whole window
    (test_a_card_filling_a_1mp_frame_gets_a_window_scaled_to_its_face). The same person is found."""
    rng = np.random.default_rng(13)
    face = Image.open(fixtures / "obama.jpg").convert("RGB")
    card, info = render_card(face, rng, width=1200, ghost=True, face_box=(200, 80, 440, 380))
    data, _ = photograph(card, info, rng, PhotoConditions(portrait_fraction=0.22, tilt=0.05, glare=0.1,
                                                          jpeg_quality=85, frame=(1280, 960)))
    verifier, detector, proposer = cascading
    analyzed = _cascade(cascading, data)
    assert len(analyzed.faces) == 1 and 80 < analyzed.faces[0].width_px < 120
    landmark_window = (4 * 1.35 * 82) ** 2  # 4 face heights, the face 80 px wide
    wide_window = (8 * 1.35 * 82 * 0.6) ** 2  # the small-face window, YuNet's scale
    assert detector.inputs[1][0] * detector.inputs[1][1] <= landmark_window, detector.inputs
    assert proposer.calls == 1 and proposer.largest <= wide_window, proposer.inputs
    assert detector.pixels <= 640 * 480 + landmark_window + 4 * 225 * 200, detector.inputs
    comparison = verifier.match_faces(verifier.analyze(fixtures / "obama.jpg", embed=1), analyzed)
    assert comparison.matches and comparison.matches[0].similarity >= 90


def test_the_cascade_proposes_nothing_on_a_blank_8000px_png(cascading):
    """A flat image: the first pass only; YuNet is never run."""
    buffer = io.BytesIO()
    Image.new("RGB", (8000, 8000), (250, 250, 250)).save(buffer, "PNG")
    analyzed = _cascade(cascading, buffer.getvalue())
    _, detector, proposer = cascading
    assert analyzed.faces == [] and proposer.calls == 0 and detector.pixels <= 640 * 640


def test_an_unknown_portrait_search_is_a_configuration_error(verifier):
    with pytest.raises(ConfigurationError, match="FACECOMPARE_PORTRAIT_SEARCH"):
        FaceFinder(verifier.detector, verifier.settings, verifier.recognizer.chip_face_px, portrait_search="yunet")
    assert chosen_portrait_search(verifier.settings, "cascade") == "cascade"


def test_the_portrait_search_setting_is_checked_and_reaches_the_finder():
    """FACECOMPARE_PORTRAIT_SEARCH is a Settings field: refused like the others when it names no search, and the
    engine's finder runs the one it names."""
    from facecompare.engine import Verifier
    from facecompare.errors import InvalidParameterException
    from facecompare.settings import Settings

    with pytest.raises(InvalidParameterException, match="FACECOMPARE_PORTRAIT_SEARCH"):
        Settings.from_env({"FACECOMPARE_PORTRAIT_SEARCH": "yunet"})
    assert Settings.from_env({}).portrait_search == "cascade"
    chosen = Settings.from_env({"FACECOMPARE_PORTRAIT_SEARCH": "cascade"})
    assert Verifier(chosen).finder.portrait_search == "cascade"


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_turned_cards_chips_are_the_ones_the_whole_turned_view_gives_and_it_is_never_turned(verifier, fixtures,
                                                                                            rotation):
    """On a card turned 90/180/270 the orientation check's crop and the chips are cut from the upright decode and
    only that region turned (a 12 MP view costs 60-250 ms to turn): the recognizer's chip and the quality chip
    are pixel for pixel the ones the whole turned view gives, and no turned full-size view is ever made."""
    from facecompare.images import load_image
    from facecompare.models import alignment

    data, _ = _document(fixtures, rotation=rotation, fraction=0.04)
    decoded = load_image(data)
    found = verifier.finder.find(decoded)
    assert found.rotation == rotation and found.detections
    describer = verifier.describer
    for det in found.detections:
        region, scale, origin = describer.chip_region(decoded, found.rotation, det)
        reduction = decoded.reduction_for(verifier.recognizer.chip_face_px, det.width, finer_if_cached=True)
        assert not decoded.has_view(reduction, rotation)  # nothing turned the whole image
        whole = np.ascontiguousarray(np.rot90(decoded.view(reduction, 0), k=-(rotation // 90)))
        assert whole.shape[1] * scale == pytest.approx(decoded.height if rotation in (90, 270) else decoded.width)
        chip = describer.chip(decoded, found.rotation, det)
        assert np.array_equal(chip, verifier.recognizer.align(whole, det.box / scale, det.landmarks / scale))
        assert np.array_equal(alignment.align(region, det.landmarks / scale - origin, 150),
                              alignment.align(whole, det.landmarks / scale, 150))
    assert not any(decoded.has_view(r, rotation) for r in (1, 2, 4, 8))


def _grayscale_face_on_a_textured_frame(fixtures, face_px: int) -> bytes:
    """A 4000x3000 frame textured all over (so the box where a portrait can be is the whole frame) with a
    grayscale LFW photo pasted so that its face is about ``face_px`` wide: the box pass sees it at 0.4 (too small
    for either detector) and the last resort, bounded at 6 MP, at 0.7."""
    from PIL import ImageOps

    rng = np.random.default_rng(0)
    canvas = Image.fromarray(rng.integers(88, 168, (750, 1000, 3), dtype=np.uint8)).resize((4000, 3000),
                                                                                         Image.Resampling.BILINEAR)
    face = ImageOps.grayscale(Image.open(fixtures / "Colin_Powell_0001.jpg")).convert("RGB")
    side = round(250 * face_px / 100)  # the LFW photo is 250 px, its face about 100 px
    canvas.paste(face.resize((side, side), Image.Resampling.LANCZOS), (2200, 1400))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def test_the_cascades_last_resort_finds_a_small_grayscale_face_that_retinaface_alone_does_not(
        cascading, counting, fixtures):
    """A 35 px grayscale face on a frame textured all over: at the last resort's 6 MP bound it is about 25 px,
    which YuNet proposes and RetinaFace alone does not see; RetinaFace confirms it in a window (never more than
    the bounded pixels), and it is the same person. RetinaFace alone, the same frame: no face."""
    data = _grayscale_face_on_a_textured_frame(fixtures, 40)
    verifier, detector, proposer = cascading
    analyzed = _cascade(cascading, data)
    assert len(analyzed.faces) == 1 and 28 < analyzed.largest.width_px < 45, analyzed.faces
    selfie = verifier.analyze(fixtures / "Colin_Powell_0002.jpg", embed=1)
    comparison = verifier.match_faces(selfie, analyzed)
    assert comparison.matches and comparison.matches[0].similarity >= 90
    assert proposer.largest <= verifier.settings.max_detection_pixels
    assert detector.largest <= verifier.settings.max_detection_pixels
    alone, _ = _analyze(counting, data)
    assert alone.faces == []
