"""The report stage: ``result.json`` built once from the stages' records, rendered to ``report.md`` and
``report.html``."""

from __future__ import annotations

from kdcompress.errors import KDCompressError
from kdcompress.records import BenchFile, TopFile
from kdcompress.report.html import html_report
from kdcompress.report.result import build_result
from kdcompress.report.table import budget_line, markdown
from kdcompress.run import atomic_write, read_json, write_json
from kdcompress.session import Session
from kdcompress.stages.base import Stage


def run(s: Session) -> dict:
    bench_path = s.run.path / "bench.json"
    raw = read_json(bench_path)
    if "artifacts" not in raw:
        raise KDCompressError(f"{bench_path} was written by an older kdcompress",
                              f"re-measure it: `kdcompress bench {s.run.path}`")
    bench = BenchFile.from_json(raw, str(bench_path))
    top: TopFile = s.top()
    has_export = (s.run.path / "artifacts" / "export.json").exists()
    folders = {sid: e.pretrained for sid, e in s.exported().students.items() if e.pretrained} if has_export else {}
    result = build_result(s.run.manifest, top, bench, folders)
    write_json(s.run.path / "result.json", result.to_json())
    atomic_write(s.run.path / "report.md", markdown(result))
    atomic_write(s.run.path / "report.html", html_report(result, s.run.path, budget_line(result)))
    return {"best": result.best}


STAGE = Stage("report", ("result.json", "report.md", "report.html"), run=run)
