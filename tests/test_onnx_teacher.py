"""A teacher given as an ONNX file: logits from onnxruntime for search latency, distillation and bench; what needs
the teacher in PyTorch says so in one line."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

from kdcompress.models.load import load_teacher
from tests.conftest import SIDE


def run(cmd, *args):
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def onnx_teachers(tiny_module, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx_teacher")
    dyn, fixed = d / "teacher.onnx", d / "fixed.onnx"
    x = torch.zeros(1, 1, SIDE, SIDE)
    torch.onnx.export(tiny_module, (x,), str(dyn), dynamo=False, input_names=["pixels"],
                      dynamic_axes={"pixels": {0: "n"}})
    torch.onnx.export(tiny_module, (x,), str(fixed), dynamo=False, input_names=["pixels"])
    return {"dynamic": dyn, "fixed": fixed}


def test_onnx_teacher_loads_by_content_and_gives_the_same_logits(onnx_teachers, tiny_module, tmp_path):
    renamed = tmp_path / "teacher.bin"  # never by its extension
    renamed.write_bytes(onnx_teachers["dynamic"].read_bytes())
    t = load_teacher(renamed)
    assert t.kind == "onnx"
    x = torch.rand(7, 1, SIDE, SIDE)
    np.testing.assert_allclose(t.logits(x).numpy(), tiny_module(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    n_params = sum(p.numel() for p in tiny_module.parameters())
    assert t.module.param_count() >= n_params * 0.95  # BN folded into convs by the exporter: about the same


def test_shrink_with_an_onnx_teacher(cli_cmd, onnx_teachers, tiny_npz, tiny_profile, tmp_path):
    out = tmp_path / "run"
    proc = run(cli_cmd, "shrink", onnx_teachers["dynamic"], "--profile", tiny_profile, "--data", tiny_npz,
               "--out", out, "--set", "search.proxy=synflow", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["teacher"]["accuracy"] > 50 and result["students"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher"]["kind"] == "onnx" and manifest["teacher"]["exporter"] == "given"
    assert (out / "cache" / "teacher_logits_train.npy").exists()  # distilled from onnxruntime's logits


def test_onnx_teacher_refusals_are_one_line(cli_cmd, onnx_teachers, tiny_npz, tiny_profile, tmp_path):
    for args, needle in [
        ((onnx_teachers["dynamic"], "--set", "search.proxy=diswot"), "needs the teacher in PyTorch"),
        ((onnx_teachers["fixed"],), "fixed batch size of 1"),
    ]:
        proc = run(cli_cmd, "shrink", *args, "--profile", tiny_profile, "--data", tiny_npz, "--out",
                   tmp_path / needle[:5])
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and needle in proc.stderr, proc.stderr
