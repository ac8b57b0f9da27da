"""Typed records the stages hand each other (DESIGN §1); torch-free. See :mod:`kdcompress.records.base`."""

from kdcompress.records.base import Record
from kdcompress.records.result import (
    PERCENTILES,
    RESULT_SCHEMA_VERSION,
    RecipeRow,
    Result,
    ResultRow,
    TeacherRow,
    Throughput,
)
from kdcompress.records.stages import (
    ArtifactRecord,
    BenchFile,
    BenchRow,
    ExportFile,
    Scored,
    SearchPick,
    StudentExport,
    StudentSpec,
    TeacherRecord,
    TopFile,
    student_id,
)

__all__ = [
    "PERCENTILES", "RESULT_SCHEMA_VERSION", "ArtifactRecord", "BenchFile", "BenchRow", "ExportFile", "RecipeRow",
    "Record", "Result", "ResultRow", "Scored", "SearchPick", "StudentExport", "StudentSpec", "TeacherRecord", "TeacherRow",
    "Throughput", "TopFile", "student_id",
]
