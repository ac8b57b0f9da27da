"""``result.json``: the run's answer, built once by :func:`kdcompress.report.result.build_result` and rendered from
this object to the terminal, Markdown, HTML and ``--json`` alike."""

from __future__ import annotations

import dataclasses

from kdcompress.records.base import Record

# 2: one student row per artifact (student × precision), with precision, format, backend and flags
RESULT_SCHEMA_VERSION = 2
PERCENTILES = ("p50", "p90", "p99")


@dataclasses.dataclass(frozen=True)
class Throughput(Record):
    """Images per second at the profile's throughput batch, and the ratio to the teacher's."""

    batch: int
    p50_ms: float
    images_per_s: float
    speedup: float | None = None
    _OMIT_NONE = frozenset({"speedup"})


@dataclasses.dataclass(frozen=True)
class TeacherRow(Record):
    path: str
    params: int
    flops: int
    precision: str
    latency_ms: dict
    accuracy: float
    artifact: str
    throughput: Throughput | None


@dataclasses.dataclass(frozen=True)
class ResultRow(Record):
    """One artifact of ours (a student in one precision), measured, and how it stands against the budget."""

    id: str
    student: str
    precision: str
    format: str
    space: str
    genes: dict
    params: int
    flops: int
    scores: dict
    latency_ms: dict
    accuracy: float
    speedup: float
    accuracy_drop: float
    artifact: str
    parity: dict
    throughput: Throughput | None
    latency_ratio: float
    searched_latency_ratio: float | None  # what the search measured for this student
    latency_ok: bool
    target: float | None  # the latency ratio this student was searched for
    target_met: bool
    accuracy_ok: bool
    meets_budget: bool
    slower_than_fp32: bool
    flags: list
    on_front: bool = False
    pretrained: str | None = None  # the student's save_pretrained folder (a Hugging Face teacher's cut)
    _OMIT_NONE = frozenset({"pretrained"})


@dataclasses.dataclass(frozen=True)
class RecipeRow(Record):
    """What a user would do instead (``--baselines``), measured beside ours."""

    id: str
    name: str
    description: str | None
    precision: str
    format: str
    latency_ms: dict
    accuracy: float
    speedup: float
    accuracy_drop: float
    throughput: Throughput | None
    artifact: str
    parity: dict
    beaten_by: str | None = None
    on_front: bool = False


@dataclasses.dataclass(frozen=True)
class Result(Record):
    """``result.json``."""

    SCHEMA_VERSION = RESULT_SCHEMA_VERSION

    schema_version: int
    profile: str
    backend: str
    backend_note: str | None
    precision: str
    precisions: list
    int8: dict | None
    batch: int
    threads: int
    test_samples: int
    data: str
    budget: dict
    proxy: str | None
    pick: str | None
    cut_rank: str | None
    distill: dict | None  # how the students were trained, as the run's profile says
    teacher: TeacherRow
    students: tuple[ResultRow, ...]
    best: str | None
    budget_met: bool
    nearest_miss: str | None
    frontier: list
    baselines: tuple[RecipeRow, ...]
    beats_all_baselines: bool | None
    environment: dict

    def row(self, artifact_id: str | None) -> ResultRow | None:
        return next((r for r in self.students if r.id == artifact_id), None)
