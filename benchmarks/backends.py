"""Every artifact kdcompress can build for the shipped teacher and a demo student, on every backend present here:
latency ratio and accuracy of each, measured in one process.

    python benchmarks/backends.py [--run runs/demo] [--test-samples N]

The student is the demo run's best fp32 student (``make demo`` first). For each model: fp32 ONNX, fp16 ONNX, int8
QDQ ONNX with the scheme chosen for this CPU and with ``reduce_range`` flipped (to show what the choice is worth),
an AOTInductor package, and eager PyTorch as the reference. On a GPU machine also: eager CUDA fp32, AOTInductor
CUDA fp32 and fp16, onnxruntime CUDA and TensorRT where installed. Latencies are batch 1 (1 thread on CPU),
interleaved per device; accuracy is each artifact's own on the test split. Saves
``benchmarks/results/backends[_<gpu>].json`` with machine, versions and date.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from kdcompress.bench import BACKENDS, accuracy, backend_status, interleaved_latency
from kdcompress.bench.runners import TorchRunner
from kdcompress.data import Preprocess, load_data
from kdcompress.distill import load_student
from kdcompress.export import check_parity, to_onnx
from kdcompress.export.aoti import to_aoti
from kdcompress.export.artifacts import calibration_images
from kdcompress.export.fp16 import to_fp16
from kdcompress.export.int8 import choose_scheme, to_int8
from kdcompress.export.tensorrt import build_engine, current_gpu
from kdcompress.models.load import load_teacher
from kdcompress.report.environment import environment
from kdcompress.run import read_json, write_json

ROOT = Path(__file__).resolve().parent.parent


def build(model: torch.nn.Module, stem: str, d: Path, calib: np.ndarray, status: dict[str, str]) -> dict:
    """{artifact name: (backend, path or module)} for one model."""
    ok = {n for n, s in status.items() if s.startswith("available")}
    x1 = torch.zeros(1, 1, 28, 28)
    fp32 = d / f"{stem}.onnx"
    to_onnx(model, x1, fp32)
    fp16 = d / f"{stem}.fp16.onnx"
    to_fp16(fp32, fp16)
    auto = choose_scheme("cpu")
    flipped = replace(auto, reduce_range=not auto.reduce_range, reason="reduce_range flipped, for comparison")
    int8, int8_alt = d / f"{stem}.int8.onnx", d / f"{stem}.int8-rr{int(flipped.reduce_range)}.onnx"
    to_int8(fp32, int8, calib, auto)
    to_int8(fp32, int8_alt, calib, flipped)
    arts: dict[str, tuple[str, object]] = {
        "eager-cpu fp32": ("torch-cpu", model),
        "onnx fp32": ("onnxruntime-cpu", fp32), "onnx fp16": ("onnxruntime-cpu", fp16),
        f"onnx int8 ({auto.scheme}, reduce_range {auto.reduce_range})": ("onnxruntime-cpu", int8),
        f"onnx int8 ({flipped.scheme}, reduce_range {flipped.reduce_range})": ("onnxruntime-cpu", int8_alt),
    }
    if "aoti-cpu" in ok:
        pkg = d / f"{stem}.fp32.aoti.pt2"
        to_aoti(model, x1, pkg, "cpu", "fp32")
        arts["aoti-cpu fp32"] = ("aoti-cpu", pkg)
    if torch.cuda.is_available():
        arts["eager-cuda fp32"] = ("torch-cuda", model)
        if "aoti-cuda" in ok:
            for p in ("fp32", "fp16"):
                pkg = d / f"{stem}.{p}.cuda.aoti.pt2"
                to_aoti(model, x1, pkg, "cuda", p)
                arts[f"aoti-cuda {p}"] = ("aoti-cuda", pkg)
        if "onnxruntime-cuda" in ok:
            arts["onnx-cuda fp32"], arts["onnx-cuda fp16"] = ("onnxruntime-cuda", fp32), ("onnxruntime-cuda", fp16)
        if "tensorrt" in ok:
            gpu_int8 = d / f"{stem}.int8-gpu.onnx"
            to_int8(fp32, gpu_int8, calib, choose_scheme("cuda"))
            for p, src in (("fp32", fp32), ("fp16", fp16), ("int8", gpu_int8)):
                arts[f"tensorrt {p}"] = ("tensorrt", build_engine(src, d, stem, p, (1, 28, 28), (1, 1, 256),
                                                                  d, current_gpu()))
    return arts


def runner_for(backend: str, what: object):
    if backend.startswith("torch-"):
        device = backend.removeprefix("torch-")
        return TorchRunner(copy.deepcopy(what).to(device), device, backend)  # type: ignore[arg-type]
    return BACKENDS[backend](what, threads=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "demo")
    ap.add_argument("--test-samples", type=int, default=None)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    result = read_json(args.run / "result.json")
    sid = next(s["student"] for s in result["students"] if s["precision"] == "fp32")
    teacher = load_teacher(ROOT / "teachers" / "fmnist_resnet.pt2").module
    student = load_student(args.run / "students" / sid)
    data = load_data("fashion-mnist", 0.1, 0)
    prep = Preprocess()
    calib = prep(calibration_images(data.x_train, 512, 0)).numpy()
    x_test, y_test = data.x_test[: args.test_samples], data.y_test[: args.test_samples]
    status = backend_status()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        runners = {}
        for stem, model in (("teacher", teacher), ("student", student)):
            for name, (backend, what) in build(model, stem, Path(tmp), calib, status).items():
                runners[(stem, name)] = (backend, runner_for(backend, what))
        x = np.zeros((1, 1, 28, 28), np.float32)
        lat = {}
        for device in ("cpu", "cuda"):
            group = {k: r for k, (_, r) in runners.items() if r.device == device}
            if group:
                lat.update(interleaved_latency(group, x, 50, args.iters, args.repeats))
        ref_x = prep(data.x_val[:256]).numpy()
        for (stem, name), (backend, r) in runners.items():
            eager = runners[(stem, "eager-cpu fp32")][1].infer(ref_x)
            rows[f"{stem} | {name}"] = {
                "model": stem, "artifact": name, "backend": backend, "device": r.device,
                "p50_ms": lat[(stem, name)].p50, "p90_ms": lat[(stem, name)].p90,
                "accuracy": accuracy(r, x_test, y_test, prep),
                "parity_vs_eager": check_parity(eager, r.infer(ref_x), "int8" if "int8" in name else
                                                ("fp16" if "fp16" in name else "fp32")).to_json(),
            }
    t_ref = rows["teacher | onnx fp32"]["p50_ms"]
    for row in rows.values():
        row["speedup_vs_teacher_onnx_fp32"] = t_ref / row["p50_ms"]
        same = rows.get(f"{row['model']} | onnx fp32" if row["device"] == "cpu" else f"{row['model']} | eager-cuda fp32")
        row["speedup_vs_same_model_fp32"] = same["p50_ms"] / row["p50_ms"] if same else None
        row["accuracy_vs_onnx_fp32"] = row["accuracy"] - rows[f"{row['model']} | onnx fp32"]["accuracy"]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    out = args.out or ROOT / "benchmarks" / "results" / (
        "backends.json" if gpu is None else f"backends_{re.sub(r'[^a-z0-9]+', '_', gpu.lower()).strip('_')}.json")
    figures = {
        "benchmark": "backends", "command": " ".join(["python", *sys.argv]),
        "student": sid, "batch": 1, "cpu_threads": 1, "test_samples": len(y_test),
        "int8_scheme_here": choose_scheme("cpu").to_json(), "backends": status, "rows": rows, **environment(),
    }
    write_json(out, figures)
    w = max(len(k) for k in rows)
    print(f"{'artifact':{w}s}  p50 ms   ×teacher  ×fp32   acc %   Δ vs onnx fp32")
    for k, r in rows.items():
        same = r["speedup_vs_same_model_fp32"]
        print(f"{k:{w}s}  {r['p50_ms']:.4f}  {r['speedup_vs_teacher_onnx_fp32']:7.2f}  "
              f"{same if same is None else f'{same:5.2f}'}  {r['accuracy']:6.2f}  {r['accuracy_vs_onnx_fp32']:+.2f}")
    print(json.dumps({"saved": str(out)}))


if __name__ == "__main__":
    main()
