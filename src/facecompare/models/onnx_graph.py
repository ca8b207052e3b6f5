"""Preparation of ONNX graphs for onnxruntime: done once, offline, for the models that ship (``scripts/
prepare_weights.py`` writes the prepared files beside the originals, and they are what loads at run time, so a
process never imports ``onnx``, 1.3 s at every start); done in memory at load time for a user's own model
(``onnx:PATH``), when the ``onnx`` package is installed (``facecompare[onnx]``).

Two fixes that quantised and older exports need:

- **Unused graph inputs.** Some exports list their weights as graph inputs as well (SFace lists 29 names of its
  old float32 weights that nothing reads); onnxruntime then demands a value for each. Inputs that are
  initializers or that no node reads are dropped from the input list.
- **Weight-only int8 quantisation.** ``DequantizeLinear`` nodes whose inputs are all constants (block-quantised
  weights, their scales and zero points) are evaluated once here and replaced by float32 initializers. The
  outputs are the same to about 1e-6, and the graph runs at float speed: for SFace 88 -> 19 ms per face on this
  CPU, because onnxruntime otherwise dequantises every weight on every run.

And one rewrite for speed:

- **PRelu** ``y = x if x > 0 else a * x`` becomes ``Relu(x) + a * Min(x, 0)``: the same values (``x + 0`` and
  ``0 + a * x``; only a zero's sign may differ, 0 for -0, which no later convolution or sum can tell). onnxruntime
  1.32 runs the four element-wise kernels in about a third of the time of its broadcasting PRelu kernel (and a
  layer whose slopes are all at most 1, and none 0, is ``Max(x, a * x)``: two kernels). In
  SFace, PRelu after each of its 27 convolutions took 17 of the 27 ms of a face on one thread; split, a face
  takes 1.8x less (``benchmarks/bench_prelu.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from ..heap import release_freed_memory
from .cpu import spare_core


def prepare(model_bytes: bytes, *, split: bool = True) -> bytes:
    """The serialized model with constant ``DequantizeLinear`` nodes folded, unused inputs dropped and (with
    ``split``) each PRelu of a constant slope split (:func:`split_prelu`)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    folded = []
    for node in list(graph.node):
        if node.op_type != "DequantizeLinear" or node.domain not in ("", "ai.onnx"):
            continue
        if not all(name in constants for name in node.input if name):
            continue
        arrays = [numpy_helper.to_array(constants[name]) for name in node.input if name]
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        value = dequantize(*arrays, axis=int(attributes.get("axis", 1)),
                           block_size=int(attributes.get("block_size", 0)))
        tensor = numpy_helper.from_array(value.astype(np.float32), name=node.output[0])
        graph.initializer.append(tensor)
        constants[node.output[0]] = tensor
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    # initializers nothing reads any more (the int8 copies) go too
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    initializer_names = {i.name for i in graph.initializer}
    for graph_input in [i for i in graph.input if i.name in initializer_names or i.name not in used]:
        graph.input.remove(graph_input)
    if split:
        split_prelu(graph)
    return model.SerializeToString()


def split_prelu(graph) -> int:
    """Replace, in place, each ``PRelu(x, slope)`` of an ``onnx`` graph by ``Relu(x) + Mul(Min(x, 0), slope)``
    (the same values, faster on onnxruntime's CPU kernels; see the module's docstring), or by the cheaper
    ``Max(x, Mul(x, slope))`` when every slope is at most 1 and none is 0 (then ``a x <= x`` for ``x > 0`` and
    ``a x >= x`` below, rounding included; 25 of SFace's 27 layers). Returns how many.
    A PRelu whose slope is computed at run time is left as it is."""
    import onnx
    from onnx import numpy_helper

    constants = {init.name: init for init in graph.initializer}
    taken = ({i.name for i in graph.initializer} | {i.name for i in graph.input} | {o.name for o in graph.output}
             | {name for node in graph.node for name in (*node.input, *node.output, node.name)})
    nodes, count, zeros = [], 0, {}
    for node in graph.node:
        x, slope = (list(node.input) + ["", ""])[:2]
        if node.op_type != "PRelu" or node.domain not in ("", "ai.onnx") or slope not in constants:
            nodes.append(node)  # a slope computed at run time: its element type is not known here
            continue
        slopes = numpy_helper.to_array(constants[slope])
        out = node.output[0]
        stem = _unused_name(taken, f"{out}_prelu_split")
        make = onnx.helper.make_node
        count += 1
        if slopes.size and np.all(slopes <= 1) and np.all(slopes != 0):  # max(x, a x) is x for x > 0, a x below
            nodes += [make("Mul", [x, slope], [f"{stem}_scaled"], name=f"{stem}_mul"),
                      make("Max", [x, f"{stem}_scaled"], [out], name=f"{stem}_max")]
            continue
        if slopes.dtype not in zeros:  # x has the slope's element type (PRelu's constraint)
            zeros[slopes.dtype] = _unused_name(taken, f"prelu_split_zero_{slopes.dtype}")
            graph.initializer.append(numpy_helper.from_array(np.zeros((), slopes.dtype), zeros[slopes.dtype]))
        zero = zeros[slopes.dtype]
        nodes += [make("Relu", [x], [f"{stem}_positive"], name=f"{stem}_relu"),
                  make("Min", [x, zero], [f"{stem}_negative"], name=f"{stem}_min"),
                  make("Mul", [f"{stem}_negative", slope], [f"{stem}_scaled"], name=f"{stem}_mul"),
                  make("Add", [f"{stem}_positive", f"{stem}_scaled"], [out], name=f"{stem}_add")]
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
    return count


def _unused_name(taken: set[str], stem: str) -> str:
    """``stem``, or ``stem_N``, whichever is not in ``taken`` (the graph's names so far); added to it."""
    name, n = stem, 0
    while name in taken:
        n += 1
        name = f"{stem}_{n}"
    taken.add(name)
    return name


def symbolic_image_size(model_bytes: bytes) -> bytes:
    """The serialized model with its image input's height and width (and its outputs' cell count) symbolic,
    for a detector exported at one input size whose graph reshapes with -1 (YuNet: any multiple of 32 runs)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "cells"
    del model.graph.value_info[:]
    return model.SerializeToString()


def have_onnx() -> bool:
    """Whether the ``onnx`` package (``facecompare[onnx]``) can be imported, without importing it."""
    import importlib.util

    return importlib.util.find_spec("onnx") is not None


def dequantize(quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None, *,
               axis: int = 1, block_size: int = 0) -> np.ndarray:
    """ONNX ``DequantizeLinear``: per-tensor, per-axis, or blocked along ``axis`` (opset 21)."""
    q = quantized.astype(np.float32)
    scale = scale.astype(np.float32)
    zero = np.zeros_like(scale) if zero_point is None else zero_point.astype(np.float32)
    if scale.ndim == 0 or scale.size == 1:
        return (q - zero.reshape(())) * scale.reshape(())
    axis = axis % q.ndim
    if block_size:
        # split ``axis`` into (blocks, block_size) and broadcast one scale over each block
        n = q.shape[axis]
        blocks = scale.shape[axis]
        pad = [(0, 0)] * q.ndim
        pad[axis] = (0, blocks * block_size - n)
        split = q.shape[:axis] + (blocks, block_size) + q.shape[axis + 1:]
        per_block = scale.shape[:axis] + (blocks, 1) + scale.shape[axis + 1:]
        blocked = np.pad(q, pad).reshape(split)
        out = (blocked - zero.reshape(per_block)) * scale.reshape(per_block)
        out = out.reshape(q.shape[:axis] + (blocks * block_size,) + q.shape[axis + 1:])
        return np.take(out, np.arange(n), axis=axis) if blocks * block_size != n else out
    shape = [1] * q.ndim
    shape[axis] = -1
    return (q - zero.reshape(shape)) * scale.reshape(shape)


def session(model_bytes: bytes, threads: int):
    """An onnxruntime CPU session with the options every model here uses."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # idle threads sleep instead of spinning: with several images or requests at once, spinning threads take
    # the cores the others need
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # no memory arena: it keeps the peak of the largest input ever seen (a 1600 px detection pass) for the life
    # of the process; without it a 12 MP comparison peaks at about 400 MB instead of 550 MB, at the same speed
    # (benchmarks/bench_compare.py)
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])


#: with automatic threads (``threads=0``), a detector input of at least this many pixels (the 1600 px passes, the
#: last resort) runs on two intra-op threads and a smaller one on one: small inputs spend 20-28 % more CPU on two
#: threads for little wall time, while a 6 MP pass of an image analysed alone takes 1.4x as long on one
LARGE_INPUT_PIXELS = 1_500_000
#: ... and, while a core is spare (:func:`.cpu.spare_core`), an input of at least this many pixels. Two threads
#: against one ran RetinaFace / YuNet 0.83x / 0.61x as fast at 96x96 (waking the second thread costs more than it
#: saves), 0.97x / 0.66x at 160x160, 1.05x / 0.95x at 224x224, 1.58x / 1.11x at 320x320, 1.62x / 1.33x at 640x640
#: (``benchmarks/bench_model_threads.py``, ``benchmarks/results/model-threads.json``)
SPARE_CORE_MIN_PIXELS = 100_000


class DetectorSessions:
    """A detector's onnxruntime sessions: ``threads`` intra-op threads for every input or, with ``threads=0``, two
    for inputs of LARGE_INPUT_PIXELS or more, and for those of SPARE_CORE_MIN_PIXELS or more while a core is spare
    (:func:`.cpu.spare_core`: the other image of a pair is done), else one (each session created on first use).
    Thread-safe."""

    def __init__(self, model_bytes: Callable[[], bytes], threads: int) -> None:
        self._model_bytes = model_bytes
        self._threads = threads
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the session that small inputs take under load (the other is loaded on first use)."""
        self._session(self._threads or 1)

    def for_pixels(self, pixels: int):
        """The session for an input of ``pixels`` pixels (loaded on first use)."""
        if self._threads:
            return self._session(self._threads)
        two = pixels >= LARGE_INPUT_PIXELS or (pixels >= SPARE_CORE_MIN_PIXELS and spare_core())
        return self._session(2 if two else 1)

    def _session(self, threads: int):
        with self._lock:
            loaded = self._sessions.get(threads)
            if loaded is None:
                loaded = self._sessions[threads] = session(self._model_bytes(), threads)
                release_freed_memory()
            return loaded
