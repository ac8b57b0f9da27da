"""int8 post-training static quantization with onnxruntime, QDQ format (DESIGN §6).

Every argument of ``quantize_static`` is passed explicitly: its defaults changed across onnxruntime releases (the
activation type went from QUInt8 to QInt8, the format from QOperator to QDQ), so a run must not depend on the
installed version's choice. ``quant_pre_process`` (symbolic shape inference + graph optimisation) runs first, as
the onnxruntime docs ask.

Which types are fast and accurate depends on the processor (onnxruntime's "Data type selection" notes; measured on
our kind of models, see issue 8):

- x86-64 with VNNI (AVX-512 VNNI, AVX-VNNI, AMX): uint8 activations × int8 weights (U8S8) run on the VNNI dot
  product without saturation; ``reduce_range`` would only cost accuracy.
- x86-64 with AVX2 / AVX-512 but no VNNI: U8S8 runs on ``vpmaddubsw``, whose 16-bit intermediate sums can saturate;
  7-bit weights (``reduce_range=True``) avoid it (the shipped teacher lost 1.26 points without, 0.02 with).
- Arm64: S8S8 (the sdot instruction), full range.
- GPU targets (TensorRT, onnxruntime CUDA): TensorRT takes only symmetric int8, so S8S8 with zero points 0.
"""

from __future__ import annotations

import contextlib
import io
import logging
import platform
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from kdcompress.errors import KDCompressError
from kdcompress.run import atomic_path

Scheme = Literal["u8s8", "s8s8", "u8u8"]


@dataclass(frozen=True)
class Int8Scheme:
    """The quantization types chosen for this machine/target, and why (shown in the run and stored with it)."""

    scheme: Scheme
    reduce_range: bool
    symmetric_activations: bool
    reason: str

    def to_json(self) -> dict:
        return asdict(self)


def cpu_flags() -> set[str]:
    """The x86 feature flags of this CPU (empty where /proc/cpuinfo has none, e.g. on Arm or macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def choose_scheme(device: str = "cpu", machine: str | None = None, flags: set[str] | None = None) -> Int8Scheme:
    """Pick activation/weight types and ``reduce_range`` for ``device`` from the CPU's instruction set."""
    if device == "cuda":
        return Int8Scheme("s8s8", False, True, "GPU target: TensorRT takes symmetric int8 only (S8S8, zero point 0)")
    machine = (machine or platform.machine()).lower()
    if machine in ("aarch64", "arm64"):
        return Int8Scheme("s8s8", False, False, f"{machine}: S8S8 on the sdot instruction")
    flags = cpu_flags() if flags is None else flags
    vnni = [f for f in VNNI_FLAGS if f in flags]
    if vnni:
        return Int8Scheme("u8s8", False, False, f"x86-64 with {vnni[0]}: U8S8 on VNNI, no saturation")
    if "avx2" in flags or "avx512f" in flags:
        return Int8Scheme("u8s8", True, False,
                          "x86-64 with AVX2/AVX-512 but no VNNI: U8S8 with 7-bit weights (reduce_range) to avoid "
                          "vpmaddubsw saturation")
    return Int8Scheme("u8s8", True, False, f"{machine} without AVX2 or VNNI: U8S8 with reduce_range (safe default)")


def resolve_scheme(device: str, scheme: str = "auto", reduce_range: bool | None = None) -> Int8Scheme:
    """The profile's choice (``export.int8_scheme``/``export.reduce_range``) over the automatic one."""
    auto = choose_scheme(device)
    if scheme == "auto" and reduce_range is None:
        return auto
    if device == "cuda" and scheme not in ("auto", "s8s8"):
        raise KDCompressError(f"export.int8_scheme {scheme} on a GPU target: TensorRT takes symmetric int8 only",
                              "use export.int8_scheme: s8s8 (or auto)")
    chosen = auto.scheme if scheme == "auto" else scheme
    rr = auto.reduce_range if reduce_range is None else reduce_range
    return Int8Scheme(chosen, rr, chosen == "s8s8" and device == "cuda",  # type: ignore[arg-type]
                      f"set in the profile (automatic choice here: {auto.scheme}, reduce_range {auto.reduce_range})")


class _ArrayReader:
    """onnxruntime CalibrationDataReader over a float32 NCHW array, in mini-batches."""

    def __init__(self, input_name: str, x: np.ndarray, batch: int = 32) -> None:
        self.input_name = input_name
        self.batches = [x[i : i + batch] for i in range(0, len(x), batch)]
        self.i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {self.input_name: np.ascontiguousarray(self.batches[self.i - 1], dtype=np.float32)}

    def rewind(self) -> None:
        self.i = 0


@contextlib.contextmanager
def _quiet():
    """onnxruntime's quantizer logs every skipped node at INFO/WARNING; the CLI shows our own summary instead."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _extra_options(scheme: Int8Scheme) -> dict:
    """quantize_static's extra options. For TensorRT (symmetric scheme): a Q/DQ pair per consumer and float biases,
    the QDQ form TensorRT's ONNX parser fuses (onnxruntime's qdq_quantizer notes TensorRT needs dedicated pairs)."""
    options = {"ActivationSymmetric": scheme.symmetric_activations, "WeightSymmetric": True}
    if scheme.symmetric_activations:
        options.update({"DedicatedQDQPair": True, "QuantizeBias": False})
    return options


def to_int8(src: Path, dst: Path, calibration: np.ndarray, scheme: Int8Scheme, method: str = "minmax",
            per_channel: bool = True) -> dict:
    """Quantize the float ONNX ``src`` into a QDQ ``dst`` (atomically), calibrated on ``calibration`` (float32
    NCHW, preprocessed like the model's input). Returns the record stored beside the artifact."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0:
        raise KDCompressError("int8 calibration needs training images, got none")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    qtype = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    input_name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_optimization=False, skip_onnx_shape=False,
                          skip_symbolic_shape=False, auto_merge=False, save_as_external_data=False)
        with atomic_path(dst) as out:
            quantize_static(
                model_input=str(pre), model_output=str(out),
                calibration_data_reader=_ArrayReader(input_name, calibration),
                quant_format=QuantFormat.QDQ, op_types_to_quantize=None, per_channel=per_channel,
                reduce_range=scheme.reduce_range,
                activation_type=qtype[scheme.scheme[:2]], weight_type=qtype[scheme.scheme[2:]],
                nodes_to_quantize=None, nodes_to_exclude=None, use_external_data_format=False,
                calibrate_method=methods[method], calibration_providers=["CPUExecutionProvider"],
                extra_options=_extra_options(scheme),
                calibration_cache_path=None,
            )
            onnx.checker.check_model(str(out))
    return {"scheme": scheme.to_json(), "calibration_method": method, "calibration_samples": len(calibration),
            "per_channel": per_channel, "format": "QDQ"}
