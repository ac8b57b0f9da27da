"""The result schema (``result.json``), built from what the stages wrote, and the Markdown report."""

from __future__ import annotations

from typing import Any

from kdcompress.baselines import beaten_by
from kdcompress.errors import KDCompressError
from kdcompress.profiles import latency_targets
from kdcompress.report.pareto import pareto_front
from kdcompress.run import RunDir, atomic_write, read_json, write_json

# 2: one student row per artifact (student × precision), with precision, format, backend and flags
RESULT_SCHEMA_VERSION = 2
PERCENTILES = ("p50", "p90", "p99")


def _row_flags(row: dict, float_row: dict | None, backend: str) -> list[str]:
    """What a person choosing an artifact must know: a reduced precision that does not pay, or does not match."""
    flags = []
    if row["slower_than_fp32"]:
        assert float_row is not None
        flags.append(f"{row['precision']} not faster than fp32 on {backend} "
                     f"({row['latency_ms']['p50']:.3f} vs {float_row['latency_ms']['p50']:.3f} ms p50)")
    parity = row.get("parity") or {}
    if parity and not parity.get("passed", True):
        flags.append(f"{row['precision']} outside parity tolerance vs PyTorch (top-1 agreement "
                     f"{parity['top1_agreement']:.3f}); see its test accuracy")
    return flags


def _throughput(a: dict, teacher: dict | None) -> dict | None:
    """Images per second at the profile's throughput batch, and the ratio to the teacher's (None: not measured)."""
    if not a.get("throughput"):
        return None
    t = a["throughput"]
    out = {"batch": t["batch"], "p50_ms": t["p50"], "images_per_s": t["throughput"]}
    if teacher is not None and teacher.get("throughput"):
        out["speedup"] = t["throughput"] / teacher["throughput"]["throughput"]
    return out


def nearest_miss(rows: list[dict], budget: dict) -> str | None:
    """The row closest to the budget when none meets it: the smallest sum of relative shortfalls in speed-up and
    accuracy drop."""
    if not rows:
        return None
    loosest = latency_targets(budget["latency_ratio"])[0]
    need = 1 / loosest if loosest else 0.0
    allowed = budget["max_accuracy_drop"]

    def shortfall(r: dict) -> float:
        slow = max(0.0, need / r["speedup"] - 1) if need else 0.0
        return slow + max(0.0, r["accuracy_drop"] - allowed) / max(allowed, 0.5)

    return min(rows, key=shortfall)["id"]


def budget_line(result: dict[str, Any]) -> str | None:
    """One line when no artifact meets the budget, naming the nearest miss; None when one does."""
    if result.get("budget_met", True):
        return None
    b = result["budget"]
    loosest = latency_targets(b["latency_ratio"])[0]
    want = f"≥ {1 / loosest:.2f}× faster and " if loosest else ""
    miss = next((r for r in result["students"] if r["id"] == result["nearest_miss"]), None)
    near = (f"; nearest miss: {miss['id']} at {miss['speedup']:.2f}×, {-miss['accuracy_drop']:+.2f} points"
            if miss else "")
    return f"no artifact meets the budget ({want}≤ {b['max_accuracy_drop']} points drop){near}"


def build_result(run: RunDir) -> dict[str, Any]:
    """Assemble ``result.json``: the teacher and one row per student artifact (student × precision), each with
    size, measured latency and accuracy, and the trade-off against the teacher on the same backend."""
    m = run.manifest
    bench = read_json(run.path / "bench.json")
    if "artifacts" not in bench:
        raise KDCompressError(f"{run.path}/bench.json was written by an older kdcompress",
                              f"re-measure it: `kdcompress bench {run.path}`")
    top = read_json(run.path / "search" / "top.json")
    inputs = m["inputs"]
    budget = inputs["profile"]["budget"]
    by_model: dict[str, dict[str, dict]] = {}
    for a in bench["artifacts"]:
        by_model.setdefault(a["model"], {})[a["precision"]] = a
    tb = by_model["teacher"]["fp32"]
    t_p50 = tb["latency_ms"]["p50"]
    teacher = {
        "path": m["teacher"]["path"], "params": m["teacher"]["params"], "flops": m["teacher"]["flops"],
        "precision": "fp32", "latency_ms": {k: tb["latency_ms"][k] for k in PERCENTILES}, "accuracy": tb["accuracy"],
        "artifact": tb["path"], "throughput": _throughput(tb, None),
    }
    loosest = latency_targets(budget["latency_ratio"])[0]
    students = []
    for i, cand in enumerate(top["top"]):
        sid = f"s{i}-{cand['space']}"
        for precision, a in by_model.get(sid, {}).items():
            speedup = t_p50 / a["latency_ms"]["p50"]
            drop = tb["accuracy"] - a["accuracy"]
            parity = a.get("parity") or {}
            row = {
                "id": sid if precision == "fp32" else f"{sid}.{precision}", "student": sid, "precision": precision,
                "format": a["format"], "space": cand["space"], "genes": cand["genes"], "params": cand["params"],
                "flops": cand["flops"], "scores": cand["scores"],
                "latency_ms": {k: a["latency_ms"][k] for k in PERCENTILES}, "accuracy": a["accuracy"],
                "speedup": speedup, "accuracy_drop": drop, "artifact": a["path"],
                "parity": {k: parity[k] for k in ("max_abs_diff", "top1_agreement", "passed") if k in parity},
            }
            row["throughput"] = _throughput(a, tb)
            row["latency_ratio"] = 1 / speedup
            row["searched_latency_ratio"] = cand.get("latency_ratio")  # what the search measured for this student
            row["latency_ok"] = loosest is None or row["latency_ratio"] <= loosest
            # the target this student was searched for, and whether bench confirms it
            row["target"] = cand.get("target", loosest)
            row["target_met"] = row["target"] is None or row["latency_ratio"] <= row["target"]
            row["accuracy_ok"] = drop <= budget["max_accuracy_drop"]
            row["meets_budget"] = row["latency_ok"] and row["accuracy_ok"]
            twin = by_model[sid].get("fp32")
            row["slower_than_fp32"] = (precision != "fp32" and twin is not None
                                       and a["latency_ms"]["p50"] >= twin["latency_ms"]["p50"])
            row["flags"] = _row_flags(row, twin, bench["backend"])
            students.append(row)
    # a reduced-precision artifact slower than its float twin is never the answer
    useful = [s for s in students if not s["slower_than_fp32"]]
    ok = [s for s in useful if s["meets_budget"]]
    # within the budget: the fastest artifact (what the user came for); outside it: the most accurate one
    pick = max(ok, key=lambda s: (s["speedup"], s["accuracy"])) if ok else (
        max(useful, key=lambda s: (s["accuracy"], s["speedup"])) if useful else None)
    best = pick["id"] if pick else None
    recipes = []
    for model, precs in by_model.items():
        if model.startswith("baseline:"):
            for precision, a in precs.items():
                recipes.append({
                    "id": f"recipe:{model.removeprefix('baseline:')}", "name": model.removeprefix("baseline:"),
                    "description": a.get("description"), "precision": precision, "format": a["format"],
                    "latency_ms": {k: a["latency_ms"][k] for k in PERCENTILES}, "accuracy": a["accuracy"],
                    "speedup": t_p50 / a["latency_ms"]["p50"], "accuracy_drop": tb["accuracy"] - a["accuracy"],
                    "throughput": _throughput(a, tb), "artifact": a["path"], "parity": a.get("parity") or {},
                })
    for r in recipes:
        r["beaten_by"] = beaten_by(r, useful)
    # the front over everything measured: a recipe that beats one of our rows takes it off the front
    points = {"teacher": (teacher["latency_ms"]["p50"], teacher["accuracy"])}
    points.update({r["id"]: (r["latency_ms"]["p50"], r["accuracy"]) for r in [*students, *recipes]})
    frontier = pareto_front(points)
    for r in [*students, *recipes]:
        r["on_front"] = r["id"] in frontier
    plan = m.get("plan", {})
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "profile": inputs["profile"]["name"], "backend": bench["backend"], "backend_note": m.get("backend_note"),
        "precision": bench["precision"], "precisions": plan.get("precisions", ["fp32"]), "int8": plan.get("int8"),
        "batch": bench["batch"], "threads": bench["threads"],
        "test_samples": bench["test_samples"], "data": m["data"]["name"], "budget": budget,
        "proxy": top["proxy"], "pick": top.get("pick"), "cut_rank": top.get("cut_rank"),
        # how the students were trained, as the run's profile says (loss, schedule, aug, mix, device, amp)
        "distill": inputs["profile"]["distill"],
        "teacher": teacher, "students": students, "best": best,
        "budget_met": any(r["meets_budget"] for r in students),
        "nearest_miss": None if any(r["meets_budget"] for r in students) else nearest_miss(students, budget),
        "frontier": frontier, "baselines": recipes,
        "beats_all_baselines": all(r["beaten_by"] for r in recipes) if recipes else None,
        "environment": bench["environment"],
    }


def _budget_cell(r: dict) -> str:
    if r["meets_budget"]:
        return "met"
    missed = [w for w, ok in (("latency", r.get("latency_ok")), ("accuracy", r.get("accuracy_ok"))) if not ok]
    return "✗ " + ("both" if len(missed) == 2 else missed[0]) if missed else "missed"


def table(result: dict[str, Any]) -> tuple[list[str], list[list[str]], list[str]]:
    """The result table every renderer shows (terminal, Markdown, HTML): header, one row of cells per artifact
    (teacher, the recipes users would use instead, our students) and each row's artifact path.
    Marks: ★ best, ◆ on the front, ! flagged."""
    t = result["teacher"]
    tput = t.get("throughput")
    head = ["model", "prec.", "params", "MFLOPs", "p50 ms", "p99 ms", "speed-up", "target"]
    if tput:
        head += [f"img/s @{tput['batch']}", "× img/s"]
    head += ["acc %", "Δ acc", "budget"]

    def cells(name: str, r: dict, speedup: str, tp_speedup: str, drop: str, budget: str) -> list[str]:
        target = r.get("target")
        goal = f"≤{target:g} {'✓' if r.get('target_met') else '✗'}" if target else ""
        row = [name, r.get("precision", "fp32"), f"{r['params']:,}" if "params" in r else "—",
               f"{r['flops'] / 1e6:.1f}" if "flops" in r else "—",
               f"{r['latency_ms']['p50']:.3f}", f"{r['latency_ms']['p99']:.3f}", speedup, goal]
        if tput:
            row += [f"{r['throughput']['images_per_s']:,.0f}" if r.get("throughput") else "—", tp_speedup]
        return [*row, f"{r['accuracy']:.2f}", drop, budget]

    rows = [cells("teacher" + (" ◆" if "teacher" in result.get("frontier", []) else ""), t, "1.00×", "1.00×", "—", "")]
    for r in result.get("baselines", []):  # what a user would do instead, measured beside ours
        tps = r.get("throughput") or {}
        rows.append(cells(r["id"] + (" ◆" if r.get("on_front") else ""), r, f"{r['speedup']:.2f}×",
                          f"{tps['speedup']:.2f}×" if "speedup" in tps else "—",
                          f"{-r['accuracy_drop']:+.2f}",
                          "beaten" if r["beaten_by"] else "NOT beaten"))
    for r in result["students"]:
        name = (r["id"] + (" ★" if r["id"] == result["best"] else "") + (" ◆" if r.get("on_front") else "")
                + (" !" if r.get("flags") else ""))
        tps = r.get("throughput") or {}
        rows.append(cells(name, r, f"{r['speedup']:.2f}×", f"{tps['speedup']:.2f}×" if "speedup" in tps else "—",
                          f"{-r['accuracy_drop']:+.2f}", _budget_cell(r)))
    paths = [t["artifact"], *(r["artifact"] for r in result.get("baselines", [])),
             *(r["artifact"] for r in result["students"])]
    return head, rows, paths


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# kdcompress report — profile `{result['profile']}`",
        "",
        (f"Backend **{result['backend']}** (batch {result['batch']}, {result['threads']} thread(s)); artifacts in "
        f"{', '.join(result['precisions'])}; accuracy of each artifact itself on {result['test_samples']} test "
        f"images of {result['data']}; machine: {_machine(result['environment'])}."),
    ]
    if result.get("int8"):
        q = result["int8"]
        lines += ["", f"int8: {q['scheme']}, reduce_range {q['reduce_range']} — {q['reason']}."]
    if result.get("backend_note"):
        lines += ["", f"> Note: {result['backend_note']}."]
    head, rows, paths = table(result)
    lines += ["", "| " + " | ".join([*head, "artifact"]) + " |",
              "|" + "|".join("---" if h in ("model", "prec.", "budget") else "---:" for h in head) + "|---|"]
    lines += ["| " + " | ".join([*cells, f"`{path}`"]) + " |" for cells, path in zip(rows, paths)]
    if budget_line(result):
        lines += ["", f"**{budget_line(result)}.**"]
    if result.get("baselines"):
        lines += ["", "Recipes users would use instead (measured in this run):", *(
            f"- `{r['name']}` ({r['description']}): " + (f"beaten by `{r['beaten_by']}` (as fast and as accurate)"
                                                         if r["beaten_by"] else "**not beaten** by any artifact of ours")
            for r in result["baselines"])]
    flags = [f"- `{s['id']}`: {f}" for s in result["students"] for f in s.get("flags", [])]
    if flags:
        lines += ["", "Flags:", *flags]
    b = result["budget"]
    ranked = (f"Students ranked by the `{result['proxy']}` proxy" if result["proxy"] else
              "No search: Born-Again, the teacher's own architecture")
    if result["proxy"] and result.get("pick") not in (None, "proxy") and result.get("cut_rank") not in (None, "proxy"):
        ranked = (f"Family students ranked by the `{result['proxy']}` proxy, the teacher's cuts by "
                  f"`{result['cut_rank']}`")
    if result.get("distill"):
        d = result["distill"]
        shown = lambda x: f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)
        losses = ", ".join(k + (f" ({', '.join(f'{n} {shown(x)}' for n, x in v.items())})" if v else "")
                           for k, v in d["loss"].items() if v is not None)
        lines += ["", f"Distilled with: {losses}; {d['epochs']} epochs, aug {d['aug']}, mix {d['mix']}"
                      + (f", first {d['train_samples']} training images" if d.get("train_samples") else "")
                      + f"; {d['optimizer']} lr {d['lr']:g}, batch {d['batch']}; device {d['device']}, amp {d['amp']}."]
    lines += ["", (f"Budget: latency ratio ≤ {latency_targets(b['latency_ratio'])[0]}, accuracy drop ≤ {b['max_accuracy_drop']} points. "
                   f"{ranked}; target = the latency ratio a student was "
                   "searched for, ✓ when bench confirms it; ★ = the fastest artifact that meets the budget "
                   "(or, when none does, the most accurate one); a reduced precision slower than its fp32 twin is "
                   "never ★; ◆ = on the trade-off front (no other artifact — teacher and recipes included — is "
                   "both faster and more accurate).")]
    return "\n".join(lines) + "\n"


def _machine(env: dict) -> str:
    m = env["machine"]
    return f"{m['cpu']}" + (f", GPU {m['gpu']}" if m.get("gpu") else "")


def write_report(run: RunDir, result: dict[str, Any]) -> None:
    from kdcompress.report.html import html_report  # matplotlib: only when a report is written

    write_json(run.path / "result.json", result)
    atomic_write(run.path / "report.md", markdown(result))
    atomic_write(run.path / "report.html", html_report(result, run.path, budget_line(result)))
