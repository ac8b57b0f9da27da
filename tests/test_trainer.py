"""The trainer learns, checkpoints every epoch and resumes exactly."""

from __future__ import annotations

import pytest
import torch

from kdcompress.data import Preprocess, load_data
from kdcompress.distill import distill, load_student
from kdcompress.distill.trainer import evaluate
from kdcompress.models.load import load_teacher
from kdcompress.profiles import Distill
from kdcompress.run import Progress

SPEC = {"space": "resnet", "genes": {"stem": 8, "widths": [8, 16, 16], "depths": [1, 1, 1], "stem_stride": 1},
        "in_channels": 1, "num_classes": 4}


def test_distill_learns_and_resume_is_exact(teacher_files, tiny_npz, tmp_path):
    teacher = load_teacher(teacher_files["pt2"])
    data = load_data(str(tiny_npz))
    prep = Preprocess()
    cfg = Distill(epochs=4, batch=32, lr=0.05)
    straight = distill(teacher, SPEC, data, prep, cfg, tmp_path / "a", tmp_path / "cache.pt", seed=1)
    assert straight.epochs_run == 4
    model = load_student(tmp_path / "a")
    assert evaluate(model, data.x_test, data.y_test, prep) > 50.0  # 4 classes: chance is 25 %

    # Killed in the middle of epoch 2, then resumed: the same weights as the straight run, bit for bit.
    class Killer(Progress):
        steps = 0

        def advance(self, n: int = 1, note: str | None = None) -> None:
            self.steps += n
            if self.steps > 15:  # 360 training samples / 32 = 12 steps per epoch
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(teacher, SPEC, data, prep, cfg, tmp_path / "b", tmp_path / "cache.pt", seed=1, progress=Killer())
    assert torch.load(tmp_path / "b" / "ckpt.pt", weights_only=True)["epoch"] == 1
    resumed = distill(teacher, SPEC, data, prep, cfg, tmp_path / "b", tmp_path / "cache.pt", seed=1)
    assert resumed.epochs_run == 4
    a = torch.load(tmp_path / "a" / "ckpt.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "ckpt.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopped_student_is_not_trained_again(teacher_files, tiny_npz, tmp_path):
    teacher = load_teacher(teacher_files["pt2"])
    data = load_data(str(tiny_npz))
    cfg = Distill(epochs=30, batch=128, lr=1e-9, patience=1)  # lr ~ 0: validation never improves after epoch 1
    first = distill(teacher, SPEC, data, Preprocess(), cfg, tmp_path / "s", tmp_path / "cache.pt", seed=0)
    assert first.epochs_run == 2
    again = distill(teacher, SPEC, data, Preprocess(), cfg, tmp_path / "s", tmp_path / "cache.pt", seed=0)
    assert again.epochs_run == 2
