"""ONNX export for every student family and teacher kind, and the parity check itself."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from kdcompress.errors import KDCompressError
from kdcompress.export import check_parity, to_onnx
from kdcompress.models.load import load_teacher
from kdcompress.models.students import STUDENTS

GENES = {  # every family that is built from genes alone (the teacher's cuts: tests/test_pruning.py)
    "resnet": {"stem": 8, "widths": [8, 16, 16], "depths": [1, 2, 1], "stem_stride": 2},
    "mobilenetv2": {"stem": 8, "stem_stride": 1, "widths": [8, 16, 24], "depths": [1, 2, 1], "expand": [1, 4, 6],
                    "kernel": [3, 5, 7], "last": 64},
    "vgg": {"widths": [8, 16, 24], "depths": [2, 1, 1], "kernel": [3, 5, 3]},
}


@pytest.mark.parametrize("family", sorted(GENES))
def test_student_family_forward_backward_export(family, tmp_path):
    model = STUDENTS[family](GENES[family], 1, 5)
    x = torch.rand(3, 1, 12, 12)
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    path = tmp_path / "s.onnx"
    assert to_onnx(model, x[:1], path) == "dynamo"
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    assert check_parity(model(x).detach().numpy(), out).passed
    assert not list(tmp_path.glob("*.data")) and not list(tmp_path.glob("*.tmp"))  # one file, no leftovers


@pytest.mark.parametrize("fmt", ["pt2", "ts"])
def test_teacher_kinds_export(teacher_files, tmp_path, fmt):
    t = load_teacher(teacher_files[fmt])
    path = tmp_path / "t.onnx"
    exporter = to_onnx(t.module, torch.zeros(1, 1, 12, 12), path)
    assert exporter == ("torchscript" if fmt == "ts" else "dynamo")
    x = torch.rand(4, 1, 12, 12)  # dynamic batch: exported at 1, run at 4
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    assert check_parity(t.logits(x).numpy(), out).passed


def test_parity_fails_on_wrong_outputs():
    ref = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    assert check_parity(ref, ref + 1e-6).passed
    assert not check_parity(ref, ref + 0.5).passed
    flipped = ref.copy()
    flipped[:, [0, 1]] = flipped[:, [1, 0]]
    report = check_parity(ref, flipped)
    assert not report.passed and report.top1_agreement < 0.9


class _DataDependent(torch.nn.Module):
    """Python control flow on a tensor's value: torch.export (dynamo) refuses it, the TorchScript exporter traces
    one branch."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


def test_export_falls_back_to_torchscript_and_says_so(tmp_path):
    model = _DataDependent().eval()
    path = tmp_path / "m.onnx"
    assert to_onnx(model, torch.ones(1, 4), path) == "torchscript"
    x = np.ones((2, 4), np.float32)
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert check_parity(model(torch.from_numpy(x)).detach().numpy(), out).passed
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow  # ~30 s of C++ compilation: AOTInductor serves the GPU targets, checked under make test-all
def test_aoti_package_compiles_runs_and_is_benchable(tiny_module, tmp_path, cli_cmd):
    """AOTInductor on the CPU (gcc): the package reproduces PyTorch, records what it was built for, is refused on
    another device, and `kdcompress bench` times it."""
    import json
    import subprocess

    from kdcompress.bench import BACKENDS
    from kdcompress.export.aoti import to_aoti

    path = tmp_path / "s.fp32.aoti.pt2"
    record = to_aoti(tiny_module, torch.zeros(1, 1, 12, 12), path, "cpu", "fp32", max_batch=64)
    assert record["device"] == "cpu" and path.exists() and not list(tmp_path.glob(".*"))
    x = torch.rand(5, 1, 12, 12)
    out = BACKENDS["aoti-cpu"](path).infer(x.numpy())
    assert check_parity(tiny_module(x).detach().numpy(), out).passed
    with pytest.raises(KDCompressError, match="compiled for cpu"):
        BACKENDS["aoti-cuda"](path)
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in tiny_module.parameters())  # untouched
    proc = subprocess.run([*cli_cmd, "bench", str(path), "--iters", "10", "--repeats", "1", "--warmup", "2",
                           "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["format"] == "aoti" and r["backend"] == "aoti-cpu" and r["input_shape"] == [1, 12, 12]


class _ClassToken(torch.nn.Module):
    """What torchvision's ViT does: a class token expanded to the batch, then a linear head on it."""

    def __init__(self) -> None:
        super().__init__()
        self.token = torch.nn.Parameter(torch.randn(1, 1, 4))
        self.embed = torch.nn.Conv2d(1, 4, 4, 4)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.token.expand(x.shape[0], -1, -1), patches], dim=1)
        return self.head(tokens[:, 0] + tokens[:, 1:].mean(1))


def test_an_exporter_that_fixes_the_batch_is_not_taken(tmp_path, monkeypatch):
    """torch 2.14's exporter fixed torchvision ViT's batch to 1 (benchmarks/any_teacher_cuts.py): a graph whose
    batch came out fixed is refused and the next exporter tried, so the artifact takes any batch."""
    import onnxruntime as ort

    from kdcompress.export import onnx as onnx_export

    real = onnx_export._export_dynamo
    monkeypatch.setattr(onnx_export, "_export_dynamo",
                        lambda model, example, path, opset, dynamic: real(model, example, path, opset, False))
    model = _ClassToken().eval()
    assert onnx_export.to_onnx(model, torch.rand(1, 1, 8, 8), tmp_path / "m.onnx") == "torchscript"
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {session.get_inputs()[0].name: np.zeros((3, 1, 8, 8), np.float32)})[0].shape == (3, 3)
