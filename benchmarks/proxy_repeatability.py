"""How repeatable is each zero-cost proxy? Scores a fixed, seeded set of students within one FLOPs band against
the shipped teacher, under several seeds (student initialisation and scoring batch), and reports Kendall τ between
the rankings of every pair of seeds — a proxy whose ranking changes with the seed cannot rank students.

    python benchmarks/proxy_repeatability.py [--students 24] [--seeds 3] [--teacher-init random]

Writes ``benchmarks/results/proxy_repeatability.json`` with machine, versions and date. No training involved.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from kdcompress.data import Preprocess, load_data
from kdcompress.models.load import load_teacher
from kdcompress.report.environment import environment
from kdcompress.run import write_json
from kdcompress.models.probe import TeacherProbe
from kdcompress.search.proxies import (
    PROXIES,
    score_student,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from band import band_students  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=24)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--teacher-init", choices=["random", "trained"], default="random")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "proxy_repeatability.json")
    args = ap.parse_args()

    t0 = time.time()
    teacher = load_teacher(ROOT / "teachers" / "fmnist_resnet.pt2")
    data = load_data("fashion-mnist")
    prep = Preprocess()
    genes = [s["genes"] for s in band_students(["resnet"], args.students, 5e6, 30e6)]
    scores: dict[str, list[list[float]]] = {name: [] for name in PROXIES}
    terms: dict[str, list[list[float]]] = {"M_s": [], "M_r": []}
    for seed in range(args.seeds):
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(data.y_train), generator=g)[: args.batch]
        x, y = prep(data.x_train[idx]), data.y_train[idx]
        probe = TeacherProbe(teacher, x[:2], batch_stats=args.teacher_init == "random")
        if args.teacher_init == "random":
            probe.reinit_(torch.Generator().manual_seed(seed))
        signals = probe.signals(x, y)
        for name in PROXIES:
            scores[name].append([score_student(name, signals, "resnet", gn, 1, 10, x, y, seed) for gn in genes])
        # the ablation proxies are the negated terms, scored at the same init on the same batch
        terms["M_s"].append([-v for v in scores["diswot_kxk_semantic"][-1]])
        terms["M_r"].append([-v for v in scores["diswot_relation"][-1]])

    def seed_tau(rows: list[list[float]]) -> float:
        taus = [kendalltau(a, b).statistic for a, b in itertools.combinations(rows, 2)]
        return float(np.nanmean(taus))

    result = {
        "benchmark": "proxy_repeatability",
        "command": f"python benchmarks/proxy_repeatability.py --students {args.students} --seeds {args.seeds} "
                   f"--teacher-init {args.teacher_init}",
        "teacher_init": args.teacher_init, "students": len(genes), "seeds": args.seeds, "batch": args.batch,
        "flops_band": [5e6, 30e6],
        "seed_to_seed_kendall_tau": {name: seed_tau(rows) for name, rows in scores.items()},
        "diswot_terms": {
            "seed_to_seed_kendall_tau": {k: seed_tau(v) for k, v in terms.items()},
            "median": {k: float(np.median(v)) for k, v in terms.items()},
            "M_s_share_of_score": float(np.median(np.array(terms["M_s"]) /
                                                  (np.array(terms["M_s"]) + np.array(terms["M_r"])))),
        },
        "genes": genes, "scores": scores, "seconds": round(time.time() - t0, 1), **environment(),
    }
    write_json(args.out, result)
    print("seed-to-seed Kendall tau:", {k: round(v, 3) for k, v in result["seed_to_seed_kendall_tau"].items()})
    print("DisWOT terms:", result["diswot_terms"])
    print(f"saved {args.out} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
