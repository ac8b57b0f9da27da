"""Runners: one artifact loaded on one runtime, Polygraphy-style (load once, run many).

Every runner takes and returns float32 numpy arrays in :meth:`infer` (accuracy, parity). For timing, :meth:`bind`
allocates the input and output buffers once, on the runner's device, and returns a zero-argument call that runs
one inference on them, so the timed loop measures the runtime and nothing of ours; :meth:`sync` waits for the
device. ``timing`` says how to time a call: ``wall`` (host clock around call + sync) or ``cuda_events`` (CUDA
events on the current stream, which the runner enqueues on).

Runtimes are imported when a runner is built, so the CLI works without the optional ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kdcompress.errors import KDCompressError, first_line


class Runner(Protocol):
    name: str
    device: str  # cpu | cuda
    timing: str  # wall | cuda_events

    def infer(self, x: np.ndarray) -> np.ndarray: ...

    def bind(self, x: np.ndarray) -> Callable[[], Any]: ...

    def sync(self) -> None: ...


ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "tensorrt": "TensorrtExecutionProvider"}


class OrtRunner:
    """onnxruntime InferenceSession on one execution provider; timed through I/O binding."""

    timing = "wall"  # run_with_iobinding returns when the outputs are ready, on every provider

    def __init__(self, artifact: Path | bytes, provider: str = "cpu", threads: int = 1,
                 options: dict[str, str] | None = None) -> None:
        import onnxruntime as ort

        ep = ORT_PROVIDERS[provider]
        if ep not in ort.get_available_providers():
            raise KDCompressError(f"onnxruntime has no {ep} here", "install onnxruntime-gpu (extra 'gpu')")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        src = artifact if isinstance(artifact, bytes) else str(artifact)
        what = "model" if isinstance(artifact, bytes) else artifact
        try:
            # no silent fallback: onnxruntime would otherwise retry on another provider (printing to stdout) and
            # we would report, say, CPU latency under the TensorRT label
            self.session = ort.InferenceSession(src, so, providers=[(ep, options or {})], enable_fallback=0)
        except Exception as e:  # noqa: BLE001 — onnxruntime raises several unrelated types for a bad model file
            raise KDCompressError(f"onnxruntime cannot load {what} on {ep} "
                                  f"({(str(e).strip().splitlines() or [type(e).__name__])[0][:200]})") from None
        if self.session.get_providers()[0] != ep:
            raise KDCompressError(f"onnxruntime could not start {ep} for {what} "
                                  f"(it offers {', '.join(self.session.get_providers())})", "run `kdcompress doctor`")
        self.input_name = self.session.get_inputs()[0].name
        # a model converted without keep_io_types takes fp16; every caller passes float32
        self.input_dtype = np.float16 if self.session.get_inputs()[0].type == "tensor(float16)" else np.float32
        self.output_dtype = np.float16 if self.session.get_outputs()[0].type == "tensor(float16)" else np.float32
        self.name = f"onnxruntime-{provider}"
        self.device = "cpu" if provider == "cpu" else "cuda"
        self._ort = ort

    def infer(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=self.input_dtype)})[0]
        return out.astype(np.float32, copy=False)

    def bind(self, x: np.ndarray) -> Callable[[], Any]:
        out_shape = self.infer(x).shape
        ov = self._ort.OrtValue
        device = "cpu" if self.device == "cpu" else "cuda"
        binding = self.session.io_binding()
        self._inp = ov.ortvalue_from_numpy(np.ascontiguousarray(x, dtype=self.input_dtype), device, 0)
        self._out = ov.ortvalue_from_shape_and_type(out_shape, self.output_dtype, device, 0)
        binding.bind_ortvalue_input(self.input_name, self._inp)
        binding.bind_ortvalue_output(self.session.get_outputs()[0].name, self._out)
        run, run_options = self.session.run_with_iobinding, None
        return lambda: run(binding, run_options)

    def sync(self) -> None:
        pass


class TorchRunner:
    """A callable over torch tensors (an AOTInductor package, or an eager module for comparison). The input is
    preallocated on the device; the compiled model allocates its output itself (AOTInductor has no out= call)."""

    def __init__(self, fn: Callable[[Any], Any], device: str, name: str) -> None:
        import torch

        self.fn, self.device, self.name, self._torch = fn, device, name, torch
        self.timing = "cuda_events" if device == "cuda" else "wall"

    def infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self.fn(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device))
        out = out[0] if isinstance(out, (list, tuple)) else out
        return out.float().cpu().numpy()

    def bind(self, x: np.ndarray) -> Callable[[], Any]:
        torch = self._torch
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        fn = self.fn

        def call() -> Any:  # the compiled model allocates its own output; inference_mode keeps autograd out
            with torch.inference_mode():
                return fn(xt)

        return call

    def sync(self) -> None:
        if self.device == "cuda":
            self._torch.cuda.synchronize()


def aoti_runner(artifact: Path, device: str) -> TorchRunner:
    """An AOTInductor ``.pt2`` package, refused with one line when it was compiled for another device."""
    import torch

    from kdcompress.export.aoti import read_package_meta

    built_for = read_package_meta(artifact).get("device")
    if built_for and built_for != device:
        raise KDCompressError(f"{artifact.name} was compiled for {built_for}, not {device}",
                              f"compile it for {device} (`kdcompress export RUN` on that machine)")
    if device == "cuda" and not torch.cuda.is_available():
        raise KDCompressError("aoti-cuda needs a CUDA GPU and this machine has none", "use --backend aoti-cpu")
    try:
        fn = torch._inductor.aoti_load_package(str(artifact))
    except Exception as e:  # noqa: BLE001 — the loader raises RuntimeError/zipfile errors for foreign files
        raise KDCompressError(f"{artifact}: not a loadable AOTInductor package ({first_line(e)})",
                              "build it with `kdcompress export` or torch._inductor.aoti_compile_and_package") from None
    return TorchRunner(fn, device, f"aoti-{device}")


class TensorRTRunner:
    """A serialized TensorRT engine, run with ``execute_async_v3`` on a CUDA stream of its own (TensorRT warns
    against the legacy default stream), I/O buffers as torch CUDA tensors (no pycuda needed), as Torch-TensorRT's
    Python runtime does. Refuses an engine built for another GPU or TensorRT version."""

    device = "cuda"
    timing = "cuda_events"
    name = "tensorrt"

    def __init__(self, artifact: Path) -> None:
        import torch

        from kdcompress.export.tensorrt import (
            EngineMeta,
            check_compatible,
            check_engine_file,
            current_gpu,
            import_tensorrt,
        )

        trt = import_tensorrt()
        meta = EngineMeta.read(artifact)
        check_engine_file(meta, artifact)
        check_compatible(meta, trt.__version__, current_gpu())
        self._trt, self._torch, self.meta = trt, torch, meta
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(artifact.read_bytes())
        if self.engine is None:
            raise KDCompressError(f"TensorRT could not deserialize {artifact.name}", "rebuild it on this machine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.input_name, self.output_name = inputs[0], next(n for n in names if n not in inputs)
        if self.engine.get_tensor_dtype(self.input_name) != trt.DataType.FLOAT:
            raise KDCompressError(f"{artifact.name} does not take float32 input",
                                  "build engines from ONNX files with float32 I/O (kdcompress keeps them)")
        self.stream = torch.cuda.Stream()  # the harness records its CUDA events on this stream
        self._bound: tuple[Any, Any] | None = None

    def _buffers(self, x: np.ndarray) -> tuple[Any, Any]:
        """Input and output tensors for ``x``'s shape, their addresses set on the context."""
        torch = self._torch
        if not self.meta.batch_min <= len(x) <= self.meta.batch_max:
            raise KDCompressError(f"batch {len(x)} is outside the engine's profile "
                                  f"[{self.meta.batch_min}, {self.meta.batch_max}]", "rebuild with that batch range")
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).cuda()
        self.context.set_input_shape(self.input_name, tuple(xt.shape))
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        out_dtype = torch.from_numpy(np.empty(0, dtype=self._trt.nptype(
            self.engine.get_tensor_dtype(self.output_name)))).dtype
        yt = torch.empty(out_shape, dtype=out_dtype, device="cuda")
        self.context.set_tensor_address(self.input_name, xt.data_ptr())
        self.context.set_tensor_address(self.output_name, yt.data_ptr())
        return xt, yt

    def bind(self, x: np.ndarray) -> Callable[[], Any]:
        self._bound = self._buffers(x)  # kept alive: TensorRT holds raw pointers to them
        self._run()  # once outside the timed loop, so a failing enqueue is an error, not a 0 ms sample
        context, handle = self.context, self.stream.cuda_stream
        return lambda: context.execute_async_v3(handle)

    def _run(self) -> None:
        self._torch.cuda.synchronize()  # input copies ran on the default stream
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        self.sync()

    def infer(self, x: np.ndarray) -> np.ndarray:
        _, yt = self._buffers(x)
        self._run()
        out = yt.float().cpu().numpy()
        if self._bound is not None:  # point the context back at the bound buffers before ours are freed
            xb, yb = self._bound
            self.context.set_input_shape(self.input_name, tuple(xb.shape))
            self.context.set_tensor_address(self.input_name, xb.data_ptr())
            self.context.set_tensor_address(self.output_name, yb.data_ptr())
        return out

    def sync(self) -> None:
        self._torch.cuda.synchronize()
