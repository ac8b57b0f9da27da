"""Backends behind one interface; latency and accuracy measured on the artifact that ships."""

from kdcompress.bench.backends import BACKENDS, Runner, backend_status, resolve_backend
from kdcompress.bench.measure import LatencyStats, accuracy, interleaved_latency, measure_latency

__all__ = [
    "BACKENDS", "LatencyStats", "Runner", "accuracy", "backend_status", "interleaved_latency", "measure_latency",
    "resolve_backend",
]
