"""``shrink`` = the stages in order (DESIGN §1). Each stage is a function over a :class:`RunDir`: it reads what
earlier stages wrote, writes its own outputs atomically and marks itself done, so any stage can be re-run alone
and ``--resume`` skips finished ones.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdcompress.bench import BACKENDS, accuracy, interleaved_latency, resolve_backend
from kdcompress.data import DataSplits, Preprocess, load_data
from kdcompress.distill import distill, load_student
from kdcompress.errors import KDCompressError
from kdcompress.export import check_parity, to_onnx
from kdcompress.models.load import Teacher, infer_io, load_teacher
from kdcompress.models.pruning import PruningSource
from kdcompress.profiles import Profile
from kdcompress.report.environment import environment
from kdcompress.report.result import build_result, write_report
from kdcompress.run import Progress, RunDir, read_json, write_json
from kdcompress.search import search
from kdcompress.search.proxies import count_flops

# Every artifact built so far is fp32 ONNX; fp16/int8 engines come with the deployment issue.
ARTIFACT_PRECISION = "fp32"


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
                "seed": self.seed, "strict_target": self.strict_target, "profile": self.profile.model_dump()}


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

    @functools.cached_property
    def pruning(self) -> PruningSource:
        """The teacher as the source of pruned-teacher students (cut only when such a student is built)."""
        return PruningSource(self.teacher.module, self.prep(self.data.x_train[:2]))


def _stage(session: Session, name: str, fn, force: bool = False) -> None:
    if session.run.done(name) and not force:
        return
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
        raise KDCompressError(f"teacher outputs {k} classes but the data has {data.num_classes}",
                              "use data with the teacher's classes")
    teacher.set_eval()
    params = sum(p.numel() for p in teacher.module.parameters())
    try:
        flops = count_flops(teacher.module, s.example)
    except Exception:  # noqa: BLE001 — FLOP counting is informative only; some module kinds do not support it
        flops = 0
    onnx_path = s.run.sub("artifacts", "teacher.onnx")
    exporter = to_onnx(teacher.module, s.example, onnx_path, s.profile.export.opset, s.profile.export.dynamic_batch)
    parity = _parity(s, teacher.module, onnx_path)
    t = s.profile.target
    backend, note = resolve_backend(t.device, t.backend, s.inputs["strict_target"])
    notes = [note] if note else []
    wanted_precision = "int8" if s.profile.export.int8 else t.precision
    if wanted_precision != ARTIFACT_PRECISION:
        if s.inputs["strict_target"]:
            raise KDCompressError(f"{wanted_precision} artifacts are not built yet", "drop --strict-target to get fp32")
        notes.append(f"{wanted_precision} artifacts are not built yet; exporting and measuring fp32")
    for n in notes:
        s.progress.note(n)
    s.run.manifest.update({
        "teacher": {"path": str(teacher.path), "kind": teacher.kind, "sha256": teacher.sha256, "params": params,
                    "flops": flops, "num_classes": k, "artifact": str(onnx_path), "exporter": exporter,
                    "parity": parity},
        "data": data.summary(), "input_shape": list(data.input_shape), "preprocess": prep.to_json(),
        "backend": backend, "backend_note": "; ".join(notes) or None, "precision": ARTIFACT_PRECISION,
        "environment": environment(),
    })
    return {}


def _parity(s: Session, model: torch.nn.Module, onnx_path: Path, ours: bool = False) -> dict:
    """Compare the ONNX artifact with PyTorch on validation images; a mismatch on our own student is a bug."""
    n = s.profile.export.parity_samples
    x = s.prep(s.data.x_val[:n])
    with torch.no_grad():
        ref = torch.cat([model(x[i : i + 256]) for i in range(0, len(x), 256)]).numpy()
    runner = BACKENDS["onnxruntime-cpu"](onnx_path)
    out = np.concatenate([runner.infer(x[i : i + 256].numpy()) for i in range(0, len(x), 256)])
    report = check_parity(ref, out, "fp32")
    if not report.passed and ours:
        raise RuntimeError(f"parity check failed for {onnx_path}: {report.to_json()}")
    if not report.passed:
        raise KDCompressError(
            f"{onnx_path.name} does not reproduce PyTorch (max |diff| {report.max_abs_diff:.3g}, "
            f"top-1 agreement {report.top1_agreement:.3f})", "report this model to kdcompress with --debug output"
        )
    return report.to_json()


def stage_search(s: Session) -> dict:
    t = s.run.manifest["teacher"]
    top = search(
        s.teacher, s.data, s.prep, s.profile, s.run.folder("search"), s.run.manifest["backend"],
        Path(t["artifact"]), t["params"], t["flops"], s.inputs["seed"], s.progress,
    )
    return {"top": [f"{c.space}:{c.genes}" for c in top]}


def student_ids(s: Session) -> list[tuple[str, dict]]:
    top = read_json(s.run.path / "search" / "top.json")
    return [(f"s{i}-{c['space']}", c) for i, c in enumerate(top["top"])]


def stage_distill(s: Session) -> dict:
    results = {}
    for sid, cand in student_ids(s):
        spec = {"space": cand["space"], "genes": cand["genes"], "in_channels": s.data.input_shape[0],
                "num_classes": s.data.num_classes, "scores": cand["scores"]}
        r = distill(s.teacher, spec, s.data, s.prep, s.profile.distill, s.run.folder("students", sid),
                    s.run.path / "cache" / "teacher_logits_train.pt", s.inputs["seed"], s.progress)
        results[sid] = {"val_accuracy": r.best_val_accuracy, "epochs": r.epochs_run}
    return {"students": results}


def stage_export(s: Session) -> dict:
    out = {}
    for sid, _ in student_ids(s):
        model = load_student(s.run.path / "students" / sid, s.pruning)
        path = s.run.sub("artifacts", f"{sid}.onnx")
        exporter = to_onnx(model, s.example, path, s.profile.export.opset, s.profile.export.dynamic_batch)
        parity = _parity(s, model, path, ours=True)
        write_json(s.run.sub("artifacts", f"{sid}.parity.json"), {"exporter": exporter, **parity})
        out[sid] = {"artifact": str(path), "exporter": exporter, "parity": parity}
    return {"artifacts": out}


def stage_bench(s: Session) -> dict:
    """Latency (interleaved, same process) and accuracy of every artifact on the target backend."""
    backend = s.run.manifest["backend"]
    t, b = s.profile.target, s.profile.bench
    paths = {"teacher": Path(s.run.manifest["teacher"]["artifact"])}
    paths.update({sid: s.run.path / "artifacts" / f"{sid}.onnx" for sid, _ in student_ids(s)})
    runners = {k: BACKENDS[backend](p, threads=t.threads) for k, p in paths.items()}
    s.progress.start("bench latency", None)
    x = np.zeros((t.batch, *s.data.input_shape), dtype=np.float32)
    lat = interleaved_latency(runners, x, b.warmup, b.iters, b.repeats)
    s.progress.stop()
    n = b.test_samples
    x_test, y_test = s.data.x_test[:n], s.data.y_test[:n]
    s.progress.start("bench accuracy", None)
    acc = {k: accuracy(r, x_test, y_test, s.prep) for k, r in runners.items()}
    s.progress.stop()
    write_json(s.run.path / "bench.json", {
        "backend": backend, "precision": s.run.manifest["precision"], "batch": t.batch, "threads": t.threads,
        "test_samples": len(y_test), "environment": environment(),
        "models": {k: {"artifact": str(paths[k]), "accuracy": acc[k], "latency_ms": lat[k].to_json()} for k in paths},
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


def run_until(
    inputs: Inputs, out: Path | str, last: str, resume: bool = False, progress: Progress | None = None
) -> RunDir:
    """Run the stages on ``inputs`` into ``out`` up to and including ``last``, skipping finished ones."""
    run = RunDir.open(out, resume=resume)
    recorded = run.manifest.get("inputs")
    if recorded is not None and recorded != inputs.to_json() and any(run.done(s) for s in STAGE_FUNCS):
        raise KDCompressError(f"{out} was started with other inputs or profile",
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
    run = run_until(inputs, out, "search", resume, progress)
    proxy = inputs.profile.search.proxy
    rows = [json.loads(line) for line in (run.path / "search" / "candidates.jsonl").read_text().splitlines()]
    return sorted((r for r in rows if r["feasible"]), key=lambda r: r["scores"][proxy], reverse=True)
