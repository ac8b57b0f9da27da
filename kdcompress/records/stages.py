"""The records of the stages before the report: what to train, what the search picked, what export built, what
bench measured."""

from __future__ import annotations

import dataclasses

from kdcompress.records.base import Record

# ---- load ------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TeacherRecord(Record):
    """The teacher as the load stage found it (``manifest.json``'s ``teacher``): what it is, its size, its float
    ONNX artifact and that artifact's parity with PyTorch."""

    path: str
    kind: str
    sha256: str
    params: int
    flops: int
    num_classes: int
    artifact: str
    exporter: str
    parity: dict
    val_accuracy: float | None = None  # a check on up to 2,000 validation images (older runs: absent)


# ---- distill: what to train ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class StudentSpec(Record):
    """One student to build and train (``students/<id>/spec.json``): its space and genes, the data's channels and
    classes, the proxy scores it was picked with, and where its weights start (``init``)."""

    space: str
    genes: dict
    in_channels: int
    num_classes: int
    scores: dict = dataclasses.field(default_factory=dict)
    init: str | None = None  # "teacher" / "teacher_fresh": from the teacher's weights (distill.trainer)
    _OMIT_NONE = frozenset({"init"})


# ---- search ----------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Scored(Record):
    """One evaluated candidate (a line of ``search/candidates.jsonl``)."""

    space: str
    genes: dict
    params: int
    flops: int
    latency_ms: float | None
    latency_ratio: float | None  # p50 / teacher p50 on the search backend
    feasible: bool
    reason: str | None = None
    scores: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SearchPick(Scored):
    """A candidate the search keeps for distillation, with the latency target it was searched for."""

    target: float | None = None

    @classmethod
    def of(cls, s: Scored, target: float | None) -> SearchPick:
        return cls(**{f.name: getattr(s, f.name) for f in dataclasses.fields(Scored)}, target=target)

    def spec(self, in_channels: int, num_classes: int) -> StudentSpec:
        return StudentSpec(self.space, self.genes, in_channels, num_classes, self.scores)


@dataclasses.dataclass(frozen=True)
class TopFile(Record):
    """``search/top.json``: the picks, and the budget and settings they were searched under."""

    top: tuple[SearchPick, ...]
    proxy: str | None
    backend: str
    targets: list
    within_budget: int
    student: str | None = None  # "same": a Born-Again run, no search
    pick: str | None = None
    cut_rank: str | None = None
    teacher_init: str | None = None
    max_latency_ratio: float | None = None
    max_params: float | None = None
    max_flops: float | None = None
    max_train_flops: float | None = None
    reference_ratio: float | None = None  # the reference student's p50 / the teacher's; candidates timed beside it
    workers: int | None = None
    refine: list | None = None
    refine_cost_in_distillations: float | None = None
    _OMIT_NONE = frozenset({"student", "pick", "cut_rank", "teacher_init", "max_latency_ratio", "max_params",
                            "max_flops", "max_train_flops", "reference_ratio", "workers", "refine",
                            "refine_cost_in_distillations"})

    def students(self) -> list[tuple[str, SearchPick]]:
        """(student id, pick) in order: the one place a student's id ``s<i>-<space>`` is made."""
        return [(student_id(i, p.space), p) for i, p in enumerate(self.top)]


def student_id(index: int, space: str) -> str:
    return f"s{index}-{space}"


# ---- export ----------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ArtifactRecord(Record):
    """One deployable artifact: the file measured (``path``, in ``format``), the ONNX it came from, how it was
    made, and its parity with PyTorch. A recipe's artifact also names its model and what the recipe is."""

    precision: str
    backend: str
    format: str  # onnx | engine | aoti
    path: str
    onnx: str
    parity: dict | None = None
    fp16: dict | None = None
    int8: dict | None = None
    aoti: dict | None = None
    model: str | None = None  # recipes only: "teacher" or the pruned student under students/
    description: str | None = None  # recipes only
    _OMIT_NONE = frozenset({"parity", "fp16", "int8", "aoti", "model", "description"})


@dataclasses.dataclass(frozen=True)
class StudentExport(Record):
    """A student's artifacts by precision, the exporter that made its float ONNX (``dynamo``, ``torchscript`` or
    ``optimum``) and, for a student of a Hugging Face teacher, its ``save_pretrained`` folder."""

    exporter: str
    artifacts: dict[str, ArtifactRecord]  # precision -> artifact
    pretrained: str | None = None
    _OMIT_NONE = frozenset({"pretrained"})


@dataclasses.dataclass(frozen=True)
class ExportFile(Record):
    """``artifacts/export.json``: every artifact the export stage built, by model and precision."""

    plan: dict
    teacher: dict[str, ArtifactRecord]
    students: dict[str, StudentExport]
    baselines: dict[str, ArtifactRecord] = dataclasses.field(default_factory=dict)

    def measured(self) -> list[tuple[str, ArtifactRecord]]:
        """(model, artifact) of everything bench measures: the teacher's float artifact, every student's, every
        recipe's (as ``baseline:<name>``)."""
        rows = [("teacher", self.teacher["fp32"])]
        rows += [(sid, rec) for sid, v in self.students.items() for rec in v.artifacts.values()]
        rows += [(f"baseline:{name}", rec) for name, rec in self.baselines.items()]
        return rows


# ---- bench -----------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BenchRow(Record):
    """One artifact as bench measured it: latency samples' summary (and at the throughput batch), test accuracy."""

    model: str
    precision: str
    format: str
    path: str
    accuracy: float
    latency_ms: dict  # LatencyStats.to_json(): p50, p90, p99, mean, iqr, throughput, samples, ...
    parity: dict | None = None
    description: str | None = None
    throughput: dict | None = None

    @property
    def p50(self) -> float:
        return self.latency_ms["p50"]


@dataclasses.dataclass(frozen=True)
class BenchFile(Record):
    """``bench.json``."""

    backend: str
    precision: str
    batch: int
    threads: int
    test_samples: int
    environment: dict
    artifacts: tuple[BenchRow, ...]

    def by_model(self) -> dict[str, dict[str, BenchRow]]:
        out: dict[str, dict[str, BenchRow]] = {}
        for a in self.artifacts:
            out.setdefault(a.model, {})[a.precision] = a
        return out
