"""``shrink`` = the stages in order (DESIGN §1). Each stage is a function over a :class:`RunDir`: it reads what
earlier stages wrote, writes its own outputs atomically and marks itself done, so any stage can be re-run alone
and ``--resume`` skips finished ones.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdcompress.baselines import RECIPES, TRAINED, PruneAndTrain, precisions_of
from kdcompress.bench import (
    BACKENDS,
    Runner,
    accuracy,
    backend_status,
    get_backend,
    interleaved_latency,
    resolve_backend,
)
from kdcompress.data import DataSplits, Preprocess, load_data
from kdcompress.distill import distill, load_student
from kdcompress.distill.distributed import barrier, rank_and_world
from kdcompress.errors import KDCompressError
from kdcompress.export import check_parity, to_onnx
from kdcompress.export.artifacts import ArtifactPlan, build_model_artifacts, calibration_images, plan_artifacts
from kdcompress.export.int8 import resolve_scheme
from kdcompress.models.load import OnnxTeacher, Teacher, check_teacher_learned, infer_io, load_teacher
from kdcompress.models.pruning import TEACHER_FAMILIES, PruningSource
from kdcompress.profiles import KDLoss, Losses, Profile
from kdcompress.report.environment import environment
from kdcompress.report.result import build_result, write_report
from kdcompress.run import Progress, RunDir, atomic_write, differences, read_json, write_json
from kdcompress.search import search
from kdcompress.search.evolution import born_again
from kdcompress.search.proxies import count_flops


@dataclass
class Inputs:
    """What the user passed in, as recorded in the manifest so later stages can reload it."""

    teacher: str
    data: str
    profile: Profile
    arch: str | None = None
    trust_pickle: bool = False
    seed: int = 0
    strict_target: bool = False
    baselines: bool = False  # also run the recipes users would use instead (kdcompress.baselines)

    def __post_init__(self) -> None:
        # Absolute paths, so that a resumed run matches however the paths were spelled the first time.
        self.teacher = str(Path(self.teacher).resolve())
        if Path(self.data).exists():
            self.data = str(Path(self.data).resolve())
        if self.arch:
            file, _, cls = self.arch.rpartition(":")
            self.arch = f"{Path(file).resolve()}:{cls}" if file else self.arch

    def to_json(self) -> dict:
        return {"teacher": self.teacher, "data": self.data, "arch": self.arch, "trust_pickle": self.trust_pickle,
                "seed": self.seed, "strict_target": self.strict_target, "baselines": self.baselines,
                "profile": self.profile.model_dump()}


@dataclass
class Session:
    """A run plus lazily loaded teacher and data, shared by the stages of one process."""

    run: RunDir
    progress: Progress = field(default_factory=Progress)

    @property
    def inputs(self) -> dict[str, Any]:
        if "inputs" not in self.run.manifest:
            raise KDCompressError(f"{self.run.path}: the load stage has not run", "run `kdcompress shrink` first")
        return self.run.manifest["inputs"]

    @functools.cached_property
    def profile(self) -> Profile:
        return Profile.model_validate(self.inputs["profile"])

    @functools.cached_property
    def prep(self) -> Preprocess:
        d = self.profile.data
        return Preprocess(tuple(d.mean), tuple(d.std))

    @functools.cached_property
    def teacher(self) -> Teacher:
        i = self.inputs
        teacher = load_teacher(i["teacher"], i["arch"], i["trust_pickle"])
        recorded = self.run.manifest.get("teacher", {}).get("sha256")
        if recorded and recorded != teacher.sha256:
            raise KDCompressError(f"{i['teacher']} changed since this run started", "start a new run (--out)")
        return teacher

    @functools.cached_property
    def data(self) -> DataSplits:
        i = self.inputs
        return load_data(i["data"], self.profile.data.val_fraction, i["seed"])

    @property
    def example(self) -> torch.Tensor:
        return torch.zeros(1, *self.data.input_shape)

    @property
    def plan(self) -> ArtifactPlan:
        if "plan" not in self.run.manifest:
            raise KDCompressError(f"{self.run.path} was made by an older kdcompress (no artifact plan)",
                                  "start a new run (--out), or re-run it from the start")
        return ArtifactPlan.from_json(self.run.manifest["plan"])

    @functools.cached_property
    def pruning(self) -> PruningSource:
        """The teacher as the source of pruned-teacher students (cut only when such a student is built)."""
        return self.teacher.pruning_source(self.prep(self.data.x_train[:2]))


def _stage(session: Session, name: str, fn, force: bool = False) -> None:
    if session.run.done(name) and not force:
        changed = session.run.changed_outputs(name)
        if not changed:
            return
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        session.progress.note(f"{changed[0]}{more} changed or went missing since stage {name} wrote it: "
                              f"running {name} and the stages after it again")
        session.run.invalidate_from(name)
    t0 = time.time()
    info = fn(session) or {}
    session.run.mark_done(name, time.time() - t0, **info)


def stage_load(s: Session) -> dict:
    """Check that teacher and data fit together; export the teacher to ONNX (verified); record them."""
    teacher, data, prep = s.teacher, s.data, s.prep
    if not s.profile.export.dynamic_batch:
        raise KDCompressError("export.dynamic_batch: false is not supported yet", "remove it from the profile")
    if len(prep.mean) not in (1, data.input_shape[0]) or len(prep.std) not in (1, data.input_shape[0]):
        raise KDCompressError(f"data.mean/std have {len(prep.mean)}/{len(prep.std)} values for "
                              f"{data.input_shape[0]} channels")
    k = infer_io(teacher, data.input_shape)
    if k != data.num_classes:
        labels = torch.cat([data.y_train, data.y_val, data.y_test])
        outside = sorted({int(v) for v in labels[labels >= k].unique()})
        if outside:  # name the labels the teacher cannot predict: usually a label bug, not a wrong teacher
            shown = ", ".join(map(str, outside[:5])) + (", ..." if len(outside) > 5 else "")
            raise KDCompressError(f"the teacher outputs {k} classes (labels 0..{k - 1}) but {int((labels >= k).sum())} "
                                  f"sample(s) of the data have label(s) {shown}",
                                  "fix those labels, or use a teacher trained on these classes")
        raise KDCompressError(f"teacher outputs {k} classes but the data has {data.num_classes}",
                              "use data with the teacher's classes")
    teacher_accuracy, checked = check_teacher_learned(teacher, data.x_val, data.y_val, prep, s.inputs["data"])
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
    parity = _parity(s, _reference_logits(s, teacher.module), BACKENDS["onnxruntime-cpu"](onnx_path), onnx_path)
    t = s.profile.target
    status = backend_status()
    backend, note = resolve_backend(t.device, t.backend, s.inputs["strict_target"], status)
    plan = plan_artifacts(s.profile, backend)
    if plan.format == "aoti" and teacher.kind in ("onnx", "torchscript"):
        raise KDCompressError(f"the {backend} target compiles the teacher with AOTInductor, which needs it as a "
                              f"PyTorch graph, and this one is {'an ONNX' if teacher.kind == 'onnx' else 'a TorchScript'}"
                              " file", "give it as a torch.export .pt2 or a state_dict with --arch, or use an "
                              "onnxruntime/TensorRT profile")
    if s.profile.search.student == "same":  # Born-Again rebuilds the teacher's architecture: say now if it cannot
        teacher.pruning_source(s.example, purpose="--student same (Born-Again)")
    notes = ([note] if note else []) + plan.notes
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
    s.run.manifest.update({
        "teacher": {"path": str(teacher.path), "kind": teacher.kind, "sha256": teacher.sha256, "params": params,
                    "flops": flops, "num_classes": k, "val_accuracy": teacher_accuracy, "artifact": str(onnx_path),
                    "exporter": exporter, "parity": parity},
        "data": data.summary(), "input_shape": list(data.input_shape), "preprocess": prep.to_json(),
        "backend": backend, "search_backend": search_backend, "backend_note": "; ".join(notes) or None,
        "precision": t.precision, "plan": plan.to_json(), "environment": environment(),
    })
    return {}


def _reference_logits(s: Session, model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's logits on the parity images (validation split), and those images as the artifact's input."""
    x = s.prep(s.data.x_val[: s.profile.export.parity_samples])
    with torch.no_grad():
        ref = torch.cat([model(x[i : i + 256]) for i in range(0, len(x), 256)]).numpy()
    return x.numpy(), ref


def _parity(s: Session, reference: tuple[np.ndarray, np.ndarray], runner: Runner, path: Path,
            precision: str = "fp32", ours: bool = False, step: int = 256, strict: bool = True) -> dict:
    """Compare an artifact with PyTorch on validation images. With ``strict``, a float ONNX on onnxruntime CPU
    that does not reproduce PyTorch is an error (``ours``: a bug). Other artifacts (reduced precision, another
    runtime with its own kernels, e.g. TF32 convolutions on a GPU) outside tolerance are recorded and flagged in the
    report, and their test accuracy, measured by bench, tells what it costs."""
    x, ref = reference
    out = np.concatenate([runner.infer(x[i : i + step]) for i in range(0, len(x), step)])
    report = check_parity(ref, out, precision)
    if not report.passed and strict and precision == "fp32":
        if ours:
            raise RuntimeError(f"parity check failed for {path}: {report.to_json()}")
        raise KDCompressError(
            f"{path.name} does not reproduce PyTorch (max |diff| {report.max_abs_diff:.3g}, "
            f"top-1 agreement {report.top1_agreement:.3f})", "report this model to kdcompress with --debug output"
        )
    return report.to_json()


def stage_search(s: Session) -> dict:
    t = s.run.manifest["teacher"]
    if s.profile.search.student == "same":
        top = born_again(s.run.folder("search"), s.profile, s.run.manifest["search_backend"], t["params"], t["flops"])
        return {"top": [f"{c.space}:{c.genes}" for c in top]}
    top = search(
        s.teacher, s.data, s.prep, s.profile, s.run.folder("search"), s.run.manifest["search_backend"],
        Path(t["artifact"]), t["params"], t["flops"], s.inputs["seed"], s.progress,
    )
    return {"top": [f"{c.space}:{c.genes}" for c in top]}


def student_ids(s: Session) -> list[tuple[str, dict]]:
    top = read_json(s.run.path / "search" / "top.json")
    return [(f"s{i}-{c['space']}", c) for i, c in enumerate(top["top"])]


def stage_distill(s: Session) -> dict:
    results = {}
    jobs = [(sid, {"space": cand["space"], "genes": cand["genes"], "in_channels": s.data.input_shape[0],
                   "num_classes": s.data.num_classes, "scores": cand["scores"]}, s.profile.distill)
            for sid, cand in student_ids(s)]
    for b in trained_baselines(s):
        # the recipes train as their users would: Hinton KD (the profile's settings, if it has them) or, for plain
        # fine-tuning, cross-entropy alone — whatever loss our own students use
        kd = s.profile.distill.loss.kd or KDLoss()
        kd = kd if b.kd else kd.model_copy(update={"alpha": 0.0})
        cfg = s.profile.distill.model_copy(update={"loss": Losses(kd=kd)})
        jobs.append((b.model, b.spec(s.data.input_shape[0], s.data.num_classes), cfg))
    for sid, spec, cfg in jobs:
        r = distill(s.teacher, spec, s.data, s.prep, cfg, s.run.folder("students", sid),
                    s.run.path / "cache" / "teacher_logits_train.pt", s.inputs["seed"], s.progress)
        results[sid] = {"val_accuracy": r.best_val_accuracy, "epochs": r.epochs_run}
    return {"students": results}


def trained_baselines(s: Session) -> list[PruneAndTrain]:
    """The pruning recipes to train, when ``--baselines`` asked for them and the teacher can be cut (else one
    line says why, once)."""
    if not s.inputs.get("baselines"):
        return []
    try:  # DepGraph needs an nn.Module teacher, and must be able to cut it: tried once, here
        s.pruning.build({"ratio": TRAINED[0].ratio, "importance": "l2", "global": 0})
    except KDCompressError as e:
        if not s.run.manifest.get("baseline_note"):
            s.progress.note(f"baselines: the Torch-Pruning recipes are skipped ({e.message}); teacher-int8 runs")
            s.run.manifest["baseline_note"] = e.message
        return []
    return list(TRAINED)


def _build_and_check(s: Session, stem: str, model: torch.nn.Module | None, fp32_onnx: Path,
                     precisions: list[str], reference: tuple[np.ndarray, np.ndarray],
                     plan: ArtifactPlan | None = None) -> dict[str, dict]:
    """Build ``stem``'s artifacts of ``precisions`` and check each, on the backend it is measured on, against
    PyTorch."""
    plan = plan or s.plan
    calib = None
    if "int8" in precisions:
        imgs = calibration_images(s.data.x_train, plan.calibration_samples, s.inputs["seed"])
        calib = s.prep(imgs).numpy()
    records = build_model_artifacts(plan, stem, fp32_onnx, s.run.folder("artifacts"), model, s.example, calib,
                                    s.run.path / "artifacts", precisions)
    for p, rec in records.items():
        if plan.backend == "onnxruntime-cpu" and p == "fp32":
            continue  # the float ONNX was checked on onnxruntime-cpu right after export
        runner = get_backend(plan.backend)(Path(rec["path"]), threads=s.profile.target.threads)
        rec["parity"] = _parity(s, reference, runner, Path(rec["path"]), p, step=min(256, plan.batch[2]),
                                strict=False)
    return records


def _export_student(s: Session, sid: str, precisions: list[str], plan: ArtifactPlan | None = None) -> dict:
    """A trained student (ours or a baseline's) in ``precisions``: float ONNX + parity, then the rest, each checked."""
    student_dir = s.run.path / "students" / sid
    from_teacher = read_json(student_dir / "spec.json")["space"] in TEACHER_FAMILIES
    model = load_student(student_dir, s.pruning if from_teacher else None)
    path = s.run.sub("artifacts", f"{sid}.onnx")
    exporter = to_onnx(model, s.example, path, s.profile.export.opset, s.profile.export.dynamic_batch)
    reference = _reference_logits(s, model)
    parity = _parity(s, reference, BACKENDS["onnxruntime-cpu"](path), path, ours=True)
    write_json(s.run.sub("artifacts", f"{sid}.parity.json"), {"exporter": exporter, **parity})
    records = _build_and_check(s, sid, model, path, precisions, reference, plan)
    records["fp32"].setdefault("parity", parity)
    return {"exporter": exporter, "artifacts": records}


# A killed export resumes per student: each finished student's record and the hashes of its artifacts
EXPORTED_SO_FAR = "artifacts/export.partial.json"


def _exported_student(s: Session, sid: str, precisions: list[str]) -> dict:
    """:func:`_export_student`, or its record from an export that was killed later on, if every artifact it wrote
    is still there, unchanged."""
    partial_path = s.run.path / EXPORTED_SO_FAR
    partial = read_json(partial_path) if partial_path.exists() else {}

    kept = partial.get(sid)
    if kept and kept["precisions"] == precisions and kept["files"] == s.run.hashes(f"artifacts/{sid}.*"):
        s.progress.note(f"export of {sid} kept from the interrupted run (its artifacts are unchanged)")
        return kept["record"]
    record = _export_student(s, sid, precisions)
    write_json(partial_path, {**partial, sid: {"precisions": precisions, "files": s.run.hashes(f"artifacts/{sid}.*"),
                                               "record": record}})
    return record


def stage_export(s: Session) -> dict:
    """Every student in every precision of the plan (and the teacher in the backend's format), each checked; with
    ``--baselines``, the recipes' artifacts too."""
    plan = s.plan
    out = {sid: _exported_student(s, sid, plan.precisions) for sid, _ in student_ids(s)}
    teacher_onnx = Path(s.run.manifest["teacher"]["artifact"])
    if plan.backend == "onnxruntime-cpu":  # the teacher's ONNX is the artifact, checked by the load stage
        teacher = {"fp32": {"precision": "fp32", "backend": plan.backend, "format": "onnx", "path": str(teacher_onnx),
                            "onnx": str(teacher_onnx), "parity": s.run.manifest["teacher"]["parity"]}}
    else:
        module = s.teacher.module
        teacher = _build_and_check(s, "teacher", module, teacher_onnx, ["fp32"], _reference_logits(s, module))
    baselines = {}
    if s.inputs.get("baselines"):
        baselines = _export_baselines(s, teacher_onnx)
    write_json(s.run.path / "artifacts" / "export.json", {"plan": plan.to_json(), "teacher": teacher, "students": out,
                                                          "baselines": baselines})
    (s.run.path / EXPORTED_SO_FAR).unlink(missing_ok=True)
    return {"artifacts": {sid: {p: r["path"] for p, r in v["artifacts"].items()} for sid, v in out.items()}}


def _export_baselines(s: Session, teacher_onnx: Path) -> dict[str, dict]:
    """The recipes' artifacts: int8 always (the recipes quantize whether the profile does or not), except where the
    backend has no int8 (AOTInductor)."""
    plan = s.plan
    if plan.int8 is None:
        plan = dataclasses.replace(plan, int8=resolve_scheme(plan.device, s.profile.export.int8_scheme,
                                                             s.profile.export.reduce_range))
    int8_ok = plan.format != "aoti"
    models: dict[str, dict[str, dict]] = {}
    for b in trained_baselines(s):
        wanted = ["fp32", *(p for p in precisions_of(b.model) if p != "fp32" and (int8_ok or p != "int8"))]
        models[b.model] = _export_student(s, b.model, wanted, plan)["artifacts"]
    if int8_ok:
        module = s.teacher.module
        models["teacher"] = _build_and_check(s, "teacher", module, teacher_onnx, ["int8"],
                                             _reference_logits(s, module), plan)
    return {r.name: {"model": r.model, "description": r.description, **models[r.model][r.precision]}
            for r in RECIPES if r.precision in models.get(r.model, {})}


def stage_bench(s: Session) -> dict:
    """Latency (interleaved, same process) and accuracy of every measured artifact on the run's backend."""
    exported = read_json(s.run.path / "artifacts" / "export.json")
    backend = exported["plan"]["backend"]
    t, b = s.profile.target, s.profile.bench
    rows = [("teacher", exported["teacher"]["fp32"])]
    rows += [(sid, rec) for sid, v in exported["students"].items() for rec in v["artifacts"].values()]
    rows += [(f"baseline:{name}", rec) for name, rec in exported.get("baselines", {}).items()]
    runners = {f"{m}/{rec['precision']}": get_backend(backend)(Path(rec["path"]), threads=t.threads)
               for m, rec in rows}
    s.progress.start("bench latency", None)
    x = np.zeros((t.batch, *s.data.input_shape), dtype=np.float32)
    lat = interleaved_latency(runners, x, b.warmup, b.iters, b.repeats)
    s.progress.stop()
    tp: dict = {}
    big = min(b.throughput_batch or t.batch, s.plan.batch[2])
    if big != t.batch:
        s.progress.start(f"bench throughput (batch {big})", None)
        xb = np.zeros((big, *s.data.input_shape), dtype=np.float32)
        tp = interleaved_latency(runners, xb, max(1, b.warmup // 10), b.throughput_iters, b.repeats)
        s.progress.stop()
    n = b.test_samples
    x_test, y_test = s.data.x_test[:n], s.data.y_test[:n]
    s.progress.start("bench accuracy", len(runners))
    acc = {}
    for key, r in runners.items():
        acc[key] = accuracy(r, x_test, y_test, s.prep, batch=min(256, s.plan.batch[2]))
        s.progress.advance()
    s.progress.stop()
    write_json(s.run.path / "bench.json", {
        "backend": backend, "precision": s.run.manifest["precision"], "batch": t.batch, "threads": t.threads,
        "test_samples": len(y_test), "environment": environment(),
        "artifacts": [{"model": m, "precision": rec["precision"], "format": rec["format"], "path": rec["path"],
                       "parity": rec.get("parity"), "accuracy": acc[f"{m}/{rec['precision']}"],
                       "description": rec.get("description"),
                       "latency_ms": lat[f"{m}/{rec['precision']}"].to_json(),
                       "throughput": tp[f"{m}/{rec['precision']}"].to_json() if tp else None} for m, rec in rows],
    })
    return {}


def stage_report(s: Session) -> dict:
    result = build_result(s.run)
    write_report(s.run, result)
    return {"best": result["best"]}


STAGE_FUNCS = {
    "load": stage_load, "search": stage_search, "distill": stage_distill, "export": stage_export,
    "bench": stage_bench, "report": stage_report,
}


def run_stage(session: Session, name: str, force: bool = True) -> None:
    """Run one stage (re-running it when ``force``) and invalidate the stages after it."""
    session.run.require(name)
    if force:
        session.run.invalidate_from(name)
    _stage(session, name, STAGE_FUNCS[name], force)


def run_stage_data_parallel(session: Session, name: str) -> bool:
    """:func:`run_stage` on every process torchrun started (only ``distill`` trains data-parallel): rank 0 alone
    touches the manifest, before and after; every process runs the stage. True on rank 0."""
    if name != "distill":
        raise KDCompressError(f"only the distill stage runs across processes, not {name}",
                              f"run `kdcompress {name} RUN` without torchrun")
    rank, _ = rank_and_world()
    if rank == 0:
        session.run.require(name)
        session.run.invalidate_from(name)
    barrier()  # the others start once the stages after this one are cleared
    t0 = time.time()
    info = STAGE_FUNCS[name](session) or {}
    if rank == 0:
        session.run.mark_done(name, time.time() - t0, **info)
    return rank == 0


def run_until(
    inputs: Inputs, out: Path | str, last: str, resume: bool = False, progress: Progress | None = None
) -> RunDir:
    """Run the stages on ``inputs`` into ``out`` up to and including ``last``, skipping finished ones."""
    run = RunDir.open(out, resume=resume)
    recorded = run.manifest.get("inputs")
    if recorded is not None and recorded != inputs.to_json() and any(run.done(s) for s in STAGE_FUNCS):
        diff = differences(recorded, inputs.to_json())
        shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
        raise KDCompressError(f"{out} was started with other inputs or profile ({shown})",
                              "resume with the same arguments, or choose another --out")
    run.manifest["inputs"] = inputs.to_json()
    run.save()
    session = Session(run, progress or Progress())
    for name, fn in STAGE_FUNCS.items():
        _stage(session, name, fn)
        if name == last:
            break
    return run


def shrink(inputs: Inputs, out: Path | str, resume: bool = False, progress: Progress | None = None) -> dict:
    """Run every stage on ``inputs`` into ``out``; return the result (also in ``out/result.json``)."""
    run = run_until(inputs, out, "report", resume, progress)
    return read_json(run.path / "result.json")


def search_candidates(
    inputs: Inputs, out: Path | str, resume: bool = False, progress: Progress | None = None
) -> list[dict]:
    """Load + search only; return every feasible candidate (``space``, genes, size, latency, ``scores``), best
    first by the ranking proxy."""
    if inputs.profile.search.student == "same":
        raise KDCompressError("search.student is same (Born-Again): there is no search to run",
                              "use `kdcompress shrink --student same`, or drop search.student")
    run = run_until(inputs, out, "search", resume, progress)
    proxy = inputs.profile.search.proxy
    rows, seen = [], set()
    for line in (run.path / "search" / "candidates.jsonl").read_text().splitlines():
        r = json.loads(line)
        key = json.dumps([r["space"], r["genes"]], sort_keys=True)
        if r["feasible"] and key not in seen:  # with several latency targets a candidate can be met twice
            seen.add(key)
            rows.append(r)
    return sorted(rows, key=lambda r: r["scores"][proxy], reverse=True)
