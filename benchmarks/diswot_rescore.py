"""Re-score the correlation benchmark's band with DisWOT as its authors run it (no training).

Until 2026-11-26 the proxy registered as ``diswot`` was our width-independent K×K variant; it is now
``diswot_kxk`` and ``diswot`` is the authors' per-regime score (``kdcompress/search/proxies.py``). This script moves
the saved figures of ``benchmarks/results/search_correlation.json`` to the new names (``diswot`` → ``diswot_kxk``,
``diswot_semantic`` → ``diswot_kxk_semantic``, ``diswot_log`` → ``diswot_kxk_log``, with their ``@trained``
twins) and scores ``diswot``, ``diswot_code`` and, as a check that the scoring is the benchmark's own,
``diswot_relation`` on the same students and batches, against the saved ground truth.

    python benchmarks/diswot_rescore.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from search_correlation import TEACHER  # noqa: E402
from search_correlation_report import band_scores, bootstrap_ci, rho, tau, within_family  # noqa: E402

from kdcompress.run import read_json, write_json  # noqa: E402

RENAMED = {"diswot": "diswot_kxk", "diswot_semantic": "diswot_kxk_semantic", "diswot_log": "diswot_kxk_log"}
RESCORED = ["diswot", "diswot_code", "diswot_relation"]


def main() -> None:
    t0 = time.time()
    torch.set_num_threads(1)
    path = ROOT / "benchmarks" / "results" / "search_correlation.json"
    r = read_json(path)
    if "renamed" not in r:  # once: the saved K×K figures under their new names
        for section in ("kendall_tau", "spearman", "kendall_tau_heldout_half", "proxies"):
            table = r.get(section, {})
            for old, new in RENAMED.items():
                for suffix in ("", "@trained"):
                    if old + suffix in table:
                        table[new + suffix] = table.pop(old + suffix)
        r["renamed"] = {"date": "2026-11-26", "names": RENAMED,
                        "note": "these figures were measured under the old names; diswot is now the authors' score"}
    students = r["students"]
    truth = np.array([np.mean(s["kd_accuracy"]) for s in students])
    scratch = np.array([np.mean(s["scratch_accuracy"]) for s in students])
    families = [s["space"] for s in students]
    rng = np.random.default_rng(0)
    for init in ("random", "trained"):
        for name, per_batch in band_scores(students, RESCORED, ROOT / "teachers" / TEACHER.name, init).items():
            key = name if init == "random" else f"{name}@trained"
            score = per_batch.mean(axis=0)
            pick = int(np.argmax(score))
            fig = {"kendall_tau": tau(score, truth), "kendall_tau_ci95": bootstrap_ci(score, truth, tau, rng),
                   "spearman": rho(score, truth), "spearman_ci95": bootstrap_ci(score, truth, rho, rng),
                   "kendall_tau_scratch": tau(score, scratch),
                   "kendall_tau_within_family": within_family(score, truth, families),
                   "top1_pick": pick, "top1_accuracy": float(truth[pick]),
                   "top1_regret": float(truth.max() - truth[pick]), "rescored_by": "benchmarks/diswot_rescore.py"}
            if name == "diswot_relation":  # the benchmark's own figure, for the check
                print(f"{key}: τ {fig['kendall_tau']:+.3f} (saved {r['proxies'][key]['kendall_tau']:+.3f})")
                continue
            r["proxies"][key] = fig
            r["kendall_tau"][key], r["spearman"][key] = fig["kendall_tau"], fig["spearman"]
            print(f"{key}: τ {fig['kendall_tau']:+.3f} [{fig['kendall_tau_ci95'][0]:+.2f}, "
                  f"{fig['kendall_tau_ci95'][1]:+.2f}], regret {fig['top1_regret']:.2f}", flush=True)
    r["diswot_rescore_seconds"] = round(time.time() - t0, 1)
    write_json(path, r)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
