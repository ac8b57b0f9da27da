"""The export stage: every student in every precision of the plan, the teacher in the backend's format and, with
``--baselines``, the recipes' artifacts — each checked against PyTorch (``artifacts/``, ``export.json``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from kdcompress.baselines import RECIPES, precisions_of
from kdcompress.bench import BACKENDS, get_backend
from kdcompress.distill import load_student
from kdcompress.export import to_onnx
from kdcompress.export.artifacts import ArtifactPlan, build_model_artifacts, calibration_images
from kdcompress.export.int8 import resolve_scheme
from kdcompress.export.pretrained import as_pretrained, optimum_onnx, save_pretrained
from kdcompress.models.pruning import PRUNED_FAMILY, TEACHER_FAMILIES
from kdcompress.records import ArtifactRecord, ExportFile, StudentExport, StudentSpec
from kdcompress.run import read_json, write_json
from kdcompress.session import Session
from kdcompress.stages.base import Stage
from kdcompress.stages.distill import trained_baselines
from kdcompress.stages.parity import parity, reference_logits

# A killed export resumes per student: each finished student's record and the hashes of its artifacts
EXPORTED_SO_FAR = "artifacts/export.partial.json"


def _build_and_check(s: Session, stem: str, model: torch.nn.Module | None, fp32_onnx: Path, precisions: list[str],
                     reference: tuple, plan: ArtifactPlan | None = None) -> dict[str, ArtifactRecord]:
    """Build ``stem``'s artifacts of ``precisions`` and check each, on the backend it is measured on, against
    PyTorch."""
    plan = plan or s.plan
    calib = None
    if "int8" in precisions:
        calib = s.prep(calibration_images(s.data.x_train, plan.calibration_samples, s.seed)).numpy()
    records = build_model_artifacts(plan, stem, fp32_onnx, s.run.folder("artifacts"), model, s.example, calib,
                                    s.run.path / "artifacts", precisions)
    for p, rec in records.items():
        if plan.backend == "onnxruntime-cpu" and p == "fp32":
            continue  # the float ONNX was checked on onnxruntime-cpu right after export
        runner = get_backend(plan.backend)(Path(rec.path), threads=s.profile.target.threads)
        checked = parity(s, reference, runner, Path(rec.path), p, step=min(256, plan.batch[2]), strict=False)
        records[p] = dataclasses.replace(rec, parity=checked)
    return records


def _export_student(s: Session, sid: str, precisions: list[str], plan: ArtifactPlan | None = None) -> StudentExport:
    """A trained student (ours or a baseline's) in ``precisions``: float ONNX + parity, then the rest, each checked."""
    student_dir = s.run.path / "students" / sid
    spec = StudentSpec.from_json(read_json(student_dir / "spec.json"), str(student_dir / "spec.json"))
    model = load_student(student_dir, s.pruning if spec.space in TEACHER_FAMILIES else None)
    path = s.run.sub("artifacts", f"{sid}.onnx")
    folder = _pretrained_folder(s, sid, spec, model)
    if folder is not None:  # a Hugging Face model: its ONNX is the one optimum's exporter makes from the folder
        optimum_onnx(folder, path, s.profile.export.opset)
        exporter = "optimum"
    else:
        exporter = to_onnx(model, s.example, path, s.profile.export.opset, s.profile.export.dynamic_batch)
    reference = reference_logits(s, model)
    checked = parity(s, reference, BACKENDS["onnxruntime-cpu"](path), path, ours=True)
    write_json(s.run.sub("artifacts", f"{sid}.parity.json"), {"exporter": exporter, **checked})
    records = _build_and_check(s, sid, model, path, precisions, reference, plan)
    if records["fp32"].parity is None:
        records["fp32"] = dataclasses.replace(records["fp32"], parity=checked)
    return StudentExport(exporter, records, str(folder) if folder is not None else None)


def _pretrained_folder(s: Session, sid: str, spec: StudentSpec, model: torch.nn.Module) -> Path | None:
    """A cut of a Hugging Face teacher that its class's config can describe, saved with ``save_pretrained`` as
    ``artifacts/<sid>.hf/`` (:mod:`kdcompress.export.pretrained`); None for every other student."""
    if s.teacher.kind != "hf" or spec.space != PRUNED_FAMILY:
        return None
    pretrained = as_pretrained(model, s.pruning.example)
    if pretrained is None:
        s.progress.note(f"{sid}: no {type(model.inner).__name__} config describes this cut (e.g. widths differ by "
                        "layer): kept as a kdcompress student (spec.json + state_dict), exported by torch.onnx")
        return None
    return save_pretrained(pretrained, s.run.sub("artifacts", f"{sid}.hf"), s.teacher.path)


def _exported_student(s: Session, sid: str, precisions: list[str]) -> StudentExport:
    """:func:`_export_student`, or its record from an export that was killed later on, if every artifact it wrote
    is still there, unchanged."""
    partial_path = s.run.path / EXPORTED_SO_FAR
    partial = read_json(partial_path) if partial_path.exists() else {}
    kept = partial.get(sid)
    if kept and kept["precisions"] == precisions and kept["files"] == s.run.hashes(f"artifacts/{sid}.*"):
        s.progress.note(f"export of {sid} kept from the interrupted run (its artifacts are unchanged)")
        return StudentExport.from_json(kept["record"])
    record = _export_student(s, sid, precisions)
    write_json(partial_path, {**partial, sid: {"precisions": precisions, "files": s.run.hashes(f"artifacts/{sid}.*"),
                                               "record": record.to_json()}})
    return record


def _export_baselines(s: Session, teacher_onnx: Path) -> dict[str, ArtifactRecord]:
    """The recipes' artifacts: int8 always (the recipes quantize whether the profile does or not), except where the
    backend has no int8 (AOTInductor)."""
    plan = s.plan
    if plan.int8 is None:
        plan = dataclasses.replace(plan, int8=resolve_scheme(plan.device, s.profile.export.int8_scheme,
                                                             s.profile.export.reduce_range))
    int8_ok = plan.format != "aoti"
    models: dict[str, dict[str, ArtifactRecord]] = {}
    for b in trained_baselines(s):
        wanted = ["fp32", *(p for p in precisions_of(b.model) if p != "fp32" and (int8_ok or p != "int8"))]
        models[b.model] = _export_student(s, b.model, wanted, plan).artifacts
    if int8_ok:
        module = s.teacher.module
        models["teacher"] = _build_and_check(s, "teacher", module, teacher_onnx, ["int8"],
                                             reference_logits(s, module), plan)
    return {r.name: dataclasses.replace(models[r.model][r.precision], model=r.model, description=r.description)
            for r in RECIPES if r.precision in models.get(r.model, {})}


def run(s: Session) -> dict:
    plan = s.plan
    students = {sid: _exported_student(s, sid, plan.precisions) for sid, _ in s.top().students()}
    t = s.teacher_record
    teacher_onnx = Path(t.artifact)
    if plan.backend == "onnxruntime-cpu":  # the teacher's ONNX is the artifact, checked by the load stage
        teacher = {"fp32": ArtifactRecord("fp32", plan.backend, "onnx", str(teacher_onnx), str(teacher_onnx),
                                          parity=t.parity)}
    else:
        module = s.teacher.module
        teacher = _build_and_check(s, "teacher", module, teacher_onnx, ["fp32"], reference_logits(s, module))
    baselines = _export_baselines(s, teacher_onnx) if s.inputs.baselines else {}
    exported = ExportFile(plan.to_json(), teacher, students, baselines)
    write_json(s.run.path / "artifacts" / "export.json", exported.to_json())
    (s.run.path / EXPORTED_SO_FAR).unlink(missing_ok=True)
    return {"artifacts": {sid: {p: r.path for p, r in v.artifacts.items()} for sid, v in students.items()}}


# TensorRT timing caches (artifacts/timing.*.cache) are kept: they only make the next engine build faster
STAGE = Stage("export", ("artifacts/s*", "artifacts/b-*", "artifacts/teacher.fp*", "artifacts/teacher.int8*",
                         "artifacts/export.json", "artifacts/export.partial.json", "artifacts/ort_trt_cache"),
              unhashed=("artifacts/ort_trt_cache",), run=run)
