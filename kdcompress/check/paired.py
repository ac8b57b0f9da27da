"""Candidate and control timed in shuffled, interleaved blocks (DESIGN §7).

One repetition = a block per model, in random order: a few untimed calls (the other model just evicted this one's
caches), then ``iters`` timed calls → the block's median. A repetition's log-ratio
``ln(median_candidate) − ln(median_control)`` cancels the machine's speed at that moment; the blocks are short so
that both models of a repetition see the same moment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from kdcompress.bench.measure import call_timer
from kdcompress.bench.runners import Runner

BLOCK_MS = 20.0  # target length of one timed block when iters is not given


@dataclass
class PairedSamples:
    candidate_ms: list[float]  # per repetition: median of the candidate's timed calls
    control_ms: list[float]
    iters: int
    block_warmup: int

    @property
    def log_ratios(self) -> np.ndarray:
        return np.log(np.asarray(self.candidate_ms)) - np.log(np.asarray(self.control_ms))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> PairedSamples:
        return cls(list(d["candidate_ms"]), list(d["control_ms"]), int(d["iters"]), int(d["block_warmup"]))


def _calibrate(timers: list, block_ms: float) -> int:
    """Timed calls per block so that the slower model's block lasts about ``block_ms``."""
    slowest = max(float(np.median([t() for _ in range(7)])) for t in timers)
    return int(np.clip(round(block_ms / max(slowest, 1e-4)), 10, 2000))


def measure_paired(
    candidate: Runner, control: Runner, x_candidate: np.ndarray, x_control: np.ndarray, repetitions: int,
    warmup: int = 50, iters: int | None = None, block_warmup: int | None = None, seed: int | None = None,
) -> PairedSamples:
    """``repetitions`` shuffled blocks of each model (``iters`` None: calibrated to :data:`BLOCK_MS`)."""
    rng = np.random.default_rng(seed)
    timers = []
    for runner, x in ((candidate, x_candidate), (control, x_control)):
        call = runner.bind(np.ascontiguousarray(x, dtype=np.float32))
        for _ in range(warmup):
            call()
        runner.sync()
        timers.append(call_timer(runner, call))
    iters = iters or _calibrate(timers, BLOCK_MS)
    block_warmup = block_warmup if block_warmup is not None else max(2, iters // 10)
    medians: list[list[float]] = [[], []]
    for _ in range(repetitions):
        for which in rng.permutation(2):
            timed = timers[which]
            for _ in range(block_warmup):
                timed()
            medians[which].append(float(np.median([timed() for _ in range(iters)])))
    return PairedSamples([round(v, 6) for v in medians[0]], [round(v, 6) for v in medians[1]], iters, block_warmup)
