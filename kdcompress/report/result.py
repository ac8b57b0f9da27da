"""The result schema (``result.json``), built from what the stages wrote, and the Markdown report."""

from __future__ import annotations

from typing import Any

from kdcompress.run import RunDir, atomic_write, read_json, write_json

RESULT_SCHEMA_VERSION = 1
PERCENTILES = ("p50", "p90", "p99")


def build_result(run: RunDir) -> dict[str, Any]:
    """Assemble ``result.json``: teacher and each student with size, latency, accuracy and the trade-off."""
    m = run.manifest
    bench = read_json(run.path / "bench.json")
    top = read_json(run.path / "search" / "top.json")
    inputs = m["inputs"]
    budget = inputs["profile"]["budget"]
    tb = bench["models"]["teacher"]
    t_p50 = tb["latency_ms"]["p50"]
    teacher = {
        "path": m["teacher"]["path"], "params": m["teacher"]["params"], "flops": m["teacher"]["flops"],
        "latency_ms": {k: tb["latency_ms"][k] for k in PERCENTILES}, "accuracy": tb["accuracy"],
        "artifact": tb["artifact"],
    }
    students = []
    for i, cand in enumerate(top["top"]):
        sid = f"s{i}-{cand['space']}"
        sb = bench["models"][sid]
        parity = read_json(run.path / "artifacts" / f"{sid}.parity.json")
        speedup = t_p50 / sb["latency_ms"]["p50"]
        drop = tb["accuracy"] - sb["accuracy"]
        students.append({
            "id": sid, "space": cand["space"], "genes": cand["genes"], "params": cand["params"],
            "flops": cand["flops"], "scores": cand["scores"],
            "latency_ms": {k: sb["latency_ms"][k] for k in PERCENTILES}, "accuracy": sb["accuracy"],
            "speedup": speedup, "accuracy_drop": drop, "artifact": sb["artifact"],
            "parity": {k: parity[k] for k in ("max_abs_diff", "top1_agreement", "passed")},
            "meets_budget": (budget["latency_ratio"] is None or speedup >= 1 / budget["latency_ratio"])
            and drop <= budget["max_accuracy_drop"],
        })
    ok = [s for s in students if s["meets_budget"]]
    best = max(ok or students, key=lambda s: (s["accuracy"], s["speedup"]))["id"] if students else None
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "profile": inputs["profile"]["name"], "backend": bench["backend"], "backend_note": m.get("backend_note"),
        "precision": bench["precision"], "batch": bench["batch"], "threads": bench["threads"],
        "test_samples": bench["test_samples"], "data": m["data"]["name"], "budget": budget,
        "proxy": top["proxy"], "teacher": teacher, "students": students, "best": best,
        "environment": bench["environment"],
    }


def markdown(result: dict[str, Any]) -> str:
    t = result["teacher"]
    lines = [
        f"# kdcompress report — profile `{result['profile']}`",
        "",
        f"Backend **{result['backend']}** ({result['precision']}, batch {result['batch']}, "
        f"{result['threads']} thread(s)); accuracy of each ONNX artifact on {result['test_samples']} test images of "
        f"{result['data']}; machine: {result['environment']['machine']['cpu']}.",
    ]
    if result.get("backend_note"):
        lines += ["", f"> Note: {result['backend_note']}."]
    lines += [
        "",
        "| model | params | MFLOPs | p50 ms | p90 ms | p99 ms | speed-up | accuracy % | Δ acc (pts) | budget | artifact |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        f"| teacher | {t['params']:,} | {t['flops'] / 1e6:.1f} | {t['latency_ms']['p50']:.3f} | "
        f"{t['latency_ms']['p90']:.3f} | {t['latency_ms']['p99']:.3f} | 1.00× | {t['accuracy']:.2f} | — | | "
        f"`{t['artifact']}` |",
    ]
    for s in result["students"]:
        mark = " ★" if s["id"] == result["best"] else ""
        lines.append(
            f"| {s['id']}{mark} | {s['params']:,} | {s['flops'] / 1e6:.1f} | {s['latency_ms']['p50']:.3f} | "
            f"{s['latency_ms']['p90']:.3f} | {s['latency_ms']['p99']:.3f} | {s['speedup']:.2f}× | "
            f"{s['accuracy']:.2f} | {-s['accuracy_drop']:+.2f} | {'met' if s['meets_budget'] else 'missed'} | "
            f"`{s['artifact']}` |"
        )
    b = result["budget"]
    lines += ["", f"Budget: latency ratio ≤ {b['latency_ratio']}, accuracy drop ≤ {b['max_accuracy_drop']} points. "
              f"Students ranked by the `{result['proxy']}` proxy; ★ = most accurate student that meets the budget "
              f"(or, when none does, the most accurate one)."]
    return "\n".join(lines) + "\n"


def write_report(run: RunDir, result: dict[str, Any]) -> None:
    write_json(run.path / "result.json", result)
    atomic_write(run.path / "report.md", markdown(result))
