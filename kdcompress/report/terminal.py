"""The result in the terminal: the rich table and the lines under it (``--json``: the result's JSON alone)."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

from kdcompress.console import out_console
from kdcompress.records import Result
from kdcompress.report.table import budget_line, table


def print_result(result: Result, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    head, rows, _ = table(result)
    keep = [i for i, col in enumerate(head) if col != "p99 ms"]  # p99 stays in report.md/html and --json
    out = Table(title=f"kdcompress — {result.profile} on {result.backend} (batch {result.batch})")
    for i in keep:
        out.add_column(head[i], justify="left" if head[i] in ("model", "prec.") else "right",
                       no_wrap=head[i] == "model")  # a row name split over two lines reads as two rows
    for row in rows:
        out.add_row(*(row[i] for i in keep))
    out_console.print(out)
    best = result.row(result.best)
    if best is not None:
        out_console.print(f"best student: {best.artifact}  (★; ◆ = on the trade-off front; teacher: "
                          f"{result.teacher.artifact})", soft_wrap=True, highlight=False)
        if best.pretrained:
            out_console.print(f"as a Hugging Face model (from_pretrained): {best.pretrained}", soft_wrap=True,
                              highlight=False)
    for r in result.baselines:
        if not r.beaten_by:
            out_console.print(f"[bold yellow]recipe {escape(r.name)} ({escape(r.description or '')}) is not "
                              "beaten: no artifact of ours is both as fast and as accurate[/]", soft_wrap=True,
                              highlight=False)
    missed = budget_line(result)
    if missed:
        out_console.print(f"[bold yellow]{escape(missed)}[/]", soft_wrap=True, highlight=False)
    for s in result.students:
        for flag in s.flags:
            out_console.print(f"! {s.id}: {flag}", highlight=False, soft_wrap=True)
    if result.int8:
        q = result.int8
        out_console.print(f"int8: {q['scheme']}, reduce_range {q['reduce_range']} — {q['reason']}", highlight=False,
                          soft_wrap=True)
    if result.backend_note:
        out_console.print(f"note: {result.backend_note}", highlight=False, soft_wrap=True)
