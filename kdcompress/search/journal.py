"""The search's journal: every latency measurement and proxy score, one JSON line per candidate, appended and
flushed by the parent process as results arrive (``search/journal.jsonl``).

A search killed outright (SIGKILL, a power cut) is resumed from it: the evolution is seeded, so re-running it with
the journal's measurements in the caches replays the same moves at no cost and goes on where the kill struck — only
the candidates in flight are measured again. The first line holds the reference's latency ratio measured when the
search began, so that the replayed ratios and the new ones share one scale. A torn last line is ignored.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from kdcompress.records import Scored
from kdcompress.run import Progress
from kdcompress.search.context import SearchContext

JOURNAL = "journal.jsonl"


def open_journal(ctx: SearchContext, path: Path, progress: Progress | None = None) -> SearchContext:
    """``ctx`` recording into the journal at ``path``, with the caches (and reference ratio) of one already there."""
    latency, scores, reference = dict(ctx.latency_cache), dict(ctx.score_cache), ctx.reference_ratio
    journaled: dict[str, str] = {}
    text = path.read_text() if path.exists() else ""
    if text and not text.endswith("\n"):
        with path.open("a") as f:  # end the torn line, so the next entry starts a line of its own
            f.write("\n")
    lines = text.splitlines()
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # the line a kill cut short
            continue
        if "reference_ratio" in entry:
            reference = entry["reference_ratio"]
            continue
        journaled[entry["key"]] = line
        if entry.get("latency") is not None:
            latency[entry["key"]] = tuple(entry["latency"])
        if entry.get("scores"):
            scores[entry["key"]] = {**scores.get(entry["key"], {}), **entry["scores"]}
    if latency or scores:
        (progress or Progress()).note(f"search resumed from its journal: {len(latency)} candidates already measured")
    if not lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"reference_ratio": reference}) + "\n")
    return dataclasses.replace(ctx, latency_cache=latency, score_cache=scores, reference_ratio=reference,
                               journal=path, journaled=journaled)


def remember(ctx: SearchContext, key: str, s: Scored) -> None:
    """Record what evaluating candidate ``key`` measured (in the parent: results from workers land here too)."""
    if s.latency_ms is not None:
        ctx.latency_cache[key] = (s.latency_ms, s.latency_ratio)  # type: ignore[assignment]
    if s.scores:
        ctx.score_cache[key] = {**ctx.score_cache.get(key, {}), **s.scores}
    if s.latency_ms is not None or s.scores:
        _append(ctx, key, None if s.latency_ms is None else [s.latency_ms, s.latency_ratio], s.scores)


def remember_scores(ctx: SearchContext, key: str, scores: dict[str, float]) -> None:
    """Record scores computed outside an evaluation (the cut sweep's fidelity), so a resumed search reads them."""
    ctx.score_cache[key] = {**ctx.score_cache.get(key, {}), **scores}
    _append(ctx, key, None, scores)


def _append(ctx: SearchContext, key: str, latency: list | None, scores: dict) -> None:
    if ctx.journal is None:
        return
    line = json.dumps({"key": key, "latency": latency, "scores": scores})
    if ctx.journaled.get(key) == line:  # replayed from the journal: nothing new
        return
    ctx.journaled[key] = line
    with ctx.journal.open("a") as f:
        f.write(line + "\n")
