"""Backends behind one interface; latency and accuracy measured on the artifact that ships."""

from kdcompress.bench.backends import BACKENDS, Backend, backend_status, get_backend, resolve_backend
from kdcompress.bench.measure import LatencyStats, accuracy, interleaved_latency, measure_latency
from kdcompress.bench.runners import Runner

__all__ = [
    "BACKENDS", "Backend", "LatencyStats", "Runner", "accuracy", "backend_status", "get_backend",
    "interleaved_latency", "measure_latency", "resolve_backend",
]
