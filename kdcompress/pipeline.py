"""``shrink`` = the stages in order (DESIGN §1). Each stage (:mod:`kdcompress.stages`) is a function over a
:class:`Session`: it reads the records earlier stages wrote, writes its own outputs atomically and marks itself done,
so any stage can be re-run alone and ``--resume`` skips finished ones.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from kdcompress.distill.distributed import barrier, rank_and_world
from kdcompress.errors import KDCompressError
from kdcompress.records import Result
from kdcompress.run import Progress, RunDir, differences, read_json
from kdcompress.session import Inputs, Session
from kdcompress.stages import BY_NAME, STAGES, Stage

__all__ = ["Inputs", "Session", "open_run", "run_stage", "run_stage_data_parallel", "run_until", "search_candidates",
           "shrink"]


def open_run(path: Path | str, resume: bool = False, must_exist: bool = False) -> RunDir:
    """A run directory with the pipeline's stages (see :meth:`RunDir.open`)."""
    return RunDir.open(path, resume, must_exist, STAGES)


def _stage(session: Session, stage: Stage, force: bool = False) -> None:
    name = stage.name
    if session.run.done(name) and not force:
        changed = session.run.changed_outputs(name)
        if not changed:
            return
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        session.progress.note(f"{changed[0]}{more} changed or went missing since stage {name} wrote it: "
                              f"running {name} and the stages after it again")
        session.run.invalidate_from(name)
    t0 = time.time()
    info = stage.run(session) or {}
    session.run.mark_done(name, time.time() - t0, **info)


def run_stage(session: Session, name: str, force: bool = True) -> None:
    """Run one stage (re-running it when ``force``) and invalidate the stages after it."""
    session.run.require(name)
    if force:
        session.run.invalidate_from(name)
    _stage(session, BY_NAME[name], force)


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
    info = BY_NAME[name].run(session) or {}
    if rank == 0:
        session.run.mark_done(name, time.time() - t0, **info)
    return rank == 0


def run_until(
    inputs: Inputs, out: Path | str, last: str, resume: bool = False, progress: Progress | None = None
) -> RunDir:
    """Run the stages on ``inputs`` into ``out`` up to and including ``last``, skipping finished ones."""
    run = open_run(out, resume=resume)
    recorded = run.manifest.get("inputs")
    if recorded is not None and recorded != inputs.to_json() and any(run.done(s.name) for s in STAGES):
        diff = differences(recorded, inputs.to_json())
        shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
        raise KDCompressError(f"{out} was started with other inputs or profile ({shown})",
                              "resume with the same arguments, or choose another --out")
    run.manifest["inputs"] = inputs.to_json()
    run.save()
    session = Session(run, progress or Progress())
    for stage in STAGES:
        _stage(session, stage)
        if stage.name == last:
            break
    return run


def read_result(run: Path | str) -> Result:
    """A finished run's ``result.json``."""
    path = Path(run) / "result.json"
    return Result.from_json(read_json(path), str(path))


def shrink(inputs: Inputs, out: Path | str, resume: bool = False, progress: Progress | None = None) -> Result:
    """Run every stage on ``inputs`` into ``out``; return the result (also in ``out/result.json``)."""
    run = run_until(inputs, out, "report", resume, progress)
    return read_result(run.path)


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
