"""Aging evolution (Real et al., AAAI 2019) over the student spaces, under a budget of params and *measured*
latency on the target backend, ranked by a zero-cost proxy (DESIGN §4).

Latency is budgeted as a ratio to the teacher, both timed interleaved in the same few hundred milliseconds: on a
shared machine absolute timings drift by 1.5x from one minute to the next (seen on our 2-core CI machine), and a
candidate timed in a fast phase against a teacher timed in a slow one would pass a budget it does not meet.
"""

from __future__ import annotations

import collections
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from kdcompress.bench import interleaved_latency
from kdcompress.bench.backends import BACKENDS, Runner
from kdcompress.data import DataSplits, Preprocess
from kdcompress.errors import KDCompressError, lookup
from kdcompress.export.onnx import onnx_bytes
from kdcompress.models.load import Teacher
from kdcompress.models.pruning import PRUNED_FAMILY, PruningSource, check_prunable
from kdcompress.models.students import build_student
from kdcompress.profiles import Profile
from kdcompress.run import Progress, atomic_path, write_json
from kdcompress.search.probe import ProxyBatch, proxy_batches
from kdcompress.search.proxies import PROXIES, TEACHER_PROXIES, count_flops, score_batches
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
    latency_ratio: float | None  # p50 / teacher p50, timed interleaved
    feasible: bool
    reason: str | None = None
    scores: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SearchContext:
    """Everything fixed for one search: the scoring batches with the teacher's signals, budget and backend."""

    batches: list[ProxyBatch]
    in_channels: int
    num_classes: int
    max_params: float | None
    max_flops: float | None
    max_latency_ratio: float | None
    backend: str
    threads: int
    batch: int
    proxy: str  # ranks the candidates
    seed: int
    teacher_runner: Runner
    also_score: list[str] = field(default_factory=list)  # reported beside ``proxy``, for comparison
    spaces: list[str] = field(default_factory=list)
    pruning: PruningSource | None = None  # the teacher, when the pruned-teacher space is searched
    latency_cache: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def x(self) -> torch.Tensor:
        return self.batches[0].x


def relative_latency(artifact: bytes | Path, ctx: SearchContext) -> tuple[float, float]:
    """(p50 ms, p50 / teacher p50) of an ONNX model, timed interleaved with the teacher on the search backend."""
    runner = BACKENDS[ctx.backend](artifact, threads=ctx.threads)
    x = np.zeros((ctx.batch, *ctx.x.shape[1:]), dtype=np.float32)
    lat = interleaved_latency({"teacher": ctx.teacher_runner, "candidate": runner}, x, **SEARCH_TIMING)
    return lat["candidate"].p50, lat["candidate"].p50 / lat["teacher"].p50


def evaluate(cand: Candidate, ctx: SearchContext) -> Scored:
    """Size and latency constraints first (cheap to expensive), then the proxy score for feasible candidates."""
    torch.manual_seed(ctx.seed)
    genes = cand.as_dict()
    try:
        student = build_student(cand.family, genes, ctx.in_channels, ctx.num_classes, ctx.pruning).eval()
    except KDCompressError as e:  # e.g. a pruning criterion that finds nothing to cut at these genes
        return Scored(cand.family, genes, 0, 0, None, None, False, str(e))
    n_params = sum(p.numel() for p in student.parameters())
    n_flops = count_flops(student, ctx.x[:1])
    if ctx.max_params is not None and n_params > ctx.max_params:
        return Scored(cand.family, genes, n_params, n_flops, None, None, False,
                      f"params {n_params} > {ctx.max_params:.0f}")
    if ctx.max_flops is not None and n_flops > ctx.max_flops:
        return Scored(cand.family, genes, n_params, n_flops, None, None, False,
                      f"flops {n_flops} > {ctx.max_flops:.0f} (pre-filter, latency not measured)")
    if cand.key not in ctx.latency_cache:
        ctx.latency_cache[cand.key] = relative_latency(onnx_bytes(student, ctx.x[:1]), ctx)
    latency, ratio = ctx.latency_cache[cand.key]
    if ctx.max_latency_ratio is not None and ratio > ctx.max_latency_ratio:
        return Scored(cand.family, genes, n_params, n_flops, latency, ratio, False,
                      f"latency ratio {ratio:.3f} > {ctx.max_latency_ratio}")
    scores = {  # every proxy sees the same student, at the init it asks for
        name: score_batches(name, ctx.batches, cand.family, genes, ctx.in_channels, ctx.num_classes, ctx.pruning)
        for name in [ctx.proxy, *ctx.also_score]
    }
    return Scored(cand.family, genes, n_params, n_flops, latency, ratio, True, scores=scores)


def pruning_source(teacher: Teacher, example: torch.Tensor, progress: Progress) -> PruningSource | None:
    """The teacher as a pruning source, or None (with one line saying why) when DepGraph cannot prune it."""
    try:
        check_prunable(teacher.module, teacher.kind)
        source = PruningSource(teacher.module, example)
        source.build({"ratio": 0.5, "importance": "l1", "global": 0})  # fails here, once, if it fails at all
        return source
    except KDCompressError as e:
        progress.note(f"pruned-teacher space skipped: {e}")
        return None


def prepare_context(
    teacher: Teacher, data: DataSplits, prep: Preprocess, profile: Profile, backend: str, teacher_artifact: Path,
    teacher_params: int, teacher_flops: int, seed: int, progress: Progress | None = None,
) -> SearchContext:
    cfg = profile.search
    spaces, pruning = list(cfg.space), None
    if PRUNED_FAMILY in spaces:
        pruning = pruning_source(teacher, prep(data.x_train[:2]), progress or Progress())
        if pruning is None:
            spaces.remove(PRUNED_FAMILY)
            if not spaces:
                raise KDCompressError("the only search space, pruned-teacher, cannot be used with this teacher",
                                      "add a student family: --set search.space=[resnet,mobilenetv2,vgg]")
    lookup(PROXIES, cfg.proxy, "proxy")
    batches = proxy_batches(
        teacher, data.x_train, data.y_train, prep, cfg.proxy_batches, cfg.proxy_batch, cfg.teacher_init, seed,
        with_teacher=bool(TEACHER_PROXIES & {cfg.proxy, *cfg.also_score}),
    )
    budget = profile.budget
    return SearchContext(
        batches=batches, in_channels=data.input_shape[0], num_classes=data.num_classes,
        max_params=budget.params_ratio * teacher_params if budget.params_ratio else None,
        # teacher_flops is 0 when the teacher's FLOPs could not be counted: then no pre-filter
        max_flops=FLOPS_SLACK * budget.latency_ratio * teacher_flops if budget.latency_ratio and teacher_flops else None,
        max_latency_ratio=budget.latency_ratio,
        backend=backend, threads=profile.target.threads, batch=profile.target.batch, proxy=cfg.proxy, seed=seed,
        also_score=[p for p in cfg.also_score if p != cfg.proxy], spaces=spaces, pruning=pruning,
        teacher_runner=BACKENDS[backend](teacher_artifact, threads=profile.target.threads),
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
                f"(max latency ratio {ctx.max_latency_ratio}, max params {ctx.max_params})",
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
    teacher_artifact: Path, teacher_params: int, teacher_flops: int, seed: int = 0,
    progress: Progress | None = None,
) -> list[Scored]:
    """The search stage: write ``candidates.jsonl`` and ``top.json`` under ``out_dir``; return the top-k."""
    cfg = profile.search
    ctx = prepare_context(
        teacher, data, prep, profile, backend, teacher_artifact, teacher_params, teacher_flops, seed, progress
    )
    feasible = aging_evolution(
        ctx, ctx.spaces, cfg.population, cfg.iterations, cfg.tournament, seed, out_dir / "candidates.jsonl", progress
    )
    top = sorted(feasible, key=lambda s: s.scores[cfg.proxy], reverse=True)[: cfg.top_k]
    write_json(out_dir / "top.json", {
        "proxy": cfg.proxy, "teacher_init": cfg.teacher_init, "backend": backend,
        "max_latency_ratio": ctx.max_latency_ratio, "max_params": ctx.max_params, "max_flops": ctx.max_flops,
        "evaluated": len(feasible), "top": [s.to_json() for s in top],
    })
    return top
