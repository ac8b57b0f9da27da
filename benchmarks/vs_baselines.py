"""Our front against what users would do instead, over seeds, under the protocol in the README.

    python benchmarks/vs_baselines.py [--profile front] [--seeds 0 1 2] [--teacher PATH]   (= make bench-baselines)

For each seed, runs (or resumes) ``kdcompress shrink TEACHER --profile front --baselines --seed S`` in
``runs/front/seed<S>``: our students for every latency target in fp32 and int8, and every recipe of
``kdcompress.baselines`` (teacher int8; Torch-Pruning 50 % + fine-tune; 50 % and 75 % + our KD; the teacher trained
on by KD from itself; each also in int8), all with the same data, epochs, export and harness, latencies interleaved
in one process. Then, per recipe and seed, it picks *on validation* our artifact to put against it: of our artifacts
faster than the recipe at batch 1 in that run, the most accurate on the validation split (each ONNX file run on it
here; the test split is read only by the run's bench). Accuracy is compared paired by seed, Holm-corrected over the
recipes; the verdict follows ``kdcompress.report.compare``. Results are saved after every seed (the file says how
many are in) to ``benchmarks/results/frontier.json`` with the command, machine (int8 kernels included), versions and
date. Hours on 2 CPU cores; resumable: run it again to continue.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

from kdcompress.bench import BACKENDS
from kdcompress.bench.measure import accuracy
from kdcompress.data import Preprocess, load_data
from kdcompress.pipeline import Inputs, shrink
from kdcompress.profiles import load_profile
from kdcompress.records import Result
from kdcompress.report.compare import verdicts
from kdcompress.report.environment import environment
from kdcompress.run import write_json

ROOT = Path(__file__).resolve().parent.parent
TRAIN_ONLY = ROOT / "teachers" / "fmnist_resnet_trainonly.pt2"  # never saw the validation split (issue 29)
SHIPPED = ROOT / "teachers" / "fmnist_resnet.pt2"


def validation_accuracy(artifact: str, data, prep: Preprocess, cache: dict[str, float]) -> float:
    """Accuracy of an ONNX file on the validation split (cached per file: artifacts do not change once a run is
    done)."""
    if artifact not in cache:
        runner = BACKENDS["onnxruntime-cpu"](Path(artifact), threads=1)
        cache[artifact] = accuracy(runner, data.x_val, data.y_val, prep)
    return cache[artifact]


def pick_against(result: Result, recipe: str, data, prep: Preprocess, cache: dict[str, float]) -> dict | None:
    """Our artifact put against ``recipe`` in one run: faster than it at batch 1, most accurate on validation
    (ties: the faster). None where none of ours is faster."""
    theirs = next(r for r in result.baselines if r.name == recipe)
    faster = [r for r in result.students if r.latency_ms["p50"] < theirs.latency_ms["p50"]]
    if not faster:
        return None
    best = max(faster, key=lambda r: (validation_accuracy(r.artifact, data, prep, cache), -r.latency_ms["p50"]))
    b32 = (theirs.throughput and best.throughput and best.throughput.images_per_s / theirs.throughput.images_per_s)
    return {"ours": best.id, "ours_val": validation_accuracy(best.artifact, data, prep, cache),
            "ours_test": best.accuracy, "theirs_test": theirs.accuracy,
            "speedup_b1": theirs.latency_ms["p50"] / best.latency_ms["p50"], "speedup_b32": b32}


def summarise(results: dict[int, Result], data, prep: Preprocess, cache: dict[str, float]) -> dict:
    """Per recipe: the per-seed picks, and over the seeds every recipe has a pick in, the verdict."""
    recipes = [r.name for r in next(iter(results.values())).baselines]
    per_recipe: dict[str, dict] = {}
    compared: dict[str, tuple[float, list[float], list[float]]] = {}
    for name in recipes:
        picks = {seed: pick_against(res, name, data, prep, cache) for seed, res in results.items()}
        per_recipe[name] = {"picks": picks}
        paired = [p for p in picks.values() if p is not None]
        if len(paired) < len(picks):
            per_recipe[name]["verdict"] = {"winner": "theirs" if not paired else "not compared",
                                           "why": f"none of ours is faster in {len(picks) - len(paired)} seed(s)"}
            continue
        speedup = math.exp(sum(math.log(p["speedup_b1"]) for p in paired) / len(paired))  # geometric mean
        compared[name] = (speedup, [p["ours_test"] for p in paired], [p["theirs_test"] for p in paired])
    if compared:
        for name, v in verdicts(compared).items():
            per_recipe[name]["verdict"] = {**asdict(v), "speedup_b1_geomean": v.speedup}
    return per_recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="front")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--teacher", type=Path, default=TRAIN_ONLY if TRAIN_ONLY.exists() else SHIPPED)
    ap.add_argument("--run-root", type=Path, default=ROOT / "runs" / "front")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "frontier.json")
    args = ap.parse_args()
    t0 = time.time()
    profile = load_profile(args.profile)
    data = load_data("fashion-mnist", profile.data.val_fraction, profile.data.split_seed)  # the tool's own carve
    prep = Preprocess(tuple(profile.data.mean), tuple(profile.data.std))
    cache: dict[str, float] = {}
    results: dict[int, Result] = {}
    for seed in args.seeds:
        inputs = Inputs(str(args.teacher), "fashion-mnist", profile, seed=seed, baselines=True)
        results[seed] = shrink(inputs, args.run_root / f"seed{seed}", resume=True)
        first = results[args.seeds[0]]
        figures = {
            "benchmark": "vs_baselines", "protocol": "README.md#the-benchmark-protocol",
            "command": f"python benchmarks/vs_baselines.py --profile {args.profile} --seeds "
                       + " ".join(map(str, args.seeds)) + f" --teacher {args.teacher.relative_to(ROOT)}",
            "teacher": str(args.teacher.relative_to(ROOT)), "profile": args.profile, "seeds_done": sorted(results),
            "seeds_asked": args.seeds, "backend": first.backend, "threads": first.threads,
            "int8": first.int8, "test_samples": first.test_samples,
            "teacher_accuracy": {s: r.teacher.accuracy for s, r in results.items()},
            "ours": {s: [{"id": r.id, "precision": r.precision, "accuracy": r.accuracy, "speedup_b1": r.speedup,
                          "speedup_b32": r.throughput.speedup if r.throughput else None,
                          "val_accuracy": validation_accuracy(r.artifact, data, prep, cache)}
                         for r in res.students] for s, res in results.items()},
            "recipes": {s: [{"name": r.name, "precision": r.precision, "accuracy": r.accuracy, "speedup_b1": r.speedup,
                             "speedup_b32": r.throughput.speedup if r.throughput else None}
                            for r in res.baselines] for s, res in results.items()},
            "comparison": summarise(results, data, prep, cache),
            "seconds_this_invocation": round(time.time() - t0, 1), **environment(),
        }
        write_json(args.out, figures)
        print(f"seed {seed} done; saved {args.out}")
    print(json.dumps({n: c.get("verdict", {}).get("winner") for n, c in figures["comparison"].items()}, indent=2))


if __name__ == "__main__":
    main()
