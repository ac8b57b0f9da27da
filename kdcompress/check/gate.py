"""The CI regression gate (DESIGN §7): save a baseline, measure again, decide.

A measurement times the artifact and a control model in shuffled interleaved blocks (:mod:`.paired`); the gate
judges the artifact/control log-ratio of the fresh repetitions against the baseline's (:mod:`.stats`):

- **regression** when the one-sided lower bound of the slowdown exceeds the null slowdown (``tolerance``, default
  half of ``max_slowdown``): the one-sided Mann–Whitney test rejects "slower by at most the tolerance" at α;
- **pass** when the upper bound is below ``max_slowdown``: a slowdown as large as the limit is ruled out;
- **inconclusive** otherwise (too noisy to tell), with the repetitions that would likely decide.

Accuracy, when both sides measured it, fails on an absolute drop above ``max_accuracy_drop``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from kdcompress.bench.artifact import ArtifactInfo, artifact_accuracy, resolve_artifact
from kdcompress.bench.backends import BACKENDS, get_backend
from kdcompress.bench.runners import Runner
from kdcompress.check.control import CONTROL_VERSION, control_model_bytes
from kdcompress.check.paired import PairedSamples, measure_paired
from kdcompress.check.verdict import MUST_MATCH, Verdict, compare
from kdcompress.errors import KDCompressError
from kdcompress.profiles import Check
from kdcompress.records import Result
from kdcompress.run import file_sha256, read_json, write_json

BASELINE_KIND = "kdcompress-baseline"
BASELINE_VERSION = 1
REQUIRED = (*MUST_MATCH, "samples", "control.kind", "control.sha256", "environment.machine.cpu",
            "environment.versions")


@dataclass(frozen=True)
class TestData:
    """Where the accuracy comes from, kept in the baseline so that ``check`` loads the same images."""

    spec: str  # fashion-mnist, a .npz, an image folder (kdcompress.data.load_data)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    test_samples: int | None = None
    val_fraction: float = 0.1
    seed: int = 0

    def load(self, input_shape: tuple[int, ...] | None = None) -> tuple:
        """(x_uint8, y, preprocess) of the test split; an image folder is read at ``input_shape`` (the artifact's)."""
        from kdcompress.data import Preprocess, load_data
        from kdcompress.data.splits import FolderOptions, data_workers, take

        folder = FolderOptions.for_input(input_shape, workers=data_workers(None))
        splits = load_data(self.spec, self.val_fraction, self.seed, folder)
        n = self.test_samples
        return take(splits.x_test, slice(0, n)), splits.y_test[:n], Preprocess(self.mean, self.std)

    def to_json(self) -> dict:
        # a file or folder is stored absolute, so that a check run from another directory finds it
        spec = str(Path(self.spec).resolve()) if Path(self.spec).exists() else self.spec
        return {**asdict(self), "spec": spec, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, d: dict) -> TestData:
        return cls(d["spec"], tuple(d["mean"]), tuple(d["std"]), d.get("test_samples"), d.get("val_fraction", 0.1),
                   d.get("seed", 0))


@dataclass
class Subject:
    """What is measured: one artifact on one backend, at one batch, with or without test data."""

    artifact: Path
    info: ArtifactInfo
    backend: str
    batch: int
    threads: int
    input_shape: tuple[int, ...]
    data: TestData | None = None

    def describe(self) -> dict:
        return {"artifact": str(self.artifact), "name": self.artifact.name, "backend": self.backend,
                "format": self.info.format, "precision": self.info.precision, "batch": self.batch,
                "input_shape": list(self.input_shape), "threads": self.threads}


def subject_from_run(run: Path, data: TestData | None = None) -> Subject:
    """A shrink run's best artifact, on the run's backend, batch and threads; its own test data unless ``data``."""
    result = Result.from_json(read_json(run / "result.json"), str(run / "result.json"))
    best = result.row(result.best)
    if best is None:
        raise KDCompressError(f"{run} has no best artifact to check (no row met the accuracy budget)",
                              "pass the artifact file to check instead of the run directory")
    stored = Path(best.artifact)
    path = run / "artifacts" / stored.name  # the run's own copy first: a moved run keeps its stored paths
    if not path.exists():
        path = stored
    manifest = read_json(run / "manifest.json")
    if data is None and result.data:
        inputs = manifest["inputs"]
        prof = inputs["profile"]["data"]
        data = TestData(inputs["data"], tuple(prof["mean"]), tuple(prof["std"]), result.test_samples,
                        prof["val_fraction"], inputs["seed"])
    # the run knows the images' shape where the file does not (optimum's ONNX leaves height and width dynamic)
    shape = tuple(manifest["input_shape"]) if manifest.get("input_shape") else None
    return subject_from_file(path, result.backend, result.batch, result.threads, shape, data)


def subject_from_file(path: Path, backend: str | None = None, batch: int = 1, threads: int = 1,
                      shape: tuple[int, ...] | None = None, data: TestData | None = None) -> Subject:
    info, backend, sample_shape = resolve_artifact(path, backend, batch, shape)
    return Subject(path, info, backend, batch, threads, sample_shape, data)


def control_for(subject: Subject, control: Path | None) -> tuple[Callable[[], Runner], tuple[int, ...], dict]:
    """The control on the subject's device: the built-in ONNX one on onnxruntime, or ``control`` (an artifact the
    subject's backend runs, with its own input shape). Returns (loader, per-sample input shape, description)."""
    backend = get_backend(subject.backend)
    if control is not None:
        info, _, shape = resolve_artifact(control, subject.backend, subject.batch)
        desc = {"kind": "file", "name": control.name, "sha256": file_sha256(control), "format": info.format}
        return (lambda: backend(control, threads=subject.threads)), shape, desc
    ort = "onnxruntime-cpu" if backend.device == "cpu" else "onnxruntime-cuda"
    data = control_model_bytes(subject.input_shape)
    try:
        BACKENDS[ort](data, threads=subject.threads)
    except KDCompressError as e:
        raise KDCompressError(f"the built-in control model runs on {ort}, which is unusable here ({e.message})",
                              "pass --control FILE: a small model the artifact's backend runs") from None
    desc = {"kind": CONTROL_VERSION, "backend": ort, "sha256": hashlib.sha256(data).hexdigest()}
    return (lambda: BACKENDS[ort](data, threads=subject.threads)), subject.input_shape, desc


def measure(subject: Subject, repetitions: int, control: Path | None = None, iters: int | None = None,
            block_warmup: int | None = None) -> dict:
    """Paired latency samples of ``subject`` and the control, and the subject's accuracy when it has data."""
    from kdcompress.report.environment import environment

    test = None
    if subject.data is not None:  # loaded (and its shape checked) before the timing, not after
        test = subject.data.load(subject.input_shape)
        if tuple(test[0].shape[1:]) != subject.input_shape:
            raise KDCompressError(f"the data's images are {list(test[0].shape[1:])}, the model takes "
                                  f"{list(subject.input_shape)}", "check --data (and --shape)")
    backend = get_backend(subject.backend)
    candidate = backend(subject.artifact, threads=subject.threads)  # loads once here: a bad file fails fast
    make_control, control_shape, control_desc = control_for(subject, control)
    rng = np.random.default_rng(0)
    x = rng.random((subject.batch, *subject.input_shape), dtype=np.float32)
    x_control = rng.random((subject.batch, *control_shape), dtype=np.float32)
    t0 = time.time()
    samples = measure_paired(lambda: backend(subject.artifact, threads=subject.threads), make_control, x, x_control,
                             repetitions, iters=iters, block_warmup=block_warmup)
    record = {**subject.describe(), "sha256": file_sha256(subject.artifact), "control": control_desc,
              "samples": samples.to_json(), "seconds": round(time.time() - t0, 2), "accuracy": None,
              "environment": environment()}
    if test is not None:
        record["accuracy"] = {"value": artifact_accuracy(candidate, subject.info, test), "samples": len(test[1]),
                              "data": subject.data.to_json()}
    return record


def save_baseline(subject: Subject, out: Path, repetitions: int, control: Path | None = None) -> dict:
    """Measure ``subject`` and write the baseline file ``out`` (atomically)."""
    record = {"kind": BASELINE_KIND, "version": BASELINE_VERSION, **measure(subject, repetitions, control)}
    write_json(out, record)
    return record


def load_baseline(path: Path) -> dict:
    if not path.is_file():
        raise KDCompressError(f"baseline not found: {path}", "make one with `kdcompress baseline save`")
    rec = read_json(path)
    if not isinstance(rec, dict) or rec.get("kind") != BASELINE_KIND:
        raise KDCompressError(f"{path} is not a kdcompress baseline", "make one with `kdcompress baseline save`")
    if rec.get("version") != BASELINE_VERSION:
        raise KDCompressError(f"{path} is baseline format {rec.get('version')}; this kdcompress reads "
                              f"{BASELINE_VERSION}", "save the baseline again with this version")
    try:
        for dotted in REQUIRED:
            node = rec
            for part in dotted.split("."):
                node = node[part]
        PairedSamples.from_json(rec["samples"])
        if rec.get("accuracy"):
            float(rec["accuracy"]["value"])
            TestData.from_json(rec["accuracy"]["data"])
    except (KeyError, TypeError, ValueError) as e:
        raise KDCompressError(f"{path}: baseline is missing or has a bad field ({e})",
                              "save the baseline again with `kdcompress baseline save`") from None
    return rec


def refuse_mismatch(subject: Subject, baseline: dict, control: Path | None) -> None:
    """One line, before anything is measured, when the baseline measured something else."""
    now = subject.describe()
    for k in MUST_MATCH:
        if now[k] != baseline[k]:
            raise KDCompressError(
                f"the baseline was measured with {k} {baseline[k]}, this check would use {k} {now[k]}: the latencies "
                "are not comparable", f"check with the baseline's {k}, or save a new baseline")
    if (control is None) != (baseline["control"]["kind"] != "file"):
        raise KDCompressError("the baseline and this check use different control models",
                              f"{'pass' if control is None else 'drop'} --control as when the baseline was saved")
    if control is not None and file_sha256(control) != baseline["control"]["sha256"]:
        raise KDCompressError(f"--control {control.name} is not the control file the baseline was saved with",
                              "pass the same control file, or save a new baseline")
    if control is None:
        built_in = hashlib.sha256(control_model_bytes(subject.input_shape)).hexdigest()
        if (baseline["control"]["kind"], baseline["control"]["sha256"]) != (CONTROL_VERSION, built_in):
            raise KDCompressError(f"the baseline's built-in control ({baseline['control']['kind']} "
                                  f"{baseline['control']['sha256'][:12]}) is not this kdcompress's ({CONTROL_VERSION} "
                                  f"{built_in[:12]})", "save the baseline again")


def check(subject: Subject, baseline: dict, policy: Check, control: Path | None = None) -> tuple[Verdict, dict]:
    """Measure ``subject`` again, with the settings of ``baseline`` (a :func:`load_baseline` record), and judge it;
    while too noisy to decide, double the repetitions up to ``policy.max_repetitions`` and judge again (each look at
    α / looks). Returns (verdict, fresh)."""
    refuse_mismatch(subject, baseline, control)
    if subject.data is not None and baseline.get("accuracy"):
        was = baseline["accuracy"]["data"]["spec"]
        if subject.data.to_json()["spec"] != was:
            raise KDCompressError(f"--data {subject.data.spec} is not the data the baseline's accuracy was measured "
                                  f"on ({was}): the accuracies are not comparable", "drop --data to re-use the "
                                  "baseline's, or save a new baseline")
    if subject.data is None and baseline.get("accuracy"):  # the baseline's own test data, unless told otherwise
        subject = replace(subject, data=TestData.from_json(baseline["accuracy"]["data"]))
    base = PairedSamples.from_json(baseline["samples"])
    alpha = policy.alpha_per_look
    fresh = measure(subject, policy.repetitions, control, base.iters, base.block_warmup)
    verdict, looks = compare(fresh, baseline, policy, alpha), 1
    while verdict.latency.status == "inconclusive" and verdict.latency.repetitions < policy.max_repetitions:
        have = verdict.latency.repetitions
        more = measure(replace(subject, data=None), min(have, policy.max_repetitions - have), control, base.iters,
                       base.block_warmup)
        samples = PairedSamples.from_json(fresh["samples"]).extended(PairedSamples.from_json(more["samples"]))
        fresh = {**fresh, "samples": samples.to_json(), "seconds": fresh["seconds"] + more["seconds"]}
        looks += 1
        verdict = compare(fresh, baseline, policy, alpha, looks)
    return verdict, fresh
