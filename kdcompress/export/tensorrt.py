"""TensorRT engines from our ONNX files, with the metadata that makes them safe to reuse (DESIGN §6).

TensorRT >= 10.12 builds strongly typed networks and TensorRT 11 has no other kind (the FP16/INT8 builder flags
and the int8 calibrators are gone), so the engine's precision is the ONNX file's: the fp16 ONNX for fp16, the QDQ
ONNX for int8, the float ONNX for fp32. The batch axis gets one optimisation profile (min/opt/max); the timing
cache is kept beside the run so rebuilding is fast. Engines are not portable across GPUs or TensorRT versions, so
the file name and a metadata file carry both, and :func:`check_compatible` refuses a mismatch before TensorRT
would fail obscurely.

TensorRT cannot be installed in our build environment; this module is written against the TensorRT Python API
documentation and tested with a stand-in module up to the TensorRT calls (``tests/test_tensorrt.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kdcompress.errors import KDCompressError
from kdcompress.run import atomic_write, file_sha256

TRT_HINT = "install TensorRT for your CUDA version (NVIDIA's pip index or container), then `kdcompress doctor`"
WORKSPACE_BYTES = 1 << 30


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "9.0"


@dataclass(frozen=True)
class EngineMeta:
    """What an engine was built for and from; stored as ``<engine>.json``."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_name: str
    input_shape: list[int]  # per sample, without the batch axis
    batch_min: int
    batch_opt: int
    batch_max: int
    onnx_sha256: str
    engine_sha256: str = ""  # the engine file this metadata describes (a stale .json beside a new engine is refused)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def read(cls, engine: Path) -> EngineMeta:
        path = meta_path(engine)
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise KDCompressError(f"{engine.name}: no metadata file {path.name} beside it",
                                  "rebuild the engine with kdcompress, or keep the .json that came with it") from None
        except (TypeError, json.JSONDecodeError) as e:
            raise KDCompressError(f"{path}: not an engine metadata file ({e})", "rebuild the engine") from None


def meta_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def engine_name(stem: str, precision: str, trt_version: str, gpu: GpuInfo) -> str:
    """``<stem>.<precision>.trt<version>.sm<cc>.<gpu>.engine``: an engine says what it is good for by its name."""
    cc = gpu.compute_capability.replace(".", "")
    short = _slug(gpu.name.removeprefix("NVIDIA ").split(" ")[0] if gpu.name else "gpu")
    return f"{stem}.{precision}.trt{trt_version}.sm{cc}.{short}.engine"


def check_compatible(meta: EngineMeta, trt_version: str, gpu: GpuInfo) -> None:
    """Refuse an engine built for another TensorRT version or GPU, in one line that says what to do."""
    if meta.tensorrt_version != trt_version:
        raise KDCompressError(f"engine built with TensorRT {meta.tensorrt_version}, this machine has {trt_version}",
                              "rebuild it here: `kdcompress export RUN` (engines are not portable)")
    if meta.compute_capability != gpu.compute_capability or meta.gpu_name != gpu.name:
        raise KDCompressError(
            f"engine built for {meta.gpu_name} (sm {meta.compute_capability}), this GPU is {gpu.name} "
            f"(sm {gpu.compute_capability})", "rebuild it on this GPU: `kdcompress export RUN`")


def check_engine_file(meta: EngineMeta, engine: Path) -> None:
    """Refuse an engine whose metadata describes another file."""
    if meta.engine_sha256 and meta.engine_sha256 != file_sha256(engine):
        raise KDCompressError(f"{meta_path(engine).name} describes another engine than {engine.name}",
                              "rebuild the engine (`kdcompress export RUN`)")


def timing_cache_name(trt_version: str, gpu: GpuInfo) -> str:
    """Timing caches are only valid for one TensorRT version and GPU: the name keeps them apart."""
    return f"timing.trt{trt_version}.sm{gpu.compute_capability.replace('.', '')}.cache"


def current_gpu() -> GpuInfo:
    import torch

    if not torch.cuda.is_available():
        raise KDCompressError("TensorRT needs a CUDA GPU and this machine has none",
                              "run on a GPU machine, or use a CPU profile")
    major, minor = torch.cuda.get_device_capability(0)
    return GpuInfo(torch.cuda.get_device_name(0), f"{major}.{minor}")


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        raise KDCompressError("TensorRT is not installed", TRT_HINT) from None
    return trt


def _strongly_typed_flags(trt: Any) -> int:
    """Network creation flags: STRONGLY_TYPED where the enum still has it (10.x); TensorRT 11 is always so."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None) if hasattr(
        trt, "NetworkDefinitionCreationFlag") else None
    return 1 << int(flag) if flag is not None else 0


def build_engine(
    onnx_path: Path, out_dir: Path, stem: str, precision: str, input_shape: tuple[int, ...],
    batch: tuple[int, int, int], cache_dir: Path, gpu: GpuInfo | None = None,
) -> Path:
    """Build a TensorRT engine from ``onnx_path`` into ``out_dir``; return its path (metadata beside it).

    ``batch`` is (min, opt, max) for the optimisation profile of the batch axis. The timing cache for this TensorRT
    version and GPU in ``cache_dir`` is read when it exists (a rejected one is replaced) and written back.
    """
    trt = import_tensorrt()
    gpu = gpu or current_gpu()
    timing_cache = cache_dir / timing_cache_name(trt.__version__, gpu)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_strongly_typed_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise KDCompressError(f"TensorRT cannot parse {onnx_path.name} ({errors[:300]})",
                              "check the ONNX opset and ops against TensorRT's ONNX support matrix")
    input_name = network.get_input(0).name
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    lo, opt, hi = batch
    profile.set_shape(input_name, (lo, *input_shape), (opt, *input_shape), (hi, *input_shape))
    config.add_optimization_profile(profile)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 is on by default; an fp32 engine must compute in fp32
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.exists() else b"")
    if cache is None or not config.set_timing_cache(cache, False):  # corrupt or foreign: start a fresh one
        config.set_timing_cache(config.create_timing_cache(b""), False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise KDCompressError(f"TensorRT could not build an engine from {onnx_path.name}",
                              "run with --debug and read TensorRT's log above")
    built = config.get_timing_cache()
    if built is not None:
        atomic_write(timing_cache, bytes(built.serialize()))
    engine = out_dir / engine_name(stem, precision, trt.__version__, gpu)
    plan = bytes(serialized)
    meta = EngineMeta(trt.__version__, gpu.name, gpu.compute_capability, precision, input_name,
                      list(input_shape), lo, opt, hi, file_sha256(onnx_path), hashlib.sha256(plan).hexdigest())
    # the engine, then its metadata: a crash in between leaves an engine without metadata (refused) or with a
    # stale one (refused by its hash), never one that looks current
    atomic_write(engine, plan)
    atomic_write(meta_path(engine), json.dumps(meta.to_json(), indent=2) + "\n")
    return engine
