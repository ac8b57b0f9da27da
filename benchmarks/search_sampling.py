"""How many candidates does the search time in vain? The family search of the `ci` profile (resnet, mobilenetv2, vgg;
its two latency targets, onnxruntime CPU, 1 thread) on the shipped teacher, over several seeds, with the population
sampled into the budget's FLOPs share before timing (the search as it is) and without (each sample timed, then
shrunk while it misses: ``within_share`` replaced by a function that always says yes, as the search was before).

    python benchmarks/search_sampling.py [--seeds 0 1 2 3] [--iterations 0 48]

Writes ``benchmarks/results/search_sampling.json`` with machine, versions and date: per arm, iterations and seed, the
candidates evaluated, timed, and timed but rejected, the best proxy score per target and the seconds.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from kdcompress.job import Job
from kdcompress.records import TeacherRecord
from kdcompress.data import Preprocess, load_data
from kdcompress.export import to_onnx
from kdcompress.models.load import load_teacher
from kdcompress.profiles import load_profile
from kdcompress.report.environment import environment
from kdcompress.run import write_json
from kdcompress.search import evolution
from kdcompress.search.proxies import count_flops

ROOT = Path(__file__).resolve().parent.parent
ARMS = {"sample_into_share": evolution.within_share, "time_then_shrink": lambda cand, ctx: True}


def one_search(teacher, data, prep, iterations: int, seed: int, work: Path) -> dict:
    profile = load_profile("ci", {"search.iterations": iterations, "search.workers": 1, "search.latency_cache": False,
                                  "search.space": ["resnet", "mobilenetv2", "vgg"]})
    teacher_onnx = work / "teacher.onnx"
    if not teacher_onnx.exists():
        to_onnx(teacher.module, torch.zeros(1, *data.input_shape), teacher_onnx)
    flops = count_flops(teacher.module, prep(data.x_train[:1]))
    params = sum(p.numel() for p in teacher.module.parameters())
    out = Path(tempfile.mkdtemp(dir=work))
    t0 = time.perf_counter()
    evolution.search(Job(teacher, data, prep, out / "teacher_logits.pt", seed), profile, TeacherRecord(str(teacher_onnx), "pt2", "", params, flops, data.num_classes, str(teacher_onnx), "", {}), "onnxruntime-cpu", out)
    seconds = time.perf_counter() - t0
    log = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    timed = [c for c in log if c["latency_ms"] is not None]
    best = {str(t): max(c["scores"]["synflow"] for c in log if c["target"] == t and c["feasible"])
            for t in profile.budget.targets}
    above = [c for c in timed if c["flops"] > c["target"] * flops]  # above the target's share of the teacher's FLOPs
    return {"seed": seed, "evaluated": len(log), "timed": len(timed),
            "timed_rejected": sum(not c["feasible"] for c in timed), "best_synflow": best, "seconds": round(seconds, 1),
            # what the share rule rests on: timed candidates above the share, and how many of them met the budget
            "timed_above_share": len(above), "feasible_above_share": sum(c["feasible"] for c in above)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    ap.add_argument("--iterations", nargs="+", type=int, default=[0, 48])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search_sampling.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    teacher, data, prep = load_teacher(ROOT / "teachers" / "fmnist_resnet.pt2"), load_data("fashion-mnist"), Preprocess()
    runs: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory() as d:
        for iterations in args.iterations:
            for arm, fits in ARMS.items():
                evolution.within_share = fits  # workers=1: the search samples in this process
                for seed in args.seeds:
                    r = one_search(teacher, data, prep, iterations, seed, Path(d))
                    runs.setdefault(str(iterations), {}).setdefault(arm, []).append(r)
                    print(f"iterations {iterations} {arm:17s} seed {seed}: {r}", flush=True)
    evolution.within_share = ARMS["sample_into_share"]
    counted = ("evaluated", "timed", "timed_rejected", "seconds", "timed_above_share", "feasible_above_share")
    total = {it: {arm: {k: sum(r[k] for r in rs) for k in counted}
                  for arm, rs in by_arm.items()} for it, by_arm in runs.items()}
    ratio = {it: {k: t["sample_into_share"][k] / t["time_then_shrink"][k] for k in ("timed", "timed_rejected")}
             for it, t in total.items()}
    # the pick's quality: does sampling into the share find proxy scores as high? (per seed and target)
    compare = {it: collections.Counter(
        "higher" if a["best_synflow"][t] > b["best_synflow"][t] else
        "lower" if a["best_synflow"][t] < b["best_synflow"][t] else "equal"
        for a, b in zip(by_arm["sample_into_share"], by_arm["time_then_shrink"]) for t in a["best_synflow"])
        for it, by_arm in runs.items()}
    write_json(args.out, {
        "benchmark": "search_sampling", "command": " ".join(["python", *sys.argv]),
        "profile": "ci, family spaces only (resnet, mobilenetv2, vgg), 1 worker, latency cache off",
        "runs": runs, "total": total, "ratio_sampled_to_rejecting": ratio,
        "sampled_best_score_vs_rejecting": {it: dict(c) for it, c in compare.items()}, **environment(),
    })
    for it, t in total.items():
        rejecting = t["time_then_shrink"]
        print(f"iterations {it}: timed {ratio[it]['timed']:.2f}x, timed in vain {ratio[it]['timed_rejected']:.2f}x; "
              f"best score per seed x target vs rejecting: {dict(compare[it])}; rejecting timed "
              f"{rejecting['timed_above_share']} above the share, {rejecting['feasible_above_share']} of them feasible")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
