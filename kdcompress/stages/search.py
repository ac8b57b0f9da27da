"""The search stage: students within the budget, ranked training-free (``search/top.json``), or the teacher's own
architecture for a Born-Again run."""

from __future__ import annotations

from kdcompress.search import search
from kdcompress.search.evolution import born_again
from kdcompress.session import Session
from kdcompress.stages.base import Stage


def run(s: Session) -> dict:
    t = s.teacher_record
    backend = s.run.manifest["search_backend"]
    if s.profile.search.student == "same":
        top = born_again(s.run.folder("search"), s.profile, backend, t.params, t.flops)
    else:
        top = search(s.job, s.profile, t, backend, s.run.folder("search"), s.progress)
    return {"top": [f"{c.space}:{c.genes}" for c in top.top]}


STAGE = Stage("search", ("search",), run=run)
