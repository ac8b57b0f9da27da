"""``result.json`` built once, from the stages' records: the teacher and one row per artifact of ours (student ×
precision) and per recipe, each with its measured latency and accuracy and the trade-off against the teacher."""

from __future__ import annotations

import dataclasses
from typing import Any

from kdcompress.profiles import latency_targets
from kdcompress.records import (
    PERCENTILES,
    RESULT_SCHEMA_VERSION,
    BenchFile,
    BenchRow,
    RecipeRow,
    Result,
    ResultRow,
    SearchPick,
    TeacherRow,
    Throughput,
    TopFile,
)
from kdcompress.report.pareto import pareto_front


def _percentiles(a: BenchRow) -> dict[str, float]:
    return {k: a.latency_ms[k] for k in PERCENTILES}


def _throughput(a: BenchRow, teacher: BenchRow | None) -> Throughput | None:
    """Images per second at the profile's throughput batch, and the ratio to the teacher's (None: not measured)."""
    if not a.throughput:
        return None
    t = a.throughput
    speedup = None
    if teacher is not None and teacher.throughput:
        speedup = t["throughput"] / teacher.throughput["throughput"]
    return Throughput(t["batch"], t["p50"], t["throughput"], speedup)


def _flags(precision: str, p50: float, parity: dict, twin: BenchRow | None, slower: bool, backend: str) -> list[str]:
    """What a person choosing an artifact must know: a reduced precision that does not pay, or does not match."""
    flags = []
    if slower:
        assert twin is not None
        flags.append(f"{precision} not faster than fp32 on {backend} ({p50:.3f} vs {twin.p50:.3f} ms p50)")
    if parity and not parity.get("passed", True):
        flags.append(f"{precision} outside parity tolerance vs PyTorch (top-1 agreement "
                     f"{parity['top1_agreement']:.3f}); see its test accuracy")
    return flags


def _student_row(sid: str, pick: SearchPick, a: BenchRow, tb: BenchRow, twin: BenchRow | None, budget: dict,
                 backend: str) -> ResultRow:
    loosest = latency_targets(budget["latency_ratio"])[0]
    speedup = tb.p50 / a.p50
    drop = tb.accuracy - a.accuracy
    parity = {k: a.parity[k] for k in ("max_abs_diff", "top1_agreement", "passed") if k in a.parity} if a.parity else {}
    ratio = 1 / speedup
    target = pick.target  # the latency ratio this student was searched for (None: Born-Again, no target)
    latency_ok = loosest is None or ratio <= loosest
    accuracy_ok = drop <= budget["max_accuracy_drop"]
    slower = a.precision != "fp32" and twin is not None and a.p50 >= twin.p50
    return ResultRow(
        id=sid if a.precision == "fp32" else f"{sid}.{a.precision}", student=sid, precision=a.precision,
        format=a.format, space=pick.space, genes=pick.genes, params=pick.params, flops=pick.flops, scores=pick.scores,
        latency_ms=_percentiles(a), accuracy=a.accuracy, speedup=speedup, accuracy_drop=drop, artifact=a.path,
        parity=parity, throughput=_throughput(a, tb), latency_ratio=ratio, searched_latency_ratio=pick.latency_ratio,
        latency_ok=latency_ok, target=target, target_met=target is None or ratio <= target, accuracy_ok=accuracy_ok,
        meets_budget=latency_ok and accuracy_ok, slower_than_fp32=slower,
        flags=_flags(a.precision, a.p50, parity, twin, slower, backend),
    )


def _recipe_row(model: str, a: BenchRow, tb: BenchRow) -> RecipeRow:
    name = model.removeprefix("baseline:")
    return RecipeRow(id=f"recipe:{name}", name=name, description=a.description, precision=a.precision,
                     format=a.format, latency_ms=_percentiles(a), accuracy=a.accuracy, speedup=tb.p50 / a.p50,
                     accuracy_drop=tb.accuracy - a.accuracy, throughput=_throughput(a, tb), artifact=a.path,
                     parity=a.parity or {})


def beaten_by(recipe: RecipeRow, ours: list[ResultRow]) -> str | None:
    """The fastest of our rows that is faster than ``recipe`` and more accurate on this run's test images (None: none
    is; a tie on either axis is no win). One run, one seed: the claim over seeds is benchmarks/vs_baselines.py's."""
    wins = [r for r in ours if r.latency_ms["p50"] < recipe.latency_ms["p50"] and r.accuracy > recipe.accuracy]
    return min(wins, key=lambda r: r.latency_ms["p50"]).id if wins else None


def nearest_miss(rows: list[ResultRow], budget: dict) -> str | None:
    """The row closest to the budget when none meets it: the smallest sum of relative shortfalls in speed-up and
    accuracy drop."""
    if not rows:
        return None
    loosest = latency_targets(budget["latency_ratio"])[0]
    need = 1 / loosest if loosest else 0.0
    allowed = budget["max_accuracy_drop"]

    def shortfall(r: ResultRow) -> float:
        slow = max(0.0, need / r.speedup - 1) if need else 0.0
        return slow + max(0.0, r.accuracy_drop - allowed) / max(allowed, 0.5)

    return min(rows, key=shortfall).id


def build_result(manifest: dict[str, Any], top: TopFile, bench: BenchFile,
                 pretrained: dict[str, str] | None = None) -> Result:
    """Assemble the result from the manifest, the search's picks and bench's measurements; ``pretrained`` names
    the students saved as Hugging Face folders (student id -> folder)."""
    pretrained = pretrained or {}
    inputs = manifest["inputs"]
    budget = inputs["profile"]["budget"]
    by_model = bench.by_model()
    tb = by_model["teacher"]["fp32"]
    t = manifest["teacher"]
    teacher = TeacherRow(path=t["path"], params=t["params"], flops=t["flops"], precision="fp32",
                         latency_ms=_percentiles(tb), accuracy=tb.accuracy, artifact=tb.path,
                         throughput=_throughput(tb, None))
    students = [dataclasses.replace(_student_row(sid, pick, a, tb, by_model[sid].get("fp32"), budget, bench.backend),
                                    pretrained=pretrained.get(sid))
                for sid, pick in top.students() for a in by_model.get(sid, {}).values()]
    # a reduced-precision artifact slower than its float twin is never the answer
    useful = [s for s in students if not s.slower_than_fp32]
    ok = [s for s in useful if s.meets_budget]
    # within the budget: the fastest artifact (what the user came for); outside it: the most accurate one
    pick = max(ok, key=lambda s: (s.speedup, s.accuracy)) if ok else (
        max(useful, key=lambda s: (s.accuracy, s.speedup)) if useful else None)
    recipes = [_recipe_row(m, a, tb) for m, precs in by_model.items() if m.startswith("baseline:")
               for a in precs.values()]
    recipes = [dataclasses.replace(r, beaten_by=beaten_by(r, useful)) for r in recipes]
    # the front over everything measured: a recipe that beats one of our rows takes it off the front
    points = {"teacher": (teacher.latency_ms["p50"], teacher.accuracy)}
    points.update({r.id: (r.latency_ms["p50"], r.accuracy) for r in [*students, *recipes]})
    frontier = pareto_front(points)
    students = [dataclasses.replace(r, on_front=r.id in frontier) for r in students]
    recipes = [dataclasses.replace(r, on_front=r.id in frontier) for r in recipes]
    plan = manifest.get("plan", {})
    met = any(r.meets_budget for r in students)
    return Result(
        schema_version=RESULT_SCHEMA_VERSION, profile=inputs["profile"]["name"], backend=bench.backend,
        backend_note=manifest.get("backend_note"), precision=bench.precision,
        precisions=plan.get("precisions", ["fp32"]), int8=plan.get("int8"), batch=bench.batch,
        threads=bench.threads, test_samples=bench.test_samples, data=manifest["data"]["name"], budget=budget,
        proxy=top.proxy, pick=top.pick, cut_rank=top.cut_rank, distill=inputs["profile"]["distill"],
        teacher=teacher, students=tuple(students), best=pick.id if pick else None, budget_met=met,
        nearest_miss=None if met else nearest_miss(students, budget), frontier=frontier, baselines=tuple(recipes),
        beats_all_baselines=all(r.beaten_by for r in recipes) if recipes else None, environment=bench.environment,
    )
