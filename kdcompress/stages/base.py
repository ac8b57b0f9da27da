"""A stage of the pipeline: its name, the function that runs it over a :class:`~kdcompress.session.Session`, and the
files it owns in the run directory (:class:`~kdcompress.run.StageFiles`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kdcompress.run import StageFiles
from kdcompress.session import Session


@dataclass(frozen=True)
class Stage(StageFiles):
    """``run(session)`` does the stage's work and returns what the manifest records of it (or None)."""

    run: Callable[[Session], dict[str, Any] | None] = field(default=lambda s: None, kw_only=True)
