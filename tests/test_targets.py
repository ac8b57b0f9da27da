"""Runs on other targets: a GPU profile on a machine without one (falls back, says so, still builds the fp16
artifact and measures it), and an AOTInductor target end to end (slow: two compilations)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch


def run(cmd, *args):
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=900)


@pytest.mark.slow  # ~30 s; test_precisions checks fp16 artifacts in the fast suite
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback of a machine without a GPU")
def test_gpu_fp16_profile_falls_back_and_still_verifies_fp16(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    out = tmp_path / "edge"
    proc = run(cli_cmd, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz, "--out", out,
               "--set", "target={device: cuda, backend: tensorrt, precision: fp16, batch: 1}",
               "--set", "export.int8=false", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "target backend tensorrt unavailable" in proc.stderr and "measuring on onnxruntime-cpu" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["backend"] == "onnxruntime-cpu" and "tensorrt unavailable" in result["backend_note"]
    fp16 = next(s for s in result["students"] if s["precision"] == "fp16")
    assert fp16["artifact"].endswith(".fp16.onnx") and fp16["parity"]["passed"] and fp16["accuracy"] > 0
    strict = run(cli_cmd, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
                 "--out", tmp_path / "strict", "--set", "target.device=cuda", "--set", "target.backend=tensorrt",
                 "--strict-target")
    assert strict.returncode == 2 and "drop --strict-target" in strict.stderr and "Traceback" not in strict.stderr


@pytest.mark.slow
def test_aoti_target_end_to_end(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    out = tmp_path / "aoti"
    proc = run(cli_cmd, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz, "--out", out,
               "--set", "target.backend=aoti", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "no int8 artifact on aoti-cpu" in proc.stderr  # the profile asks for int8; AOTInductor has none
    result = json.loads(proc.stdout)
    assert result["backend"] == "aoti-cpu" and result["teacher"]["artifact"].endswith("teacher.fp32.aoti.pt2")
    (row,) = result["students"]
    assert row["format"] == "aoti" and row["artifact"].endswith(".fp32.aoti.pt2") and row["parity"]["passed"]
    assert Path(row["artifact"]).exists() and row["accuracy"] > 0
