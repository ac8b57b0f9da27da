"""A pick near the true best (``search.refine``): after the training-free ranking, a small fixed training budget
spent on the top few candidates — successive halving (Jamieson & Talwalkar, AISTATS 2016) with short distillation
runs on a subset of the training images.

Every candidate of the first rung is distilled for ``epochs`` on ``samples`` images; the better half by validation
accuracy goes on with twice the epochs (each rung a fresh run from the candidate's own init, so each rung's
ranking is a complete short schedule, not a truncated long one), until no more survive than are to be picked.
The cost, in units of one full distillation of the profile, is ``Σ rung epochs × survivors × samples /
(epochs × training images)``; it is recorded with the pick.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kdcompress.distill.trainer import distill
from kdcompress.job import Job
from kdcompress.profiles import Profile
from kdcompress.records import Scored, StudentSpec
from kdcompress.run import Progress
from kdcompress.search.cuts import candidate_identity

C = TypeVar("C")


@dataclass
class Halving:
    """The outcome: candidates in their final order (survivors of the last rung first, best first, then those
    dropped earlier, latest first) and what each rung measured, as ``[(epochs, {index: accuracy})]``."""

    order: list[int]
    rungs: list[tuple[int, dict[int, float]]]

    def epochs_spent(self) -> int:
        return sum(epochs * len(acc) for epochs, acc in self.rungs)


def successive_halving(candidates: Sequence[C], keep: int, epochs: int,
                       train: Callable[[C, int], float]) -> Halving:
    """Successive halving over ``candidates`` (in the ranking's order, which breaks ties) until at most ``keep``
    survive; ``train(candidate, epochs)`` returns the accuracy a short run reaches."""
    alive = list(range(len(candidates)))
    dropped: list[list[int]] = []
    rungs: list[tuple[int, dict[int, float]]] = []
    while len(alive) > keep:
        acc = {i: train(candidates[i], epochs) for i in alive}
        rungs.append((epochs, acc))
        ranked = sorted(alive, key=lambda i: -acc[i])  # stable: equal accuracies keep the ranking's order
        survivors = max(keep, math.ceil(len(alive) / 2))
        alive, out = ranked[:survivors], ranked[survivors:]
        dropped.append(out)
        epochs *= 2
    return Halving(alive + [i for out in reversed(dropped) for i in out], rungs)


def refine(ranked: list[Scored], keep: int, job: Job, profile: Profile, folder: Path,
           progress: Progress | None = None) -> tuple[list[Scored], dict]:
    """``ranked`` (best first) with its first ``search.refine.candidates`` reordered by successive halving; and a
    record of what was trained and what it cost (in full distillations of the profile)."""
    cfg = profile.search.refine
    assert cfg is not None
    head, tail = ranked[: cfg.candidates], ranked[cfg.candidates :]
    data = job.data
    samples = min(cfg.samples, len(data.y_train))
    # its own logit cache: the short runs train on the first ``samples`` images only
    short = dataclasses.replace(job, logit_cache=folder / "teacher_logits.pt")
    schedule = profile.distill.model_copy(update={"train_samples": samples, "patience": None})

    def train(s: Scored, epochs: int) -> float:
        spec = StudentSpec(s.space, s.genes, data.input_shape[0], data.num_classes)
        key = hashlib.sha1(candidate_identity(s.space, s.genes).encode()).hexdigest()[:10]
        run = folder / f"{s.space}-{key}-e{epochs}"  # a killed search resumes each short run where it stopped
        r = distill(short, spec, schedule.model_copy(update={"epochs": epochs}), run, progress)
        return r.best_val_accuracy

    halving = successive_halving(head, keep, cfg.epochs, train)
    full = profile.distill.epochs * min(len(data.y_train), profile.distill.train_samples or len(data.y_train))
    record = {
        "candidates": [{"space": s.space, "genes": s.genes} for s in head],
        "rungs": [{"epochs": e, "val_accuracy": {str(i): a for i, a in acc.items()}} for e, acc in halving.rungs],
        "order": halving.order,
        "cost_in_distillations": halving.epochs_spent() * samples / full,
    }
    return [head[i] for i in halving.order] + tail, record
