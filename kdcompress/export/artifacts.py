"""Which deployable artifacts a run builds, and building them for one model (DESIGN §6).

Every model gets a float ONNX (the load and export stages write it). From it: an fp16 ONNX where the target's
precision is fp16, an int8 QDQ ONNX where the profile asks (``export.int8``) or the target is int8. The artifact
that is *measured* is in the format of the run's backend: the ONNX files themselves on onnxruntime, a TensorRT
engine built from each of them on TensorRT, an AOTInductor package (fp32/fp16) on aoti.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdcompress.bench.backends import get_backend
from kdcompress.export.aoti import AOTI_PRECISIONS, to_aoti
from kdcompress.export.fp16 import to_fp16
from kdcompress.export.int8 import Int8Scheme, resolve_scheme, to_int8
from kdcompress.export.tensorrt import build_engine
from kdcompress.profiles import Profile
from kdcompress.records import ArtifactRecord


@dataclass
class ArtifactPlan:
    """What to build for every model of a run, on which backend it is measured, and what was left out and why."""

    backend: str
    format: str  # onnx | engine | aoti
    device: str
    precisions: list[str]
    int8: Int8Scheme | None
    calibration_method: str
    calibration_samples: int
    batch: tuple[int, int, int]  # min / opt / max for engines and packages
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"backend": self.backend, "format": self.format, "device": self.device, "precisions": self.precisions,
                "int8": self.int8.to_json() if self.int8 else None, "calibration_method": self.calibration_method,
                "calibration_samples": self.calibration_samples, "batch_range": list(self.batch)}

    @classmethod
    def from_json(cls, d: dict) -> ArtifactPlan:
        return cls(d["backend"], d["format"], d["device"], d["precisions"],
                   Int8Scheme(**d["int8"]) if d["int8"] else None, d["calibration_method"],
                   d["calibration_samples"], tuple(d["batch_range"]))  # type: ignore[arg-type]


def plan_artifacts(profile: Profile, backend: str) -> ArtifactPlan:
    """The artifacts ``profile`` asks for, as far as ``backend`` can run them."""
    b = get_backend(backend)
    wanted = ["fp32"]
    if profile.target.precision != "fp32":
        wanted.append(profile.target.precision)
    if profile.export.int8 and "int8" not in wanted:
        wanted.append("int8")
    notes = []
    if b.format == "aoti" and "int8" in wanted:
        wanted.remove("int8")
        notes.append(f"int8: AOTInductor packages are {'/'.join(AOTI_PRECISIONS)} only; no int8 artifact on {backend}")
    e = profile.export
    scheme = resolve_scheme(b.device, e.int8_scheme, e.reduce_range) if "int8" in wanted else None
    hi = max(e.max_batch, profile.target.batch)
    return ArtifactPlan(backend, b.format, b.device, wanted, scheme, e.calibration_method, e.calibration_samples,
                        (1, profile.target.batch, hi), notes)


def calibration_images(x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` training images drawn at random with ``seed`` (a folder dataset is sorted by class: never its head)."""
    g = torch.Generator().manual_seed(seed)
    return x[torch.randperm(len(x), generator=g)[:n]]


def build_model_artifacts(
    plan: ArtifactPlan, stem: str, fp32_onnx: Path, out_dir: Path, model: nn.Module | None, example: torch.Tensor,
    calibration: np.ndarray | None, cache_dir: Path, precisions: list[str] | None = None,
) -> dict[str, ArtifactRecord]:
    """Build ``stem``'s artifacts for each precision of the plan (or ``precisions``); return a record per precision
    with the measured artifact's ``path`` and ``format``, the ONNX it came from, and how it was made."""
    records: dict[str, ArtifactRecord] = {}
    for p in precisions or plan.precisions:
        rec: dict = {"precision": p, "backend": plan.backend, "format": plan.format}
        if p == "fp32":
            onnx_path = fp32_onnx
        elif p == "fp16":
            onnx_path = out_dir / f"{stem}.fp16.onnx"
            rec["fp16"] = to_fp16(fp32_onnx, onnx_path)
        else:
            assert plan.int8 is not None and calibration is not None
            onnx_path = out_dir / f"{stem}.int8.onnx"
            rec["int8"] = to_int8(fp32_onnx, onnx_path, calibration, plan.int8, plan.calibration_method)
        rec["onnx"] = str(onnx_path)
        if plan.format == "onnx":
            rec["path"] = str(onnx_path)
        elif plan.format == "engine":
            rec["path"] = str(build_engine(onnx_path, out_dir, stem, p, tuple(example.shape[1:]), plan.batch,
                                           cache_dir))
        else:
            if model is None:
                raise ValueError("an AOTInductor package needs the PyTorch model")
            path = out_dir / f"{stem}.{p}.aoti.pt2"
            rec["aoti"] = to_aoti(model, example, path, plan.device, p, plan.batch[2])
            rec["path"] = str(path)
        records[p] = ArtifactRecord(**rec)
    return records
