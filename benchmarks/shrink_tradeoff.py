"""The demo's trade-off, measured: teacher vs the shipped pipeline's student on onnxruntime CPU.

    python benchmarks/shrink_tradeoff.py [--run runs/demo] [--profile ci]

Runs (or resumes) ``kdcompress shrink`` on the shipped Fashion-MNIST teacher, then saves the figures — speed-up
and accuracy drop measured in one process, plus each stage's wall time — with machine, versions and date to
``benchmarks/results/shrink_tradeoff.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kdcompress.pipeline import Inputs, shrink
from kdcompress.profiles import load_profile
from kdcompress.report.environment import environment
from kdcompress.run import RunDir, write_json

ROOT = Path(__file__).resolve().parent.parent


def shown(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it, else as given."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "demo")
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--teacher", type=Path, default=ROOT / "teachers" / "fmnist_resnet.pt2")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "shrink_tradeoff.json")
    args = ap.parse_args()

    t0 = time.time()
    inputs = Inputs(str(args.teacher), "fashion-mnist", load_profile(args.profile))
    result = shrink(inputs, args.run, resume=True).to_json()  # the figures below read the JSON keys
    manifest = RunDir.open(args.run, must_exist=True).manifest
    stage_seconds = {k: v["seconds"] for k, v in manifest["stages"].items()}
    best = next(s for s in result["students"] if s["id"] == result["best"])
    figures = {
        "benchmark": "shrink_tradeoff",
        # the run folder as the user would type it from the repository (the default is an absolute path)
        "command": f"python benchmarks/shrink_tradeoff.py --run {shown(args.run)} --profile {args.profile}",
        "profile": result["profile"], "backend": result["backend"], "batch": result["batch"],
        "threads": result["threads"], "test_samples": result["test_samples"],
        "teacher": {k: result["teacher"][k] for k in ("params", "flops", "latency_ms", "accuracy")},
        "best_student": {k: best[k] for k in ("id", "precision", "genes", "params", "flops", "latency_ms", "accuracy", "speedup",
                                               "accuracy_drop", "meets_budget")},
        "artifacts": [{k: s[k] for k in ("id", "precision", "latency_ms", "accuracy", "speedup", "accuracy_drop",
                                         "flags")} for s in result["students"]],
        "int8": result.get("int8"),
        "speedup_p50": best["speedup"],
        "accuracy_drop_points": best["accuracy_drop"],
        "stage_seconds": stage_seconds,
        "pipeline_seconds": round(sum(stage_seconds.values()), 1),
        "this_invocation_seconds": round(time.time() - t0, 1),
        **environment(),
    }
    write_json(args.out, figures)
    print(json.dumps({k: figures[k] for k in ("speedup_p50", "accuracy_drop_points", "stage_seconds")}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
