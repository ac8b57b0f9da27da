"""ONNX export with an explicit exporter fallback, and the PyTorch-vs-artifact parity check (DESIGN §6).

torch >= 2.9 defaults to the dynamo exporter and >= 2.11 no longer falls back by itself, so we try
``dynamo=True`` and, on failure, ``dynamo=False`` explicitly, and record which one worked. TorchScript modules go
straight to the TorchScript exporter (dynamo refuses them). Small models are written as one file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdcompress.errors import KDCompressError, first_line
from kdcompress.run import atomic_path

# Tolerances on max |logit difference| per precision, relative to the logits' scale (see check_parity).
PARITY_RTOL = {"fp32": 1e-3, "fp16": 2e-2, "int8": 1e-1}


@contextlib.contextmanager
def _quiet_exporter():
    """The exporters print progress and warnings on stdout/stderr; keep the CLI's output clean."""
    sink = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "optimum",
                                          "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_dynamo(model: nn.Module, example: torch.Tensor, path: Path, opset: int, dynamic_batch: bool) -> None:
    kwargs = {}
    if dynamic_batch:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=65536)},)
        if example.shape[0] == 1:  # torch.export specialises a dimension of size 1 (a ViT's class token expand did)
            example = example.repeat(2, *[1] * (example.dim() - 1))
    program = torch.onnx.export(
        model, (example,), dynamo=True, opset_version=opset, input_names=["x"], output_names=["logits"],
        optimize=True, **kwargs,
    )
    program.save(str(path), external_data=False)


def _export_torchscript(model: nn.Module, example: torch.Tensor, path: Path, opset: int, dynamic_batch: bool) -> None:
    torch.onnx.export(
        model, (example,), str(path), dynamo=False, opset_version=opset, input_names=["x"], output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None,
    )


def _batch_is_dynamic(path: Path) -> bool:
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return bool(dims) and not dims[0].HasField("dim_value")


def to_onnx(
    model: nn.Module, example: torch.Tensor, path: Path, opset: int = 18, dynamic_batch: bool = True
) -> str:
    """Export ``model`` to ``path`` atomically; return the exporter that worked (``dynamo`` or ``torchscript``)."""
    import onnx

    is_script = isinstance(model, torch.jit.ScriptModule)
    attempts = [("torchscript", _export_torchscript)] if is_script else [
        ("dynamo", _export_dynamo), ("torchscript", _export_torchscript),
    ]
    errors = []
    for name, fn in attempts:
        try:
            with atomic_path(path) as tmp, _quiet_exporter():
                fn(model, example, tmp, opset, dynamic_batch)
                onnx.checker.check_model(str(tmp))
                if dynamic_batch and not _batch_is_dynamic(tmp):
                    raise RuntimeError("the exported graph fixed the batch size")
            return name
        except Exception as e:  # noqa: BLE001 — each exporter fails in its own way; we try the next
            errors.append(f"{name}: {first_line(e, None)}")
    raise KDCompressError(f"ONNX export failed ({'; '.join(errors)[:400]})", "run with --debug for details")


@dataclass
class ParityReport:
    """How closely an artifact reproduces the PyTorch model on the same inputs."""

    samples: int
    max_abs_diff: float
    logit_scale: float
    top1_agreement: float
    tolerance: float
    passed: bool

    def to_json(self) -> dict:
        return asdict(self)


def check_parity(
    reference: np.ndarray, artifact: np.ndarray, precision: str = "fp32", min_agreement: float = 0.99
) -> ParityReport:
    """Compare the artifact's logits with PyTorch's on the same inputs.

    Passes when the max absolute difference is within ``PARITY_RTOL[precision]`` times the logits' scale (max |logit|)
    and top-1 predictions agree on at least ``min_agreement`` of the samples.
    """
    if reference.shape != artifact.shape:
        raise KDCompressError(f"parity: artifact returned shape {artifact.shape}, PyTorch {reference.shape}")
    diff = float(np.max(np.abs(reference.astype(np.float64) - artifact.astype(np.float64))))
    scale = float(max(np.max(np.abs(reference)), 1e-6))
    agree = float(np.mean(reference.argmax(1) == artifact.argmax(1)))
    tol = PARITY_RTOL[precision] * scale
    return ParityReport(len(reference), diff, scale, agree, tol, diff <= tol and agree >= min_agreement)


def load_single_input(path: Path, hint: str) -> tuple:
    """An ONNX file and its one graph input (initializers some exporters list as inputs left out); one line, with
    ``hint``, when the file is not ONNX or takes more than one input. Returns ``(ModelProto, ValueInfoProto)``."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 — protobuf raises DecodeError and friends for a non-ONNX file
        raise KDCompressError(f"{path}: not an ONNX model ({type(e).__name__})", hint) from None
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise KDCompressError(f"{path.name} takes {len(inputs)} inputs", "kdcompress handles single-input models")
    return model, inputs[0]


def onnx_bytes(model: nn.Module, example: torch.Tensor, opset: int = 18) -> bytes:
    """A quick in-memory ONNX export (TorchScript exporter) for timing candidates during search — not an artifact."""
    buf = io.BytesIO()
    with _quiet_exporter():
        torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=opset, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})
    return buf.getvalue()
