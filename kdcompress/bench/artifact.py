"""``kdcompress bench FILE``: latency (and accuracy with data) of any artifact, ours or not.

The file is recognised by its content: an ONNX model, a TensorRT engine (with the metadata file kdcompress writes
beside it), or an AOTInductor package. Inputs are generated from the model's declared input shape (the batch axis
set to ``batch``); a dynamic non-batch axis needs ``shape``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdcompress.bench.backends import BACKENDS, get_backend
from kdcompress.bench.measure import accuracy, interleaved_latency
from kdcompress.bench.runners import Runner
from kdcompress.errors import KDCompressError

DEFAULT_BACKEND = {"onnx": "onnxruntime-cpu", "engine": "tensorrt"}


@dataclass(frozen=True)
class ArtifactInfo:
    path: Path
    format: str  # onnx | engine | aoti
    precision: str  # fp32 | fp16 | int8 (as far as the file tells)
    input_shape: tuple[int, ...] | None  # per sample; None where the file does not say
    max_batch: int | None = None  # None: any batch
    fixed_batch: int | None = None  # an ONNX exported with a fixed batch size
    device: str = "cpu"  # what an AOTInductor package was compiled for; engines are always cuda


def _onnx_info(path: Path) -> ArtifactInfo:
    import onnx

    from kdcompress.export.onnx import load_single_input

    model, inp = load_single_input(path, "pass an .onnx file, a TensorRT .engine or an AOTInductor .pt2 package")
    tt = inp.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
    if dtype not in ("float32", "float16"):
        raise KDCompressError(f"{path.name} takes {dtype} input", "kdcompress bench times models with float inputs")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    ops = {n.op_type for n in model.graph.node}
    half = sum(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    precision = "int8" if ops & {"QuantizeLinear", "QLinearConv", "ConvInteger"} else (
        "fp16" if half > len(model.graph.initializer) / 2 else "fp32")
    shape = tuple(dims[1:]) if dims and all(d is not None for d in dims[1:]) else None
    return ArtifactInfo(path, "onnx", precision, shape, fixed_batch=dims[0] if dims else None)


def inspect_artifact(path: Path) -> ArtifactInfo:
    """What ``path`` is, by its content."""
    if not path.is_file():
        raise KDCompressError(f"artifact not found: {path}")
    from kdcompress.export.aoti import is_aoti_package, read_package_meta
    from kdcompress.export.tensorrt import EngineMeta, meta_path

    if zipfile.is_zipfile(path):
        if not is_aoti_package(zipfile.ZipFile(path).namelist()):
            raise KDCompressError(f"{path.name} is a zip archive but not an AOTInductor package",
                                  "a torch.export .pt2 is a model to shrink: `kdcompress shrink` it")
        meta = read_package_meta(path)
        shape = tuple(meta["input_shape"]) if "input_shape" in meta else None
        return ArtifactInfo(path, "aoti", meta.get("precision", "fp32"), shape, meta.get("max_batch"),
                            device=meta.get("device", "cpu"))
    if path.suffix in (".engine", ".plan", ".trt") or meta_path(path).exists():
        meta = EngineMeta.read(path)
        return ArtifactInfo(path, "engine", meta.precision, tuple(meta.input_shape), meta.batch_max)
    return _onnx_info(path)


def parse_shape(text: str) -> tuple[int, ...]:
    """``--shape`` as given on the command line (``3,224,224`` or ``3x224x224``)."""
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise KDCompressError(f"--shape {text!r}: expected integers like 3,224,224") from None


def resolve_artifact(
    path: Path, backend: str | None = None, batch: int = 1, shape: tuple[int, ...] | None = None,
    data_shape: tuple[int, ...] | None = None,
) -> tuple[ArtifactInfo, str, tuple[int, ...]]:
    """What ``path`` is, the backend that runs it (``backend`` or the format's default) and the per-sample input
    shape; refuses, in one line each, a backend of another format, a shape the file contradicts or does not give, a
    batch the file cannot take, and data (``data_shape``: per-image shape) of another shape."""
    info = inspect_artifact(path)
    backend = backend or (f"aoti-{info.device}" if info.format == "aoti" else DEFAULT_BACKEND[info.format])
    b = get_backend(backend)
    if b.format != info.format:
        fits = sorted(n for n, x in BACKENDS.items() if x.format == info.format)
        raise KDCompressError(f"{path.name} is a{'n' if info.format[0] in 'aeo' else ''} {info.format} artifact; "
                              f"backend {backend} runs {b.format}", f"use --backend {' or '.join(fits)}")
    sample_shape = shape or info.input_shape
    if sample_shape is None:
        raise KDCompressError(f"{path.name} does not declare its input shape", "pass --shape C,H,W")
    if info.input_shape and shape and tuple(info.input_shape) != tuple(shape):
        raise KDCompressError(f"--shape {','.join(map(str, shape))} does not match the model's declared input "
                              f"{','.join(map(str, info.input_shape))}")
    if info.fixed_batch is not None and batch != info.fixed_batch:
        raise KDCompressError(f"{path.name} was exported with a fixed batch of {info.fixed_batch}",
                              f"pass --batch {info.fixed_batch}, or re-export it with a dynamic batch axis")
    if info.max_batch is not None and batch > info.max_batch:
        raise KDCompressError(f"{path.name} accepts batches up to {info.max_batch}", f"pass --batch {info.max_batch} or less")
    if data_shape is not None and tuple(data_shape) != tuple(sample_shape):
        raise KDCompressError(f"the data's images are {list(data_shape)}, the model takes {list(sample_shape)}",
                              "check --data (and --shape)")
    return info, backend, tuple(sample_shape)


def artifact_accuracy(runner: Runner, info: ArtifactInfo, data: tuple) -> float:
    """Top-1 accuracy of the artifact on ``data`` = (x_uint8, y, preprocess), in batches the file accepts."""
    xs, ys, prep = data
    step = info.fixed_batch or min(256, info.max_batch or 256)
    return accuracy(runner, xs, ys, prep, batch=step, fixed=info.fixed_batch is not None)


def bench_artifact(
    path: Path, backend: str | None = None, batch: int = 1, shape: tuple[int, ...] | None = None, threads: int = 1,
    warmup: int = 50, iters: int = 300, repeats: int = 5, data: tuple | None = None,
) -> dict:
    """Measure one artifact; ``data`` = (x_uint8, y, preprocess) adds its top-1 accuracy. Returns the JSON record."""
    from kdcompress.report.environment import environment

    info, backend, sample_shape = resolve_artifact(path, backend, batch, shape,
                                                   None if data is None else tuple(data[0].shape[1:]))
    runner = get_backend(backend)(path, threads=threads)
    x = np.random.default_rng(0).random((batch, *sample_shape), dtype=np.float32)
    lat = interleaved_latency({"model": runner}, x, warmup, iters, repeats)["model"]
    record = {"artifact": str(path), "format": info.format, "precision": info.precision, "backend": backend,
              "batch": batch, "input_shape": list(sample_shape), "threads": threads,
              "latency_ms": {k: v for k, v in lat.to_json(with_samples=False).items() if k not in ("batch", "throughput")},
              "throughput": lat.throughput, "samples": len(lat.samples_ms), "environment": environment()}
    if data is not None:
        record["accuracy"] = artifact_accuracy(runner, info, data)
        record["test_samples"] = len(data[1])
    return record


def artifact_test_data(path: Path, spec: str, prep, shape: tuple[int, ...] | None = None,
                       test_samples: int | None = None) -> tuple:
    """``(x, y, prep)`` of ``spec``'s test split for ``path``: an image folder is read at the size and channel
    count the artifact takes (``shape``, else what the file declares)."""
    from kdcompress.data.splits import FolderOptions, data_workers, load_data, take

    dims = shape or inspect_artifact(path).input_shape
    splits = load_data(spec, 0.1, 0, FolderOptions.for_input(dims, workers=data_workers(None)))
    n = test_samples
    return take(splits.x_test, slice(0, n)), splits.y_test[:n], prep

