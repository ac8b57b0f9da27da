"""kdcompress: turn a trained PyTorch model into a smaller, faster, verified deployable artifact.

The public API; each name is imported on first use, so ``import kdcompress`` stays light (no torch) until a
pipeline function is called.

    import kdcompress
    result = kdcompress.shrink(kdcompress.Inputs("teacher.pt2", "fashion-mnist", kdcompress.load_profile("ci")),
                               "runs/demo")
    print(result.best, result.to_json()["frontier"])
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from kdcompress.errors import KDCompressError
from kdcompress.records import Result

try:
    __version__ = version("kdcompress")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {"shrink": "kdcompress.pipeline", "Inputs": "kdcompress.session", "load_profile": "kdcompress.profiles"}

__all__ = ["Inputs", "KDCompressError", "Result", "__version__", "load_profile", "shrink"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kdcompress' has no attribute {name!r}")
