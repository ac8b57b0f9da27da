"""Candidate and control timed in shuffled, interleaved blocks, each repetition on freshly loaded models
(DESIGN §7).

One repetition = load both models anew (in random order), a few untimed calls, then a timed block of each in random
order → each block's median. A repetition's log-ratio ``ln(median_candidate) − ln(median_control)`` cancels the
machine's speed at that moment; the blocks are short so that both models see the same moment. Loading anew matters
on a CPU: where a session's weights and buffers land in memory moves its latency by a percent or more (measured here:
fresh sessions in one process differ about as much as separate processes do), so repetitions of one loaded session
share an offset that no number of them averages away. Fresh sessions make the repetitions independent draws of that
offset too, which the test's bounds assume.
"""

from __future__ import annotations

from collections.abc import Callable
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

    def extended(self, more: PairedSamples) -> PairedSamples:
        return PairedSamples(self.candidate_ms + more.candidate_ms, self.control_ms + more.control_ms, self.iters,
                             self.block_warmup)

    @classmethod
    def from_json(cls, d: dict) -> PairedSamples:
        return cls(list(d["candidate_ms"]), list(d["control_ms"]), int(d["iters"]), int(d["block_warmup"]))


def _timer(make: Callable[[], Runner], x: np.ndarray, warmup: int) -> Callable[[], float]:
    """Load a runner, bind ``x``, warm it up; returns a function timing one call in ms."""
    runner = make()
    call = runner.bind(x)
    for _ in range(warmup):
        call()
    runner.sync()
    return call_timer(runner, call)


def measure_paired(
    make_candidate: Callable[[], Runner], make_control: Callable[[], Runner], x_candidate: np.ndarray,
    x_control: np.ndarray, repetitions: int, warmup: int = 20, iters: int | None = None,
    block_warmup: int | None = None, seed: int | None = None,
) -> PairedSamples:
    """``repetitions`` shuffled block pairs, each on freshly loaded runners (``iters`` None: calibrated so that the
    slower model's block lasts about :data:`BLOCK_MS`). ``warmup``: calls after each load, before timing."""
    rng = np.random.default_rng(seed)
    makers = [(make_candidate, np.ascontiguousarray(x_candidate, np.float32)),
              (make_control, np.ascontiguousarray(x_control, np.float32))]
    if iters is None:
        timers = [_timer(m, x, warmup) for m, x in makers]
        slowest = max(float(np.median([t() for _ in range(7)])) for t in timers)
        iters = int(np.clip(round(BLOCK_MS / max(slowest, 1e-4)), 10, 2000))
    block_warmup = block_warmup if block_warmup is not None else max(2, iters // 10)
    medians: list[list[float]] = [[], []]
    for _ in range(repetitions):
        timers = {which: _timer(*makers[which], warmup) for which in rng.permutation(2)}  # loaded in random order
        for which in rng.permutation(2):
            timed = timers[which]
            for _ in range(block_warmup):
                timed()
            medians[which].append(float(np.median([timed() for _ in range(iters)])))
    return PairedSamples([round(v, 6) for v in medians[0]], [round(v, 6) for v in medians[1]], iters, block_warmup)
