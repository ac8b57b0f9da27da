"""Why does DisWOT rank as it does here? Our width-independent variant (``diswot_kxk``: the K×K class-correlation
semantic term, since the band's students are narrower than the teacher and the paper's C×C term is undefined) under
every combination of the choices the paper fixes — teacher init (re-initialised / trained), student init (the
authors' N(0,1) / PyTorch default), scoring batch size, number of batches averaged, and which terms (sum, K×K
semantic or SP relation alone, scale-free log sum) — each against the distilled accuracy that
`search_correlation.py` trained (no training here). The relation term alone is what the authors score with where
widths vary.

    python benchmarks/diswot_ablation.py    # after (or during) `make bench-search`

Writes ``benchmarks/results/diswot_ablation.json`` with machine, versions and date.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from search_correlation_report import bootstrap_ci, ground_truth, mean_pairwise_tau, tau  # noqa: E402

from kdcompress.data import Preprocess, load_data  # noqa: E402
from kdcompress.models.load import load_teacher  # noqa: E402
from kdcompress.models.students import build_student  # noqa: E402
from kdcompress.report.environment import environment  # noqa: E402
from kdcompress.run import write_json  # noqa: E402
from kdcompress.models.probe import gaussian_init_, proxy_batches, student_signals  # noqa: E402
from kdcompress.search.proxies import kxk_terms  # noqa: E402

TERMS = {
    "sum": lambda ms, mr: -(ms + mr),
    "semantic": lambda ms, mr: -ms,
    "relation": lambda ms, mr: -mr,
    "log": lambda ms, mr: -(np.log(ms) + np.log(mr)),
}


def terms_for(students: list[dict], batches, student_init: str) -> np.ndarray:
    """(batches, students, 2) array of (M_s, M_r)."""
    out = np.zeros((len(batches), len(students), 2))
    for b, batch in enumerate(batches):
        for i, s in enumerate(students):
            torch.manual_seed(batch.seed)
            net = build_student(s["space"], s["genes"], 1, 10)
            if student_init == "gaussian":
                gaussian_init_(net, torch.Generator().manual_seed(batch.seed))
            out[b, i] = kxk_terms(batch.teacher, student_signals(net, batch.x, batch.y))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "search_correlation")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "diswot_ablation.json")
    args = ap.parse_args()
    t0 = time.time()
    torch.set_num_threads(1)
    students = json.loads((args.work / "students.json").read_text())
    kd = ground_truth(args.work, len(students))["kd"]
    truth = kd.mean(axis=0)
    teacher, data, prep = load_teacher(ROOT / "teachers" / "fmnist_resnet.pt2"), load_data("fashion-mnist"), Preprocess()
    rng = np.random.default_rng(0)
    rows = []
    for teacher_init, student_init, batch in itertools.product(("random", "trained"), ("gaussian", "default"),
                                                               (64, 256)):
        batches = proxy_batches(teacher, data.x_train, data.y_train, prep, args.batches, batch, teacher_init,
                                seed=2000, with_teacher=True)
        t = terms_for(students, batches, student_init)
        share = float(np.median(t[..., 0] / (t[..., 0] + t[..., 1])))
        for term, fn in TERMS.items():
            per_batch = np.stack([fn(t[b, :, 0], t[b, :, 1]) for b in range(len(batches))])
            score = per_batch.mean(axis=0)
            row = {"teacher_init": teacher_init, "student_init": student_init, "batch": batch, "term": term,
                   "kendall_tau": tau(score, truth), "kendall_tau_ci95": bootstrap_ci(score, truth, tau, rng),
                   "kendall_tau_1_batch": float(np.mean([tau(s, truth) for s in per_batch])),
                   "seed_to_seed_tau": mean_pairwise_tau(per_batch), "semantic_share_of_sum": share}
            rows.append(row)
            print(f"teacher {teacher_init:7} student {student_init:8} batch {batch:3} {term:8} "
                  f"τ {row['kendall_tau']:+.2f} [{row['kendall_tau_ci95'][0]:+.2f}, {row['kendall_tau_ci95'][1]:+.2f}]"
                  f" 1-batch {row['kendall_tau_1_batch']:+.2f} seed-τ {row['seed_to_seed_tau']:+.2f} "
                  f"M_s share {share:.3f}", flush=True)
    write_json(args.out, {
        "benchmark": "diswot_ablation", "command": "python benchmarks/diswot_ablation.py",
        "ground_truth": f"{args.work}/runs.jsonl: mean KD test accuracy over {len(kd)} seeds",
        "kd_seeds": len(kd), "students": len(students), "batches": args.batches, "rows": rows,
        "seconds": round(time.time() - t0, 1), **environment(),
    })
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
