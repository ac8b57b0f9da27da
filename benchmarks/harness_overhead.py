"""Does our latency harness add to what it measures? Ours vs the simplest possible timed loop, same session.

    python benchmarks/harness_overhead.py [--rounds 15] [--iters 300]

For each model (the shipped teacher's ONNX and a small student-sized ONNX), one onnxruntime CPU session (1 thread)
is timed three ways, in alternating rounds so that machine drift hits all alike:

- ``simple``: ``t0 = perf_counter(); session.run(None, {name: x}); samples.append(perf_counter() - t0)``;
- ``bare``: one clock read around ``iters`` back-to-back ``session.run`` calls (no per-call timing at all), mean;
- ``ours``: :func:`kdcompress.bench.measure_latency` on the runner kdcompress uses (I/O binding, preallocated
  buffers).

``overhead_ratio`` = median over rounds of ours p50 / simple p50 (target ≤ 1.05); ``vs_bare`` compares means.
``trtexec`` and ``onnxruntime_perf_test`` are timed too where installed (they are not, on our machines).
Saves ``benchmarks/results/harness_overhead.json`` with machine, versions and date.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from kdcompress.bench import BACKENDS, measure_latency
from kdcompress.export import to_onnx
from kdcompress.models.load import load_teacher
from kdcompress.models.students import build_resnet
from kdcompress.report.environment import environment
from kdcompress.run import write_json

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"stem": 16, "widths": [16, 32, 32], "depths": [1, 1, 1], "stem_stride": 2}


def simple_loop(session, name: str, x: np.ndarray, warmup: int, iters: int) -> tuple[float, float]:
    """(p50 of per-call timings, mean of one clock around all calls), in ms."""
    feed = {name: x}
    for _ in range(warmup):
        session.run(None, feed)
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - t0) * 1e3)
    t0 = time.perf_counter()
    for _ in range(iters):
        session.run(None, feed)
    bare = (time.perf_counter() - t0) * 1e3 / iters
    return float(np.median(samples)), bare


def measure_model(path: Path, rounds: int, warmup: int, iters: int) -> dict:
    runner = BACKENDS["onnxruntime-cpu"](path, threads=1)
    x = np.zeros((1, 1, 28, 28), np.float32)
    ours, ours_mean, simple, bare = [], [], [], []
    for _ in range(rounds):
        s50, b = simple_loop(runner.session, runner.input_name, x, warmup, iters)
        simple.append(s50)
        bare.append(b)
        lat = measure_latency(runner, x, warmup=warmup, iters=iters, repeats=1)
        ours.append(lat.p50)
        ours_mean.append(lat.mean)
    ratios = [o / s for o, s in zip(ours, simple)]
    return {
        "simple_p50_ms": statistics.median(simple), "ours_p50_ms": statistics.median(ours),
        "bare_mean_ms": statistics.median(bare), "ours_mean_ms": statistics.median(ours_mean),
        "overhead_ratio": statistics.median(ratios), "overhead_ratio_rounds": ratios,
        "vs_bare": statistics.median(ours_mean) / statistics.median(bare),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "harness_overhead.json")
    args = ap.parse_args()
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        teacher = Path(tmp) / "teacher.onnx"
        to_onnx(load_teacher(ROOT / "teachers" / "fmnist_resnet.pt2").module, torch.zeros(1, 1, 28, 28), teacher)
        small = Path(tmp) / "small.onnx"
        to_onnx(build_resnet(SMALL, 1, 10).eval(), torch.zeros(1, 1, 28, 28), small)
        for name, path in (("teacher", teacher), ("small_student", small)):
            models[name] = measure_model(path, args.rounds, args.warmup, args.iters)
            print(f"{name}: ours p50 {models[name]['ours_p50_ms']:.4f} ms, simple loop {models[name]['simple_p50_ms']:.4f}"
                  f" ms -> overhead_ratio {models[name]['overhead_ratio']:.3f}; mean vs bare loop "
                  f"{models[name]['vs_bare']:.3f}")
    reference_tools = {t: (shutil.which(t) or "not installed") for t in ("trtexec", "onnxruntime_perf_test")}
    figures = {
        "benchmark": "harness_overhead",
        "command": f"python benchmarks/harness_overhead.py --rounds {args.rounds} --iters {args.iters}",
        "backend": "onnxruntime-cpu", "threads": 1, "batch": 1, "rounds": args.rounds, "iters": args.iters,
        "overhead_ratio": max(m["overhead_ratio"] for m in models.values()),
        "target": "overhead_ratio <= 1.05", "models": models, "reference_tools": reference_tools,
        **environment(),
    }
    write_json(args.out, figures)
    print(f"overhead_ratio (worst model) {figures['overhead_ratio']:.3f}; saved {args.out}")


if __name__ == "__main__":
    main()
