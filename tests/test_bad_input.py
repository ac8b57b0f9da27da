"""Bad input, everywhere, through the CLI: each case of the corpus below is made by the test itself and run as a user
runs it (a real subprocess). Every one must end in one line on stderr that says what is wrong (and, where it can, how
to fix it), exit code 2, no traceback, nothing in the run directory marked done, and the evil pickle's file never
created. With ``BAD_INPUT_TABLE=FILE`` set, each case appends its row of the README's table to FILE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

CLI = [sys.executable, "-m", "kdcompress.cli"]


@dataclass
class Case:
    id: str
    what: str  # the bad input, in the README's words
    args: Callable[[dict], list]  # the CLI arguments, from the fixture files
    needle: str  # a piece of the one line the user must see


def _npz(files: dict, name: str, **changes) -> Path:
    """The tiny data with some arrays replaced."""
    with np.load(files["npz"]) as z:
        arrays = {**dict(z), **changes}
    path = files["dir"] / name
    np.savez(path, **arrays)
    return path


def _x(files: dict) -> np.ndarray:
    with np.load(files["npz"]) as z:
        return z["x_train"]


def _y(files: dict) -> np.ndarray:
    with np.load(files["npz"]) as z:
        return z["y_train"]


def _bytes(files: dict, name: str, data: bytes) -> Path:
    path = files["dir"] / name
    path.write_bytes(data)
    return path


def _text(files: dict, name: str, text: str) -> Path:
    path = files["dir"] / name
    path.write_text(text)
    return path


def _evil_pickle(files: dict) -> Path:
    class Touch:  # unpickling it would create files["sentinel"]
        def __reduce__(self):
            return (Path.touch, (files["sentinel"],))

    path = files["dir"] / "evil.pt"
    torch.save({"model": Touch()}, path)
    return path


def shrink(files: dict, *extra, teacher: Path | None = None, data: Path | None = None, profile=None) -> list:
    return ["shrink", teacher or files["pt2"], "--profile", profile or files["profile"],
            "--data", data or files["npz"], *extra]


CORPUS = [
    Case("truncated", "a truncated checkpoint (first 3000 bytes of a .pt2)",
         lambda f: shrink(f, teacher=_bytes(f, "cut.pt2", f["pt2"].read_bytes()[:3000])), "corrupt"),
    Case("random-bytes", "a checkpoint of random bytes",
         lambda f: shrink(f, teacher=_bytes(f, "noise.pt", np.random.default_rng(0).bytes(4096))), "noise.pt"),
    Case("evil-pickle", "a pickle whose unpickling would create a file (no `--trust-pickle`)",
         lambda f: shrink(f, teacher=_evil_pickle(f)), "--trust-pickle"),
    Case("not-onnx", "a `.onnx` file that is not ONNX",
         lambda f: shrink(f, teacher=_bytes(f, "model.onnx", b"this is not a protobuf" * 50)), "model.onnx"),
    Case("arch-raises", "an `--arch` file whose code raises",
         lambda f: shrink(f, "--arch", f"{_text(f, 'raising.py', 'raise ImportError(chr(120))')}:Net",
                          teacher=f["sd"]), "importing"),
    Case("arch-needs-args", "an `--arch` class that needs constructor arguments",
         lambda f: shrink(f, "--arch", f"{_text(f, 'needs.py', NEEDS_ARGS)}:Net", teacher=f["sd"]),
         "cannot be built without arguments"),
    Case("class-count", "data with another number of classes than the teacher's outputs",
         lambda f: shrink(f, data=_npz(f, "k6.npz", y_train=np.arange(len(_x(f))) % 6)), "label(s) 4, 5"),
    Case("image-shape", "images of another shape (3×12×12 for a 1-channel teacher)",
         lambda f: shrink(f, data=_npz(f, "rgb.npz", x_train=np.repeat(_x(f), 3, axis=1),
                                       x_test=np.repeat(_x(f), 3, axis=1), y_test=np.arange(len(_x(f))) % 4)),
         "[3, 12, 12]"),
    Case("train-test-shape", "train and test images of different shapes",
         lambda f: shrink(f, data=_npz(f, "mixed.npz", x_train=np.repeat(_x(f), 3, axis=1))), "vs test"),
    Case("normalised-floats", "normalised float images (values in [−0.8, 2.0])",
         lambda f: shrink(f, data=_npz(f, "norm.npz", x_train=(_x(f) / 255.0 * 2.8 - 0.8).astype(np.float32))),
         "looks normalised"),
    Case("nan-pixels", "NaN pixels",
         lambda f: shrink(f, data=_npz(f, "nan.npz", x_train=np.where(_x(f) > 200, np.nan, _x(f)).astype(np.float32))),
         "NaN"),
    Case("zero-samples", "a training split with zero samples",
         lambda f: shrink(f, data=_npz(f, "empty.npz", x_train=_x(f)[:0], y_train=np.zeros(0, np.int64))), "holds no images"),
    Case("label-range", "a label outside 0..K−1",
         lambda f: shrink(f, data=_npz(f, "l13.npz", y_train=np.where(np.arange(len(_x(f))) == 5, 13,
                                                                        np.arange(len(_x(f))) % 4))), "label(s) 13"),
    Case("labels-shifted", "data the teacher has not learnt: here its labels shifted by one (as other data, or "
         "`--data` left at its default, looks to it)",
         lambda f: shrink(f, data=_npz(f, "shifted.npz", y_train=(_y(f) + 1) % 4)), "has not learnt these data"),
    Case("missing-data", "a data path that does not exist",
         lambda f: shrink(f, data=f["dir"] / "missing.npz"), "dataset not found"),
    Case("broken-yaml", "a profile that is not valid YAML",
         lambda f: shrink(f, profile=_text(f, "broken.yaml", "name: [unclosed\n")), "invalid YAML"),
    Case("unknown-profile", "a profile name that does not exist",
         lambda f: shrink(f, profile="egde"), "did you mean"),
    Case("unknown-key-file", "an unknown top-level key in a profile file",
         lambda f: shrink(f, profile=_text(f, "top.yaml", "name: x\nsaerch: {}\n")), "saerch: unknown key"),
    Case("unknown-nested-file", "an unknown nested key in a profile file",
         lambda f: shrink(f, profile=_text(f, "nested.yaml", "name: x\nsearch: {populaton: 4}\n")),
         "search.populaton: unknown key"),
    Case("out-of-range-file", "an out-of-range value in a profile file",
         lambda f: shrink(f, profile=_text(f, "range.yaml", "name: x\ndistill: {epochs: -3}\n")), "distill.epochs"),
    Case("unknown-key-set", "an unknown top-level key from `--set`",
         lambda f: shrink(f, "--set", "budgett.latency_ratio=0.5"), "--set budgett"),
    Case("unknown-nested-set", "an unknown nested key from `--set`",
         lambda f: shrink(f, "--set", "distill.epochz=3"), "--set distill.epochz: unknown key"),
    Case("out-of-range-set", "an out-of-range value from `--set`",
         lambda f: shrink(f, "--set", "distill.epochs=-3"), "--set distill.epochs"),
    Case("path-in-a-name", "a name that would make a file outside the run (`search.space: [../../x]`)",
         lambda f: shrink(f, "--set", "search.space=[../../x]"), "unknown space '../../x'"),
    Case("set-syntax", "a `--set` without `=`",
         lambda f: shrink(f, "--set", "distill.epochs"), "expected KEY=VALUE"),
    Case("out-is-file", "an output folder where a file stands",
         lambda f: shrink(f, "--out", _text(f, "a_file", "") / "run"), "a file stands where a folder is needed"),
    Case("backend-missing", "a backend that is not installed (`--strict-target` on a GPU profile)",
         lambda f: shrink(f, "--set", "target={device: cuda, backend: tensorrt, precision: fp16, batch: 1}",
                          "--strict-target"), "drop --strict-target"),
    Case("bench-backend-format", "`bench` of an ONNX file on the TensorRT backend",
         lambda f: ["bench", f["onnx"], "--backend", "tensorrt"], "use --backend"),
]
NEEDS_ARGS = "from torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_npz, teacher_files, tiny_profile, tiny_module) -> dict:
    d = tmp_path_factory.mktemp("bad")
    onnx_path = d / "good.onnx"
    torch.onnx.export(tiny_module, (torch.zeros(1, 1, 12, 12),), str(onnx_path), dynamo=False)
    return {**teacher_files, "npz": tiny_npz, "profile": tiny_profile, "dir": d, "onnx": onnx_path,
            "sentinel": d / "pwned"}


def run_case(case: Case, files: dict, out: Path) -> subprocess.CompletedProcess:
    args = [str(a) for a in case.args(files)]
    if args[0] == "shrink" and "--out" not in args:
        args += ["--out", str(out)]
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_bad_input_is_one_line_exit_2_and_loses_nothing(case, files, tmp_path):
    out = tmp_path / "run"
    proc = run_case(case, files, out)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    if os.environ.get("BAD_INPUT_TABLE"):
        with open(os.environ["BAD_INPUT_TABLE"], "a") as table:
            shown = " / ".join(lines).replace(str(files["dir"]) + "/", "").replace("|", "\\|")
            table.write(f"| {case.what} | `{shown}` | {proc.returncode} |\n")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and case.needle in lines[0], lines[0]
    assert not files["sentinel"].exists()
    assert not (out / "result.json").exists()
    if (out / "manifest.json").exists():
        stages = json.loads((out / "manifest.json").read_text())["stages"]
        assert not any(s.get("status") == "done" for s in stages.values()), stages


@pytest.mark.slow  # ~20 s whole run; each bad input's 'nothing marked done' is checked in the fast suite
def test_a_failed_runs_folder_takes_the_corrected_run(files, tmp_path):
    """Nothing of a failed run blocks the next: the same --out, corrected arguments, no --resume needed."""
    out = tmp_path / "run"
    assert run_case(CORPUS[7], files, out).returncode == 2  # image-shape: fails in the load stage
    fixed = subprocess.run([*CLI, *map(str, shrink(files, "--out", out, "--set", "search.iterations=0",
                                                   "--set", "distill.epochs=1"))],
                           capture_output=True, text=True, timeout=600, check=False)
    assert fixed.returncode == 0, fixed.stderr
