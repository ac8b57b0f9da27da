"""Latencies kept across searches on one machine (``search.latency_cache``), so that a repeated or resumed search
does not time a candidate again and a repeated ``shrink`` makes the same pick.

Timing on a shared machine is noisy: the same command, run twice, measured a candidate near the budget on either
side of it and picked another student. Here each measurement is stored once per machine, keyed by what decides a
latency — the candidate's ONNX graph without its weight values (two inits of one architecture share an entry), the
reference's graph, the backend, its threads and the batch — as the candidate's p50 and its ratio to the reference;
the reference's ratio to a teacher under the teacher's graph, likewise without weights. The file is
``$KDCOMPRESS_CACHE_DIR/latency-<machine>.jsonl`` (default ``~/.cache/kdcompress``), one JSON line per measurement,
appended (a worker's line is one write); ``<machine>`` hashes the host, CPU, core count, GPU and the onnxruntime and
kdcompress versions, so another machine or an upgrade times afresh (a container with a new host name too). The
first measurement of a graph is the one kept: delete the file to re-time everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("KDCOMPRESS_CACHE_DIR") or Path.home() / ".cache" / "kdcompress")


def machine_key() -> str:
    """What makes timings comparable: this host, its CPU and cores, and the software that runs the graphs."""
    from importlib.metadata import PackageNotFoundError, version

    from kdcompress.report.environment import cpu_model

    def v(pkg: str) -> str:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "-"

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-"
    parts = [platform.node(), cpu_model(), str(os.cpu_count()), gpu, v("onnxruntime"), v("onnxruntime-gpu"),
             v("tensorrt"), v("kdcompress")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def graph_key(onnx_model: bytes) -> str:
    """A hash of an ONNX model's graph with the weight values left out (shapes and types kept): what its latency
    depends on."""
    import onnx

    model = onnx.load_from_string(onnx_model)
    for init in model.graph.initializer:
        for name in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
            init.ClearField(name)
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()[:20]


@dataclass
class LatencyStore:
    """The stored measurements of one file (read once), and the file that new ones are appended to."""

    path: Path
    entries: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path | None = None) -> LatencyStore:
        path = path or cache_dir() / f"latency-{machine_key()}.jsonl"
        entries: dict[str, list[float]] = {}
        if path.exists():
            text = path.read_text()
            if text and not text.endswith("\n"):  # a line cut short: end it, so the next entry has a line of its own
                with path.open("a") as f:
                    f.write("\n")
            for line in text.splitlines():
                try:
                    e = json.loads(line)
                    entries[e["key"]] = e["value"]
                except (json.JSONDecodeError, KeyError, TypeError):  # a line cut short: measured again
                    continue
        return cls(path, entries)

    def get(self, key: str) -> list[float] | None:
        return self.entries.get(key)

    def put(self, key: str, value: list[float]) -> None:
        self.entries[key] = value
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps({"key": key, "value": value}) + "\n")
        except OSError:  # a read-only home: the search goes on, timing afresh next time
            pass


def measurement_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
