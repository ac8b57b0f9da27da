"""The one exception type for problems the user can fix."""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


class KDCompressError(Exception):
    """A problem the user can fix: the CLI prints it in one line and exits with code 2.

    Anything else that escapes is a bug and keeps its traceback.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} — {hint}" if hint else message)


def first_line(e: BaseException, limit: int | None = 160) -> str:
    """The first line of ``e``'s message (cut at ``limit``; None: whole), or its type's name when it has none, for
    one-line errors that wrap another library's exception."""
    text = str(e).strip()
    return text.splitlines()[0][:limit] if text else type(e).__name__


def cause(e: BaseException, limit: int | None = 120) -> str:
    """``Type: first line`` of another library's exception, as one-line errors quote it in parentheses."""
    text = first_line(e, limit)
    return type(e).__name__ if text == type(e).__name__ else f"{type(e).__name__}: {text}"


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' — did you mean X?' suffix listing the valid names, for unknown-name errors."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    return f"{suggestion}valid: {', '.join(choices)}"


def lookup(registry: dict, name: str, kind: str):
    """Fetch ``name`` from a registry dict, or raise a KDCompressError that lists the valid names."""
    try:
        return registry[name]
    except KeyError:
        raise KDCompressError(f"unknown {kind} {name!r}", did_you_mean(name, registry)) from None


# What the machine refuses rather than what the code gets wrong: the user fixes these by freeing space, granting
# permission or choosing another path. Every other OSError stays a bug, with its traceback.
_ENVIRONMENT = {
    errno.ENOSPC: ("no space left on the disk", "free some space (or choose another --out) and re-run with --resume"),
    errno.EDQUOT: ("disk quota exceeded", "free some space (or choose another --out) and re-run with --resume"),
    errno.EACCES: ("permission denied", "check its permissions, or choose another --out"),
    errno.EPERM: ("operation not permitted", "check its permissions, or choose another --out"),
    errno.EROFS: ("read-only file system", "choose a writable folder with --out"),
    errno.ENOTDIR: ("a file stands where a folder is needed", "choose another --out"),
}


def environment_error(e: OSError) -> KDCompressError | None:
    """The one-line error for an OSError the user can fix (full disk, no permission, read-only or non-directory
    path); None for any other OSError."""
    if e.errno not in _ENVIRONMENT:
        return None
    what, fix = _ENVIRONMENT[e.errno]
    return KDCompressError(f"{e.filename}: {what}" if e.filename else what, fix)
