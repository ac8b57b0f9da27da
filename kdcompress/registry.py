"""One small registry type for every kind the code is driven by (students, proxies, losses, backends): a dict whose
unknown names fail in one line that lists the valid ones and suggests the closest (timm's ``_registry`` pattern)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from kdcompress.errors import KDCompressError, did_you_mean

T = TypeVar("T")


class UnknownName(KDCompressError, KeyError):
    """A name no entry of the registry has (a KeyError too, so ``dict`` idioms keep working)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return KDCompressError.__str__(self)


class Registry(dict[str, T]):
    """``name -> entry`` of one ``kind`` (e.g. "proxy"); ``REG[name]`` of an unknown name raises :class:`UnknownName`."""

    def __init__(self, kind: str, entries: dict[str, T] | None = None) -> None:
        super().__init__(entries or {})
        self.kind = kind

    def __missing__(self, name: str) -> T:
        raise UnknownName(f"unknown {self.kind} {name!r}", did_you_mean(str(name), self))

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name")`` adds the decorated object under ``name`` (twice is a bug)."""
        def add(entry: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self[name] = entry
            return entry
        return add

    def names(self) -> list[str]:
        return sorted(self)
