"""Backends behind one interface: what each runs, what it needs, and whether it is usable here (DESIGN §6–7).

:data:`BACKENDS` holds each backend whole (format, device, needs, runner factory, the profile target it serves, its
fallbacks and its status probe); :func:`backend_status` asks every probe; :func:`resolve_backend` maps a profile's
target to the backend a run measures on, falling back with one line when the target's is missing.
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
class Machine:
    """What the backends' status probes look at, gathered once."""

    providers: tuple[str, ...]  # onnxruntime's execution providers
    ort_version: str | None
    cuda: bool
    gpu: str  # " on <GPU name>" or ""
    has_trt: bool
    has_triton: bool
    compiler: str | None
    torch_version: str

    @classmethod
    def here(cls) -> Machine:
        import torch

        try:
            import onnxruntime as ort

            providers, ort_version = tuple(ort.get_available_providers()), ort.__version__
        except ImportError:
            providers, ort_version = (), None
        cuda = torch.cuda.is_available()
        return cls(providers, ort_version, cuda, f" on {torch.cuda.get_device_name(0)}" if cuda else "",
                   importlib.util.find_spec("tensorrt") is not None, importlib.util.find_spec("triton") is not None,
                   shutil.which("g++") or shutil.which("c++"), torch.__version__)


Probe = Callable[[Machine], "str | None"]  # None where usable, else why not (one line); see backend_status


@dataclass(frozen=True)
class Backend:
    """One backend, whole: the artifact format it runs, its device, what it needs (in words, for doctor), its runner
    factory, the profile target it serves (``target.backend``), the backends tried in order when it is missing, and
    its status probe."""

    name: str
    format: str  # onnx | engine | aoti: the artifact it runs
    device: str  # cpu | cuda
    needs: str
    factory: Callable[..., Runner]
    target: str  # the profile's target.backend it measures
    fallback: tuple[str, ...]
    probe: Probe
    detail: Callable[[Machine], str] = lambda m: m.gpu  # said after "available"

    def __call__(self, artifact: Path | bytes, threads: int = 1) -> Runner:
        return self.factory(artifact, threads)


def _ort_trt_options(artifact: Path | bytes) -> dict[str, str]:
    """TensorRT EP: engines and timing cache kept beside the artifact, so a second session does not rebuild."""
    if isinstance(artifact, bytes):
        return {}
    cache = str(Path(artifact).parent / "ort_trt_cache")
    return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": cache, "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": cache}


def _tensorrt_probe(m: Machine) -> str | None:
    if m.has_trt and m.cuda:
        return None
    if m.has_trt:
        return "needs a CUDA GPU (TensorRT is installed)"
    return "TensorRT is not installed (NVIDIA's pip index or container)" + ("" if m.cuda else "; needs a CUDA GPU too")


BACKENDS: Registry[Backend] = Registry("backend", {b.name: b for b in (
    Backend("onnxruntime-cpu", "onnx", "cpu", "onnxruntime", lambda a, threads=1: OrtRunner(a, "cpu", threads),
            "onnxruntime", (), lambda m: None if m.ort_version else "pip install onnxruntime",
            lambda m: f" (onnxruntime {m.ort_version})"),
    Backend("onnxruntime-cuda", "onnx", "cuda", "onnxruntime-gpu (extra 'gpu') and a CUDA GPU",
            lambda a, threads=1: OrtRunner(a, "cuda", threads), "onnxruntime", ("aoti-cuda", "onnxruntime-cpu"),
            lambda m: None if "CUDAExecutionProvider" in m.providers and m.cuda
            else "needs onnxruntime-gpu (extra 'gpu') and a CUDA GPU"),
    # onnxruntime-gpu always lists its TensorRT EP; it starts only where TensorRT's libraries are installed
    Backend("onnxruntime-tensorrt", "onnx", "cuda", "onnxruntime-gpu built with TensorRT, TensorRT, a CUDA GPU",
            lambda a, threads=1: OrtRunner(a, "tensorrt", threads, _ort_trt_options(a)), "onnxruntime-tensorrt",
            ("tensorrt", "aoti-cuda", "onnxruntime-cpu"),
            lambda m: None if "TensorrtExecutionProvider" in m.providers and m.cuda and m.has_trt
            else "needs onnxruntime-gpu with its TensorRT EP, TensorRT and a CUDA GPU"),
    Backend("tensorrt", "engine", "cuda", "the tensorrt Python package and a CUDA GPU",
            lambda a, threads=1: TensorRTRunner(Path(a)), "tensorrt",
            ("onnxruntime-tensorrt", "aoti-cuda", "onnxruntime-cpu"), _tensorrt_probe),
    Backend("aoti-cpu", "aoti", "cpu", "torch and a C++ compiler (g++)", lambda a, threads=1: aoti_runner(Path(a), "cpu"),
            "aoti", ("onnxruntime-cpu",), lambda m: None if m.compiler else "needs a C++ compiler (apt install g++)",
            lambda m: f" (torch {m.torch_version}, {m.compiler})"),
    Backend("aoti-cuda", "aoti", "cuda", "torch with CUDA, Triton, a C++ compiler and a CUDA GPU",
            lambda a, threads=1: aoti_runner(Path(a), "cuda"), "aoti", ("onnxruntime-cpu",),
            lambda m: None if m.cuda and m.compiler and m.has_triton
            else "needs torch with CUDA, Triton, a C++ compiler and a CUDA GPU"),
)})


def get_backend(name: str) -> Backend:
    return BACKENDS[name]


def backend_status(machine: Machine | None = None) -> dict[str, str]:
    """Each backend -> 'available …' or 'unavailable: <why>', from its own probe."""
    m = machine or Machine.here()
    return {name: (f"available{b.detail(m)}" if (why := b.probe(m)) is None else f"unavailable: {why}")
            for name, b in BACKENDS.items()}


def extras_status() -> dict[str, str]:
    """Optional extras that are not backends."""
    return {"optimum": "available" if importlib.util.find_spec("optimum")
            else "unavailable: pip install 'kdcompress[hf]' (Hugging Face models, phase 2)"}


def target_chain(device: str, backend: str) -> list[str]:
    """The backends a profile target (``target.device``, ``target.backend``) is measured on, in the order tried: the
    target's own, then its fallbacks on the same device or the CPU (never another accelerator the profile did not
    name): TensorRT falls back to the GPU artifact we can build without it (AOTInductor), then to the CPU."""
    serving = [b for b in BACKENDS.values() if b.target == backend]
    if not serving:
        raise KDCompressError(f"no backend serves target {backend!r}",
                              f"target.backend is one of {sorted({b.target for b in BACKENDS.values()})}")
    wanted = next((b for b in serving if b.device == device), serving[0])
    return [wanted.name, *(f for f in wanted.fallback if BACKENDS[f].device in (device, "cpu"))]


def resolve_backend(device: str, backend: str, strict: bool = False,
                    status: dict[str, str] | None = None) -> tuple[str, str | None]:
    """Map a profile's target to a usable backend; return it and a one-line note when it had to fall back."""
    chain = target_chain(device, backend)
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
