"""Aging evolution (Real et al., AAAI 2019) over the student spaces, under a budget of params and *measured*
latency on the target backend, ranked by a zero-cost proxy (DESIGN §4).
"""

from __future__ import annotations

import collections
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from kdcompress.bench import measure_latency
from kdcompress.bench.backends import BACKENDS
from kdcompress.data import DataSplits, Preprocess
from kdcompress.errors import KDCompressError, lookup
from kdcompress.export.onnx import onnx_bytes
from kdcompress.models.load import Teacher
from kdcompress.models.students import build_student
from kdcompress.profiles import Profile
from kdcompress.run import Progress, atomic_path, write_json
from kdcompress.search.probe import Signals, TeacherProbe, gaussian_init_
from kdcompress.search.proxies import PROXIES, count_flops
from kdcompress.search.space import Candidate, get_space

# Quick timing during search; the bench stage measures the shipped artifacts properly.
SEARCH_TIMING = {"warmup": 20, "iters": 60, "repeats": 3}
# Before paying for a latency measurement, reject candidates whose FLOPs exceed the latency budget's share of the
# teacher's FLOPs by this factor: passing would need them to run that much more efficiently per FLOP than the
# teacher, and smaller networks are less efficient per FLOP, not more.
FLOPS_SLACK = 2.0


@dataclass
class Scored:
    """One evaluated candidate, as logged to ``candidates.jsonl``."""

    space: str
    genes: dict
    params: int
    flops: int
    latency_ms: float | None
    feasible: bool
    reason: str | None = None
    scores: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SearchContext:
    """Everything fixed for one search: the scoring batch, teacher signals, budget and backend."""

    x: torch.Tensor
    y: torch.Tensor
    teacher_signals: Signals | None
    in_channels: int
    num_classes: int
    max_params: float | None
    max_flops: float | None
    max_latency_ms: float | None
    backend: str
    threads: int
    batch: int
    proxy: str
    seed: int
    latency_cache: dict[str, float] = field(default_factory=dict)


def quick_latency_ms(
    artifact: bytes | Path, input_shape: tuple[int, ...], backend: str, threads: int = 1, batch: int = 1
) -> float:
    """p50 latency (ms) of an ONNX model on ``backend`` at ``batch``: the quick timing the search budgets with."""
    runner = BACKENDS[backend](artifact, threads=threads)
    x = np.zeros((batch, *input_shape), dtype=np.float32)
    return measure_latency(runner, x, **SEARCH_TIMING).p50


def evaluate(cand: Candidate, ctx: SearchContext) -> Scored:
    """Size and latency constraints first (cheap to expensive), then the proxy score for feasible candidates."""
    torch.manual_seed(ctx.seed)
    student = build_student(cand.family, cand.as_dict(), ctx.in_channels, ctx.num_classes).eval()
    n_params = sum(p.numel() for p in student.parameters())
    n_flops = count_flops(student, ctx.x[:1])
    genes = cand.as_dict()
    if ctx.max_params is not None and n_params > ctx.max_params:
        return Scored(cand.family, genes, n_params, n_flops, None, False, f"params {n_params} > {ctx.max_params:.0f}")
    if ctx.max_flops is not None and n_flops > ctx.max_flops:
        return Scored(cand.family, genes, n_params, n_flops, None, False,
                      f"flops {n_flops} > {ctx.max_flops:.0f} (pre-filter, latency not measured)")
    latency = ctx.latency_cache.get(cand.key)
    if latency is None:
        latency = ctx.latency_cache[cand.key] = quick_latency_ms(
            onnx_bytes(student, ctx.x[:1]), tuple(ctx.x.shape[1:]), ctx.backend, ctx.threads, ctx.batch
        )
    if ctx.max_latency_ms is not None and latency > ctx.max_latency_ms:
        return Scored(cand.family, genes, n_params, n_flops, latency, False,
                      f"latency {latency:.3f} ms > {ctx.max_latency_ms:.3f} ms")
    gaussian_init_(student, torch.Generator().manual_seed(ctx.seed))
    score = PROXIES[ctx.proxy](ctx.teacher_signals, student, ctx.x, ctx.y)
    return Scored(cand.family, genes, n_params, n_flops, latency, True, scores={ctx.proxy: score})


def prepare_context(
    teacher: Teacher, data: DataSplits, prep: Preprocess, profile: Profile, backend: str, teacher_latency_ms: float,
    teacher_params: int, teacher_flops: int, seed: int,
) -> SearchContext:
    cfg = profile.search
    lookup(PROXIES, cfg.proxy, "proxy")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.y_train), generator=g)[: cfg.proxy_batch]
    x, y = prep(data.x_train[idx]), data.y_train[idx]
    signals = None
    if cfg.proxy == "diswot":
        probe = TeacherProbe(teacher, x[:2], batch_stats=cfg.teacher_init == "random")
        if cfg.teacher_init == "random":
            probe.reinit_(torch.Generator().manual_seed(seed))
        signals = probe.signals(x, y)
    budget = profile.budget
    return SearchContext(
        x=x, y=y, teacher_signals=signals, in_channels=data.input_shape[0], num_classes=data.num_classes,
        max_params=budget.params_ratio * teacher_params if budget.params_ratio else None,
        # teacher_flops is 0 when the teacher's FLOPs could not be counted: then no pre-filter
        max_flops=FLOPS_SLACK * budget.latency_ratio * teacher_flops if budget.latency_ratio and teacher_flops else None,
        max_latency_ms=budget.latency_ratio * teacher_latency_ms if budget.latency_ratio else None,
        backend=backend, threads=profile.target.threads, batch=profile.target.batch, proxy=cfg.proxy, seed=seed,
    )


def aging_evolution(
    ctx: SearchContext, spaces: list[str], population: int, iterations: int, tournament: int, seed: int,
    log: Path, progress: Progress | None = None,
) -> list[Scored]:
    """Run aging evolution; log every scored candidate to ``log`` (JSON lines); return the feasible ones, unique."""
    rng = random.Random(seed)
    space_objs = [get_space(s) for s in spaces]
    seen: dict[str, Scored] = {}
    pop: collections.deque[tuple[Candidate, Scored]] = collections.deque()
    progress = progress or Progress()
    progress.start("search", population + iterations)

    with atomic_path(log) as tmp, tmp.open("w") as f:

        def score(cand: Candidate) -> Scored:
            if cand.key not in seen:
                seen[cand.key] = evaluate(cand, ctx)
                f.write(json.dumps(seen[cand.key].to_json()) + "\n")
                f.flush()
            return seen[cand.key]

        attempts = 0
        while len(pop) < population and attempts < 20 * population:
            attempts += 1
            space = rng.choice(space_objs)
            cand: Candidate | None = space.sample(rng)
            s = score(cand)
            while not s.feasible and (cand := space.shrink(cand, rng)) is not None:
                s = score(cand)
            if s.feasible and cand.key not in {c.key for c, _ in pop}:
                pop.append((cand, s))
                progress.advance(note=f"{len(seen)} scored")
        if not pop:
            raise KDCompressError(
                f"no candidate in {spaces} meets the budget after {attempts} tries "
                f"(max latency {ctx.max_latency_ms} ms, max params {ctx.max_params})",
                "relax budget.latency_ratio / params_ratio in the profile",
            )
        for _ in range(iterations):
            contenders = rng.sample(list(pop), min(tournament, len(pop)))
            parent = max(contenders, key=lambda cs: cs[1].scores[ctx.proxy])[0]
            space = get_space(parent.family)
            child = space.mutate(parent, rng)
            s = score(child)
            if s.feasible:
                pop.append((child, s))
                pop.popleft()
            progress.advance(note=f"{len(seen)} scored")
    progress.stop()
    return [s for s in seen.values() if s.feasible]


def search(
    teacher: Teacher, data: DataSplits, prep: Preprocess, profile: Profile, out_dir: Path, backend: str,
    teacher_latency_ms: float, teacher_params: int, teacher_flops: int, seed: int = 0,
    progress: Progress | None = None,
) -> list[Scored]:
    """The search stage: write ``candidates.jsonl`` and ``top.json`` under ``out_dir``; return the top-k."""
    cfg = profile.search
    ctx = prepare_context(
        teacher, data, prep, profile, backend, teacher_latency_ms, teacher_params, teacher_flops, seed
    )
    feasible = aging_evolution(
        ctx, cfg.space, cfg.population, cfg.iterations, cfg.tournament, seed, out_dir / "candidates.jsonl", progress
    )
    top = sorted(feasible, key=lambda s: s.scores[cfg.proxy], reverse=True)[: cfg.top_k]
    write_json(out_dir / "top.json", {
        "proxy": cfg.proxy, "teacher_init": cfg.teacher_init, "backend": backend,
        "teacher_latency_ms": teacher_latency_ms, "max_latency_ms": ctx.max_latency_ms, "max_params": ctx.max_params,
        "evaluated": len(feasible), "top": [s.to_json() for s in top],
    })
    return top
