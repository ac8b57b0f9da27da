"""Runtimes behind one interface (Polygraphy-style runners), imported lazily so the CLI works without them.

A runner is built from an artifact path and runs a float32 NCHW numpy batch to logits. :data:`BACKENDS` maps a
backend name to its factory; :func:`backend_status` says which are usable here and why not.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from kdcompress.errors import KDCompressError


class Runner(Protocol):
    name: str

    def infer(self, x: np.ndarray) -> np.ndarray: ...

    def sync(self) -> None: ...


class OrtRunner:
    """onnxruntime InferenceSession on one execution provider."""

    def __init__(self, artifact: Path | bytes, provider: str = "CPUExecutionProvider", threads: int = 1) -> None:
        import onnxruntime as ort

        if provider not in ort.get_available_providers():
            raise KDCompressError(f"onnxruntime has no {provider} here", "install onnxruntime-gpu (extra 'gpu')")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        src = artifact if isinstance(artifact, bytes) else str(artifact)
        try:
            self.session = ort.InferenceSession(src, so, providers=[provider])
        except Exception as e:  # noqa: BLE001 — onnxruntime raises several unrelated types for a bad model file
            raise KDCompressError(f"onnxruntime cannot load {artifact if not isinstance(artifact, bytes) else 'model'}"
                                  f" ({str(e).splitlines()[0][:200]})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.name = f"onnxruntime-{'cpu' if provider.startswith('CPU') else provider.removesuffix('ExecutionProvider').lower()}"

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def sync(self) -> None:  # session.run is synchronous
        pass


def _ort_cpu(artifact: Path | bytes, threads: int = 1) -> Runner:
    return OrtRunner(artifact, "CPUExecutionProvider", threads)


def _ort_cuda(artifact: Path | bytes, threads: int = 1) -> Runner:
    return OrtRunner(artifact, "CUDAExecutionProvider", threads)


BACKENDS: dict[str, Callable[..., Runner]] = {
    "onnxruntime-cpu": _ort_cpu,
    "onnxruntime-cuda": _ort_cuda,
}


def backend_status() -> dict[str, str]:
    """Each known backend or extra -> 'available' or the one-line reason it is not."""
    status: dict[str, str] = {}
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        status["onnxruntime-cpu"] = f"available (onnxruntime {ort.__version__})"
        status["onnxruntime-cuda"] = (
            "available" if "CUDAExecutionProvider" in providers else "unavailable: install onnxruntime-gpu (extra 'gpu')"
        )
    except ImportError:
        status["onnxruntime-cpu"] = status["onnxruntime-cuda"] = "unavailable: pip install onnxruntime"
    status["tensorrt"] = (
        "unavailable: TensorRT is installed, but kdcompress has no TensorRT runner yet"
        if importlib.util.find_spec("tensorrt") else "unavailable: TensorRT is not installed (extra 'gpu')"
    )
    import torch

    status["cuda"] = f"available ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "unavailable: no CUDA device"
    status["optimum"] = "available" if importlib.util.find_spec("optimum") else "unavailable: pip install 'kdcompress[hf]'"
    return status


def resolve_backend(device: str, backend: str, strict: bool = False) -> tuple[str, str | None]:
    """Map a profile's target to a usable backend name; return it and a one-line note when it had to fall back."""
    wanted = "onnxruntime-cuda" if (device == "cuda" and backend == "onnxruntime") else (
        "onnxruntime-cpu" if backend == "onnxruntime" else backend
    )
    status = backend_status()
    if wanted in BACKENDS and status.get(wanted, "").startswith("available"):
        return wanted, None
    reason = status.get(wanted, "unavailable")
    if wanted not in BACKENDS:
        reason = f"unavailable: kdcompress has no {wanted} runner yet"
    why = reason.removeprefix("unavailable: ")
    if strict:
        raise KDCompressError(f"target backend {wanted} unavailable ({why})",
                              "drop --strict-target to measure on onnxruntime-cpu")
    return "onnxruntime-cpu", f"target backend {wanted} unavailable ({why}); measuring on onnxruntime-cpu"
