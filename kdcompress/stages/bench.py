"""The bench stage: latency (interleaved, same process) and test accuracy of every artifact on the run's backend
(``bench.json``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdcompress.bench import accuracy, get_backend, interleaved_latency
from kdcompress.data.splits import take
from kdcompress.records import BenchFile, BenchRow
from kdcompress.report.environment import environment
from kdcompress.run import write_json
from kdcompress.session import Session
from kdcompress.stages.base import Stage


def run(s: Session) -> None:
    exported = s.exported()
    backend = exported.plan["backend"]
    t, b = s.profile.target, s.profile.bench
    rows = exported.measured()
    runners = {f"{m}/{rec.precision}": get_backend(backend)(Path(rec.path), threads=t.threads) for m, rec in rows}
    s.progress.start("bench latency", None)
    x = np.zeros((t.batch, *s.data.input_shape), dtype=np.float32)
    lat = interleaved_latency(runners, x, b.warmup, b.iters, b.repeats)
    s.progress.stop()
    tp: dict = {}
    big = min(b.throughput_batch or t.batch, s.plan.batch[2])
    if big != t.batch:
        s.progress.start(f"bench throughput (batch {big})", None)
        xb = np.zeros((big, *s.data.input_shape), dtype=np.float32)
        tp = interleaved_latency(runners, xb, max(1, b.warmup // 10), b.throughput_iters, b.repeats)
        s.progress.stop()
    n = b.test_samples
    x_test, y_test = take(s.data.x_test, slice(0, n)), s.data.y_test[:n]
    s.progress.start("bench accuracy", len(runners))
    acc = {}
    for key, r in runners.items():
        acc[key] = accuracy(r, x_test, y_test, s.prep, batch=min(256, s.plan.batch[2]))
        s.progress.advance()
    s.progress.stop()
    measured = tuple(
        BenchRow(model=m, precision=rec.precision, format=rec.format, path=rec.path, parity=rec.parity,
                 accuracy=acc[key], description=rec.description, latency_ms=lat[key].to_json(),
                 throughput=tp[key].to_json() if tp else None)
        for m, rec in rows for key in [f"{m}/{rec.precision}"])
    bench = BenchFile(backend=backend, precision=s.run.manifest["precision"], batch=t.batch, threads=t.threads,
                      test_samples=len(y_test), environment=environment(), artifacts=measured)
    write_json(s.run.path / "bench.json", bench.to_json())


STAGE = Stage("bench", ("bench.json",), run=run)
