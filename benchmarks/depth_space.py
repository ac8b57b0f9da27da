"""DisWOT's home ground (issue 13, item 2): the shipped teacher's stem and stage widths, stage depths varied (1-4
per stage, like the paper's S1 space of ResNet-20 depths), so every student's classifier width equals the
teacher's and DisWOT's semantic term is defined. Each student is distilled with the same KD schedule from up to
three starts: freshly initialised (``random``); from the teacher's weights (stem, head and the first blocks of each
stage) with the blocks the teacher lacks as identities (``teacher``, Net2Net's deeper step) or fresh
(``teacher_fresh``). The proxies then rank the fresh students against their distilled accuracy.

    python benchmarks/depth_space.py [--students 10] [--epochs 6] [--train-samples 5000] [--seeds 0] [--inits random teacher teacher_fresh]
    python benchmarks/depth_space.py --report        # only scores and summarises what has been trained

Every run is resumable (one folder per student, init and seed under ``runs/depth_space``; a killed command goes on
where it stopped): at the defaults about an hour per init and seed on one core of a 2-core Xeon (10 students;
the deepest take 7 minutes each), proxies scored included. Saves
``benchmarks/results/depth_space.json`` with machine, versions and date: per student its depths, size and accuracy
per init; the paired gain of the teacher's weights over a fresh init; per proxy Kendall tau with a bootstrap
interval and top-1 regret against the fresh students' accuracy.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from search_correlation_report import band_scores, bootstrap_ci, mean_pairwise_tau, tau  # noqa: E402

from kdcompress.job import Job  # noqa: E402
from kdcompress.records import StudentSpec  # noqa: E402
from kdcompress.data import Preprocess, load_data  # noqa: E402
from kdcompress.distill import distill, load_student  # noqa: E402
from kdcompress.distill.trainer import TEACHER_INITS, evaluate  # noqa: E402
from kdcompress.models.load import load_teacher  # noqa: E402
from kdcompress.profiles import load_profile  # noqa: E402
from kdcompress.report.environment import environment  # noqa: E402
from kdcompress.run import read_json, write_json  # noqa: E402
from kdcompress.search.proxies import PROXIES, TEACHER_PROXIES  # noqa: E402

TEACHER = ROOT / "teachers" / "fmnist_resnet.pt2"
DEPTHS = [1, 2, 3, 4]
INITS = ("random", *TEACHER_INITS)  # a student's start: fresh, or one of the trainer's starts from the teacher
PROXY_NAMES = ["params", "flops", "synflow", "zen", "nwot", "snip", "grad_norm", "diswot", "diswot_relation",
               "diswot_code", "diswot_kxk"]


def depth_students(n: int, seed: int = 0) -> list[dict]:
    """``n`` of the 64 depth combinations, drawn once with a fixed generator, sorted by total depth; the teacher's
    own depths always among them (its distilled twin is the space's Born-Again point)."""
    recipe = json.loads(TEACHER.with_suffix(".json").read_text())
    teacher_depths = tuple(recipe["genes"]["depths"])
    others = [d for d in itertools.product(DEPTHS, repeat=3) if d != teacher_depths]
    chosen = [teacher_depths, *random.Random(seed).sample(others, n - 1)]
    return [{"space": "resnet", "genes": {**recipe["genes"], "depths": list(d)}, "in_channels": 1, "num_classes": 10}
            for d in sorted(chosen, key=lambda d: (sum(d), d))]


def name(student: dict) -> str:
    return "d" + "-".join(map(str, student["genes"]["depths"]))


def train(students: list[dict], inits: list[str], seeds: list[int], epochs: int, samples: int, work: Path) -> None:
    teacher, data, prep = load_teacher(TEACHER), load_data("fashion-mnist", 0.1, 0), Preprocess()
    cfg = load_profile("ci", {"distill.epochs": epochs, "distill.train_samples": samples}).distill
    for seed, init, s in itertools.product(seeds, inits, students):
        folder = work / f"{name(s)}-{init}-seed{seed}"
        spec = s if init == "random" else {**s, "init": init}
        distill(Job(teacher, data, prep, work / f"teacher_logits_{samples}.pt", seed), StudentSpec.from_json(spec), cfg, folder)
        acc = evaluate(load_student(folder), data.x_test, data.y_test, prep)
        write_json(folder / "test.json", {"test_accuracy": acc})
        print(f"{name(s)} {init:13s} seed {seed}: {acc:.2f} %", flush=True)


def report(students: list[dict], work: Path) -> dict:
    """Accuracy per student and init (mean over the seeds trained), the teacher inits' gains, the proxies' ranking."""
    acc: dict[str, dict[str, float]] = {}
    by_seed: dict[str, dict[str, float]] = {}  # fresh init: seed -> student -> accuracy
    for s in students:
        for init in INITS:
            runs = {f.name.rsplit("seed", 1)[1]: read_json(f / "test.json")["test_accuracy"]
                    for f in sorted(work.glob(f"{name(s)}-{init}-seed*")) if (f / "test.json").exists()}
            if runs:
                acc.setdefault(name(s), {})[init] = statistics.mean(runs.values())
            if init == "random":
                for seed, a in runs.items():
                    by_seed.setdefault(seed, {})[name(s)] = a
    # the fresh ranking from whole seeds only, as the band's: a seed half trained would mix one- and two-seed means
    whole = [row for row in by_seed.values() if len(row) == len(students)]
    if whole:
        for s in students:
            acc[name(s)]["random"] = statistics.mean(row[name(s)] for row in whole)
    figures: dict = {"students": [{**s, "name": name(s), "accuracy": acc.get(name(s), {})} for s in students]}
    for init in INITS[1:]:
        paired = [a[init] - a["random"] for a in acc.values() if {init, "random"} <= set(a)]
        if paired:
            rng = np.random.default_rng(0)
            boot = [float(np.mean(rng.choice(paired, len(paired)))) for _ in range(2000)]
            figures[f"{init}_init_gain"] = {"mean": statistics.mean(paired), "students": len(paired), "interval95":
                                            [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]}
    fresh = [s for s in students if "random" in acc.get(name(s), {})]
    if len(fresh) >= 4:
        truth = np.array([acc[name(s)]["random"] for s in fresh])
        names = [n for n in PROXY_NAMES if n in PROXIES]
        rng = np.random.default_rng(0)
        ranking = {}
        for init in ("random", "trained"):
            wanted = names if init == "random" else [n for n in names if n in TEACHER_PROXIES]
            for proxy, rows in band_scores(fresh, wanted, TEACHER, init).items():
                score = rows.mean(axis=0)
                key = proxy if init == "random" else f"{proxy}@trained"
                ranking[key] = {"kendall_tau": tau(score, truth),
                                "interval95": bootstrap_ci(score, truth, tau, rng),
                                "top1_regret": float(truth.max() - truth[int(np.argmax(score))])}
        figures["proxies"] = ranking
        figures["fresh_students_scored"] = len(fresh)
        # how well one training run ranks like another: the ceiling for any proxy's tau on this setting
        figures["seed_tau_ceiling"] = (mean_pairwise_tau(np.array([[row[name(s)] for s in students] for row in whole]))
                                       if len(whole) >= 2 else None)
        figures["random_seeds_complete"] = len(whole)
    figures["seeds_trained"] = {init: sorted({f.name.rsplit("seed", 1)[1] for f in work.glob(f"*-{init}-seed*")
                                              if (f / "test.json").exists()}) for init in INITS}
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--train-samples", type=int, default=5000)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--inits", nargs="+", choices=INITS, default=list(INITS))
    ap.add_argument("--report", action="store_true", help="score and summarise only; train nothing")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "depth_space")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "depth_space.json")
    args = ap.parse_args()
    students = depth_students(args.students)
    if not args.report:
        train(students, args.inits, args.seeds, args.epochs, args.train_samples, args.work)
    figures = report(students, args.work)
    write_json(args.out, {"benchmark": "depth_space", "command": " ".join(["python", *sys.argv]),
                          "teacher": TEACHER.name, "epochs": args.epochs, "train_samples": args.train_samples,
                          "seeds_this_command": args.seeds, **figures, **environment()})
    for key, r in figures.get("proxies", {}).items():
        print(f"{key:24s} tau {r['kendall_tau']:+.2f} [{r['interval95'][0]:+.2f}, {r['interval95'][1]:+.2f}]  "
              f"regret {r['top1_regret']:.2f}")
    for init in INITS[1:]:
        if f"{init}_init_gain" in figures:
            g = figures[f"{init}_init_gain"]
            print(f"{init} init - fresh init: {g['mean']:+.2f} points [{g['interval95'][0]:+.2f}, "
                  f"{g['interval95'][1]:+.2f}] over {g['students']} students")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
