"""Aging evolution (Real et al., AAAI 2019) over the student spaces, ranked by a zero-cost proxy, under the budget
that :mod:`kdcompress.search.context` checks (DESIGN §4).

Candidates are evaluated in worker processes, ``workers`` at a time: each step draws that many children by
tournament and single-gene mutation from the current population, evaluates the new ones in parallel and adds them
in order, so a run is deterministic for a given seed and worker count as long as no candidate's measured latency sits
so close to the budget that timing noise flips it. A candidate already evaluated costs nothing in the evolution
(workers filling the first population may time a shared candidate twice; the first result counts).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import multiprocessing as mp
import os
import random
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from kdcompress.errors import KDCompressError
from kdcompress.job import Job
from kdcompress.models.pruning import BORN_AGAIN, PRUNED_FAMILY
from kdcompress.profiles import Profile
from kdcompress.records import Scored, SearchPick, TeacherRecord, TopFile
from kdcompress.run import Progress, atomic_path, write_json
from kdcompress.search.context import FLOPS_SLACK, SearchContext, evaluate, prepare_context, within_share
from kdcompress.search.cuts import candidate_identity, largest_cuts
from kdcompress.search.fidelity import FidelityProbe, probe_images
from kdcompress.search.journal import JOURNAL, open_journal, remember
from kdcompress.search.refine import refine
from kdcompress.search.space import Candidate, get_space

# The context a worker evaluates in: inherited by a forked worker, handed (pickled) to a spawned one.
_WORKER_CTX: SearchContext | None = None


def _evaluate_in_worker(cand: Candidate) -> Scored:
    assert _WORKER_CTX is not None
    return evaluate(cand, _WORKER_CTX)


def _sample_in_worker(job: tuple[str, int]) -> list[tuple[Candidate, Scored]]:
    """Sample a candidate of a space and shrink it one gene at a time until it fits (or cannot shrink): first,
    untimed, into the budget's size and FLOPs share (:func:`within_share`), then timing each step."""
    assert _WORKER_CTX is not None
    space, rng = get_space(job[0], _WORKER_CTX.x.shape[-1]), random.Random(job[1])
    first = space.sample(rng)
    while not within_share(first, _WORKER_CTX) and (smaller := space.shrink(first, rng)) is not None:
        first = smaller
    cand: Candidate | None = first
    tried = []
    while cand is not None:
        s = evaluate(cand, _WORKER_CTX)
        tried.append((cand, s))
        if s.feasible:
            break
        cand = space.shrink(cand, rng)
    return tried


def _init_worker(ctx: SearchContext | None = None) -> None:
    global _WORKER_CTX
    if ctx is not None:
        _WORKER_CTX = ctx
    torch.set_num_threads(1)
    # the CLI turns SIGTERM into a clean stop; a pool worker must just die when the pool terminates it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def default_workers(threads: int) -> int:
    """As many workers as there are cores for the backend's threads, each candidate timed on its own cores."""
    return max(1, (os.cpu_count() or 1) // max(1, threads))


def start_method() -> str | None:
    """How to start search workers: fork where it is safe (cheap: the context is inherited, not pickled), spawn on a
    machine with a CUDA GPU. There PyTorch's autograd engine starts device threads at the parent's first backward
    pass, and a forked child's own backward then fails ("Unable to handle autograd's threading in combination with
    fork-based multiprocessing"; seen on an H200)."""
    methods = mp.get_all_start_methods()
    if "fork" in methods and not torch.cuda.is_available():
        return "fork"
    return "spawn" if "spawn" in methods else None


@contextmanager
def worker_map(ctx: SearchContext, workers: int) -> Iterator[Callable]:
    """``map(fn, items)`` over ``workers`` processes that share ``ctx`` (in-process when ``workers`` is 1)."""
    global _WORKER_CTX
    _WORKER_CTX = ctx
    method = start_method()
    try:
        if workers <= 1 or method is None:
            yield lambda fn, items: [fn(i) for i in items]
        else:
            initargs = () if method == "fork" else (ctx,)
            with mp.get_context(method).Pool(workers, _init_worker, initargs) as pool:
                yield lambda fn, items: pool.map(fn, items, chunksize=1)
    finally:
        _WORKER_CTX = None


def aging_evolution(
    ctx: SearchContext, spaces: list[str], population: int, iterations: int, tournament: int, seed: int,
    log: Path, progress: Progress | None = None, workers: int = 1,
) -> list[Scored]:
    """Run aging evolution; log every evaluated candidate to ``log`` (JSON lines); return the feasible ones, unique.

    The population is filled with random samples shrunk into the budget, then ``iterations`` children follow.
    """
    rng = random.Random(seed)
    seen: dict[str, Scored] = {}
    pop: collections.deque[tuple[Candidate, Scored]] = collections.deque()
    progress = progress or Progress()
    progress.start("search", population + iterations)

    with atomic_path(log) as tmp, tmp.open("w") as f, worker_map(ctx, workers) as pmap:

        def record(cand: Candidate, s: Scored) -> None:
            if cand.key not in seen:
                seen[cand.key] = s
                f.write(json.dumps(s.to_json()) + "\n")
                remember(ctx, cand.key, s)

        attempts = 0
        while len(pop) < population and attempts < 20 * population:
            jobs = [(rng.choice(spaces), rng.randrange(2**31)) for _ in range(max(1, workers))]
            attempts += len(jobs)
            for tried in pmap(_sample_in_worker, jobs):
                for cand, s in tried:
                    record(cand, s)
                cand = tried[-1][0]
                s = seen[cand.key]  # the first evaluation of a candidate is the one that counts
                if s.feasible and len(pop) < population and cand.key not in {c.key for c, _ in pop}:
                    pop.append((cand, s))
                    progress.advance(note=f"{len(seen)} evaluated")
            f.flush()
        if not pop:
            raise KDCompressError(
                f"no candidate in {spaces} meets the budget after {attempts} tries "
                f"(max latency ratio {ctx.max_latency_ratio}, max params {ctx.max_params})",
                "relax budget.latency_ratio / params_ratio in the profile",
            )
        done = 0
        while done < iterations:
            children = []
            for _ in range(min(max(1, workers), iterations - done)):
                contenders = rng.sample(list(pop), min(tournament, len(pop)))
                parent = max(contenders, key=lambda cs: cs[1].scores[ctx.proxy])[0]
                children.append(get_space(parent.family, ctx.x.shape[-1]).mutate(parent, rng))
            new = list({c.key: c for c in children if c.key not in seen}.values())
            for cand, s in zip(new, pmap(_evaluate_in_worker, new)):
                record(cand, s)
            f.flush()
            for child in children:
                if seen[child.key].feasible:
                    pop.append((child, seen[child.key]))
                    pop.popleft()
            done += len(children)
            progress.advance(len(children), note=f"{len(seen)} evaluated")
    progress.stop()
    return [s for s in seen.values() if s.feasible]


def _identity(s: Scored) -> str:
    return candidate_identity(s.space, s.genes)


def origin_groups(spaces: list[str], pick: str) -> list[list[str]]:
    """The spaces each evolution runs over, in order: all in one (``pick`` = proxy), else the teacher's cuts apart
    from the family students — a proxy scores architectures at init, so it would rank a cut of the trained teacher
    as if it started from scratch, and one evolution would let either kind crowd the other out."""
    if pick == "proxy":
        return [spaces]
    derived = [s for s in spaces if s == PRUNED_FAMILY]
    fresh = [s for s in spaces if s != PRUNED_FAMILY]
    return [g for g in (derived, fresh) if g]


CUT_RANKS = ("fidelity", "params")  # search.cut_rank values that sweep the cuts rather than evolve them


def ranked_by(ctx: SearchContext, group: list[str], profile: Profile) -> SearchContext:
    """``ctx`` with the proxy that ranks ``group``: for the teacher's cuts searched apart (``search.cut_rank``
    fidelity or params), how close they stay to the teacher or the parameters they keep — a proxy scores a cut
    re-initialised, which throws away the trained weights that make it worth distilling — with the search proxy
    still scored beside it (:mod:`kdcompress.search.cuts`)."""
    cfg = profile.search
    if cfg.pick == "proxy" or group != [PRUNED_FAMILY] or cfg.cut_rank == "proxy":
        return ctx
    rank = cfg.cut_rank
    return dataclasses.replace(ctx, proxy=rank, also_score=[p for p in [cfg.proxy, *ctx.also_score] if p != rank])


def _nearest_miss(ctx: SearchContext, targets: list[float | None]) -> KDCompressError | None:
    """When no target is met by any kind of student: the fastest candidate measured, which says how close the
    machine lets a student come (a teacher that is already fast sits near the backend's latency floor)."""
    ratios = [t for t in targets if t is not None]
    if not ctx.latency_cache or not ratios:
        return None
    ratio, loosest = min(r for _, r in ctx.latency_cache.values()), max(ratios)
    return KDCompressError(
        f"no student meets latency ratio {loosest if len(targets) == 1 else targets} here: the fastest of the "
        f"{len(ctx.latency_cache)} candidates measured ran at {ratio:.2f}× the teacher",
        f"relax the budget (e.g. --set budget.latency_ratio={math.ceil(ratio * 1.2 * 100) / 100}); a teacher this "
        "fast may already be near this backend's latency floor",
    )


def born_again(out_dir: Path, profile: Profile, backend: str, teacher_params: int, teacher_flops: int) -> TopFile:
    """The search stage of a Born-Again run (``search.student: same``): no search; ``top.json`` names the teacher's
    own architecture (family ``born-again``, freshly initialised when it is built) as the one student."""
    pick = SearchPick(BORN_AGAIN, {}, teacher_params, teacher_flops, None, None, True)  # nothing timed: no search
    top = TopFile(top=(pick,), proxy=None, student="same", backend=backend, targets=profile.budget.targets,
                  within_budget=0)
    write_json(out_dir / "top.json", top.to_json())
    return top


def search(job: Job, profile: Profile, teacher: TeacherRecord, backend: str, out_dir: Path,
           progress: Progress | None = None) -> TopFile:
    """The search stage: write ``candidates.jsonl`` and ``top.json`` under ``out_dir``; return the latter.

    With several latency targets (``budget.latency_ratio: [0.3, 0.15]``), each target is searched under its own
    budget, once per origin (:func:`origin_groups`: an evolution for family students, the largest-first sweep of
    :mod:`kdcompress.search.cuts` for the teacher's cuts), and the ``top_k`` best candidates of each not already
    picked for a looser target are kept as ``search.pick`` says: the students of a front. Every evaluated candidate
    is logged with the target it was searched for.
    """
    cfg = profile.search
    ctx = prepare_context(job, profile, teacher, backend, progress)
    ctx = open_journal(ctx, out_dir / JOURNAL, progress)
    workers = cfg.workers or default_workers(profile.target.threads)
    targets = profile.budget.targets
    picks: list[tuple[float | None, Scored]] = []
    fidelity: FidelityProbe | None = None  # made when the first target ranks cuts by it
    missed: list[KDCompressError] = []
    within: set[str] = set()  # distinct feasible candidates over every target
    refined: list[dict] = []  # what search.refine trained, per target and origin
    with atomic_path(out_dir / "candidates.jsonl") as tmp, tmp.open("w") as log:
        for i, target in enumerate(targets):
            flops = FLOPS_SLACK * target * teacher.flops if target and teacher.flops else None
            ctx_t = dataclasses.replace(ctx, max_latency_ratio=target, max_flops=flops)
            chosen: list[Scored] = []
            errors: list[KDCompressError] = []
            for j, group in enumerate(origin_groups(ctx.spaces, cfg.pick)):
                if cfg.pick == "teacher-first" and chosen:
                    break
                part = out_dir / f".candidates.{i}.{j}.jsonl"
                ctx_g = ranked_by(ctx_t, group, profile)
                taken = {_identity(p) for _, p in picks} | {_identity(p) for p in chosen}
                try:
                    if ctx_g.proxy in CUT_RANKS and group == [PRUNED_FAMILY]:  # the best cuts that fit, swept
                        if ctx_g.proxy == "fidelity" and fidelity is None:
                            fidelity = FidelityProbe.of(job.teacher.logits, job.data.x_train, job.prep,
                                                        n=probe_images(teacher.flops), seed=job.seed)
                        wanted = cfg.top_k if cfg.refine is None else max(cfg.top_k, cfg.refine.candidates)
                        feasible = largest_cuts(ctx_g, wanted, taken, part, progress,
                                                fidelity if ctx_g.proxy == "fidelity" else None)
                        if not feasible:
                            raise KDCompressError(f"no cut of the teacher meets latency ratio {target}")
                    else:
                        feasible = aging_evolution(ctx_g, group, cfg.population, cfg.iterations, cfg.tournament,
                                                   job.seed, part, progress, workers)
                except KDCompressError as e:  # this target is out of reach for this group; maybe not for the other
                    errors.append(e)
                    part.unlink(missing_ok=True)
                    continue
                for line in part.read_text().splitlines():
                    log.write(json.dumps({**json.loads(line), "target": target}) + "\n")
                part.unlink()
                within.update(_identity(f) for f in feasible)
                ranked = sorted((s for s in feasible if _identity(s) not in taken), key=lambda s: s.scores[ctx_g.proxy],
                                reverse=True)
                if cfg.refine is not None and len(ranked) > cfg.top_k:
                    ranked, record = refine(ranked, cfg.top_k, job, profile, out_dir / "refine", progress)
                    refined.append({"target": target, "ranked_by": ctx_g.proxy, **record})
                chosen += ranked[: cfg.top_k]
            if not chosen and errors:
                missed.append(errors[0])
            picks += [(target, s) for s in chosen]
    if len(missed) == len(targets):
        raise _nearest_miss(ctx, targets) or missed[0]
    for e in missed:
        (progress or Progress()).note(f"a latency target was skipped: {e.message}")
    top = TopFile(
        top=tuple(SearchPick.of(s, target) for target, s in picks), proxy=cfg.proxy, pick=cfg.pick,
        cut_rank=cfg.cut_rank, teacher_init=cfg.teacher_init, backend=backend, max_latency_ratio=ctx.max_latency_ratio,
        targets=targets, max_params=ctx.max_params, max_flops=ctx.max_flops, max_train_flops=ctx.max_train_flops,
        reference_ratio=ctx.reference_ratio, workers=workers, within_budget=len(within),
        refine=refined if cfg.refine is not None else None,
        refine_cost_in_distillations=(sum(r["cost_in_distillations"] for r in refined)
                                      if cfg.refine is not None else None),
    )
    write_json(out_dir / "top.json", top.to_json())
    return top
