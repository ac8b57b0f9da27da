"""The result as every renderer shows it: the table (terminal, Markdown, HTML), the missed-budget line and the
Markdown report, all from one :class:`~kdcompress.records.Result`."""

from __future__ import annotations

from kdcompress.profiles import latency_targets
from kdcompress.records import RecipeRow, Result, ResultRow, TeacherRow


def budget_line(result: Result) -> str | None:
    """One line when no artifact meets the budget, naming the nearest miss; None when one does."""
    if result.budget_met:
        return None
    b = result.budget
    loosest = latency_targets(b["latency_ratio"])[0]
    want = f"≥ {1 / loosest:.2f}× faster and " if loosest else ""
    miss = result.row(result.nearest_miss)
    near = f"; nearest miss: {miss.id} at {miss.speedup:.2f}×, {-miss.accuracy_drop:+.2f} points" if miss else ""
    return f"no artifact meets the budget ({want}≤ {b['max_accuracy_drop']} points drop){near}"


def _budget_cell(r: ResultRow) -> str:
    if r.meets_budget:
        return "met"
    missed = [w for w, ok in (("latency", r.latency_ok), ("accuracy", r.accuracy_ok)) if not ok]
    return "✗ " + ("both" if len(missed) == 2 else missed[0]) if missed else "missed"


def table(result: Result) -> tuple[list[str], list[list[str]], list[str]]:
    """The result table every renderer shows (terminal, Markdown, HTML): header, one row of cells per artifact
    (teacher, the recipes users would use instead, our students) and each row's artifact path.
    Marks: ★ best, ◆ on the front, ! flagged."""
    t = result.teacher
    tput = t.throughput
    head = ["model", "prec.", "params", "MFLOPs", "p50 ms", "p99 ms", "speed-up", "target"]
    if tput:
        head += [f"img/s @{tput.batch}", "× img/s"]
    head += ["acc %", "Δ acc", "budget"]

    def cells(name: str, r: TeacherRow | ResultRow | RecipeRow, speedup: str, drop: str, budget: str) -> list[str]:
        target = getattr(r, "target", None)
        goal = f"≤{target:g} {'✓' if getattr(r, 'target_met', False) else '✗'}" if target else ""
        params, flops = getattr(r, "params", None), getattr(r, "flops", None)
        row = [name, r.precision, f"{params:,}" if params is not None else "—",
               f"{flops / 1e6:.1f}" if flops is not None else "—",
               f"{r.latency_ms['p50']:.3f}", f"{r.latency_ms['p99']:.3f}", speedup, goal]
        if tput:
            tp = r.throughput
            tp_speedup = "1.00×" if r is t else (f"{tp.speedup:.2f}×" if tp and tp.speedup is not None else "—")
            row += [f"{tp.images_per_s:,.0f}" if tp else "—", tp_speedup]
        return [*row, f"{r.accuracy:.2f}", drop, budget]

    rows = [cells("teacher" + (" ◆" if "teacher" in result.frontier else ""), t, "1.00×", "—", "")]
    for r in result.baselines:  # what a user would do instead, measured beside ours
        rows.append(cells(r.id + (" ◆" if r.on_front else ""), r, f"{r.speedup:.2f}×", f"{-r.accuracy_drop:+.2f}",
                          "beaten" if r.beaten_by else "NOT beaten"))
    for r in result.students:
        name = (r.id + (" ★" if r.id == result.best else "") + (" ◆" if r.on_front else "")
                + (" !" if r.flags else ""))
        rows.append(cells(name, r, f"{r.speedup:.2f}×", f"{-r.accuracy_drop:+.2f}", _budget_cell(r)))
    paths = [t.artifact, *(r.artifact for r in result.baselines),
             *(f"{r.artifact} (from {r.pretrained})" if r.pretrained else r.artifact for r in result.students)]
    return head, rows, paths


def machine(env: dict) -> str:
    m = env["machine"]
    return f"{m['cpu']}" + (f", GPU {m['gpu']}" if m.get("gpu") else "")


def _shown(x: object) -> str:
    return f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def markdown(result: Result) -> str:
    lines = [
        f"# kdcompress report — profile `{result.profile}`",
        "",
        (f"Backend **{result.backend}** (batch {result.batch}, {result.threads} thread(s)); artifacts in "
         f"{', '.join(result.precisions)}; accuracy of each artifact itself on {result.test_samples} test "
         f"images of {result.data}; machine: {machine(result.environment)}."),
    ]
    if result.int8:
        q = result.int8
        lines += ["", f"int8: {q['scheme']}, reduce_range {q['reduce_range']} — {q['reason']}."]
    if result.backend_note:
        lines += ["", f"> Note: {result.backend_note}."]
    head, rows, paths = table(result)
    lines += ["", "| " + " | ".join([*head, "artifact"]) + " |",
              "|" + "|".join("---" if h in ("model", "prec.", "budget") else "---:" for h in head) + "|---|"]
    lines += ["| " + " | ".join([*cells, f"`{path}`"]) + " |" for cells, path in zip(rows, paths)]
    if budget_line(result):
        lines += ["", f"**{budget_line(result)}.**"]
    if result.baselines:
        lines += ["", "Recipes users would use instead (measured in this run):", *(
            f"- `{r.name}` ({r.description}): " + (f"beaten by `{r.beaten_by}` (as fast and as accurate)"
                                                   if r.beaten_by else "**not beaten** by any artifact of ours")
            for r in result.baselines)]
    flags = [f"- `{s.id}`: {f}" for s in result.students for f in s.flags]
    if flags:
        lines += ["", "Flags:", *flags]
    b = result.budget
    ranked = (f"Students ranked by the `{result.proxy}` proxy" if result.proxy else
              "No search: Born-Again, the teacher's own architecture")
    if result.proxy and result.pick not in (None, "proxy") and result.cut_rank not in (None, "proxy"):
        ranked = f"Family students ranked by the `{result.proxy}` proxy, the teacher's cuts by `{result.cut_rank}`"
    if result.distill:
        d = result.distill
        losses = ", ".join(k + (f" ({', '.join(f'{n} {_shown(x)}' for n, x in v.items())})" if v else "")
                           for k, v in d["loss"].items() if v is not None)
        lines += ["", f"Distilled with: {losses}; {d['epochs']} epochs, aug {d['aug']}, mix {d['mix']}"
                      + (f", first {d['train_samples']} training images" if d.get("train_samples") else "")
                      + f"; {d['optimizer']} lr {d['lr']:g}, batch {d['batch']}; device {d['device']}, amp {d['amp']}."]
    lines += ["", (f"Budget: latency ratio ≤ {latency_targets(b['latency_ratio'])[0]}, accuracy drop ≤ "
                   f"{b['max_accuracy_drop']} points. {ranked}; target = the latency ratio a student was "
                   "searched for, ✓ when bench confirms it; ★ = the fastest artifact that meets the budget "
                   "(or, when none does, the most accurate one); a reduced precision slower than its fp32 twin is "
                   "never ★; ◆ = on the trade-off front (no other artifact — teacher and recipes included — is "
                   "both faster and more accurate).")]
    return "\n".join(lines) + "\n"
