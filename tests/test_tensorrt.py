"""The TensorRT path up to the TensorRT calls: a stand-in ``tensorrt`` module records what we ask of it.

TensorRT cannot be installed here; these tests pin the network, profile, timing-cache and metadata choices and the
refusal rules. What they cannot show is that real TensorRT accepts them (see the README).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from kdcompress.errors import KDCompressError
from kdcompress.export import tensorrt as trt_export
from kdcompress.export.tensorrt import EngineMeta, GpuInfo, build_engine, check_compatible, engine_name, meta_path

H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")
# Method names of the TensorRT Python API (10.12 and 11.1 bindings) the builder may call: the stand-in accepts any
# name, so the test checks that every call it saw is one of these (a misspelling would pass otherwise).
TRT_API = {"create_network", "create_builder_config", "create_optimization_profile", "build_serialized_network",
           "get_input", "set_memory_pool_limit", "add_optimization_profile", "create_timing_cache",
           "set_timing_cache", "get_timing_cache", "clear_flag", "set_shape", "serialize"}


class _Recorder:
    """Every attribute is a callable that records its call and returns a recorder (or a set value)."""

    def __init__(self, log: list, name: str, returns: dict | None = None) -> None:
        self._log, self._name, self._returns = log, name, returns or {}

    def __getattr__(self, attr: str):
        def call(*args, **kwargs):
            self._log.append((f"{self._name}.{attr}", args))
            value = self._returns.get(attr)
            return value(*args) if callable(value) else (value if value is not None else _Recorder(
                self._log, f"{self._name}.{attr}()", self._returns))
        return call


def fake_tensorrt(log: list, parse_ok: bool = True, build_ok: bool = True, version: str = "10.13.0",
                  strongly_typed_flag: bool = True) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    flags = types.SimpleNamespace(**({"STRONGLY_TYPED": 1} if strongly_typed_flag else {}))
    trt.NetworkDefinitionCreationFlag = flags
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.BuilderFlag = types.SimpleNamespace(TF32="TF32")

    class Logger:
        WARNING = 2

        def __init__(self, level):
            log.append(("Logger", (level,)))

    trt.Logger = Logger
    inp = types.SimpleNamespace(name="x")
    network = _Recorder(log, "network", {"get_input": lambda i: inp})
    cache = _Recorder(log, "cache", {"serialize": lambda: b"CACHE-v2"})
    config = _Recorder(log, "config", {"create_timing_cache": lambda b: cache, "get_timing_cache": lambda: cache})
    builder = _Recorder(log, "builder", {
        "create_network": lambda f: network, "create_builder_config": lambda: config,
        "create_optimization_profile": lambda: _Recorder(log, "profile"),
        "build_serialized_network": lambda n, c: b"ENGINE" if build_ok else None,
    })
    trt.Builder = lambda logger: builder

    class Parser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, net, logger):
            log.append(("OnnxParser", ()))

        def parse(self, data):
            log.append(("parse", (len(data),)))
            return parse_ok

        def get_error(self, i):
            return "In node 3 (Conv): unsupported"

    trt.OnnxParser = Parser
    return trt


@pytest.fixture
def onnx_file(tmp_path) -> Path:
    p = tmp_path / "s0.fp16.onnx"
    p.write_bytes(b"onnx-bytes")
    return p


def test_engine_build_asks_for_what_we_mean(monkeypatch, tmp_path, onnx_file):
    log: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(log))
    cache = tmp_path / "timing.trt10.13.0.sm90.cache"
    cache.write_bytes(b"CACHE-v1")
    engine = build_engine(onnx_file, tmp_path, "s0", "fp16", (1, 28, 28), (1, 4, 64), tmp_path, gpu=H100)
    calls = dict(log)
    assert "config.clear_flag" not in calls  # fp16 comes from the ONNX; nothing to switch
    assert {name.rsplit(".", 1)[1] for name, _ in log if "." in name} <= TRT_API
    assert calls["builder.create_network"] == (1 << 1,)  # STRONGLY_TYPED: precision comes from the ONNX
    assert calls["profile.set_shape"] == ("x", (1, 1, 28, 28), (4, 1, 28, 28), (64, 1, 28, 28))
    assert calls["config.create_timing_cache"] == (b"CACHE-v1",)  # the cache beside the run is reused
    assert ("config.set_timing_cache" in calls) and cache.read_bytes() == b"CACHE-v2"  # and written back
    assert not any("set_flag" in name for name, _ in log)  # no FP16/INT8 builder flags (gone in 11)
    assert engine.name == "s0.fp16.trt10.13.0.sm90.h100.engine" and engine.read_bytes() == b"ENGINE"
    meta = EngineMeta.read(engine)
    assert (meta.tensorrt_version, meta.gpu_name, meta.compute_capability, meta.precision) == (
        "10.13.0", H100.name, "9.0", "fp16")
    assert (meta.batch_min, meta.batch_opt, meta.batch_max, meta.input_shape) == (1, 4, 64, [1, 28, 28])
    trt_export.check_engine_file(meta, engine)  # the metadata describes this very file
    engine.write_bytes(b"ENGINE-rebuilt-elsewhere")
    with pytest.raises(KDCompressError, match="describes another engine"):
        trt_export.check_engine_file(meta, engine)


def test_tensorrt_11_without_the_flag_gets_a_plain_network(monkeypatch, tmp_path, onnx_file):
    log: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(log, version="11.1.0", strongly_typed_flag=False))
    build_engine(onnx_file, tmp_path, "s0", "fp32", (1, 8, 8), (1, 1, 8), tmp_path, gpu=H100)
    calls = dict(log)
    assert calls["builder.create_network"] == (0,)
    assert calls["config.clear_flag"] == ("TF32",)  # an fp32 engine computes in fp32
    assert calls["config.create_timing_cache"] == (b"",)  # no cache for this version yet: a fresh one, saved
    assert (tmp_path / "timing.trt11.1.0.sm90.cache").read_bytes() == b"CACHE-v2"


def test_engine_build_failures_are_one_line_and_leave_no_engine(monkeypatch, tmp_path, onnx_file):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt([], parse_ok=False))
    with pytest.raises(KDCompressError, match="cannot parse s0.fp16.onnx.*unsupported"):
        build_engine(onnx_file, tmp_path, "s0", "fp16", (1, 8, 8), (1, 1, 8), tmp_path, gpu=H100)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt([], build_ok=False))
    with pytest.raises(KDCompressError, match="could not build"):
        build_engine(onnx_file, tmp_path, "s0", "fp16", (1, 8, 8), (1, 1, 8), tmp_path, gpu=H100)
    assert not list(tmp_path.glob("*.engine")) and not list(tmp_path.glob("*.engine.json"))


def test_missing_tensorrt_says_how_to_get_it(monkeypatch, tmp_path, onnx_file):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import raises ImportError
    with pytest.raises(KDCompressError, match="TensorRT is not installed"):
        build_engine(onnx_file, tmp_path, "s0", "fp16", (1, 8, 8), (1, 1, 8), tmp_path, gpu=H100)


def test_engines_are_refused_on_another_gpu_or_version(tmp_path):
    meta = EngineMeta("10.13.0", H100.name, "9.0", "fp16", "x", [1, 28, 28], 1, 1, 64, "abc")
    check_compatible(meta, "10.13.0", H100)  # same: accepted
    with pytest.raises(KDCompressError, match="TensorRT 10.13.0, this machine has 10.14.1"):
        check_compatible(meta, "10.14.1", H100)
    with pytest.raises(KDCompressError, match=r"built for NVIDIA H100.*sm 9.0.*this GPU is NVIDIA L4 \(sm 8.9\)"):
        check_compatible(meta, "10.13.0", GpuInfo("NVIDIA L4", "8.9"))
    engine = tmp_path / "e.engine"
    engine.write_bytes(b"x")
    with pytest.raises(KDCompressError, match="no metadata file"):
        EngineMeta.read(engine)
    meta_path(engine).write_text(json.dumps({"tensorrt_version": "10"}))
    with pytest.raises(KDCompressError, match="not an engine metadata file"):
        EngineMeta.read(engine)


def test_engine_names_carry_what_they_are_for():
    assert engine_name("teacher", "fp32", "11.1.0", GpuInfo("NVIDIA GeForce RTX 4090", "8.9")) == (
        "teacher.fp32.trt11.1.0.sm89.geforce.engine")
    assert engine_name("s1", "int8", "10.13.0", GpuInfo("Orin", "8.7")) == "s1.int8.trt10.13.0.sm87.orin.engine"


def test_runner_refuses_a_foreign_engine_before_tensorrt_sees_it(monkeypatch, tmp_path):
    from kdcompress.bench.runners import TensorRTRunner

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt([], version="10.14.1"))
    monkeypatch.setattr(trt_export, "current_gpu", lambda: H100)
    engine = tmp_path / "s0.fp16.trt10.13.0.sm90.h100.engine"
    engine.write_bytes(b"ENGINE")
    meta = EngineMeta("10.13.0", H100.name, "9.0", "fp16", "x", [1, 8, 8], 1, 1, 8, "abc")
    meta_path(engine).write_text(json.dumps(meta.to_json()))
    with pytest.raises(KDCompressError, match="rebuild it here"):
        TensorRTRunner(engine)
