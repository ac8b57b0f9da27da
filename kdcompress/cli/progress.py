"""The progress sink the commands hand the library: a rich bar on stderr (stdout stays clean for --json)."""

from __future__ import annotations

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichBar

from kdcompress.console import err_console


class BarProgress:
    """A rich progress bar on stderr (stdout stays clean for --json)."""

    def __init__(self) -> None:
        self.bar: RichBar | None = None
        self.task = None

    def start(self, description: str, total: int | None) -> None:
        self.stop()
        self.bar = RichBar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),  # left: rich's estimate
                           TextColumn("{task.fields[note]}"), console=err_console, transient=False,
                           disable=not err_console.is_terminal)
        self.bar.start()
        self.task = self.bar.add_task(description, total=total, note="")
        if not err_console.is_terminal:
            err_console.print(f"{description} …")

    def advance(self, n: int = 1, note: str | None = None) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=n, **({"note": note} if note else {}))

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def note(self, message: str) -> None:
        err_console.print(f"[yellow]note:[/] {escape(message)}", highlight=False, soft_wrap=True)
