"""The distill stage: every pick of the search (and, with ``--baselines``, the recipes' pruned teachers) trained
from the teacher (``students/<id>/``)."""

from __future__ import annotations

from kdcompress.baselines import TRAINED, PruneAndTrain
from kdcompress.distill import distill
from kdcompress.errors import KDCompressError
from kdcompress.profiles import KDLoss, Losses
from kdcompress.session import Session
from kdcompress.stages.base import Stage


def trained_baselines(s: Session) -> list[PruneAndTrain]:
    """The pruning recipes to train, when ``--baselines`` asked for them and the teacher can be cut (else one
    line says why, once)."""
    if not s.inputs.baselines:
        return []
    try:  # DepGraph needs an nn.Module teacher, and must be able to cut it: tried once, here
        s.pruning.build({"ratio": TRAINED[0].ratio, "importance": "l2", "global": 0})
    except KDCompressError as e:
        if not s.run.manifest.get("baseline_note"):
            s.progress.note(f"baselines: the Torch-Pruning recipes are skipped ({e.message}); teacher-int8 runs")
            s.run.manifest["baseline_note"] = e.message
        return []
    return list(TRAINED)


def run(s: Session) -> dict:
    shape, classes = s.data.input_shape, s.data.num_classes
    jobs = [(sid, pick.spec(shape[0], classes), s.profile.distill) for sid, pick in s.top().students()]
    for b in trained_baselines(s):
        # the recipes train as their users would: Hinton KD (the profile's settings, if it has them) or, for plain
        # fine-tuning, cross-entropy alone — whatever loss our own students use
        kd = s.profile.distill.loss.kd or KDLoss()
        kd = kd if b.kd else kd.model_copy(update={"alpha": 0.0})
        jobs.append((b.model, b.spec(shape[0], classes), s.profile.distill.model_copy(update={"loss": Losses(kd=kd)})))
    results = {}
    for sid, spec, cfg in jobs:
        r = distill(s.job, spec, cfg, s.run.folder("students", sid), s.progress)
        results[sid] = {"val_accuracy": r.best_val_accuracy, "epochs": r.epochs_run}
    return {"students": results}


STAGE = Stage("distill", ("students",), run=run)
