"""``kdcompress check --history DIR``: catch a slow creep that every single check lets through.

Each check appends the median artifact/control log-ratio of its fresh repetitions to ``DIR/history.jsonl``; the
control is fixed, so the series is comparable across runs even when the baseline is re-saved every commit. Over
the last ``window`` runs, a Mann–Kendall test (Mann 1945, Kendall 1975; exact null distribution of the inversion
count) asks whether the series rises, and Sen's slope (Sen 1968: median of pairwise slopes) sizes the rise. A
creep is flagged when the rise is significant at α **and** the slope adds up, over the window, to more than the
tolerated slowdown — so 2 % per commit is caught within a few commits, and noise of a fraction of a percent never is.
"""

from __future__ import annotations

import json
import math
import os
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from kdcompress.check.verdict import Verdict
from kdcompress.errors import KDCompressError
from kdcompress.profiles import Check
from kdcompress.run import atomic_write

WINDOW = 20


@lru_cache(maxsize=64)
def _inversion_counts(n: int) -> tuple[int, ...]:
    """Mahonian numbers: how many permutations of n items have 0, 1, …, n(n−1)/2 inversions."""
    counts = [1]
    for m in range(2, n + 1):  # inserting the m-th item adds 0 … m−1 inversions
        new = [0] * (len(counts) + m - 1)
        for k, c in enumerate(counts):
            for j in range(m):
                new[k + j] += c
        counts = new
    return tuple(counts)


def rising_p_value(series: list[float]) -> float:
    """One-sided Mann–Kendall p-value of "the series rises" (exact; a tie counts as half an inversion, rounded up)."""
    v = np.asarray(series, float)
    n = len(v)
    if n < 3:
        return 1.0
    i, j = np.triu_indices(n, 1)
    inversions = float(np.sum(v[i] > v[j]) + 0.5 * np.sum(v[i] == v[j]))
    counts = _inversion_counts(n)
    return sum(counts[: math.ceil(inversions) + 1]) / math.factorial(n)  # ceil: a tie never makes p smaller


def sen_slope(series: list[float]) -> float:
    """Median of the pairwise slopes (v_j − v_i) / (j − i)."""
    v = np.asarray(series, float)
    i, j = np.triu_indices(len(v), 1)
    return float(np.median((v[j] - v[i]) / (j - i))) if len(i) else 0.0


def detect_creep(series: list[float], policy: Check, window: int = WINDOW) -> dict:
    """Trend of the last ``window`` values (log-ratios): p-value, slope per run, total change over the window."""
    tail = series[-window:]
    p, slope = rising_p_value(tail), sen_slope(tail)
    total = slope * (len(tail) - 1)
    creep = p < policy.alpha and total > math.log1p(policy.null_slowdown)
    return {"runs": len(tail), "alpha": policy.alpha, "p_value": p, "slope_per_run": math.expm1(slope), "change_over_window":
            math.expm1(total), "creep": creep}


def record_and_detect(folder: Path, verdict: Verdict, fresh: dict, policy: Check,
                      window: int = WINDOW) -> dict:
    """Append this check to ``folder/history.jsonl`` (rewritten atomically) and judge the trend."""
    if folder.exists() and not folder.is_dir():
        raise KDCompressError(f"--history {folder} is a file", "pass a directory (it holds history.jsonl)")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "history.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    entries = []
    for n, line in enumerate(lines, 1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            raise KDCompressError(f"{path}:{n} is not JSON", "fix or delete that line") from None
    samples = fresh["samples"]
    log_ratio = float(np.median(np.log(samples["candidate_ms"]) - np.log(samples["control_ms"])))
    entry = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": os.environ.get("GITHUB_SHA"),
             "artifact": fresh["name"], "sha256": fresh["sha256"], "backend": fresh["backend"],
             "precision": fresh["precision"], "batch": fresh["batch"], "control": fresh["control"]["sha256"],
             "cpu": fresh["environment"]["machine"]["cpu"], "log_ratio": log_ratio,
             "change_vs_baseline": verdict.latency.change, "status": verdict.status}
    entries.append(entry)
    atomic_write(path, "".join(json.dumps(e) + "\n" for e in entries))
    # one series per artifact name, backend, precision, batch, control and CPU model: ratios of another CPU differ
    same = ("artifact", "backend", "precision", "batch", "control", "cpu")
    series = [e["log_ratio"] for e in entries if all(e.get(k) == entry[k] for k in same)]
    return {**detect_creep(series, policy, window), "file": str(path)}
