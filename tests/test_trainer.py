"""The trainer learns, checkpoints every epoch and resumes exactly."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdcompress.job import Job
from kdcompress.records import StudentSpec
from kdcompress.data import Preprocess, load_data
from kdcompress.distill import distill, load_student
from kdcompress.distill.trainer import evaluate
from kdcompress.models.load import load_teacher
from kdcompress.profiles import Distill
from kdcompress.run import Progress

SPEC = StudentSpec("resnet", {"stem": 8, "widths": [8, 16, 16], "depths": [1, 1, 1], "stem_stride": 1}, 1, 4)


class Killer(Progress):
    """Interrupts training in the middle of epoch 2 (360 training samples / batch 32 = 12 steps an epoch)."""

    steps = 0

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.steps += n
        if self.steps > 15:
            raise KeyboardInterrupt


class Labels(Progress):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def start(self, description: str, total: int | None) -> None:
        self.seen.append(description)


def test_distill_learns_and_resume_is_exact(teacher_files, tiny_npz, tmp_path):
    teacher = load_teacher(teacher_files["pt2"])
    data = load_data(str(tiny_npz))
    prep = Preprocess()
    cfg = Distill(epochs=4, batch=32, lr=0.05)
    straight = distill(Job(teacher, data, prep, tmp_path / "cache.pt", 1), SPEC, cfg, tmp_path / "a")
    assert straight.epochs_run == 4
    model = load_student(tmp_path / "a")
    assert evaluate(model, data.x_test, data.y_test, prep) > 50.0  # 4 classes: chance is 25 %

    # Killed in the middle of epoch 2, then resumed: the same weights as the straight run, bit for bit.
    with pytest.raises(KeyboardInterrupt):
        distill(Job(teacher, data, prep, tmp_path / "cache.pt", 1), SPEC, cfg, tmp_path / "b", progress=Killer())
    assert torch.load(tmp_path / "b" / "ckpt.pt", weights_only=True)["epoch"] == 1
    labels = Labels()
    resumed = distill(Job(teacher, data, prep, tmp_path / "cache.pt", 1), SPEC, cfg, tmp_path / "b", progress=labels)
    assert resumed.epochs_run == 4
    assert labels.seen == ["distill b (resumed after epoch 1/4)"]  # the user sees where it picked up
    a = torch.load(tmp_path / "a" / "ckpt.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "ckpt.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopped_student_is_not_trained_again(teacher_files, tiny_npz, tmp_path):
    teacher = load_teacher(teacher_files["pt2"])
    data = load_data(str(tiny_npz))
    cfg = Distill(epochs=30, batch=128, lr=1e-9, patience=1)  # lr ~ 0: validation never improves after epoch 1
    first = distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt", 0), SPEC, cfg, tmp_path / "s")
    assert first.epochs_run == 2
    again = distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt", 0), SPEC, cfg, tmp_path / "s")
    assert again.epochs_run == 2


@pytest.mark.slow  # ~40 s: two full runs in two processes; in-process determinism is in the fast suite
def test_same_seed_same_search_and_weights_in_separate_processes(teacher_files, tiny_npz, tiny_profile, tmp_path):
    """Determinism on CPU, as a user meets it: two processes (each with its own hash seed) with the same seed pick the
    same students and train them to the same weights, bit for bit; another seed changes the weights."""
    import json

    script = ("import sys\nfrom kdcompress.pipeline import Inputs, run_until\nfrom kdcompress.profiles import "
              "load_profile\nprofile = load_profile(sys.argv[2], {'search.iterations': 4, 'distill.epochs': 2, "
              "'search.workers': 2})\nrun_until(Inputs(sys.argv[1], sys.argv[3], profile, seed=int(sys.argv[5])), "
              "sys.argv[4], 'distill')\n")
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        proc = subprocess.run([sys.executable, "-c", script, str(teacher_files["pt2"]), str(tiny_profile),
                               str(tiny_npz), str(tmp_path / name), str(seed)], capture_output=True, text=True,
                              timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        top = json.loads((tmp_path / name / "search" / "top.json").read_text())["top"]
        top = [(t["space"], t["genes"], t["scores"]) for t in top]  # latencies are measured: they vary
        runs[name] = (top, {sid.name: torch.load(sid / "model.pt", weights_only=True)
                            for sid in sorted((tmp_path / name / "students").iterdir())})
    (top_a, weights_a), (top_b, weights_b), (_, weights_c) = runs["a"], runs["b"], runs["c"]
    assert top_a == top_b and weights_a.keys() == weights_b.keys()
    for sid in weights_a:
        assert all(torch.equal(weights_a[sid][k], weights_b[sid][k]) for k in weights_a[sid])
    assert any(not torch.equal(weights_a[s][k], weights_c[s][k]) for s in weights_a.keys() & weights_c.keys()
               for k in weights_a[s]) or weights_a.keys() != weights_c.keys()


def test_weight_averaging_resumes_exactly_and_is_what_is_saved(teacher_files, tiny_npz, tmp_path):
    """distill.ema: an exponential moving average of the weights (torch.optim.swa_utils) is checkpointed with the
    rest, so a killed run resumes to the same average; the saved student is the average, not the last weights."""
    teacher = load_teacher(teacher_files["pt2"])
    data = load_data(str(tiny_npz))
    cfg = Distill(epochs=3, batch=32, lr=0.05, ema=0.9)
    distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt", 2), SPEC, cfg, tmp_path / "a")

    with pytest.raises(KeyboardInterrupt):
        distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt", 2), SPEC, cfg, tmp_path / "b", progress=Killer())
    distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt", 2), SPEC, cfg, tmp_path / "b")
    a, b = (torch.load(tmp_path / d / "ckpt.pt", weights_only=True) for d in "ab")
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    saved = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    val = [json.loads(line)["val_accuracy"] for line in (tmp_path / "a" / "history.jsonl").read_text().splitlines()]
    assert val[-1] == max(val)  # here the last epoch validates best, so the saved student is the final average
    assert all(torch.equal(saved[k], a["ema"][f"module.{k}"]) for k in saved)
    assert any(not torch.equal(a["ema"][f"module.{k}"], a["model"][k]) for k in a["model"] if k.endswith("weight"))


@pytest.mark.parametrize("fmt", ["pt2", "ts"])
def test_feature_losses_train_through_any_teacher_format_and_resume_exactly(fmt, teacher_files, tiny_npz, tmp_path):
    """FitNets + SP + ICKD + RKD + ND + CAT-KD on top of KD: the teacher's last feature map comes from its rewired graph (an
    exported program or TorchScript) — cached beside its logits, or live on every batch —, the learned adapters are
    checkpointed, a killed run resumes bit for bit, and the teacher is never trained."""
    teacher = load_teacher(teacher_files[fmt])
    before = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    data = load_data(str(tiny_npz))
    loss = {"kd": {}, "fitnet": {"weight": 1.0}, "sp": {"weight": 100.0}, "ickd": {}, "rkd": {}, "nd": {},
            "cat": {"weight": 10.0}}
    cfg = Distill(epochs=3, batch=32, lr=0.05, loss=loss, cache_teacher_logits=fmt == "pt2")
    distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt", 3), SPEC, cfg, tmp_path / "a")
    assert evaluate(load_student(tmp_path / "a"), data.x_test, data.y_test, Preprocess()) > 50.0
    maps = tmp_path / "teacher_features_train.pt"
    assert maps.exists() == (fmt == "pt2") and not (tmp_path / "cache.pt").exists()
    if maps.exists():
        kept = torch.load(maps, weights_only=True)
        assert kept["features"].shape[:2] == (360, 32) and kept["features"].dtype == torch.float16
    with pytest.raises(KeyboardInterrupt):
        distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt", 3), SPEC, cfg, tmp_path / "b", progress=Killer())
    distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt", 3), SPEC, cfg, tmp_path / "b")
    a, b = (torch.load(tmp_path / d / "ckpt.pt", weights_only=True) for d in "ab")
    assert set(a["adapters"]) == {"fitnet", "ickd", "nd"}  # the student's 16 channels, the teacher's 32: adapted
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["adapters"][n][k], b["adapters"][n][k]) for n in a["adapters"] for k in a["adapters"][n])
    assert all(torch.equal(before[k], v) for k, v in teacher.module.state_dict().items())


def test_mixed_batches_learn_and_resume_exactly(teacher_files, tiny_npz, tmp_path):
    """CutMixPick draws its boxes, partners and mixing weights from the run's generator, so a killed run resumes to
    the same weights; the teacher runs live (its logits on mixed images cannot come from the cache)."""
    teacher = load_teacher(teacher_files["pt2"])
    data = load_data(str(tiny_npz))
    cfg = Distill(epochs=3, batch=32, lr=0.05, mix="cutmix_pick")
    distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt", 4), SPEC, cfg, tmp_path / "a")
    assert evaluate(load_student(tmp_path / "a"), data.x_test, data.y_test, Preprocess()) > 50.0
    assert not (tmp_path / "cache.pt").exists()
    with pytest.raises(KeyboardInterrupt):
        distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt", 4), SPEC, cfg, tmp_path / "b", progress=Killer())
    distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt", 4), SPEC, cfg, tmp_path / "b")
    a, b = (torch.load(tmp_path / d / "ckpt.pt", weights_only=True)["model"] for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_teacher_outputs_on_augmented_batches_are_replayed_for_the_next_student(teacher_files, tiny_npz, tmp_path):
    """With crop+flip and CutMix, the first student of a run pays for the teacher; a second student on the same
    seed replays every batch's teacher outputs (here its teacher cannot even run) and ends with the weights a run
    with the teacher live ends with."""
    import dataclasses

    class Unusable(torch.nn.Module):
        def forward(self, x):
            raise AssertionError("the teacher ran although every batch was cached")

    teacher = load_teacher(teacher_files["pt2"])
    data = load_data(str(tiny_npz))
    cfg = Distill(epochs=2, batch=32, lr=0.05, aug="crop_flip", mix="cutmix")
    distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt", 5), SPEC, cfg, tmp_path / "a")
    assert len(list((tmp_path / "teacher_views").rglob("epoch*.pt"))) == 2
    replay = dataclasses.replace(teacher, module=Unusable())
    distill(Job(replay, data, Preprocess(), tmp_path / "cache.pt", 5), SPEC, cfg, tmp_path / "b")
    live = cfg.model_copy(update={"cache_teacher_logits": False})
    distill(Job(teacher, data, Preprocess(), tmp_path / "other.pt", 5), SPEC, live, tmp_path / "c")
    a, b, c = (torch.load(tmp_path / d / "ckpt.pt", weights_only=True)["model"] for d in "abc")
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)


DDP_SCRIPT = """
import sys
import torch
from pathlib import Path

from kdcompress.data import Preprocess, load_data
from kdcompress.distill import distill
from kdcompress.records import StudentSpec
from kdcompress.job import Job
from kdcompress.distill.distributed import init_from_env
from kdcompress.models.load import load_teacher
from kdcompress.profiles import Distill

grouped = init_from_env()  # False for one process: it trains alone
teacher, npz, out = load_teacher(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
cfg = Distill.model_validate_json(sys.argv[4])
distill(Job(teacher, load_data(npz), Preprocess(), out / "cache.pt", 6), StudentSpec.from_json({spec!r}), cfg, out / "student")
print("group", torch.distributed.get_backend_config() if grouped else "none")
"""


def run_torchrun(processes: int, teacher: Path, npz: Path, out: Path, cfg: Distill):
    """``torchrun --standalone`` over :data:`DDP_SCRIPT`: a real launcher and real processes."""
    script = out.parent / f"{out.name}.py"
    script.write_text(DDP_SCRIPT.format(spec=SPEC.to_json()))
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                           str(processes), str(script), str(teacher), str(npz), str(out), cfg.model_dump_json()],
                          capture_output=True, text=True, timeout=600, check=False)


def test_two_processes_under_torchrun_train_what_one_process_trains(teacher_files, tiny_npz, tmp_path):
    """DDP over 2 CPU processes (gloo), started by torchrun: rank 0 alone writes, and the student matches a
    1-process run up to the batch-norm statistics each process gathers on its half of every batch."""
    cfg = Distill(epochs=2, batch=32, lr=0.05, aug="crop_flip", device="cpu")
    r = run_torchrun(2, teacher_files["pt2"], tiny_npz, tmp_path / "two", cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "group" in r.stdout and "gloo" in r.stdout, r.stdout
    teacher, data = load_teacher(teacher_files["pt2"]), load_data(str(tiny_npz))
    distill(Job(teacher, data, Preprocess(), tmp_path / "one" / "cache.pt", 6), SPEC, cfg, tmp_path / "one" / "student")
    distill(Job(teacher, data, Preprocess(), tmp_path / "other" / "cache.pt", 7), SPEC, cfg, tmp_path / "other" / "student")
    two, one, other = (torch.load(tmp_path / d / "student" / "ckpt.pt", weights_only=True)["model"]
                       for d in ("two", "one", "other"))
    weights = [k for k in one if k.endswith("weight")]
    gap = lambda a, b: max(float((a[k] - b[k]).norm() / b[k].norm()) for k in weights)
    print(f"DDP vs 1 process: {gap(two, one):.3f}; another seed: {gap(other, one):.3f}")
    # the same trajectory up to batch-norm statistics: far closer to the 1-process run than another seed is
    assert gap(two, one) < 0.5 * gap(other, one), (gap(two, one), gap(other, one))
    assert not (tmp_path / "two" / "student" / "history.jsonl.tmp").exists()
    assert len((tmp_path / "two" / "student" / "history.jsonl").read_text().splitlines()) == 2


def test_mixed_precision_trains_and_resumes_exactly_with_its_loss_scale(teacher_files, tiny_npz, tmp_path):
    """distill.amp: fp16 — autocast and a GradScaler, the path a GPU takes by default, run here on the CPU (which
    supports both): it learns, its loss scale is checkpointed, and a killed run resumes to the same weights."""
    teacher = load_teacher(teacher_files["pt2"])
    data = load_data(str(tiny_npz))
    prep = Preprocess()
    cfg = Distill(epochs=3, batch=32, lr=0.05, device="cpu", amp="fp16")
    distill(Job(teacher, data, prep, tmp_path / "cache.pt", 3), SPEC, cfg, tmp_path / "a")
    assert evaluate(load_student(tmp_path / "a"), data.x_test, data.y_test, prep) > 50.0
    a = torch.load(tmp_path / "a" / "ckpt.pt", weights_only=True)
    assert a["scaler"]["scale"] > 0 and a["scaler"]["_growth_tracker"] > 0  # the scaler stepped
    with pytest.raises(KeyboardInterrupt):
        distill(Job(teacher, data, prep, tmp_path / "cache.pt", 3), SPEC, cfg, tmp_path / "b", progress=Killer())
    distill(Job(teacher, data, prep, tmp_path / "cache.pt", 3), SPEC, cfg, tmp_path / "b")
    b = torch.load(tmp_path / "b" / "ckpt.pt", weights_only=True)
    assert a["scaler"] == b["scaler"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # and it is not the fp32 run: autocast changed the arithmetic
    distill(Job(teacher, data, prep, tmp_path / "cache.pt", 3), SPEC, cfg.model_copy(update={"amp": "off"}), tmp_path / "c")
    c = torch.load(tmp_path / "c" / "ckpt.pt", weights_only=True)
    assert "scaler" not in c
    assert any(not torch.equal(a["model"][k], c["model"][k]) for k in a["model"] if k.endswith("weight"))


def test_asking_for_a_gpu_that_is_not_there_is_one_clear_error(teacher_files, tiny_npz, tmp_path, monkeypatch):
    from kdcompress.errors import KDCompressError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(KDCompressError, match="PyTorch sees no GPU"):
        distill(Job(load_teacher(teacher_files["pt2"]), load_data(str(tiny_npz)), Preprocess(), tmp_path / "cache.pt"), SPEC, Distill(epochs=1, device="cuda"), tmp_path / "s")
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())  # nothing started


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs it on one)")
def test_on_a_gpu_the_student_trains_in_fp16_and_saves_cpu_loadable_weights(teacher_files, tiny_npz, tmp_path):
    teacher = load_teacher(teacher_files["pt2"])
    data = load_data(str(tiny_npz))
    prep = Preprocess()
    distill(Job(teacher, data, prep, tmp_path / "cache.pt"), SPEC, Distill(epochs=3, batch=32, lr=0.05), tmp_path / "g")
    assert "scaler" in torch.load(tmp_path / "g" / "ckpt.pt", map_location="cpu", weights_only=True)  # amp auto: fp16
    assert evaluate(load_student(tmp_path / "g"), data.x_test, data.y_test, prep) > 50.0


# 3 epochs without augmentation: on the CPU this student reaches 100 % on the tiny test split (with crop+flip, 2
# epochs leave it at chance, 25 %, on CPU and GPU alike)
GPU_RUN = {"epochs": 3, "batch": 32, "lr": 0.05, "device": "cuda"}  # a Distill only where a GPU is


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs it on one)")
def test_one_process_under_torchrun_on_a_gpu_trains_there_alone(teacher_files, tiny_npz, tmp_path):
    """``torchrun --nproc-per-node 1`` on a GPU: no process group (nothing to average), the student trains on the
    GPU in fp16 and is saved CPU-loadable."""
    r = run_torchrun(1, teacher_files["pt2"], tiny_npz, tmp_path / "gpu", Distill(**GPU_RUN))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "group none" in r.stdout, r.stdout
    student = tmp_path / "gpu" / "student"
    assert "scaler" in torch.load(student / "ckpt.pt", map_location="cpu", weights_only=True)
    data = load_data(str(tiny_npz))
    assert evaluate(load_student(student), data.x_test, data.y_test, Preprocess()) > 50.0


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs (NCCL takes one process per GPU)")
def test_two_processes_on_two_gpus_train_over_nccl(teacher_files, tiny_npz, tmp_path):
    r = run_torchrun(2, teacher_files["pt2"], tiny_npz, tmp_path / "gpus", Distill(**GPU_RUN))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "cuda:nccl" in r.stdout, r.stdout
    data = load_data(str(tiny_npz))
    assert evaluate(load_student(tmp_path / "gpus" / "student"), data.x_test, data.y_test, Preprocess()) > 50.0


def test_a_student_of_other_depths_starts_from_the_teachers_first_blocks(teacher_files, tiny_npz, tmp_path):
    """``init: teacher`` (the depth space's students): stem, head and each stage's first blocks are the teacher's,
    a block the teacher does not have keeps fresh convolutions; at the teacher's own depths the student is the
    teacher."""
    from kdcompress.models.students import build_resnet, inherit_weights
    from tests.conftest import N_CLASSES, TINY_GENES

    teacher = load_teacher(teacher_files["pt2"])
    theirs = teacher.module.state_dict()
    deeper = build_resnet({**TINY_GENES, "depths": [2, 1, 1]}, 1, N_CLASSES)
    assert inherit_weights(deeper, teacher.module) == len(theirs)  # all of the teacher's tensors have a place
    ours = deeper.state_dict()
    moved = lambda k: k.replace(f"stages.{k.split('.')[1]}.", f"stages.{int(k.split('.')[1]) + 1}.")
    assert all(torch.equal(ours[k if not k.startswith(("stages.1", "stages.2")) else moved(k)], v)
               for k, v in theirs.items())  # blocks 1 and 2 of the teacher are blocks 2 and 3 of the student
    assert ours["stages.1.conv1.weight"].shape == (16, 16, 3, 3)  # stage 0's second block: none of the teacher's
    assert not any(ours["stages.1.conv1.weight"].shape == v.shape and torch.equal(ours["stages.1.conv1.weight"], v)
                   for v in theirs.values())

    data = load_data(str(tiny_npz))
    spec = StudentSpec("resnet", TINY_GENES, 1, N_CLASSES, init="teacher")
    frozen = Distill(epochs=1, batch=32, lr=1e-9, device="cpu")  # a learning rate that changes nothing
    distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt"), spec, frozen, tmp_path / "s")
    trained = load_student(tmp_path / "s").state_dict()
    weights = [k for k in theirs if k.endswith(".weight")]
    assert all(torch.allclose(trained[k], theirs[k], atol=1e-6) for k in weights)  # it started as the teacher
    distill(Job(teacher, data, Preprocess(), tmp_path / "cache.pt"), dataclasses.replace(spec, init=None), frozen, tmp_path / "f")
    fresh = load_student(tmp_path / "f").state_dict()
    assert not any(torch.allclose(fresh[k], theirs[k], atol=1e-6) for k in weights)


def test_a_deeper_student_starts_as_the_teacher_and_its_extra_blocks_still_learn(teacher_files):
    """Net2DeeperNet: blocks beyond the teacher's start as the identity, so the deeper student's logits are the
    teacher's to rounding; their zeroed BatchNorm scale gets a gradient, so they do not stay dead. With
    ``extra_blocks="fresh"`` the logits differ."""
    from kdcompress.models.students import build_resnet, inherit_weights
    from tests.conftest import N_CLASSES, SIDE, TINY_GENES

    teacher = load_teacher(teacher_files["pt2"]).module  # an exported program: in eval mode as saved
    x = torch.rand(8, 1, SIDE, SIDE)
    with torch.no_grad():
        want = teacher(x)
    deeper = build_resnet({**TINY_GENES, "depths": [2, 1, 3]}, 1, N_CLASSES)
    inherit_weights(deeper, teacher)
    with torch.no_grad():
        torch.testing.assert_close(deeper.eval()(x), want, rtol=1e-5, atol=1e-5)
    deeper.train()(x).logsumexp(1).sum().backward()
    assert all(float(deeper.stages[i].bn2.weight.grad.abs().sum()) > 0 for i in (1, 4, 5))  # the extra blocks
    fresh = build_resnet({**TINY_GENES, "depths": [2, 1, 3]}, 1, N_CLASSES)
    inherit_weights(fresh, teacher, extra_blocks="fresh")
    with torch.no_grad():
        assert not torch.allclose(fresh.eval()(x), want, atol=1e-3)


def test_init_from_a_teacher_with_another_number_of_stages_is_one_clear_error(teacher_files, tiny_npz, tmp_path):
    from kdcompress.errors import KDCompressError
    from tests.conftest import N_CLASSES

    two_stages = {"space": "resnet", "genes": {"stem": 16, "widths": [16, 24], "depths": [1, 1]}, "in_channels": 1,
                  "num_classes": N_CLASSES, "init": "teacher"}
    with pytest.raises(KDCompressError, match="the student has 2 stages and the teacher 3"):
        distill(Job(load_teacher(teacher_files["pt2"]), load_data(str(tiny_npz)), Preprocess(), tmp_path / "cache.pt"), StudentSpec.from_json(two_stages), Distill(epochs=1, device="cpu"), tmp_path / "s")
