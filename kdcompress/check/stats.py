"""The regression gate's statistics (DESIGN §7): pure functions over samples of log-ratios.

Each repetition of a measurement yields ``d = ln(p50_candidate) − ln(p50_control)``. A fresh sample of ``d`` is
compared with the baseline's by the Hodges–Lehmann estimate of the shift between them and the distribution-free
one-sided confidence bounds that invert the Mann–Whitney U test (Hollander & Wolfe, *Nonparametric Statistical
Methods*, §4.2–4.3): the lower bound exceeds δ exactly when the one-sided U test rejects "shift ≤ δ" at level α.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

EXACT_LIMIT = 2500  # n1·n2 up to which the U distribution is counted exactly; beyond, its normal approximation


@lru_cache(maxsize=64)
def _u_counts(n1: int, n2: int) -> tuple[int, ...]:
    """How many of the C(n1+n2, n1) orderings give U = 0, 1, …, n1·n2 (no ties): the coefficients of the Gaussian
    binomial [n1+n2 choose n1]_q, by the recurrence f(m, n) = q^n f(m−1, n) + f(m, n−1)."""
    rows = [[1] for _ in range(n2 + 1)]  # f(0, n) = 1 for every n
    for m in range(1, n1 + 1):
        new = [[1]]  # f(m, 0) = 1
        for n in range(1, n2 + 1):
            a, b = [0] * n + rows[n], new[n - 1]  # q^n f(m−1, n), f(m, n−1)
            size = max(len(a), len(b))
            new.append([(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(size)])
        rows = new
    return tuple(rows[n2])


def u_critical(n1: int, n2: int, alpha: float) -> int | None:
    """The smallest c with P(U ≥ c) ≤ α under the null (U = #{x_i > y_j}); None when even U = n1·n2 is likelier."""
    total = n1 * n2
    if total <= EXACT_LIMIT:
        counts = _u_counts(n1, n2)
        all_ = math.comb(n1 + n2, n1)
        tail = 0
        for c in range(total, -1, -1):  # P(U ≥ c), growing as c falls
            if (tail + counts[c]) / all_ > alpha:
                return c + 1 if c < total else None
            tail += counts[c]
        return 0
    mean, sd = total / 2, math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    c = math.ceil(mean + NormalDist().inv_cdf(1 - alpha) * sd + 0.5)  # continuity-corrected
    return c if c <= total else None


@dataclass(frozen=True)
class Shift:
    """Shift of ``fresh`` over ``baseline`` (in their units, here log-ratios) with one-sided (1 − α) bounds."""

    estimate: float
    lower: float  # −inf when the samples are too small to bound it at this α
    upper: float  # +inf likewise
    n_fresh: int
    n_baseline: int
    alpha: float

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in asdict(self).items()}


def shift(fresh: np.ndarray | list[float], baseline: np.ndarray | list[float], alpha: float) -> Shift:
    """Hodges–Lehmann shift (median of every fresh_i − baseline_j) and its one-sided (1 − α) lower and upper
    bounds: the (N − c + 1)-th and c-th smallest pairwise differences, c = :func:`u_critical`."""
    x, y = np.asarray(fresh, float), np.asarray(baseline, float)
    if len(x) == 0 or len(y) == 0:
        raise ValueError("both samples need at least one value")
    diffs = np.sort((x[:, None] - y[None, :]).ravel())
    c = u_critical(len(x), len(y), alpha)
    lower = float(diffs[len(diffs) - c]) if c else -math.inf
    upper = float(diffs[c - 1]) if c else math.inf
    return Shift(float(np.median(diffs)), lower, upper, len(x), len(y), alpha)
