"""The package's layering: no import cycle (imports inside functions included), every module importable alone, and
the commands that only print help or profiles load no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import kdcompress

PACKAGE = Path(kdcompress.__file__).parent
MAX_LINES = 350


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """The kdcompress modules ``name`` imports anywhere in its file (top level or inside a function). Importing
    ``a.b.c`` runs ``a.b``'s ``__init__`` first, so the packages on the way count too, except those ``name`` lies
    in (they are being imported already); ``TYPE_CHECKING`` blocks do not run and do not count."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for child in node.body for n in ast.walk(child)}
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    parts_of_name = name.split(".")
    ancestors = {".".join(parts_of_name[:i]) for i in range(1, len(parts_of_name) + (path.name == "__init__.py"))}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for t in targets:
            parts = t.split(".")
            for i in range(2, len(parts) + 1):  # the packages on the way, then the module
                prefix = ".".join(parts[:i])
                if prefix in MODULES and (prefix not in ancestors or i == len(parts)):
                    found.add(prefix)
    found.discard(name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_no_module_over_the_size_limit() -> None:
    long = {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


ALONE = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "kdcompress" or m.startswith("kdcompress.")]:
        del sys.modules[loaded]  # every kdcompress module forgotten; torch and the other libraries stay loaded
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=-3))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone() -> None:
    """Each module imported with no other module of kdcompress loaded before it (an import that works only after
    another module ran would fail here). One interpreter for all: it forgets every kdcompress module before the next
    import but keeps torch loaded, which is what a fresh interpreter per module spent its time on."""
    proc = subprocess.run([sys.executable, "-c", ALONE, *sorted(MODULES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


TORCH_FREE = [["--help"], ["profiles", "list"], ["shrink", "--help"], ["check", "--help"], ["doctor", "--help"]]


@pytest.mark.parametrize("argv", TORCH_FREE, ids=" ".join)
def test_help_and_profiles_do_not_import_torch(argv: list[str]) -> None:
    code = ("import sys; from kdcompress.cli import main; sys.argv = ['kdcompress', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip()
