"""PyTorch against an artifact on the validation images: shared by the load stage (the teacher's ONNX) and the
export stage (every student's and recipe's artifact)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kdcompress.bench import Runner
from kdcompress.errors import KDCompressError
from kdcompress.export import check_parity
from kdcompress.session import Session


def reference_logits(s: Session, model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's logits on the parity images (validation split), and those images as the artifact's input."""
    x = s.prep(s.data.x_val[: s.profile.export.parity_samples])
    with torch.no_grad():
        ref = torch.cat([model(x[i : i + 256]) for i in range(0, len(x), 256)]).numpy()
    return x.numpy(), ref


def parity(s: Session, reference: tuple[np.ndarray, np.ndarray], runner: Runner, path: Path,
           precision: str = "fp32", ours: bool = False, step: int = 256, strict: bool = True) -> dict:
    """Compare an artifact with PyTorch on validation images. With ``strict``, a float ONNX on onnxruntime CPU
    that does not reproduce PyTorch is an error (``ours``: a bug). Other artifacts (reduced precision, another
    runtime with its own kernels, e.g. TF32 convolutions on a GPU) outside tolerance are recorded and flagged in the
    report, and their test accuracy, measured by bench, tells what it costs."""
    x, ref = reference
    out = np.concatenate([runner.infer(x[i : i + step]) for i in range(0, len(x), step)])
    report = check_parity(ref, out, precision)
    if not report.passed and strict and precision == "fp32":
        if ours:
            raise RuntimeError(f"parity check failed for {path}: {report.to_json()}")
        raise KDCompressError(
            f"{path.name} does not reproduce PyTorch (max |diff| {report.max_abs_diff:.3g}, "
            f"top-1 agreement {report.top1_agreement:.3f})", "report this model to kdcompress with --debug output"
        )
    return report.to_json()
