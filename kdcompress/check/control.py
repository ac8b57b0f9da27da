"""The control model of the regression gate: a small fixed ONNX network, timed interleaved with the candidate so
that the candidate/control ratio cancels how fast the machine happens to be right now (DESIGN §7).

Built with ``onnx.helper`` from seeded numpy weights — no exporter in between — so every version of kdcompress,
torch and onnx makes the same bytes, and a baseline can name its control by hash.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

CONTROL_VERSION = "control-v1"
_WIDTH = 16
_CLASSES = 10


def control_model_bytes(input_shape: tuple[int, ...]) -> bytes:
    """Serialized control for per-sample ``input_shape``: (C, H, W) → conv3x3-relu ×2, global pool, linear; any
    other shape → flatten, two linear layers. Dynamic batch, float32, opset 17."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(20231)  # fixed: the control is the same model everywhere

    def init(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        fan_in = int(np.prod(shape[1:])) or 1
        w = rng.standard_normal(shape).astype(np.float32) / np.float32(np.sqrt(fan_in))
        return numpy_helper.from_array(w, name)

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *input_shape])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", _CLASSES])
    if len(input_shape) == 3:
        c = input_shape[0]
        inits = [init("w1", (_WIDTH, c, 3, 3)), init("b1", (_WIDTH,)), init("w2", (_WIDTH, _WIDTH, 3, 3)),
                 init("b2", (_WIDTH,)), init("fc", (_WIDTH, _CLASSES)), init("fcb", (_CLASSES,))]
        nodes = [
            helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Relu", ["c2"], ["r2"]),
            helper.make_node("GlobalAveragePool", ["r2"], ["gp"]),
            helper.make_node("Flatten", ["gp"], ["flat"]),
            helper.make_node("Gemm", ["flat", "fc", "fcb"], ["logits"]),
        ]
    else:
        n = int(np.prod(input_shape))
        inits = [init("w1", (n, 64)), init("b1", (64,)), init("fc", (64, _CLASSES)), init("fcb", (_CLASSES,))]
        nodes = [
            helper.make_node("Flatten", ["input"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w1", "b1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Gemm", ["r", "fc", "fcb"], ["logits"]),
        ]
    graph = helper.make_graph(nodes, CONTROL_VERSION, [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="kdcompress",
                              producer_version=CONTROL_VERSION, ir_version=8)
    return model.SerializeToString(deterministic=True)


def write_control(input_shape: tuple[int, ...], path: Path) -> str:
    """Write the control for ``input_shape`` to ``path``; returns its sha256."""
    data = control_model_bytes(input_shape)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()
