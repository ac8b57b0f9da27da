"""``report.html``: one self-contained page a person chooses an artifact from — the trade-off plot (embedded PNG),
the table, the run's settings and links to the artifacts (DESIGN §7)."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

from kdcompress.profiles import latency_targets
from kdcompress.records import Result
from kdcompress.report.table import machine, table

MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}


def candidate_latencies(run_path: Path, teacher_p50: float) -> list[float]:
    """Every feasible searched candidate's latency estimate (its measured ratio to the teacher × the teacher's
    bench p50), once per candidate (several latency targets may have met it), for the plot's rug."""
    path = run_path / "search" / "candidates.jsonl"
    if not path.exists():
        return []
    ratios: dict[str, float] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("feasible") and r.get("latency_ratio"):
            ratios.setdefault(json.dumps([r["space"], r["genes"]], sort_keys=True), r["latency_ratio"])
    return [ratio * teacher_p50 for ratio in ratios.values()]


def pareto_png(result: Result, candidates: list[float]) -> bytes:
    """Latency (log) vs accuracy: teacher, every artifact (marker per precision), the front, the candidates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    t = result.teacher
    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    points = {"teacher": (t.latency_ms["p50"], t.accuracy)}
    ax.scatter([t.latency_ms["p50"]], [t.accuracy], marker="*", s=260, color="black", zorder=4,
               label="teacher (fp32)")
    students = sorted({r.student for r in result.students})
    colors = {sid: plt.cm.tab10(i % 10) for i, sid in enumerate(students)}
    for r in result.students:
        points[r.id] = (r.latency_ms["p50"], r.accuracy)
        ax.scatter([r.latency_ms["p50"]], [r.accuracy], marker=MARKERS.get(r.precision, "D"), s=70,
                   color=colors[r.student], edgecolor="black" if r.id == result.best else "none",
                   linewidth=1.5, zorder=3, label=f"{r.student} {r.precision}")
        ax.annotate(r.id + (" ★" if r.id == result.best else ""), points[r.id], fontsize=7,
                    xytext=(5, 4), textcoords="offset points")
    for r in result.baselines:
        points[r.id] = (r.latency_ms["p50"], r.accuracy)
        ax.scatter([r.latency_ms["p50"]], [r.accuracy], marker="X", s=80, color="dimgray", zorder=3,
                   label="recipes users would use instead" if r is result.baselines[0] else None)
        ax.annotate(r.name, (r.latency_ms["p50"], r.accuracy), fontsize=7, color="dimgray",
                    xytext=(5, -10), textcoords="offset points")
    front = [points[n] for n in result.frontier]
    if len(front) > 1:
        xs, ys = zip(*front)
        ax.step(xs, ys, where="post", color="tab:red", alpha=0.6, zorder=2, label="trade-off front")
    b = result.budget
    for i, target in enumerate(latency_targets(b["latency_ratio"])):
        if target:
            ax.axvline(t.latency_ms["p50"] * target, color="gray", ls="--", lw=1, alpha=1 - 0.25 * i,
                       label=f"latency target {target}× teacher")
    ax.axhline(t.accuracy - b["max_accuracy_drop"], color="gray", ls=":", lw=1,
               label=f"accuracy budget (−{b['max_accuracy_drop']} points)")
    if candidates:  # no accuracy before training: a rug along the bottom edge
        ax.plot(candidates, [0.015] * len(candidates), "|", color="tab:gray", alpha=0.6, ms=12,
                transform=ax.get_xaxis_transform(), label=f"searched candidates ({len(candidates)}, latency estimate)")
    ax.set_xscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"p50 latency, ms (batch {result.batch}, {result.backend}) — log scale")
    ax.set_ylabel("test accuracy, %")
    ax.set_title(f"kdcompress — {result.profile}: latency vs accuracy of every artifact")
    ax.grid(True, which="both", alpha=0.25)
    # outside the axes: inside, any corner covers some run's points (a weak teacher sits low right)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _link(path: str, base: Path) -> str:
    try:
        rel = os.path.relpath(path, base)
    except ValueError:
        rel = path
    return f'<a href="{html.escape(rel)}"><code>{html.escape(Path(path).name)}</code></a>'


def html_report(result: Result, run_path: Path, warning: str | None = None) -> str:
    """The page, self-contained (the plot is embedded as base64 PNG); ``warning``: e.g. the missed-budget line."""
    t = result.teacher
    png = base64.b64encode(pareto_png(result, candidate_latencies(run_path, t.latency_ms["p50"]))).decode()
    esc = html.escape
    head, cells, paths = table(result)
    links = [_link(path, run_path) for path in paths]
    table_html = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in [*head, "artifact"]) + "</tr>\n" + "\n".join(
        "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + f"<td>{link}</td></tr>" for row, link in zip(cells, links))
    b = result.budget
    q = result.int8
    settings = {
        "profile": result.profile, "backend": result.backend, "batch": result.batch,
        "threads": result.threads, "precisions": ", ".join(result.precisions),
        "int8": f"{q['scheme']}, reduce_range {q['reduce_range']} — {q['reason']}" if q else "—",
        "budget": f"latency ≤ {b['latency_ratio']}× teacher, accuracy drop ≤ {b['max_accuracy_drop']} points",
        "proxy": result.proxy, "data": f"{result.data} ({result.test_samples} test images)",
        "machine": machine(result.environment), "date": result.environment["date"],
    }
    notes = [f"<p class=warn>{esc(warning)}</p>"] if warning else []
    if result.backend_note:
        notes.append(f"<p class=note>Note: {esc(result.backend_note)}</p>")
    flags = [f"<li><code>{esc(r.id)}</code>: {esc(f)}</li>" for r in result.students for f in r.flags]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kdcompress report — {esc(result.profile)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; }}
td {{ text-align: right; }} td:first-child, td:nth-child(2), td:last-child {{ text-align: left; }}
.warn {{ color: #a40; font-weight: bold; }} .note {{ color: #555; }} dt {{ font-weight: bold; float: left;
width: 8em; }} dd {{ margin-left: 9em; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>kdcompress report — profile <code>{esc(result.profile)}</code></h1>
{''.join(notes)}
<img alt="latency vs accuracy of every artifact" src="data:image/png;base64,{png}">
<h2>Artifacts</h2>
<table>
{table_html}
</table>
<p>★ the fastest artifact that meets the budget (or the most accurate when none does); ◆ on the trade-off front.
Latency and accuracy are each artifact's own, measured on <b>{esc(result.backend)}</b>.</p>
{'<h2>Flags</h2><ul>' + ''.join(flags) + '</ul>' if flags else ''}
<h2>Settings</h2>
<dl>{''.join(f'<dt>{esc(k)}</dt><dd>{esc(str(v))}</dd>' for k, v in settings.items())}</dl>
</body></html>
"""
