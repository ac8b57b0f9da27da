"""The load stage: check that teacher and data fit together, export the teacher to ONNX (verified), choose the
backend and the artifacts, and record it all in the manifest."""

from __future__ import annotations

import time

import torch

from kdcompress.bench import BACKENDS, backend_status, resolve_backend
from kdcompress.errors import KDCompressError
from kdcompress.export import to_onnx
from kdcompress.export.artifacts import plan_artifacts
from kdcompress.models.fit import check_teacher_learned, infer_io
from kdcompress.models.load import OnnxTeacher
from kdcompress.records import TeacherRecord
from kdcompress.report.environment import environment
from kdcompress.run import atomic_write
from kdcompress.search.proxies import count_flops
from kdcompress.session import Session
from kdcompress.stages.base import Stage
from kdcompress.stages.parity import parity, reference_logits


def _check_classes(s: Session, k: int) -> None:
    data = s.data
    if k == data.num_classes:
        return
    labels = torch.cat([data.y_train, data.y_val, data.y_test])
    outside = sorted({int(v) for v in labels[labels >= k].unique()})
    if outside:  # name the labels the teacher cannot predict: usually a label bug, not a wrong teacher
        shown = ", ".join(map(str, outside[:5])) + (", ..." if len(outside) > 5 else "")
        raise KDCompressError(f"the teacher outputs {k} classes (labels 0..{k - 1}) but {int((labels >= k).sum())} "
                              f"sample(s) of the data have label(s) {shown}",
                              "fix those labels, or use a teacher trained on these classes")
    raise KDCompressError(f"teacher outputs {k} classes but the data has {data.num_classes}",
                          "use data with the teacher's classes")


def cpu_cost_note(s: Session) -> str | None:
    """For a GPU profile where PyTorch sees no GPU: what distilling will cost on this CPU, said before it starts
    (the teacher's forward speed here times the images the profile trains on), and that CPU latency says nothing
    of a GPU's."""
    if s.profile.target.device != "cuda" or s.profile.distill.device == "cpu" or torch.cuda.is_available():
        return None
    x = s.prep(s.data.x_train[:32])
    s.teacher.set_eval()
    with torch.no_grad():
        s.teacher.module(x[:2])  # warm-up: the first call pays one-time costs
        t0 = time.perf_counter()
        s.teacher.module(x)
        per_image = (time.perf_counter() - t0) / len(x)
    d, search = s.profile.distill, s.profile.search
    students = search.top_k * len(s.profile.budget.targets)
    images = d.epochs * len(s.data.y_train) * students
    # a student costs at most the teacher; its forward + backward about three forwards, plus the teacher's forward
    hours = images * 4 * per_image / 3600
    return (f"profile {s.profile.name} targets a GPU and PyTorch sees none: distilling runs on this CPU — up to "
            f"{students} student(s) x {d.epochs} epochs x {len(s.data.y_train):,} images, about {hours:.1f} h at "
            f"most at the teacher's {1 / per_image:,.0f} img/s here — and latency measured here says nothing of a "
            "GPU's; --profile cpu targets this machine")


def run(s: Session) -> None:
    teacher, data, prep = s.teacher, s.data, s.prep
    for note in data.notes:  # e.g. unreadable image files skipped
        s.progress.note(note)
    if not s.profile.export.dynamic_batch:
        raise KDCompressError("export.dynamic_batch: false is not supported yet", "remove it from the profile")
    if len(prep.mean) not in (1, data.input_shape[0]) or len(prep.std) not in (1, data.input_shape[0]):
        raise KDCompressError(f"data.mean/std have {len(prep.mean)}/{len(prep.std)} values for "
                              f"{data.input_shape[0]} channels")
    k = infer_io(teacher, data.input_shape)
    _check_classes(s, k)
    teacher_accuracy, checked = check_teacher_learned(teacher, data.x_val, data.y_val, prep, s.inputs.data)
    module = teacher.module
    params = module.param_count() if isinstance(module, OnnxTeacher) else sum(p.numel() for p in module.parameters())
    try:
        flops = count_flops(teacher.module, s.example)
    except Exception:  # noqa: BLE001 — FLOP counting is informative only; some module kinds do not support it
        flops = 0
    onnx_path = s.run.sub("artifacts", "teacher.onnx")
    if teacher.kind == "onnx":  # already the artifact: copied, so the run stays whole if the user's file moves
        atomic_write(onnx_path, teacher.path.read_bytes())
        exporter = "given"
    else:
        exporter = to_onnx(module, s.example, onnx_path, s.profile.export.opset, s.profile.export.dynamic_batch)
    checked_parity = parity(s, reference_logits(s, teacher.module), BACKENDS["onnxruntime-cpu"](onnx_path), onnx_path)
    t = s.profile.target
    status = backend_status()
    backend, note = resolve_backend(t.device, t.backend, s.inputs.strict_target, status)
    plan = plan_artifacts(s.profile, backend)
    if plan.format == "aoti" and teacher.kind in ("onnx", "torchscript"):
        raise KDCompressError(f"the {backend} target compiles the teacher with AOTInductor, which needs it as a "
                              f"PyTorch graph, and this one is {'an ONNX' if teacher.kind == 'onnx' else 'a TorchScript'}"
                              " file", "give it as a torch.export .pt2 or a state_dict with --arch, or use an "
                              "onnxruntime/TensorRT profile")
    if s.profile.search.student == "same":  # Born-Again rebuilds the teacher's architecture: say now if it cannot
        teacher.pruning_source(s.example, purpose="--student same (Born-Again)")
    notes = ([note] if note else []) + plan.notes
    if (cost := cpu_cost_note(s)) is not None:  # said now, before the hours it announces (not in the report)
        s.progress.note(cost)
    search_backend = backend
    if plan.format != "onnx":  # candidates are timed as ONNX: on the GPU through onnxruntime where it can
        search_backend = "onnxruntime-cuda" if status["onnxruntime-cuda"].startswith("available") else "onnxruntime-cpu"
        notes.append(f"search times candidates on {search_backend} (artifacts are measured on {backend})")
    # every check of the stage passed: a failing one must stay the run's only line
    s.progress.note(f"teacher: {teacher_accuracy:.1f} % on {checked} validation images (a check that it knows these "
                    "data; they may be images it trained on: its test accuracy comes with bench)")
    for n in notes:
        s.progress.note(n)
    if plan.int8:
        s.progress.note(f"int8: {plan.int8.scheme}, reduce_range {plan.int8.reduce_range} — {plan.int8.reason}")
    record = TeacherRecord(path=str(teacher.path), kind=teacher.kind, sha256=teacher.sha256, params=params, flops=flops,
                           num_classes=k, val_accuracy=teacher_accuracy, artifact=str(onnx_path), exporter=exporter,
                           parity=checked_parity)
    s.run.manifest.update({
        "teacher": record.to_json(), "data": data.summary(), "input_shape": list(data.input_shape),
        "preprocess": prep.to_json(), "backend": backend, "search_backend": search_backend,
        "backend_note": "; ".join(notes) or None, "precision": t.precision, "plan": plan.to_json(),
        "environment": environment(),
    })


# the teacher-logit cache is written to by later stages too: kept out of the hashes
STAGE = Stage("load", ("artifacts/teacher.onnx", "cache"), unhashed=("cache",), run=run)
