"""PyTorch's own compiled deployment artifact: an AOTInductor package (DESIGN §6).

``torch._inductor.aoti_compile_and_package`` turns a ``torch.export`` program into a ``.pt2`` package holding a
compiled shared library (C++ on CPU, Triton kernels on CUDA), loadable from Python
(``torch._inductor.aoti_load_package``) or C++ (``AOTIModelPackageLoader``). It is the GPU artifact we can build
and verify without TensorRT, and it compiles with gcc on a CPU too, so its packaging is tested here.

fp16 packages keep float32 inputs and outputs (casts at both ends), like the fp16 ONNX, so callers feed every
artifact the same tensors.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from kdcompress.errors import KDCompressError
from kdcompress.run import atomic_write

AOTI_PRECISIONS = ("fp32", "fp16")


class _HalfIO(nn.Module):
    """Run ``inner`` in fp16 behind float32 inputs and outputs."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.half()).float()


def package_meta_path(package: Path) -> Path:
    return package.with_name(package.name + ".json")


def is_aoti_package(names: list[str]) -> bool:
    """Whether a zip's member names are an AOTInductor package (rather than a plain ExportedProgram)."""
    return any("/aotinductor/" in n or n.startswith("aotinductor/") for n in names)


def to_aoti(model: nn.Module, example: torch.Tensor, path: Path, device: str = "cpu", precision: str = "fp32",
            max_batch: int = 1024) -> dict:
    """Compile ``model`` into an AOTInductor package at ``path`` (atomically) for ``device`` and ``precision``
    with a dynamic batch axis; return the record written beside it (``<path>.json``)."""
    if precision not in AOTI_PRECISIONS:
        raise KDCompressError(f"AOTInductor packages are built in {'/'.join(AOTI_PRECISIONS)}, not {precision}",
                              "use the int8 ONNX on onnxruntime for int8")
    if type(model).__name__ == "OnnxTeacher":
        raise KDCompressError("an ONNX teacher cannot be compiled with AOTInductor (it is not a PyTorch graph)",
                              "give the teacher as a torch.export .pt2 or a state_dict with --arch, or use an "
                              "onnxruntime/TensorRT profile")
    if isinstance(model, torch.jit.ScriptModule):
        raise KDCompressError("a TorchScript model cannot be compiled with AOTInductor",
                              "give the teacher as a torch.export .pt2 or a state_dict with --arch")
    module = copy.deepcopy(model).to(device)  # .to() and .half() act in place: leave the caller's model alone
    if precision == "fp16":
        module = _HalfIO(module)
    if max_batch >= 2:  # dynamic batch; traced at 2, since torch.export specialises a batch of 1
        x = example.to(device).repeat(2, *([1] * (example.ndim - 1)))
        dynamic = ({0: torch.export.Dim("batch", min=1, max=max_batch)},)
    else:  # a batch-1 package: static shapes (a Dim needs min < max)
        x, dynamic = example[:1].to(device), None
    with torch.no_grad():
        program = torch.export.export(module, (x,), dynamic_shapes=dynamic)
        path.parent.mkdir(parents=True, exist_ok=True)
        # aoti_compile_and_package wants a *.pt2 name, so the temp file is a .pt2 in the same folder
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".pt2", dir=path.parent)
        os.close(fd)
        try:
            torch._inductor.aoti_compile_and_package(program, package_path=tmp)
            record = {"device": device, "precision": precision, "input_shape": list(example.shape[1:]),
                      "max_batch": max_batch, "torch": torch.__version__}
            atomic_write(package_meta_path(path), json.dumps(record, indent=2) + "\n")
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return record


def read_package_meta(package: Path) -> dict:
    try:
        return json.loads(package_meta_path(package).read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as e:
        raise KDCompressError(f"{package_meta_path(package)}: corrupt ({e})", "rebuild the package") from None
