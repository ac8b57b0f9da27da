"""The run directory: manifest, atomic writes and stage bookkeeping (DESIGN §1).

Every stage writes its outputs through :func:`atomic_write` / :func:`atomic_path` (temp file + ``os.replace``) and
then marks itself done in ``manifest.json``; ``--resume`` skips stages that are marked done, so a killed run never
leaves a half-written file looking finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdcompress.errors import KDCompressError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class StageFiles:
    """What one stage owns in a run directory: ``outputs`` (globs; removed when the stage is invalidated, so that a
    re-run never mixes new results with stale files, and hashed when it finishes) and, among them, ``unhashed``
    caches that later stages keep writing to. Each stage module declares its own (:mod:`kdcompress.stages`)."""

    name: str
    outputs: tuple[str, ...]
    unhashed: tuple[str, ...] = ()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result should be an ordinary file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(path: Path, data: str | bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise KDCompressError(f"{path} not found", "run the earlier stages first (or `kdcompress shrink`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:  # a binary file is not JSON either
        raise KDCompressError(f"{path}: corrupt JSON ({str(e)[:120]})", "delete it and re-run the stage") from None


def default_run_dir(base: Path, resume: bool) -> Path:
    """Where a run goes when no ``--out`` is given: ``base``, then ``base2``, ``base3``, … — the first free one for a
    new run (a second ordinary call never trips over the first), the newest one with ``resume``."""
    def numbered(i: int) -> Path:
        return base if i == 1 else base.with_name(f"{base.name}{i}")

    i = 1
    while numbered(i).exists():
        i += 1
    return numbered(max(1, i - 1)) if resume else numbered(i)


def differences(recorded: Any, now: Any, prefix: str = "") -> list[str]:
    """Where two JSON values differ, as ``dotted.key: old -> new`` lines (lists compared whole)."""
    if isinstance(recorded, dict) and isinstance(now, dict):
        out = []
        for key in sorted(set(recorded) | set(now), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in now:
                out.append(f"{name}: {json.dumps(recorded[key])} -> (absent)")
            elif key not in recorded:
                out.append(f"{name}: (absent) -> {json.dumps(now[key])}")
            else:
                out += differences(recorded[key], now[key], name)
        return out
    return [] if recorded == now else [f"{prefix}: {json.dumps(recorded)} -> {json.dumps(now)}"]


@dataclass
class RunDir:
    """A run directory, its manifest, and the stages it runs, in order (what each owns)."""

    path: Path
    manifest: dict[str, Any]
    stages: tuple[StageFiles, ...] = ()

    @classmethod
    def open(cls, path: Path | str, resume: bool = False, must_exist: bool = False,
             stages: tuple[StageFiles, ...] = ()) -> RunDir:
        """Open ``path``: resume its manifest, or start a fresh run (refusing to clobber a finished one)."""
        path = Path(path)
        mpath = path / MANIFEST
        if mpath.exists():
            run = cls(path, read_json(mpath), stages)
            if resume:
                run.remove_stale_temp_files()
            if resume or must_exist:
                return run
            if any(stage for stage in run.manifest.get("stages", {}).values() if stage.get("status") == "done"):
                raise KDCompressError(f"{path} already holds a run",
                                      "pass --resume to continue it, or choose another --out")
            # a run that failed before finishing any stage holds nothing worth keeping: start it afresh
        elif must_exist:
            raise KDCompressError(f"{path}: no run here ({MANIFEST} missing)", "run `kdcompress shrink` first")
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path, {"version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "stages": {}}, stages)
        run.save()
        return run

    def remove_stale_temp_files(self) -> None:
        """Delete the temp files (``.NAME.*.tmp``, see :func:`atomic_path`) a killed process left in the run: none
        of them is anything's finished content."""
        for tmp in self.path.rglob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def save(self) -> None:
        write_json(self.path / MANIFEST, self.manifest)

    def done(self, stage: str) -> bool:
        return self.manifest["stages"].get(stage, {}).get("status") == "done"

    def _stage(self, name: str) -> StageFiles:
        for s in self.stages:
            if s.name == name:
                return s
        raise ValueError(f"no stage {name!r} in this run's stages {[s.name for s in self.stages]}")

    def _from(self, name: str) -> tuple[StageFiles, ...]:
        """``name``'s stage and every later one."""
        return self.stages[self.stages.index(self._stage(name)) :]

    def output_files(self, stage: str) -> dict[str, str]:
        """{path relative to the run: sha256} of every file ``stage`` wrote (its declared outputs)."""
        return self.hashes(*self._stage(stage).outputs)

    def hashes(self, *patterns: str) -> dict[str, str]:
        """{path relative to the run: sha256} of the files under ``patterns`` (globs; folders whole), leaving out
        temp files and the stages' unhashed caches."""
        unhashed = tuple(u for s in self.stages for u in s.unhashed)
        files = {}
        for pattern in patterns:
            for p in sorted(self.path.glob(pattern)):
                for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
                    rel = f.relative_to(self.path).as_posix()
                    if f.is_file() and not f.name.endswith(".tmp") and not (unhashed and rel.startswith(unhashed)):
                        files[rel] = file_sha256(f)
        return files

    def mark_done(self, stage: str, seconds: float, **info: Any) -> None:
        """Record ``stage`` as finished, with the hash of every file it wrote (see :meth:`changed_outputs`)."""
        self.manifest["stages"][stage] = {"status": "done", "seconds": round(seconds, 2), **info,
                                          "files": self.output_files(stage)}
        self.save()

    def changed_outputs(self, stage: str) -> list[str]:
        """The files a finished ``stage`` wrote that are gone or changed since (or that appeared among its outputs):
        a file changed behind the tool's back is rebuilt, never trusted. A manifest without hashes (an older run)
        has nothing to compare."""
        recorded = self.manifest["stages"].get(stage, {}).get("files")
        if recorded is None:
            return []
        now = self.output_files(stage)
        return sorted(f for f in recorded.keys() | now.keys() if recorded.get(f) != now.get(f))

    def invalidate_from(self, stage: str) -> None:
        """Mark ``stage`` and every later stage as not done and delete their outputs (their inputs changed)."""
        later = self._from(stage)
        for s in later:
            self.manifest["stages"].pop(s.name, None)
        self.save()
        for s in later:
            for pattern in s.outputs:
                for p in self.path.glob(pattern):
                    shutil.rmtree(p) if p.is_dir() else p.unlink()

    def require(self, stage: str) -> None:
        """Raise unless every stage before ``stage`` is done."""
        for s in self.stages[: self.stages.index(self._stage(stage))]:
            if not self.done(s.name):
                raise KDCompressError(f"{self.path}: stage {s.name!r} has not finished",
                                      "finish the run first: `kdcompress shrink ... --resume`")

    def sub(self, *parts: str) -> Path:
        """A file path inside the run; its folder is created."""
        p = self.path.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def folder(self, *parts: str) -> Path:
        """A folder inside the run, created."""
        p = self.path.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p


class Progress:
    """Progress sink the library reports to; the CLI swaps in a rich progress bar. Silent by default."""

    def start(self, description: str, total: int | None) -> None: ...

    def advance(self, n: int = 1, note: str | None = None) -> None: ...

    def stop(self) -> None: ...

    def note(self, message: str) -> None:
        """A one-line notice for the user (e.g. a missing backend we fell back from)."""
