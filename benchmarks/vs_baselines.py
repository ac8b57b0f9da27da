"""Our front against what users would do instead, on the shipped teacher, measured in one run.

    python benchmarks/vs_baselines.py [--profile ci] [--set KEY=VALUE ...] [--run runs/vs_baselines]
                                                                                    (= make bench-baselines)

Runs (or resumes) ``kdcompress shrink teachers/fmnist_resnet.pt2 --baselines`` with the profile and ``FRONT``'s
settings (unless ``--set`` replaces them) — our students for every latency target in fp32 and int8, and the recipes (int8 PTQ of the teacher; Torch-Pruning 50 % + fine-tune, and + int8;
75 % + KD) with the same data, epochs and harness, all latencies interleaved in one process — then measures this
machine's per-call floor (p50 of a one-layer model on the same input, interleaved with the teacher) and saves
``benchmarks/results/frontier.json``: ``ours`` and ``baselines`` rows (``name``, ``precision``, ``speedup_b1``,
``speedup_b32``, ``accuracy_drop``), ``b1_floor_ratio``, the issue's targets and whether each is met, with the
command, machine, versions and date.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from kdcompress.bench import BACKENDS, interleaved_latency
from kdcompress.bench.measure import predictions
from kdcompress.data import DataSplits, Preprocess, load_data
from kdcompress.export import to_onnx
from kdcompress.pipeline import Inputs, shrink
from kdcompress.profiles import load_profile, parse_overrides
from kdcompress.report.environment import environment
from kdcompress.run import write_json

ROOT = Path(__file__).resolve().parent.parent

# The ci profile's front (0.2x, 0.1x) is sized for a 15-minute demo; the recipes it is judged against sit at about
# 0.25x-0.35x of the teacher's latency, so the front gets a milder target too: at 0.5x the search picks a cut at full
# resolution with every block (20 % of channels), whose int8 twin runs faster than teacher-int8 and tp50-ft. (A 0.3x
# target picked a stride-doubled cut, which ended where the 0.2x one did: see the README.) budget.flops_ratio bounds
# what one training step of a student may cost; the ci profile's 0.25 shuts out every full-resolution cut milder than
# tp50's network (0.251), so here a student may cost up to 0.7 of the teacher's FLOPs (the 0.5x pick costs 0.48).
FRONT = ("budget.latency_ratio=[0.5, 0.2, 0.1]", "budget.flops_ratio=0.7")


def row(r: dict) -> dict:
    tp = r.get("throughput") or {}
    return {"name": r.get("name", r["id"]), "precision": r["precision"], "speedup_b1": r["speedup"],
            "speedup_b32": tp.get("speedup"), "accuracy_drop": r["accuracy_drop"], "accuracy": r["accuracy"],
            "p50_ms": r["latency_ms"]["p50"]}


def floor_ratio(teacher_onnx: Path, threads: int) -> tuple[float, float]:
    """(teacher p50 / one-layer model p50, floor p50 ms): the most a batch-1 speed-up can be on this runtime."""
    one = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "floor.onnx"
        to_onnx(one, torch.zeros(1, 1, 28, 28), path)
        runners = {"teacher": BACKENDS["onnxruntime-cpu"](teacher_onnx, threads=threads),
                   "floor": BACKENDS["onnxruntime-cpu"](path, threads=threads)}
        lat = interleaved_latency(runners, np.zeros((1, 1, 28, 28), np.float32), 50, 300, 5)
    return lat["teacher"].p50 / lat["floor"].p50, lat["floor"].p50


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar test (binomial on the discordant pairs): is one classifier more accurate?"""
    n, k = only_a + only_b, min(only_a, only_b)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0


def closest_contender(baseline: dict, ours: list[dict], data: DataSplits, prep: Preprocess) -> dict | None:
    """Our most accurate row at least as fast as a recipe, and whether its accuracy gap to the recipe is more than
    test-set noise — both on the same 10,000 images, so paired (McNemar). For every recipe, beaten or not: a win
    by a few images is a tie, and the file says so."""
    faster = [r for r in ours if r["latency_ms"]["p50"] <= baseline["latency_ms"]["p50"]]
    if not faster:
        return None
    best = max(faster, key=lambda r: r["accuracy"])
    right = {}
    for name, row in (("ours", best), ("theirs", baseline)):
        runner = BACKENDS["onnxruntime-cpu"](Path(row["artifact"]), threads=1)
        right[name] = predictions(runner, data.x_test, prep) == data.y_test.numpy()
    only_ours, only_theirs = int((right["ours"] & ~right["theirs"]).sum()), int((~right["ours"] & right["theirs"]).sum())
    return {"name": best["id"], "accuracy_gap": best["accuracy"] - baseline["accuracy"], "only_ours_right": only_ours,
            "only_theirs_right": only_theirs, "mcnemar_p": mcnemar_p(only_ours, only_theirs),
            "speedup_over_it": baseline["latency_ms"]["p50"] / best["latency_ms"]["p50"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                    help=f"override a profile field (default: {' '.join(FRONT)})")
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "vs_baselines")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "frontier.json")
    args = ap.parse_args()
    t0 = time.time()
    sets = tuple(args.overrides or FRONT)
    profile = load_profile(args.profile, parse_overrides(sets))
    inputs = Inputs(str(ROOT / "teachers" / "fmnist_resnet.pt2"), "fashion-mnist", profile, baselines=True)
    result = shrink(inputs, args.run, resume=True)
    ratio, floor_ms = floor_ratio(Path(result["teacher"]["artifact"]), profile.target.threads)
    ours = [row(r) for r in result["students"]]
    data = load_data("fashion-mnist", profile.data.val_fraction, 0)
    prep = Preprocess(tuple(profile.data.mean), tuple(profile.data.std))
    baselines = {r["name"]: row(r) | {"description": r["description"], "beaten_by": r["beaten_by"],
                                      "closest": closest_contender(r, result["students"], data, prep)}
                 for r in result["baselines"]}
    ok = [r for r in ours if r["accuracy_drop"] <= 0.5]
    best_b1 = max((r["speedup_b1"] for r in ok), default=None)
    best_b32 = max((r["speedup_b32"] or 0 for r in ok), default=None)
    b1_target = min(10.0, ratio / 1.25)  # 10x, or within 1.25x of this machine's floor where 10x is impossible
    targets = {
        "b1_speedup_at_0.5_points": {"target": b1_target, "best": best_b1,
                                     "met": best_b1 is not None and best_b1 >= b1_target},
        "b32_throughput_at_0.5_points": {"target": 15.0, "best": best_b32,
                                         "met": best_b32 is not None and best_b32 >= 15.0},
        "every_baseline_beaten": {"met": bool(baselines) and all(b["beaten_by"] for b in baselines.values()),
                                  "not_beaten": [n for n, b in baselines.items() if not b["beaten_by"]]},
    }
    figures = {
        "benchmark": "vs_baselines", "command": f"python benchmarks/vs_baselines.py --profile {args.profile} "
                   + " ".join(f"--set '{o}'" for o in sets), "overrides": list(sets),
        "profile": args.profile, "backend": result["backend"], "threads": result["threads"],
        "throughput_batch": (result["teacher"].get("throughput") or {}).get("batch"),
        "test_samples": result["test_samples"], "teacher_accuracy": result["teacher"]["accuracy"],
        "ours": ours, "baselines": baselines, "frontier": result["frontier"],
        "b1_floor_ratio": ratio, "b1_floor_p50_ms": floor_ms, "targets": targets,
        "seconds_this_invocation": round(time.time() - t0, 1), **environment(),
    }
    write_json(args.out, figures)
    print(json.dumps({"targets": targets, "b1_floor_ratio": ratio}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
