"""What only a CUDA GPU can check: AOTInductor CUDA packages (fp32, fp16) reproduce PyTorch and are timed with CUDA
events, and a GPU profile runs end to end on what the machine has (TensorRT where installed, else the AOTInductor
CUDA package). Every test here skips on a machine without a GPU, saying so; ``benchmarks/gpu_check.sh`` runs them on
a GPU machine."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

from kdcompress.bench import BACKENDS, backend_status
from kdcompress.errors import KDCompressError
from kdcompress.export import check_parity
from kdcompress.export.aoti import to_aoti

SIDE = 12  # the tiny data's image side (conftest.SIDE)
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def run(cmd, *args):
    return subprocess.run([*cmd, *map(str, args)], check=False, capture_output=True, text=True, timeout=900)


def test_aoti_cuda_packages_reproduce_pytorch_in_fp32_and_fp16(tiny_module, tmp_path, cli_cmd):
    x = torch.rand(7, 1, SIDE, SIDE)
    with torch.no_grad():
        reference = tiny_module(x).numpy()
    outputs = {}
    for p in ("fp32", "fp16"):
        path = tmp_path / f"s.{p}.aoti.pt2"
        record = to_aoti(tiny_module, torch.zeros(1, 1, SIDE, SIDE), path, "cuda", p, max_batch=64)
        assert record["device"] == "cuda" and record["precision"] == p
        runner = BACKENDS["aoti-cuda"](path)
        assert runner.device == "cuda" and runner.timing == "cuda_events"
        outputs[p] = runner.infer(x.numpy())
        assert outputs[p].dtype == np.float32 and check_parity(reference, outputs[p], p).passed
        with pytest.raises(KDCompressError, match="compiled for cuda"):
            BACKENDS["aoti-cpu"](path)
    # the fp16 package really computes in half precision: close to fp32, but not bit-equal to it
    assert np.max(np.abs(outputs["fp16"] - outputs["fp32"])) > 0
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in tiny_module.parameters())  # untouched
    proc = run(cli_cmd, "bench", tmp_path / "s.fp16.aoti.pt2", "--batch", "4", "--iters", "20", "--repeats", "2",
               "--warmup", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["backend"] == "aoti-cuda" and r["format"] == "aoti"


def test_gpu_profile_runs_end_to_end_on_this_gpu(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    """The `edge` target (TensorRT fp16): on TensorRT where it is installed, else on the AOTInductor CUDA package,
    saying so; every artifact is built for the GPU and checked against PyTorch on it."""
    proc = run(cli_cmd, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
               "--out", tmp_path / "edge", "--set", "target={device: cuda, backend: tensorrt, precision: fp16, batch: 1}",
               "--set", "export.int8=false", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    if backend_status()["tensorrt"].startswith("available"):
        assert result["backend"] == "tensorrt"
        suffix = ".engine"
    else:
        assert result["backend"] == "aoti-cuda" and "tensorrt unavailable" in result["backend_note"]
        assert "measuring on aoti-cuda" in proc.stderr
        suffix = ".aoti.pt2"
    rows = {s["precision"]: s for s in result["students"]}
    assert set(rows) == {"fp32", "fp16"}
    for p, row in rows.items():
        assert row["artifact"].endswith(f".{p}{suffix}") or (suffix == ".engine" and row["artifact"].endswith(suffix))
        assert row["parity"]["passed"] and row["accuracy"] > 0
    assert result["teacher"]["artifact"].endswith(suffix)
