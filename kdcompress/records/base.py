"""The base of the typed records the stages hand each other (DESIGN §1): frozen dataclasses with
``to_json``/``from_json``.

Each file a stage writes for another to read is one of these, built in one place and read through its class,
never by JSON key in several modules. Torch-free, so the CLI and the report can read a run without loading a model.

A record's JSON is its fields by name (nested records as objects); a field listed in ``_OMIT_NONE`` is left out
while it is None, so files written before the field existed and files written now compare equal. A file whose
``schema_version`` is newer than this release's is refused in one line that names the version.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from kdcompress.errors import KDCompressError

R = TypeVar("R", bound="Record")


class Record:
    """Base of every record: JSON by field name, nested records rebuilt from their type hints."""

    SCHEMA_VERSION: ClassVar[int | None] = None  # files that carry a schema_version field
    _OMIT_NONE: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.name in self._OMIT_NONE:
                continue
            out[f.name] = _dump(value)
        return out

    @classmethod
    def from_json(cls: type[R], d: Mapping[str, Any], source: str = "") -> R:
        """Rebuild the record from its JSON; ``source`` (a file name) prefixes the one-line error of a bad file."""
        where = f"{source}: " if source else ""
        if not isinstance(d, Mapping):
            raise KDCompressError(f"{where}expected a JSON object for {cls.__name__}", "re-run the stage that wrote it")
        version = d.get("schema_version")
        if cls.SCHEMA_VERSION is not None and isinstance(version, int) and version > cls.SCHEMA_VERSION:
            raise KDCompressError(f"{where}written with {cls.__name__} schema version {version}; this kdcompress "
                                  f"reads up to {cls.SCHEMA_VERSION}", "upgrade kdcompress, or re-run the stage")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in d:
                kwargs[f.name] = _load(hints[f.name], d[f.name])
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise KDCompressError(f"{where}no {f.name!r} in its {cls.__name__} record (an older or foreign file)",
                                      "re-run the stage that wrote it")
        return cls(**kwargs)


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _load(hint: Any, value: Any) -> Any:
    """``value`` (JSON) as the type ``hint`` says: records rebuilt, tuples of records and maps of records too."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _load(inner[0], value) if len(inner) == 1 else value
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_json(value)
    if origin is tuple:
        return tuple(_load(args[0], v) for v in value)
    if origin in (dict, Mapping) and len(args) == 2:
        return {k: _load(args[1], v) for k, v in value.items()}
    return value
