"""The latency harness: statistics, interleaving, preallocated I/O; backend choice; `bench` on foreign files."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

from kdcompress.bench import BACKENDS, LatencyStats, interleaved_latency, resolve_backend
from kdcompress.errors import KDCompressError


def test_stats_are_the_percentiles_of_every_sample():
    samples = [float(v) for v in range(1, 101)]  # 1..100 ms
    s = LatencyStats.from_samples(samples, batch=4)
    assert (s.p50, s.p90, s.p99) == pytest.approx((50.5, 90.1, 99.01))
    assert s.mean == pytest.approx(50.5) and s.iqr == pytest.approx(75.25 - 25.75)
    assert s.throughput == pytest.approx(4 * 1000 / 50.5)
    assert len(s.samples_ms) == 100 and "samples_ms" not in s.to_json(with_samples=False)


class FakeRunner:
    """Records the order of timed calls; bind happens once, warm-up calls are not timed."""

    device, timing = "cpu", "wall"

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log, self.binds = name, log, 0

    def infer(self, x):
        return np.zeros((len(x), 2), np.float32)

    def bind(self, x):
        self.binds += 1
        return lambda: self.log.append(self.name)

    def sync(self):
        pass


def test_runners_take_turns_and_every_sample_is_kept():
    log: list = []
    runners = {"a": FakeRunner("a", log), "b": FakeRunner("b", log)}
    lat = interleaved_latency(runners, np.zeros((2, 1, 4, 4)), warmup=3, iters=5, repeats=4)
    assert log[:6] == ["a"] * 3 + ["b"] * 3  # warm-up
    timed = log[6:]
    assert timed == (["a"] * 5 + ["b"] * 5) * 4  # rounds interleave the runners
    assert all(r.binds == 1 for r in runners.values())  # buffers allocated once, not per call
    assert all(len(s.samples_ms) == 20 and s.batch == 2 for s in lat.values())


def test_onnxruntime_binding_runs_the_model_on_preallocated_buffers(tmp_path):
    from kdcompress.export import to_onnx
    from kdcompress.models.students import build_resnet

    model = build_resnet({"stem": 8, "widths": [8, 8, 8], "depths": [1, 1, 1], "stem_stride": 1}, 1, 3).eval()
    path = tmp_path / "m.onnx"
    to_onnx(model, torch.zeros(1, 1, 8, 8), path)
    runner = BACKENDS["onnxruntime-cpu"](path)
    x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    call = runner.bind(x)
    call()
    np.testing.assert_allclose(runner._out.numpy(), runner.infer(x), rtol=1e-6)
    np.testing.assert_allclose(runner.infer(x), model(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


AVAILABLE = "available"


def _status(**available: bool) -> dict[str, str]:
    names = ["onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt", "aoti-cpu", "aoti-cuda"]
    return {n: AVAILABLE if available.get(n.replace("-", "_"), n == "onnxruntime-cpu") else "unavailable: test"
            for n in names}


def test_target_backends_fall_back_in_order_and_say_so():
    assert resolve_backend("cpu", "onnxruntime", status=_status()) == ("onnxruntime-cpu", None)
    name, note = resolve_backend("cuda", "tensorrt", status=_status(aoti_cuda=True))
    assert name == "aoti-cuda" and "tensorrt unavailable" in note and "measuring on aoti-cuda" in note
    name, note = resolve_backend("cuda", "tensorrt", status=_status())
    assert name == "onnxruntime-cpu" and note
    assert resolve_backend("cuda", "tensorrt", status=_status(tensorrt=True)) == ("tensorrt", None)
    with pytest.raises(KDCompressError, match="drop --strict-target"):
        resolve_backend("cuda", "tensorrt", strict=True, status=_status())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CUDA-event timing)")
def test_cuda_event_timing_on_a_gpu():
    from kdcompress.bench.runners import TorchRunner

    model = torch.nn.Conv2d(3, 8, 3).cuda().eval()
    runner = TorchRunner(model, "cuda", "torch-eager")
    lat = interleaved_latency({"m": runner}, np.zeros((1, 3, 32, 32)), 5, 20, 2)["m"]
    assert runner.timing == "cuda_events" and 0 < lat.p50 < 100


def run(cmd, *args):
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def foreign_onnx(tmp_path_factory):
    """A classifier exported elsewhere: 3 channels, input named 'images', TorchScript exporter, dynamic batch."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 5)).eval()
    d = tmp_path_factory.mktemp("foreign")
    dyn = d / "classifier.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 16, 16),), str(dyn), dynamo=False, input_names=["images"],
                      output_names=["scores"], dynamic_axes={"images": {0: "n"}, "scores": {0: "n"}})
    fixed = d / "fixed.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 16, 16),), str(fixed), dynamo=False, input_names=["images"])
    fixed3 = d / "fixed3.onnx"  # 40 test images are not a multiple of 3: the last batch must be padded
    torch.onnx.export(model, (torch.zeros(3, 3, 16, 16),), str(fixed3), dynamo=False, input_names=["images"])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 3, 16, 16), dtype=np.uint8)
    data = d / "rgb.npz"
    np.savez(data, x_train=x, y_train=np.arange(40) % 5, x_test=x, y_test=np.arange(40) % 5)
    with torch.no_grad():
        pred = model(torch.from_numpy(x).float() / 255).argmax(1).numpy()
    expected = 100.0 * float(np.mean(pred == np.arange(40) % 5))
    return {"dynamic": dyn, "fixed": fixed, "fixed3": fixed3, "data": data, "accuracy": expected}


def test_bench_any_onnx_file(cli_cmd, foreign_onnx):
    proc = run(cli_cmd, "bench", foreign_onnx["dynamic"], "--batch", "4", "--iters", "20", "--repeats", "2",
               "--warmup", "2", "--data", foreign_onnx["data"], "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert set(r["latency_ms"]) == {"p50", "p90", "p99", "mean", "iqr"}
    assert r["backend"] == "onnxruntime-cpu" and r["precision"] == "fp32" and r["batch"] == 4
    assert r["input_shape"] == [3, 16, 16] and r["samples"] == 40 and r["environment"]["machine"]["cpu"]
    assert r["accuracy"] == pytest.approx(foreign_onnx["accuracy"])
    padded = run(cli_cmd, "bench", foreign_onnx["fixed3"], "--batch", "3", "--iters", "5", "--repeats", "1",
                 "--warmup", "1", "--data", foreign_onnx["data"], "--json")
    assert padded.returncode == 0, padded.stderr
    assert json.loads(padded.stdout)["accuracy"] == pytest.approx(foreign_onnx["accuracy"])
    table = run(cli_cmd, "bench", foreign_onnx["fixed"], "--iters", "10", "--repeats", "1", "--warmup", "1")
    assert table.returncode == 0 and "p50 ms" in table.stdout


def test_bench_file_mistakes_are_one_line(cli_cmd, foreign_onnx, tmp_path):
    def user_error(proc, needle):
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and needle in proc.stderr, proc.stderr

    user_error(run(cli_cmd, "bench", foreign_onnx["fixed"], "--batch", "2"), "fixed batch of 1")
    user_error(run(cli_cmd, "bench", foreign_onnx["dynamic"], "--backend", "tensorrt"), "use --backend")
    user_error(run(cli_cmd, "bench", foreign_onnx["dynamic"], "--backend", "tensorrtt"), "did you mean 'tensorrt'")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model" * 10)
    user_error(run(cli_cmd, "bench", junk), "not an ONNX model")
    user_error(run(cli_cmd, "bench", foreign_onnx["dynamic"], "--shape", "1,16,16"), "does not match")
