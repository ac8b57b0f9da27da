"""fp16 and int8 artifacts: the converter settings we rely on, and accuracy on a small model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from kdcompress.bench import BACKENDS
from kdcompress.export import check_parity, to_onnx
from kdcompress.export.fp16 import to_fp16
from kdcompress.export.int8 import Int8Scheme, choose_scheme, resolve_scheme, to_int8
from tests.conftest import SIDE, make_images


@pytest.fixture(scope="module")
def tiny_onnx(tiny_module, tmp_path_factory):
    path = tmp_path_factory.mktemp("prec") / "tiny.onnx"
    to_onnx(tiny_module, torch.zeros(1, 1, SIDE, SIDE), path)
    return path


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    x_cal, _ = make_images(128, rng)
    x_test, y_test = make_images(400, rng)
    scale = lambda x: (x.astype(np.float32) / 255.0)  # noqa: E731 — the tiny teacher takes x/255
    return scale(x_cal), scale(x_test), y_test


def _accuracy(path, x, y) -> float:
    return 100.0 * float(np.mean(BACKENDS["onnxruntime-cpu"](path).infer(x).argmax(1) == y))


@pytest.mark.parametrize(("machine", "flags", "expect"), [
    ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, ("u8s8", False)),
    ("x86_64", {"avx2", "avx_vnni"}, ("u8s8", False)),
    ("x86_64", {"avx2", "fma"}, ("u8s8", True)),  # AVX2 without VNNI: vpmaddubsw saturates without reduce_range
    ("x86_64", set(), ("u8s8", True)),
    ("aarch64", set(), ("s8s8", False)),
])
def test_scheme_follows_the_instruction_set(machine, flags, expect):
    s = choose_scheme("cpu", machine, flags)
    assert (s.scheme, s.reduce_range) == expect and not s.symmetric_activations and s.reason


def test_gpu_scheme_is_symmetric_and_profile_overrides_win():
    gpu = choose_scheme("cuda")
    assert (gpu.scheme, gpu.reduce_range, gpu.symmetric_activations) == ("s8s8", False, True)
    forced = resolve_scheme("cpu", "s8s8", True)
    assert (forced.scheme, forced.reduce_range) == ("s8s8", True) and "profile" in forced.reason
    assert resolve_scheme("cpu") == choose_scheme("cpu")


def _initializers(path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


@pytest.mark.parametrize("scheme", [Int8Scheme("u8s8", False, False, "test"), Int8Scheme("s8s8", True, True, "test")])
def test_int8_qdq_keeps_accuracy_and_uses_the_chosen_types(tiny_onnx, images, tmp_path, scheme):
    x_cal, x_test, y_test = images
    out = tmp_path / "q.onnx"
    record = to_int8(tiny_onnx, out, x_cal, scheme, "minmax")
    assert record["calibration_samples"] == len(x_cal) and record["per_channel"]
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 3 and ops.count("DequantizeLinear") >= 6  # QDQ format, not QOperator
    inits = _initializers(out)
    # activation zero points: uint8 for U8S8, int8 and exactly 0 for symmetric S8S8
    act_zp = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    want = np.uint8 if scheme.scheme == "u8s8" else np.int8
    assert all(z.dtype == want for z in act_zp)
    if scheme.symmetric_activations:
        assert all(int(z) == 0 for z in act_zp)
    # weights: int8, per channel (one scale per output channel), 7-bit with reduce_range
    weights = [w for w in inits.values() if w.dtype == np.int8 and w.ndim == 4]
    assert weights and all(w.shape[0] > 1 for w in weights)
    w_scales = [inits[n.input[1]] for n in model.graph.node
                if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
                and inits[n.input[0]].ndim == 4]
    assert all(s.ndim == 1 and s.size > 1 for s in w_scales)
    lim = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    assert lim <= 64 if scheme.reduce_range else lim > 64
    fp32, int8 = _accuracy(tiny_onnx, x_test, y_test), _accuracy(out, x_test, y_test)
    assert fp32 > 60 and int8 >= fp32 - 3.0


def test_int8_needs_calibration_images(tiny_onnx, tmp_path):
    from kdcompress.errors import KDCompressError

    with pytest.raises(KDCompressError, match="calibration"):
        to_int8(tiny_onnx, tmp_path / "q.onnx", np.zeros((0, 1, SIDE, SIDE), np.float32), choose_scheme("cpu"))
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_fp16_keeps_float_io_and_passes_its_own_tolerance(tiny_onnx, images, tmp_path):
    _, x_test, _ = images
    out = tmp_path / "h.onnx"
    record = to_fp16(tiny_onnx, out)
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    assert record["keep_io_types"]
    ref = BACKENDS["onnxruntime-cpu"](tiny_onnx).infer(x_test)
    half = BACKENDS["onnxruntime-cpu"](out).infer(x_test)
    report = check_parity(ref, half, "fp16")
    assert report.passed and report.max_abs_diff > 0  # really computed in half precision, within tolerance
