"""Does a small training budget bring the pick near the true best? ``search.refine`` measured on the correlation
benchmark's band (issue 13, "a pick near the true best").

The ground truth is `search_correlation.py`'s: 24 students, each distilled 3 times with the full schedule (12
epochs on 20,000 images); their mean test accuracy is in ``benchmarks/results/search_correlation.json``. Here every
student is also distilled briefly — the short runs successive halving would ask for (``--epochs`` and twice that, on
the first ``--samples`` images, seed 0) — and then, for each proxy, the search's pick is simulated: proxy alone (its
top-1) and proxy + refine (successive halving over its top N, N = 2, 4, 8). Regret = the true best's accuracy
minus the pick's. Over the whole band and over 500 random half-bands (12 students: a search sees one budget's
candidates, not all), with the refine's cost in units of one full distillation.

    python benchmarks/search_refine.py     # resumable: short runs are kept under benchmarks/work/search_refine

Saves ``benchmarks/results/search_refine.json`` and adds its summary to ``search_correlation.json`` as ``refine``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from search_correlation import SCHEDULE, TEACHER, schedule  # noqa: E402
from search_correlation_report import band_scores  # noqa: E402

from kdcompress.job import Job  # noqa: E402
from kdcompress.records import StudentSpec  # noqa: E402
from kdcompress.data import Preprocess, load_data  # noqa: E402
from kdcompress.distill.trainer import distill, teacher_logits_cached  # noqa: E402
from kdcompress.models.load import load_teacher  # noqa: E402
from kdcompress.report.environment import environment  # noqa: E402
from kdcompress.run import read_json, write_json  # noqa: E402
from kdcompress.search.refine import successive_halving  # noqa: E402

PROXIES = ["synflow", "zen", "params", "flops", "grad_norm", "snip", "diswot_relation"]
WIDTHS = [2, 4, 8]


def short_runs(students: list[dict], work: Path, samples: int, rungs: list[int]) -> dict[tuple[int, int], float]:
    """Validation accuracy of every student after each rung's short run (kept in ``work``; resumed)."""
    teacher, data, prep = load_teacher(TEACHER), load_data("fashion-mnist"), Preprocess()
    teacher_logits_cached(teacher, data.x_train[:samples], prep, work / "teacher_logits.pt")
    out = {}
    for epochs in rungs:
        cfg = schedule("kd").model_copy(update={"epochs": epochs, "train_samples": samples})
        for i, s in enumerate(students):
            spec = {"space": s["space"], "genes": s["genes"], "in_channels": 1, "num_classes": 10}
            r = distill(Job(teacher, data, prep, work / "teacher_logits.pt", 0), StudentSpec.from_json(spec), cfg, work / f"s{i:02d}-e{epochs}")
            out[(i, epochs)] = r.best_val_accuracy
        print(f"short runs of {epochs} epoch(s) done", flush=True)
    return out


def pick(idx: np.ndarray, score: np.ndarray, width: int | None, short: dict, first_epochs: int) -> tuple[int, int]:
    """(index of the pick among all students, epochs spent) for the students ``idx``: the proxy's top-1, or
    successive halving over its top ``width``."""
    ranked = idx[np.argsort(-score[idx], kind="stable")]
    if width is None:
        return int(ranked[0]), 0
    h = successive_halving(list(ranked[:width]), 1, first_epochs, lambda i, e: short[(int(i), e)])
    return int(ranked[h.order[0]]), h.epochs_spent()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "search_refine")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=1, help="epochs of the first rung")
    ap.add_argument("--subsets", type=int, default=500)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search_refine.json")
    args = ap.parse_args()
    t0 = time.time()
    torch.set_num_threads(1)
    corr_path = ROOT / "benchmarks" / "results" / "search_correlation.json"
    corr = read_json(corr_path)
    students = [{"space": s["space"], "genes": s["genes"]} for s in corr["students"]]
    truth = np.array([np.mean(s["kd_accuracy"]) for s in corr["students"]])
    rungs = [args.epochs * 2**r for r in range(int(np.log2(max(WIDTHS))))]
    short = short_runs(students, args.work, args.samples, rungs)
    # each proxy as the correlation benchmark scores it: its batches, the teacher re-initialised, averaged
    scores = {k: v.mean(axis=0) for k, v in band_scores(students, PROXIES, TEACHER, "random").items()}
    full = SCHEDULE["epochs"] * SCHEDULE["train_samples"]  # one ground-truth distillation, in image-epochs
    rng = np.random.default_rng(0)
    subsets = [np.arange(len(students))] + [rng.choice(len(students), len(students) // 2, replace=False)
                                            for _ in range(args.subsets)]
    table = {}
    for name, score in scores.items():
        row = {}
        for width in [None, *WIDTHS]:
            regrets, costs = [], []
            for idx in subsets:
                i, epochs = pick(idx, score, width, short, args.epochs)
                regrets.append(float(truth[idx].max() - truth[i]))
                costs.append(epochs * args.samples / full)
            key = "proxy" if width is None else f"refine_top{width}"
            row[key] = {"regret_band": regrets[0], "regret_mean": float(np.mean(regrets[1:])),
                        "regret_p90": float(np.percentile(regrets[1:], 90)),
                        "cost_in_distillations": float(np.mean(costs))}
        table[name] = row
        print(f"{name:16s} " + "  ".join(f"{k}: {v['regret_band']:.2f}/{v['regret_mean']:.2f}" for k, v in row.items()),
              flush=True)
    # short runs alone (no proxy): how well a 1-epoch run ranks the whole band
    from scipy.stats import kendalltau
    short_tau = {str(e): float(kendalltau([short[(i, e)] for i in range(len(students))], truth).statistic)
                 for e in rungs}
    result = {
        "benchmark": "search_refine", "command": " ".join(["python", *sys.argv]),
        "ground_truth": "benchmarks/results/search_correlation.json: mean KD test accuracy over 3 seeds, "
                        f"{SCHEDULE['epochs']} epochs on {SCHEDULE['train_samples']} images",
        "short_runs": {"samples": args.samples, "rung_epochs": rungs, "seed": 0,
                       "val_accuracy": {f"{i}/{e}": a for (i, e), a in short.items()}},
        "short_run_kendall_tau_vs_truth": short_tau,
        "subsets": {"count": args.subsets, "size": len(students) // 2},
        "regret": table, "seconds": round(time.time() - t0, 1), **environment(),
    }
    write_json(args.out, result)
    default = table["synflow"]
    corr["refine"] = {
        "proxy": "synflow", "width": 4, "regret_proxy": default["proxy"]["regret_band"],
        "regret_refined": default["refine_top4"]["regret_band"],
        "regret_proxy_half_bands": default["proxy"]["regret_mean"],
        "regret_refined_half_bands": default["refine_top4"]["regret_mean"],
        "cost_in_distillations": default["refine_top4"]["cost_in_distillations"],
        "source": "benchmarks/search_refine.py (benchmarks/results/search_refine.json)",
    }
    write_json(corr_path, corr)
    print(f"saved {args.out} and the summary in {corr_path}")


if __name__ == "__main__":
    main()
