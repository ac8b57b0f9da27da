"""Backends behind one interface: what each runs, what it needs, and whether it is usable here (DESIGN §6–7).

:data:`BACKENDS` maps a backend name to a :class:`Backend` (a runner factory plus the artifact format it takes);
:func:`backend_status` says which are usable here and why not; :func:`resolve_backend` maps a profile's target to
the backend a run measures on, falling back with one line when the target's is missing.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kdcompress.bench.runners import OrtRunner, Runner, TensorRTRunner, aoti_runner
from kdcompress.errors import KDCompressError
from kdcompress.registry import Registry


@dataclass(frozen=True)
class Backend:
    name: str
    format: str  # onnx | engine | aoti: the artifact it runs
    device: str  # cpu | cuda
    needs: str  # what must be installed, in words (doctor)
    factory: Callable[..., Runner]

    def __call__(self, artifact: Path | bytes, threads: int = 1) -> Runner:
        return self.factory(artifact, threads)


def _ort_trt_options(artifact: Path | bytes) -> dict[str, str]:
    """TensorRT EP: engines and timing cache kept beside the artifact, so a second session does not rebuild."""
    if isinstance(artifact, bytes):
        return {}
    cache = str(Path(artifact).parent / "ort_trt_cache")
    return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": cache, "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": cache}


BACKENDS: Registry[Backend] = Registry("backend", {b.name: b for b in (
    Backend("onnxruntime-cpu", "onnx", "cpu", "onnxruntime",
            lambda a, threads=1: OrtRunner(a, "cpu", threads)),
    Backend("onnxruntime-cuda", "onnx", "cuda", "onnxruntime-gpu (extra 'gpu') and a CUDA GPU",
            lambda a, threads=1: OrtRunner(a, "cuda", threads)),
    Backend("onnxruntime-tensorrt", "onnx", "cuda", "onnxruntime-gpu built with TensorRT, TensorRT, a CUDA GPU",
            lambda a, threads=1: OrtRunner(a, "tensorrt", threads, _ort_trt_options(a))),
    Backend("tensorrt", "engine", "cuda", "the tensorrt Python package and a CUDA GPU",
            lambda a, threads=1: TensorRTRunner(Path(a))),
    Backend("aoti-cpu", "aoti", "cpu", "torch and a C++ compiler (g++)",
            lambda a, threads=1: aoti_runner(Path(a), "cpu")),
    Backend("aoti-cuda", "aoti", "cuda", "torch with CUDA, Triton, a C++ compiler and a CUDA GPU",
            lambda a, threads=1: aoti_runner(Path(a), "cuda")),
)})


def get_backend(name: str) -> Backend:
    return BACKENDS[name]


def backend_status() -> dict[str, str]:
    """Each backend -> 'available …' or 'unavailable: <why>'. Every backend listed has a runner in kdcompress."""
    import torch

    status: dict[str, str] = {}
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        ort_version = ort.__version__
    except ImportError:
        providers, ort_version = [], None
    cuda = torch.cuda.is_available()
    gpu = f" on {torch.cuda.get_device_name(0)}" if cuda else ""
    has_trt = importlib.util.find_spec("tensorrt") is not None

    def state(ok: bool, why: str, detail: str = "") -> str:
        return f"available{detail}" if ok else f"unavailable: {why}"

    status["onnxruntime-cpu"] = state(ort_version is not None, "pip install onnxruntime", f" (onnxruntime {ort_version})")
    status["onnxruntime-cuda"] = state("CUDAExecutionProvider" in providers and cuda,
                                       "needs onnxruntime-gpu (extra 'gpu') and a CUDA GPU", gpu)
    # onnxruntime-gpu always lists its TensorRT EP; it starts only where TensorRT's libraries are installed
    status["onnxruntime-tensorrt"] = state("TensorrtExecutionProvider" in providers and cuda and has_trt,
                                           "needs onnxruntime-gpu with its TensorRT EP, TensorRT and a CUDA GPU", gpu)
    trt_why = ("needs a CUDA GPU (TensorRT is installed)" if has_trt else
               "TensorRT is not installed (NVIDIA's pip index or container)" + ("" if cuda else "; needs a CUDA GPU too"))
    status["tensorrt"] = state(has_trt and cuda, trt_why, gpu)
    compiler = shutil.which("g++") or shutil.which("c++")
    status["aoti-cpu"] = state(compiler is not None, "needs a C++ compiler (apt install g++)",
                               f" (torch {torch.__version__}, {compiler})")
    status["aoti-cuda"] = state(cuda and compiler is not None and importlib.util.find_spec("triton") is not None,
                                "needs torch with CUDA, Triton, a C++ compiler and a CUDA GPU", gpu)
    return status


def extras_status() -> dict[str, str]:
    """Optional extras that are not backends."""
    return {"optimum": "available" if importlib.util.find_spec("optimum")
            else "unavailable: pip install 'kdcompress[hf]' (Hugging Face models, phase 2)"}


# What a profile target asks for, and what to try, in order, when it is missing: TensorRT falls back to the GPU
# artifact we can build without it (AOTInductor), then to the CPU.
TARGET_CHAIN = {
    ("cpu", "onnxruntime"): ["onnxruntime-cpu"],
    ("cuda", "onnxruntime"): ["onnxruntime-cuda", "aoti-cuda", "onnxruntime-cpu"],
    ("cuda", "onnxruntime-tensorrt"): ["onnxruntime-tensorrt", "tensorrt", "aoti-cuda", "onnxruntime-cpu"],
    ("cuda", "tensorrt"): ["tensorrt", "onnxruntime-tensorrt", "aoti-cuda", "onnxruntime-cpu"],
    ("cuda", "aoti"): ["aoti-cuda", "onnxruntime-cpu"],
    ("cpu", "aoti"): ["aoti-cpu", "onnxruntime-cpu"],
    ("cpu", "tensorrt"): ["tensorrt", "onnxruntime-cpu"],
    ("cpu", "onnxruntime-tensorrt"): ["onnxruntime-tensorrt", "onnxruntime-cpu"],
}


def resolve_backend(device: str, backend: str, strict: bool = False,
                    status: dict[str, str] | None = None) -> tuple[str, str | None]:
    """Map a profile's target to a usable backend; return it and a one-line note when it had to fall back."""
    chain = TARGET_CHAIN[(device, backend)]
    status = status or backend_status()
    wanted = chain[0]
    for name in chain:
        if status[name].startswith("available"):
            if name == wanted:
                return name, None
            why = status[wanted].removeprefix("unavailable: ")
            if strict:
                raise KDCompressError(f"target backend {wanted} unavailable ({why})",
                                      f"drop --strict-target to measure on {name}")
            return name, f"target backend {wanted} unavailable ({why}); measuring on {name}"
    raise KDCompressError(f"no backend for {device}/{backend} is usable here", "run `kdcompress doctor`")
