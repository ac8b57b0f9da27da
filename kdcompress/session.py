"""What the stages of one run share: the user's :class:`Inputs` (recorded in the manifest) and a :class:`Session`
that loads the teacher and data once per process and reads the stage records of the run directory."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdcompress.data import DataSplits, Preprocess, load_data
from kdcompress.data.splits import FolderOptions, data_workers
from kdcompress.errors import KDCompressError
from kdcompress.export.artifacts import ArtifactPlan
from kdcompress.job import Job
from kdcompress.models.arch import names_file
from kdcompress.models.load import Teacher, load_teacher
from kdcompress.models.pruning import PruningSource
from kdcompress.profiles import Profile
from kdcompress.records import ExportFile, TeacherRecord, TopFile
from kdcompress.run import Progress, RunDir, read_json


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
        if self.arch:  # a file is made absolute; an importable factory (torchvision.models:resnet18) stays a name
            file, _, cls = self.arch.rpartition(":")
            self.arch = f"{Path(file).resolve()}:{cls}" if file and names_file(file) else self.arch

    def to_json(self) -> dict:
        return {"teacher": self.teacher, "data": self.data, "arch": self.arch, "trust_pickle": self.trust_pickle,
                "seed": self.seed, "strict_target": self.strict_target, "baselines": self.baselines,
                "profile": self.profile.model_dump(mode="json")}  # JSON types: what the manifest reads back

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Inputs:
        return cls(d["teacher"], d["data"], Profile.model_validate(d["profile"]), d.get("arch"),
                   d.get("trust_pickle", False), d.get("seed", 0), d.get("strict_target", False),
                   d.get("baselines", False))


@dataclass
class Session:
    """A run plus lazily loaded teacher and data, shared by the stages of one process."""

    run: RunDir
    progress: Progress = field(default_factory=Progress)

    @functools.cached_property
    def inputs(self) -> Inputs:
        if "inputs" not in self.run.manifest:
            raise KDCompressError(f"{self.run.path}: the load stage has not run", "run `kdcompress shrink` first")
        return Inputs.from_json(self.run.manifest["inputs"])

    @property
    def profile(self) -> Profile:
        return self.inputs.profile

    @property
    def seed(self) -> int:
        return self.inputs.seed

    @functools.cached_property
    def prep(self) -> Preprocess:
        d = self.profile.data
        return Preprocess(tuple(d.mean), tuple(d.std))

    @functools.cached_property
    def teacher(self) -> Teacher:
        i = self.inputs
        teacher = load_teacher(i.teacher, i.arch, i.trust_pickle)
        recorded = self.run.manifest.get("teacher", {}).get("sha256")
        if recorded and recorded != teacher.sha256:
            raise KDCompressError(f"{i.teacher} changed since this run started", "start a new run (--out)")
        return teacher

    @functools.cached_property
    def data(self) -> DataSplits:
        d = self.profile.data  # the carve does not move with the training seed
        return load_data(self.inputs.data, d.val_fraction, d.split_seed, self.folder_options())

    def folder_options(self) -> FolderOptions | None:
        """How an image folder is read: the profile's size, else the teacher's declared one; its channels."""
        if not Path(self.inputs.data).is_dir():
            return None
        d = self.profile.data
        return FolderOptions.for_input(self.teacher.declared_input(), d.image_size, crop_pct=d.crop_pct,
                                       workers=data_workers(d.workers), strict=d.strict)

    @property
    def job(self) -> Job:
        """The teacher, data, normalisation and seed as search and distill take them; the teacher's logits on the
        training images cached in the run's ``cache/``."""
        return Job(self.teacher, self.data, self.prep, self.run.path / "cache" / "teacher_logits_train.pt", self.seed)

    @property
    def example(self) -> torch.Tensor:
        return torch.zeros(1, *self.data.input_shape)

    @property
    def plan(self) -> ArtifactPlan:
        if "plan" not in self.run.manifest:
            raise KDCompressError(f"{self.run.path} was made by an older kdcompress (no artifact plan)",
                                  "start a new run (--out), or re-run it from the start")
        return ArtifactPlan.from_json(self.run.manifest["plan"])

    @property
    def teacher_record(self) -> TeacherRecord:
        return TeacherRecord.from_json(self.run.manifest["teacher"], f"{self.run.path}/manifest.json")

    @functools.cached_property
    def pruning(self) -> PruningSource:
        """The teacher as the source of pruned-teacher students (cut only when such a student is built)."""
        return self.teacher.pruning_source(self.prep(self.data.x_train[:2]))

    def top(self) -> TopFile:
        """The search stage's picks (``search/top.json``)."""
        path = self.run.path / "search" / "top.json"
        return TopFile.from_json(read_json(path), str(path))

    def exported(self) -> ExportFile:
        """The export stage's artifacts (``artifacts/export.json``)."""
        path = self.run.path / "artifacts" / "export.json"
        return ExportFile.from_json(read_json(path), str(path))
