"""The result schema (``result.json``), built from what the stages wrote, and the Markdown report."""

from __future__ import annotations

from typing import Any

from kdcompress.errors import KDCompressError
from kdcompress.run import RunDir, atomic_write, read_json, write_json

# 2: one student row per artifact (student × precision), with precision, format, backend and flags
RESULT_SCHEMA_VERSION = 2
PERCENTILES = ("p50", "p90", "p99")


def _row_flags(row: dict, float_row: dict | None, backend: str) -> list[str]:
    """What a person choosing an artifact must know: a reduced precision that does not pay, or does not match."""
    flags = []
    if row["precision"] != "fp32" and float_row is not None and row["latency_ms"]["p50"] >= float_row["latency_ms"]["p50"]:
        flags.append(f"{row['precision']} not faster than fp32 on {backend} "
                     f"({row['latency_ms']['p50']:.3f} vs {float_row['latency_ms']['p50']:.3f} ms p50)")
    parity = row.get("parity") or {}
    if parity and not parity.get("passed", True):
        flags.append(f"{row['precision']} outside parity tolerance vs PyTorch (top-1 agreement "
                     f"{parity['top1_agreement']:.3f}); see its test accuracy")
    return flags


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
        "artifact": tb["path"],
    }
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
                "meets_budget": (budget["latency_ratio"] is None or speedup >= 1 / budget["latency_ratio"])
                and drop <= budget["max_accuracy_drop"],
            }
            row["flags"] = _row_flags(row, by_model[sid].get("fp32"), bench["backend"])
            students.append(row)
    # a reduced-precision artifact slower than its float twin is never the answer
    useful = [s for s in students if not any("not faster" in f for f in s["flags"])]
    ok = [s for s in useful if s["meets_budget"]]
    # within the budget: the fastest artifact (what the user came for); outside it: the most accurate one
    pick = max(ok, key=lambda s: (s["speedup"], s["accuracy"])) if ok else (
        max(useful, key=lambda s: (s["accuracy"], s["speedup"])) if useful else None)
    best = pick["id"] if pick else None
    plan = m.get("plan", {})
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "profile": inputs["profile"]["name"], "backend": bench["backend"], "backend_note": m.get("backend_note"),
        "precision": bench["precision"], "precisions": plan.get("precisions", ["fp32"]), "int8": plan.get("int8"),
        "batch": bench["batch"], "threads": bench["threads"],
        "test_samples": bench["test_samples"], "data": m["data"]["name"], "budget": budget,
        "proxy": top["proxy"], "teacher": teacher, "students": students, "best": best,
        "environment": bench["environment"],
    }


def markdown(result: dict[str, Any]) -> str:
    t = result["teacher"]
    lines = [
        f"# kdcompress report — profile `{result['profile']}`",
        "",
        f"Backend **{result['backend']}** (batch {result['batch']}, {result['threads']} thread(s)); artifacts in "
        f"{', '.join(result['precisions'])}; accuracy of each artifact itself on {result['test_samples']} test "
        f"images of {result['data']}; machine: {_machine(result['environment'])}.",
    ]
    if result.get("int8"):
        q = result["int8"]
        lines += ["", f"int8: {q['scheme']}, reduce_range {q['reduce_range']} — {q['reason']}."]
    if result.get("backend_note"):
        lines += ["", f"> Note: {result['backend_note']}."]
    lines += [
        "",
        "| model | precision | params | MFLOPs | p50 ms | p90 ms | p99 ms | speed-up | accuracy % | Δ acc (pts) | budget "
        "| artifact |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        f"| teacher | fp32 | {t['params']:,} | {t['flops'] / 1e6:.1f} | {t['latency_ms']['p50']:.3f} | "
        f"{t['latency_ms']['p90']:.3f} | {t['latency_ms']['p99']:.3f} | 1.00× | {t['accuracy']:.2f} | — | | "
        f"`{t['artifact']}` |",
    ]
    for s in result["students"]:
        mark = " ★" if s["id"] == result["best"] else ""
        lines.append(
            f"| {s['id']}{mark} | {s['precision']} | {s['params']:,} | {s['flops'] / 1e6:.1f} | "
            f"{s['latency_ms']['p50']:.3f} | {s['latency_ms']['p90']:.3f} | {s['latency_ms']['p99']:.3f} | {s['speedup']:.2f}× | "
            f"{s['accuracy']:.2f} | {-s['accuracy_drop']:+.2f} | {'met' if s['meets_budget'] else 'missed'} | "
            f"`{s['artifact']}` |"
        )
    flags = [f"- `{s['id']}`: {f}" for s in result["students"] for f in s.get("flags", [])]
    if flags:
        lines += ["", "Flags:", *flags]
    b = result["budget"]
    lines += ["", f"Budget: latency ratio ≤ {b['latency_ratio']}, accuracy drop ≤ {b['max_accuracy_drop']} points. "
              f"Students ranked by the `{result['proxy']}` proxy; ★ = the fastest artifact that meets the budget "
              f"(or, when none does, the most accurate one); a reduced precision slower than its fp32 twin is never ★."]
    return "\n".join(lines) + "\n"


def _machine(env: dict) -> str:
    m = env["machine"]
    return f"{m['cpu']}" + (f", GPU {m['gpu']}" if m.get("gpu") else "")


def write_report(run: RunDir, result: dict[str, Any]) -> None:
    write_json(run.path / "result.json", result)
    atomic_write(run.path / "report.md", markdown(result))
