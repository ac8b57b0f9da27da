"""The two consoles every command prints to: results on stdout, progress, notes and errors on stderr."""

from __future__ import annotations

import sys

from rich.console import Console

err_console = Console(stderr=True)
# Piped output (CI logs, `make demo | tee`) gets a wide fixed width instead of rich's 80 columns.
out_console = Console() if sys.stdout.isatty() else Console(width=150)
