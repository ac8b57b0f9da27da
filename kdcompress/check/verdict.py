"""The gate's verdicts and how they are reached from paired samples (DESIGN §7): latency by the one-sided
Mann–Whitney / Hodges–Lehmann bound of the slowdown, accuracy by absolute drop."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from kdcompress.check.paired import PairedSamples
from kdcompress.check.stats import Shift, shift
from kdcompress.profiles import Check

# What must match between a baseline and a fresh measurement for the ratio to mean the same thing.
MUST_MATCH = ("backend", "format", "precision", "batch", "input_shape", "threads")


@dataclass
class LatencyVerdict:
    status: str  # pass | regression | inconclusive
    change: float  # Hodges–Lehmann estimate of the slowdown, as a fraction (+0.10 = 10 % slower)
    lower: float | None  # one-sided (1 − α) bounds of the change; None where the samples are too few
    upper: float | None
    max_slowdown: float
    null_slowdown: float
    alpha: float  # of each look
    repetitions: int
    baseline_repetitions: int
    looks: int = 1  # judgements made: a check too noisy to decide measures more and judges again
    repetitions_to_decide: int | None = None  # inconclusive: fresh repetitions (in all) that would likely decide
    change_without_control: float | None = None  # the artifact's own p50 change, as a stored-number tool sees it


@dataclass
class AccuracyVerdict:
    status: str  # pass | regression
    baseline: float
    current: float
    drop: float
    max_drop: float


@dataclass
class Verdict:
    status: str  # pass | regression | inconclusive
    latency: LatencyVerdict
    accuracy: AccuracyVerdict | None
    subject: dict
    baseline: dict  # the baseline's date, machine and artifact hash
    warnings: list[str] = field(default_factory=list)
    trend: dict | None = None  # --history: the creep test across runs (kdcompress.check.history)

    @property
    def creep(self) -> bool:
        return bool(self.trend and self.trend["creep"])

    def exit_code(self, fail_inconclusive: bool = False, fail_on_creep: bool = False) -> int:
        return int(self.status == "regression" or (fail_inconclusive and self.status == "inconclusive")
                   or (fail_on_creep and self.creep))

    def to_json(self) -> dict:
        return asdict(self)


def _frac(x: float) -> float | None:
    return None if math.isinf(x) else math.expm1(x)


MAX_REPETITIONS = 1000


def repetitions_to_decide(s: Shift, null: float, limit: float) -> int | None:
    """Fresh repetitions (in all) with which the interval would likely be narrow enough to decide, assuming the
    spread stays as measured; None when no number up to :data:`MAX_REPETITIONS` would do it against this baseline
    (its own repetitions are too few)."""
    if math.isinf(s.lower) or math.isinf(s.upper):
        return None
    half = (s.upper - s.lower) / 2
    # the interval must clear the null (regression) or fall below the limit (pass); whichever needs less
    room = max(s.estimate - null, limit - s.estimate)
    if half <= 0 or room <= 0:
        return None
    scale = (0.9 * room / half) ** 2 * (1 / s.n_fresh + 1 / s.n_baseline)  # width ∝ sqrt(1/n1 + 1/n2)
    if scale <= 1 / s.n_baseline:
        return None
    n = max(s.n_fresh + 1, math.ceil(1 / (scale - 1 / s.n_baseline)))
    return n if n <= MAX_REPETITIONS else None


def judge_latency(fresh: PairedSamples, base: PairedSamples, policy: Check, alpha: float | None = None,
                  looks: int = 1) -> LatencyVerdict:
    """The decision rule of the module docstring, over the repetitions' log-ratios, at level ``alpha`` (default the
    policy's)."""
    alpha = policy.alpha if alpha is None else alpha
    s = shift(fresh.log_ratios, base.log_ratios, alpha)
    null, limit = math.log1p(policy.null_slowdown), math.log1p(policy.max_slowdown)
    if s.lower > null:
        status, more = "regression", None
    elif s.upper < limit:
        status, more = "pass", None
    else:
        status, more = "inconclusive", repetitions_to_decide(s, null, limit)
    raw = shift(np.log(fresh.candidate_ms), np.log(base.candidate_ms), alpha)
    return LatencyVerdict(status, math.expm1(s.estimate), _frac(s.lower), _frac(s.upper), policy.max_slowdown,
                          policy.null_slowdown, alpha, s.n_fresh, s.n_baseline, looks, more, math.expm1(raw.estimate))


def judge_accuracy(fresh: dict | None, base: dict | None, policy: Check) -> AccuracyVerdict | None:
    if not fresh or not base:
        return None
    drop = base["value"] - fresh["value"]
    return AccuracyVerdict("regression" if drop > policy.max_accuracy_drop + 1e-9 else "pass", base["value"],
                           fresh["value"], drop, policy.max_accuracy_drop)


def compare(fresh: dict, baseline: dict, policy: Check, alpha: float | None = None, looks: int = 1) -> Verdict:
    """Judge a fresh measurement (:func:`measure`) against a baseline record."""
    lat = judge_latency(PairedSamples.from_json(fresh["samples"]), PairedSamples.from_json(baseline["samples"]),
                        policy, alpha, looks)
    acc = judge_accuracy(fresh.get("accuracy"), baseline.get("accuracy"), policy)
    warnings = []
    was, now = baseline["environment"], fresh["environment"]
    if was["machine"]["cpu"] != now["machine"]["cpu"]:
        warnings.append(f"the baseline was measured on {was['machine']['cpu']}, this on {now['machine']['cpu']}: "
                        "the control cancels the machine's speed, not a different instruction set")
    for pkg in ("onnxruntime", "onnxruntime-gpu", "tensorrt", "torch"):
        a, b = was["versions"].get(pkg), now["versions"].get(pkg)
        if a and b and a != b:
            warnings.append(f"{pkg} {a} in the baseline, {b} now: a change may come from the runtime")
    if (fresh.get("accuracy") is None) != (baseline.get("accuracy") is None):
        warnings.append("accuracy not compared: only one side measured it (pass --data to both)")
    status = "regression" if "regression" in (lat.status, acc.status if acc else None) else lat.status
    base_info = {"date": was.get("date"), "cpu": was["machine"]["cpu"], "sha256": baseline.get("sha256"),
                 "same_artifact": baseline.get("sha256") == fresh.get("sha256")}
    subject = {k: fresh[k] for k in ("artifact", "name", *MUST_MATCH)}
    return Verdict(status, lat, acc, subject, base_info, warnings)
