"""How fast is the search? Candidates scored per second by each proxy, and the wall time of a 1000-evaluation aging
evolution (population + children drawn = 1000) on the shipped Fashion-MNIST teacher with the `ci` profile's
budget and backend (onnxruntime CPU, 1 thread, batch 1), with 1 worker process and with one per core.

    python benchmarks/search_speed.py [--evaluations 1000]

Writes ``benchmarks/results/search_speed.json`` with machine, versions and date.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from band import band_students  # noqa: E402

from kdcompress.job import Job  # noqa: E402
from kdcompress.records import TeacherRecord  # noqa: E402
from kdcompress.data import Preprocess, load_data  # noqa: E402
from kdcompress.export import to_onnx  # noqa: E402
from kdcompress.models.load import load_teacher  # noqa: E402
from kdcompress.profiles import load_profile  # noqa: E402
from kdcompress.report.environment import environment  # noqa: E402
from kdcompress.run import write_json  # noqa: E402
from kdcompress.search.evolution import search  # noqa: E402
from kdcompress.models.probe import proxy_batches  # noqa: E402
from kdcompress.search.proxies import PROXIES, count_flops, score_student  # noqa: E402


def proxy_rates(teacher, data, prep, n: int) -> dict[str, float]:
    """Students scored per second by each proxy, one process, one batch of 64, students of 5-30 MFLOPs."""
    students = band_students(["resnet", "mobilenetv2", "vgg"], max(1, n // 3), 5e6, 30e6)
    (b,) = proxy_batches(teacher, data.x_train, data.y_train, prep, 1, 64, "random", 0, with_teacher=True)
    rates = {}
    for name in PROXIES:
        t0 = time.perf_counter()
        for s in students:
            score_student(name, b.teacher, s["space"], s["genes"], 1, 10, b.x, b.y, b.seed)
        rates[name] = len(students) / (time.perf_counter() - t0)
        print(f"{name:16} {rates[name]:7.1f} students/s", flush=True)
    return rates


def timed_evolution(teacher, data, prep, evaluations: int, workers: int, tmp: Path) -> dict:
    profile = load_profile("ci", {"search.population": 50, "search.iterations": evaluations - 50,
                                  "search.workers": workers, "search.space": ["resnet", "mobilenetv2", "vgg"],
                                  "budget.latency_ratio": 0.2})  # one target: one 1000-evaluation evolution
    example = torch.zeros(1, *data.input_shape)
    teacher_onnx = tmp / "teacher.onnx"
    if not teacher_onnx.exists():
        to_onnx(teacher.module, example, teacher_onnx)
    flops = count_flops(teacher.module, prep(data.x_train[:1]))
    params = sum(p.numel() for p in teacher.module.parameters())
    out = tmp / f"w{workers}"
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    search(Job(teacher, data, prep, out / "teacher_logits.pt", 0), profile, TeacherRecord(str(teacher_onnx), "pt2", "", params, flops, data.num_classes, str(teacher_onnx), "", {}), "onnxruntime-cpu", out)
    seconds = time.perf_counter() - t0
    log = (out / "candidates.jsonl").read_text().splitlines()
    measured = sum('"latency_ms": null' not in line for line in log)
    print(f"{evaluations} evaluations, {workers} worker(s): {seconds:.1f} s ({len(log)} unique, {measured} timed)",
          flush=True)
    return {"seconds": round(seconds, 1), "unique_candidates": len(log), "latency_measured": measured}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evaluations", type=int, default=1000)
    ap.add_argument("--proxy-students", type=int, default=24)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    teacher, data, prep = load_teacher(ROOT / "teachers" / "fmnist_resnet.pt2"), load_data("fashion-mnist"), Preprocess()
    rates = proxy_rates(teacher, data, prep, args.proxy_students)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as d:
        runs = {w: timed_evolution(teacher, data, prep, args.evaluations, w, Path(d)) for w in sorted({1, cores})}
    write_json(args.out, {
        "benchmark": "search_speed",
        "command": f"python benchmarks/search_speed.py --evaluations {args.evaluations}",
        "students_per_second": rates,
        "evaluations": args.evaluations,
        "evolution_1000_s": runs[cores]["seconds"] if args.evaluations == 1000 else None,
        "evolution_by_workers": {str(w): r for w, r in runs.items()},
        "speedup_workers": runs[1]["seconds"] / runs[cores]["seconds"] if cores > 1 else 1.0,
        "profile": "ci (onnxruntime-cpu, 1 thread, batch 1, latency budget 0.2 of the teacher)",
        **environment(),
    })
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
