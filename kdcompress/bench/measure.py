"""Latency and accuracy of an artifact on a runner (DESIGN §7).

The timed loop calls what :meth:`Runner.bind` returned (input and output buffers allocated once, on the device)
and nothing else: host clock around call + device sync for ``wall`` runners, CUDA events around the call for
``cuda_events`` runners. Every sample is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from kdcompress.bench.runners import Runner
from kdcompress.data import Preprocess
from kdcompress.data.splits import batches


@dataclass
class LatencyStats:
    """Latency of one batch, in milliseconds, over every timed run (samples kept)."""

    batch: int
    p50: float
    p90: float
    p99: float
    mean: float
    iqr: float
    throughput: float  # samples / s at this batch
    samples_ms: list[float] = field(repr=False)

    def to_json(self, with_samples: bool = True) -> dict:
        d = asdict(self)
        if not with_samples:
            d.pop("samples_ms")
        return d

    @classmethod
    def from_samples(cls, samples_ms: list[float], batch: int) -> LatencyStats:
        a = np.asarray(samples_ms)
        p25, p50, p75, p90, p99 = np.percentile(a, [25, 50, 75, 90, 99])
        return cls(batch, float(p50), float(p90), float(p99), float(a.mean()), float(p75 - p25),
                   float(batch * 1000.0 / p50), [round(s, 5) for s in samples_ms])


def measure_latency(runner: Runner, x: np.ndarray, warmup: int = 50, iters: int = 300, repeats: int = 5) -> LatencyStats:
    """Warm up, then ``repeats × iters`` timed, synchronised runs on one preallocated input."""
    return interleaved_latency({"model": runner}, x, warmup, iters, repeats)["model"]


def call_timer(runner: Runner, call: Callable[[], object]) -> Callable[[], float]:
    """A function that runs ``call`` once and returns its latency in ms, the way ``runner`` must be timed."""
    if runner.timing == "cuda_events":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        stream = getattr(runner, "stream", None)  # a runner with a stream of its own enqueues there

        def timed() -> float:
            start.record(stream)
            call()
            end.record(stream)
            end.synchronize()
            return start.elapsed_time(end)

        return timed
    perf, sync = time.perf_counter, runner.sync

    def timed() -> float:
        t0 = perf()
        call()
        sync()
        return (perf() - t0) * 1e3

    return timed


def interleaved_latency(
    runners: dict[str, Runner], x: np.ndarray, warmup: int, iters: int, repeats: int
) -> dict[str, LatencyStats]:
    """Warm-up, then ``repeats`` rounds of ``iters`` timed runs per runner, the runners taking turns within each
    round, so that drift on a noisy machine hits them all alike."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    timers = {}
    for name, r in runners.items():
        call = r.bind(x)
        for _ in range(warmup):
            call()
        r.sync()
        timers[name] = call_timer(r, call)
    samples: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(repeats):
        for name, timed in timers.items():
            out = samples[name]
            for _ in range(iters):
                out.append(timed())
    return {k: LatencyStats.from_samples(v, len(x)) for k, v in samples.items()}


def predictions(runner: Runner, x: torch.Tensor, prep: Preprocess, batch: int = 256, fixed: bool = False) -> np.ndarray:
    """Top-1 class the artifact itself predicts for each uint8 image of ``x``; ``fixed``: the model takes exactly
    ``batch`` images, so the last batch is padded with zeros and the padding's predictions dropped."""
    out = []
    for _, xb, _ in batches(x, torch.zeros(len(x)), batch):
        inp = prep(xb).numpy()
        n = len(inp)
        if fixed and n < batch:
            inp = np.concatenate([inp, np.zeros((batch - n, *inp.shape[1:]), inp.dtype)])
        out.append(runner.infer(inp)[:n].argmax(1))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def accuracy(runner: Runner, x: torch.Tensor, y: torch.Tensor, prep: Preprocess, batch: int = 256,
             fixed: bool = False) -> float:
    """Top-1 accuracy (%) of the artifact itself on uint8 images ``x`` (see :func:`predictions`)."""
    return 100.0 * int((predictions(runner, x, prep, batch, fixed) == y.numpy()).sum()) / max(1, len(y))
