"""Can the search's latency be trusted? Two checks (issue 13, "latency the search can trust"):

1. the graph the search times (a quick TorchScript-exporter ONNX) against the graph that ships (the dynamo
   exporter's, optimised): both timed interleaved on the same backend, per student, with each exporter's seconds;
2. what the search measured for each shipped student against what bench measured for its artifact, from the runs
   given (their ``result.json``: ``searched_latency_ratio`` vs ``latency_ratio``).

    python benchmarks/search_latency.py [--runs runs/demo runs/vs_baselines ...]

Saves ``benchmarks/results/search_latency.json`` with machine, versions and date.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from kdcompress.bench import interleaved_latency
from kdcompress.bench.backends import BACKENDS
from kdcompress.export.onnx import onnx_bytes, to_onnx
from kdcompress.models.students import build_student
from kdcompress.report.environment import environment
from kdcompress.run import write_json

ROOT = Path(__file__).resolve().parent.parent
STUDENTS = [  # family students of the sizes the ci search picks among (28x28 Fashion-MNIST input)
    ("resnet", {"depths": [1, 2, 1], "stem": 16, "stem_stride": 2, "widths": [40, 64, 32]}),
    ("resnet", {"depths": [1, 1, 1], "stem": 8, "stem_stride": 2, "widths": [8, 32, 48]}),
    ("resnet", {"stem": 16, "stem_stride": 1, "widths": [16, 32, 64], "depths": [1, 1, 1]}),
    ("mobilenetv2", {"depths": [1, 1, 1], "expand": [2, 2, 2], "kernel": [3, 3, 3], "last": 64, "stem": 8,
                     "stem_stride": 1, "widths": [16, 16, 24]}),
    ("vgg", {"depths": [2, 1, 1], "kernel": [3, 5, 5], "widths": [8, 16, 16]}),
]


def exporters(args: argparse.Namespace) -> list[dict]:
    torch.set_num_threads(1)
    x = torch.zeros(1, 1, 28, 28)
    rows = []
    for family, genes in STUDENTS:
        model = build_student(family, genes, 1, 10).eval()
        t0 = time.perf_counter()
        quick = onnx_bytes(model, x)
        t_quick = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            exporter = to_onnx(model, x, Path(d) / "m.onnx")
            t_ship = time.perf_counter() - t0
            shipped = (Path(d) / "m.onnx").read_bytes()
        runners = {"search": BACKENDS[args.backend](quick, threads=1), "shipped": BACKENDS[args.backend](shipped, threads=1)}
        lat = interleaved_latency(runners, np.zeros((1, 1, 28, 28), np.float32), warmup=50, iters=200, repeats=5)
        row = {"family": family, "genes": genes, "shipped_exporter": exporter, "export_seconds_search": t_quick,
               "export_seconds_shipped": t_ship, "p50_ms_search": lat["search"].p50, "p50_ms_shipped": lat["shipped"].p50,
               "shipped_over_search": lat["shipped"].p50 / lat["search"].p50}
        rows.append(row)
        print(f"{family:12s} search graph {row['p50_ms_search']:.4f} ms, shipped {row['p50_ms_shipped']:.4f} ms "
              f"(x{row['shipped_over_search']:.3f}); export {t_quick:.2f} s vs {t_ship:.2f} s", flush=True)
    return rows


def searched_vs_bench(runs: list[Path]) -> list[dict]:
    rows = []
    for run in runs:
        path = run / "result.json"
        if not path.exists():
            print(f"skipped {run}: no result.json")
            continue
        for s in json.loads(path.read_text())["students"]:
            if s["precision"] == "fp32" and s.get("searched_latency_ratio"):
                rows.append({"run": str(run), "student": s["id"], "target": s.get("target"),
                             "searched": s["searched_latency_ratio"], "bench": s["latency_ratio"],
                             "bench_over_searched": s["latency_ratio"] / s["searched_latency_ratio"]})
                print(f"{run}/{s['id']}: searched {rows[-1]['searched']:.3f}, bench {rows[-1]['bench']:.3f}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="*", type=Path, default=[ROOT / "runs" / "demo", ROOT / "runs" / "vs_baselines"])
    ap.add_argument("--backend", default="onnxruntime-cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search_latency.json")
    args = ap.parse_args()
    ex = exporters(args)
    sb = searched_vs_bench(args.runs)
    ratios = [r["shipped_over_search"] for r in ex]
    agreement = [r["bench_over_searched"] for r in sb]
    write_json(args.out, {
        "benchmark": "search_latency", "command": " ".join(["python", *sys.argv]), "backend": args.backend,
        "threads": 1, "exporters": ex, "searched_vs_bench": sb,
        "shipped_over_search_range": [min(ratios), max(ratios)] if ratios else None,
        "bench_over_searched_range": [min(agreement), max(agreement)] if agreement else None,
        **environment(),
    })
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
