"""The front's verdict against a recipe over seeds (the benchmark protocol in the README): who is faster at the
compared batch, whether the accuracy difference is more than seed-to-seed noise, and a word for it.

Accuracy is compared paired by seed (seed ``i`` of ours against seed ``i`` of the recipe: same data order and init
stream) with a Student-t interval of the mean difference; several recipes compared in one run are corrected with
Holm's step-down procedure (Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Stat. 1979).
Torch-free; scipy for the t distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

# "Equal accuracy within the interval" wins only with a clear speed margin (the protocol): 1.2x
CLEAR_SPEEDUP = 1.2
# ... and "equal" means the interval rules out the faster side being worse by more than this many points (a
# non-inferiority margin: about the seed-to-seed spread of one student on Fashion-MNIST's 10,000 test images). A
# wide interval (few seeds, noisy training) therefore supports no claim at all, rather than "as accurate".
EQUIVALENCE_MARGIN = 0.2


@dataclass(frozen=True)
class Paired:
    """Ours minus theirs, paired by seed: the mean difference, its two-sided (1 - alpha) t-interval, and the
    paired t-test's two-sided p-value."""

    n: int
    mean: float
    low: float
    high: float
    p: float


def paired_difference(ours: Sequence[float], theirs: Sequence[float], level: float = 0.95) -> Paired:
    """Paired t-interval of ``mean(ours - theirs)`` (Student, df = n - 1). Identical differences give a zero-width
    interval (p 0 unless the mean is 0); one seed gives an unbounded one (p 1): no claim from a single seed."""
    if len(ours) != len(theirs) or not ours:
        raise ValueError("paired comparison needs the same seeds on both sides")
    d = [a - b for a, b in zip(ours, theirs, strict=True)]
    n, mean = len(d), sum(d) / len(d)
    if n == 1:
        return Paired(1, mean, -math.inf, math.inf, 1.0)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    if sd == 0:
        return Paired(n, mean, mean, mean, 1.0 if mean == 0 else 0.0)
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return Paired(n, mean, mean - half, mean + half, p)


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down: which of the hypotheses are rejected at family-wise error ``alpha``."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - rank):
            break
        rejected[i] = True
    return rejected


@dataclass(frozen=True)
class Verdict:
    """``ours`` (beats the recipe), ``theirs`` (the recipe beats ours), ``tie`` (neither is faster by the clear
    margin and the accuracy difference is noise) or ``trade-off`` (one is faster, the other more accurate)."""

    winner: str
    speedup: float  # the recipe's latency / ours at the compared batch (> 1: ours is faster)
    accuracy: Paired
    significant: bool  # the accuracy difference survives the (Holm-corrected) test
    why: str


def verdict(speedup: float, accuracy: Paired, significant: bool) -> Verdict:
    """The protocol's rule. A side beats the other when it is faster and more accurate (the difference significant),
    or at least :data:`CLEAR_SPEEDUP` times faster and as accurate: not significantly different, and the interval
    excludes its being worse by more than :data:`EQUIVALENCE_MARGIN` points."""
    faster = "ours" if speedup > 1 else "theirs" if speedup < 1 else None
    ratio = max(speedup, 1 / speedup)
    more_accurate = None if not significant else "ours" if accuracy.mean > 0 else "theirs"
    gap = f"{accuracy.mean:+.2f} points [{accuracy.low:+.2f}, {accuracy.high:+.2f}] over {accuracy.n} seeds"
    # the faster side's worst case within the interval, in points (ours - theirs for ours, the reverse for theirs)
    worst = accuracy.low if faster == "ours" else -accuracy.high
    as_accurate = more_accurate is None and worst >= -EQUIVALENCE_MARGIN
    if faster is not None and (more_accurate == faster or (as_accurate and ratio >= CLEAR_SPEEDUP)):
        how = "more accurate" if more_accurate else f"as accurate (within {EQUIVALENCE_MARGIN} points)"
        return Verdict(faster, speedup, accuracy, significant, f"{faster} {ratio:.2f}x faster and {how} ({gap})")
    if faster is not None and more_accurate is not None:
        return Verdict("trade-off", speedup, accuracy, significant,
                       f"{faster} {ratio:.2f}x faster, {more_accurate} more accurate ({gap})")
    said = (f"{more_accurate} more accurate" if more_accurate else "accuracy within the noise" if as_accurate
            else "the accuracy interval too wide to call them equal")
    return Verdict("tie", speedup, accuracy, significant, f"no win: {ratio:.2f}x apart in speed, {said} ({gap})")


def verdicts(comparisons: dict[str, tuple[float, Sequence[float], Sequence[float]]],
             alpha: float = 0.05) -> dict[str, Verdict]:
    """Every recipe's verdict from ``name -> (speedup, our accuracies by seed, its accuracies by seed)``, the
    accuracy tests Holm-corrected over the recipes compared (the intervals reported are each the plain 95 % one)."""
    paired = {name: paired_difference(ours, theirs, 1 - alpha) for name, (_, ours, theirs) in comparisons.items()}
    names = list(paired)
    rejected = holm([paired[n].p for n in names], alpha)
    return {n: verdict(comparisons[n][0], paired[n], r) for n, r in zip(names, rejected, strict=True)}
