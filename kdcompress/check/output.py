"""How a verdict is told: one line for the log, Markdown for a pull request or ``$GITHUB_STEP_SUMMARY``, JUnit XML
for CI systems that collect test results."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kdcompress.check.verdict import Verdict


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{x * 100:+.1f} %"


def latency_text(v: Verdict) -> str:
    lat = v.latency
    conf = f"{(1 - 2 * lat.alpha) * 100:.3g}"
    text = (f"latency {_pct(lat.change)} vs baseline ({conf} % interval {_pct(lat.lower)} … {_pct(lat.upper)}; "
            f"fails above {_pct(lat.null_slowdown)} once shown, must catch {_pct(lat.max_slowdown)})")
    if lat.status == "inconclusive":
        text += f"; too noisy to decide: {decide_hint(v)}"
    return text


def decide_hint(v: Verdict) -> str:
    n = v.latency.repetitions_to_decide
    return (f"--repetitions {n} would likely decide" if n else
            f"save the baseline with more repetitions (it has {v.latency.baseline_repetitions})")


def trend_text(v: Verdict) -> str | None:
    t = v.trend
    if not t:
        return None
    return (f"trend over the last {t['runs']} run{'s' if t['runs'] != 1 else ''}: {'CREEP' if t['creep'] else 'no creep'}, "
            f"{t['slope_per_run'] * 100:+.2f} % per run, {t['change_over_window'] * 100:+.1f} % in all "
            f"(rising p = {t['p_value']:.3g})")


def accuracy_text(v: Verdict) -> str | None:
    a = v.accuracy
    if a is None:
        return None
    return f"accuracy {a.current:.2f} % (baseline {a.baseline:.2f} %, drop {a.drop:+.2f} points, limit {a.max_drop})"


def verdict_line(v: Verdict) -> str:
    """``REGRESSION student.int8.onnx: latency +12.3 % vs baseline (…); accuracy …``."""
    parts = [latency_text(v), accuracy_text(v), trend_text(v)]
    return f"{v.status.upper()} {v.subject['name']}: " + "; ".join(p for p in parts if p)


def markdown(v: Verdict) -> str:
    icon = {"pass": "✅", "regression": "❌", "inconclusive": "⚠️"}[v.status]
    lat, s = v.latency, v.subject
    conf = f"{(1 - 2 * lat.alpha) * 100:.3g}"
    lines = [
        f"### {icon} kdcompress check: {v.status} — `{s['name']}`", "",
        (f"{s['format']} {s['precision']} on {s['backend']}, batch {s['batch']}, {s['threads']} thread(s); "
         f"baseline of {v.baseline.get('date') or '?'} on {v.baseline.get('cpu') or '?'}"
         f"{' (same file)' if v.baseline.get('same_artifact') else ''}"), "",
        "| check | result | baseline → now | limit | verdict |", "|---|---|---|---|---|",
        (f"| latency (vs control) | {_pct(lat.change)} ({conf} % CI {_pct(lat.lower)} … {_pct(lat.upper)}) | "
         f"{lat.baseline_repetitions} → {lat.repetitions} repetitions | catch {_pct(lat.max_slowdown)}, "
         f"ignore ≤ {_pct(lat.null_slowdown)} | {lat.status} |"),
    ]
    if v.accuracy:
        a = v.accuracy
        lines.append(f"| accuracy | {-a.drop:+.2f} points | {a.baseline:.2f} % → {a.current:.2f} % | "
                     f"drop ≤ {a.max_drop} | {a.status} |")
    lines.append("")
    if v.trend:
        lines.insert(-1, f"| latency trend (`--history`) | {v.trend['change_over_window'] * 100:+.1f} % over "
                         f"{v.trend['runs']} run{'s' if v.trend['runs'] != 1 else ''} | {v.trend['slope_per_run'] * 100:+.2f} % per run | rising at "
                         f"p < {v.trend['alpha']:.3g} and beyond {_pct(lat.null_slowdown)} | {'creep' if v.creep else 'pass'} |")
    if lat.status == "inconclusive":
        lines.append(f"Too noisy to decide: {decide_hint(v)}.")
    if lat.change_without_control is not None:
        lines.append(f"Compared as stored numbers (without the control), the artifact's own median moved "
                     f"{_pct(lat.change_without_control)}.")
    lines += [f"> {w}" for w in v.warnings]
    return "\n".join(lines).rstrip() + "\n"


def junit_xml(v: Verdict, seconds: float = 0.0, fail_inconclusive: bool = False, fail_on_creep: bool = False) -> str:
    """A JUnit XML report: one suite, a test case per check; a regression is a failure; inconclusive is a failure
    only when ``fail_inconclusive`` made it one (else a pass with the reason in system-out)."""
    cases = [("latency", v.latency.status, latency_text(v))]
    if v.accuracy:
        cases.append(("accuracy", v.accuracy.status, accuracy_text(v) or ""))
    if v.trend:
        cases.append(("latency-trend", "creep" if v.creep else "pass", trend_text(v) or ""))
    failing = {"regression"} | ({"inconclusive"} if fail_inconclusive else set()) | ({"creep"} if fail_on_creep else set())
    failures = sum(status in failing for _, status, _ in cases)
    suite = ET.Element("testsuite", name="kdcompress check", tests=str(len(cases)), failures=str(failures),
                       errors="0", skipped="0", time=f"{seconds:.3f}")
    for name, status, text in cases:
        case = ET.SubElement(suite, "testcase", classname=f"kdcompress.check.{v.subject['name']}", name=name,
                             time=f"{seconds / len(cases):.3f}")
        if status in failing:
            ET.SubElement(case, "failure", message=text, type=status).text = text
        else:
            ET.SubElement(case, "system-out").text = f"{status}: {text}" + "".join(f"\n{w}" for w in v.warnings)
    root = ET.Element("testsuites", name="kdcompress", tests=str(len(cases)), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
