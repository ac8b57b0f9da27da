"""Shared fixtures: a tiny synthetic image dataset and a tiny teacher in every supported file format."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kdcompress.models.students import build_resnet

TINY_GENES = {"stem": 16, "widths": [16, 24, 32], "depths": [1, 1, 1], "stem_stride": 1}
N_CLASSES = 4
SIDE = 12


def make_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Class k = a bright bar at row band k plus noise: learnable in a few steps, uint8 (N, 1, SIDE, SIDE)."""
    y = rng.integers(0, N_CLASSES, n)
    x = rng.integers(0, 60, (n, 1, SIDE, SIDE)).astype(np.float64)
    band = SIDE // N_CLASSES
    for i, k in enumerate(y):
        x[i, 0, k * band : (k + 1) * band, :] += 150
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


@pytest.fixture(autouse=True)
def _own_latency_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test times on a fresh per-machine latency cache (its processes inherit the variable), never the
    user's ~/.cache/kdcompress."""
    monkeypatch.setenv("KDCOMPRESS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    x_train, y_train = make_images(400, rng)
    x_test, y_test = make_images(120, rng)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def train_briefly(model: torch.nn.Module, steps: int = 30) -> torch.nn.Module:
    """``model`` trained for a few full-batch steps on tiny data (enough to beat chance clearly, which load checks)."""
    x, y = make_images(256, np.random.default_rng(1))
    xt, yt = torch.from_numpy(x).float() / 255, torch.from_numpy(y)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def tiny_module() -> torch.nn.Module:
    """A tiny ResNet teacher trained for a few steps on the tiny data."""
    torch.manual_seed(0)
    return train_briefly(build_resnet(TINY_GENES, 1, N_CLASSES))


@pytest.fixture(scope="session")
def teacher_files(tmp_path_factory: pytest.TempPathFactory, tiny_module: torch.nn.Module) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("teachers")
    example = torch.zeros(2, 1, SIDE, SIDE)
    ep = torch.export.export(tiny_module, (example,), dynamic_shapes={"x": {0: torch.export.Dim("batch", max=4096)}})
    torch.export.save(ep, d / "teacher.pt2")
    torch.jit.save(torch.jit.script(tiny_module), d / "teacher.ts")
    torch.save(tiny_module.state_dict(), d / "teacher_sd.pt")
    torch.save(tiny_module, d / "teacher_pickle.pt")
    arch = d / "arch.py"
    arch.write_text(
        "from kdcompress.models.students import ResNet\n\n\n"
        "class TinyNet(ResNet):\n"
        "    def __init__(self):\n"
        f"        super().__init__(1, {N_CLASSES}, {TINY_GENES['widths']}, {TINY_GENES['depths']}, {TINY_GENES['stem']})\n"
    )
    return {"pt2": d / "teacher.pt2", "ts": d / "teacher.ts", "sd": d / "teacher_sd.pt",
            "pickle": d / "teacher_pickle.pt", "arch": arch}


TINY_PROFILE = """
name: tiny
description: test profile
target: {device: cpu, backend: onnxruntime, precision: fp32, batch: 2, threads: 1}
budget: {latency_ratio: 5.0, params_ratio: 0.8, max_accuracy_drop: 100.0}
search: {space: [resnet], proxy: diswot, population: 4, iterations: 4, tournament: 2, top_k: 1, proxy_batch: 16}
distill: {epochs: 2, batch: 64, lr: 0.05}
export: {opset: 18, parity_samples: 32, int8: true, calibration_samples: 64}
bench: {warmup: 2, iters: 10, repeats: 1, throughput_batch: 8, throughput_iters: 3}
"""


@pytest.fixture(scope="session")
def tiny_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "tiny.yaml"
    path.write_text(TINY_PROFILE)
    return path


@pytest.fixture
def cli_cmd() -> list[str]:
    return [sys.executable, "-m", "kdcompress.cli"]
