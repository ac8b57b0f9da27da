"""Does our latency harness add to what it measures? Ours vs the simplest possible timed loop, same session.

    python benchmarks/harness_overhead.py [--rounds 15] [--iters 300]

For each model (the shipped teacher's ONNX and a small student-sized ONNX), one onnxruntime CPU session (1 thread)
is timed four ways, in rounds whose order alternates (so machine drift and going first or last hit all alike):

- ``simple_bound``: ``t0 = perf_counter(); session.run_with_iobinding(binding); samples.append(...)`` — the
  simplest timed loop around the *same call* our harness times: ours vs this is the harness's own cost
  (``overhead_ratio``, target ≤ 1.05);
- ``simple_run``: the same loop around plain ``session.run(None, {name: x})`` — what a user would write; ours vs
  this (``vs_plain_run``) adds the gain of preallocated I/O;
- ``bare``: one clock read around ``iters`` back-to-back ``session.run`` calls (no per-call timing), mean;
- ``ours``: :func:`kdcompress.bench.measure_latency` on the runner kdcompress uses.

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


def timed_loop(call, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def bare_loop(call, iters: int) -> float:
    t0 = time.perf_counter()
    for _ in range(iters):
        call()
    return (time.perf_counter() - t0) * 1e3 / iters


def measure_model(path: Path, rounds: int, warmup: int, iters: int) -> dict:
    runner = BACKENDS["onnxruntime-cpu"](path, threads=1)
    x = np.zeros((1, 1, 28, 28), np.float32)
    feed, session = {runner.input_name: x}, runner.session
    bound = runner.bind(x)  # the call our harness times: run_with_iobinding on preallocated buffers
    ways = {
        "simple_bound": lambda: float(np.median(timed_loop(bound, warmup, iters))),
        "simple_run": lambda: float(np.median(timed_loop(lambda: session.run(None, feed), warmup, iters))),
        "bare": lambda: bare_loop(lambda: session.run(None, feed), iters),
        "ours": lambda: measure_latency(runner, x, warmup=warmup, iters=iters, repeats=1),
    }
    got: dict[str, list] = {k: [] for k in ways}
    order = list(ways)
    for r in range(rounds):
        for k in order if r % 2 == 0 else order[::-1]:
            got[k].append(ways[k]())
    ours_p50 = [lat.p50 for lat in got["ours"]]
    ours_mean = [lat.mean for lat in got["ours"]]
    ratios = [o / s for o, s in zip(ours_p50, got["simple_bound"])]
    return {
        "simple_bound_p50_ms": statistics.median(got["simple_bound"]),
        "simple_run_p50_ms": statistics.median(got["simple_run"]), "ours_p50_ms": statistics.median(ours_p50),
        "bare_mean_ms": statistics.median(got["bare"]), "ours_mean_ms": statistics.median(ours_mean),
        "overhead_ratio": statistics.median(ratios), "overhead_ratio_rounds": ratios,
        "vs_plain_run": statistics.median(ours_p50) / statistics.median(got["simple_run"]),
        "vs_bare": statistics.median(ours_mean) / statistics.median(got["bare"]),
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
            m = models[name]
            print(f"{name}: ours p50 {m['ours_p50_ms']:.4f} ms, simple loop (same call) {m['simple_bound_p50_ms']:.4f}"
                  f" ms -> overhead_ratio {m['overhead_ratio']:.3f}; vs a plain session.run loop "
                  f"{m['vs_plain_run']:.3f}; mean vs bare loop {m['vs_bare']:.3f}")
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
