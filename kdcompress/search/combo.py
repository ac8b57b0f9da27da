"""``combo``: a weighted sum of zero-cost proxies, in the spirit of RoBoT (He et al., "Robustifying and Boosting
Training-Free NAS", ICLR 2024, §4), with weights fitted on a small labelled set of distilled students.

RoBoT normalises each proxy over the evaluated architectures and searches the weights with Bayesian optimisation.
During an evolution the set of evaluated architectures keeps growing, so a population-wide normalisation would keep
re-ranking old candidates; instead each component is put on a log scale (most proxies span orders of magnitude),
where a per-teacher constant factor shifts every candidate alike, and a ridge regression of the (standardised)
distilled accuracy on the (standardised) components gives the weights. The shipped weights come from
``benchmarks/search_correlation.py`` and are stored in ``combo_weights.json`` beside this module.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdcompress.models.probe import Signals

COMBO_COMPONENTS = ["params", "flops", "grad_norm", "snip", "synflow", "nwot", "zen", "diswot_relation",
                    "diswot_kxk_semantic"]


def _log(v: float) -> float:
    return math.log(v) if v > 0 else -math.inf


def _neg_log_distance(v: float) -> float:  # DisWOT terms are negated distances: -log(distance)
    return -math.log(-v) if v < 0 else math.inf


# How each component's raw score enters the sum; those not listed are already on a log scale.
TRANSFORMS: dict[str, Callable[[float], float]] = {
    "params": _log, "flops": _log, "grad_norm": _log, "snip": _log,
    "diswot_relation": _neg_log_distance, "diswot_kxk_semantic": _neg_log_distance,
}
WEIGHTS_FILE = Path(__file__).with_name("combo_weights.json")  # where the benchmark writes them (source tree)


def combo_features(scores: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(students, components) matrix of transformed scores, with non-finite entries set to their column's worst
    value (for fitting), and a mask of the students whose components are all finite — the others rank last, as
    :func:`combo` gives them ``-inf``."""
    cols, finite_rows = [], None
    for name in COMBO_COMPONENTS:
        col = np.array([TRANSFORMS.get(name, float)(float(v)) for v in scores[name]])
        finite = np.isfinite(col)
        finite_rows = finite if finite_rows is None else finite_rows & finite
        col[~finite] = col[finite].min() if finite.any() else 0.0
        cols.append(col)
    return np.stack(cols, axis=1), finite_rows


def fit_combo(feats: np.ndarray, accuracy: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Ridge regression of standardised accuracy on standardised components; weights on the *unstandardised*
    components (only their ratios matter for ranking)."""
    mu, sd = feats.mean(axis=0), feats.std(axis=0)
    sd[sd == 0] = 1.0
    z = (feats - mu) / sd
    t = (accuracy - accuracy.mean()) / (accuracy.std() or 1.0)
    w = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ t)
    return w / sd


@cache
def shipped_weights() -> dict[str, float]:
    return json.loads(resources.files(__package__).joinpath(WEIGHTS_FILE.name).read_text())["weights"]


def weighted_sum(proxies: Mapping[str, Callable], inits: Mapping[str, Callable], teacher: Signals | None,
                 student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Weighted sum of the transformed component proxies (weights in ``combo_weights.json``); the ``combo`` proxy
    of :mod:`kdcompress.search.proxies`, which hands in its registry (``proxies``) and their inits.

    Each component scores its own copy of ``student`` at the init it asks for, seeded by the seed the caller set
    (``torch.initial_seed()``, set by :func:`~kdcompress.search.proxies.score_student`).
    """
    PROXIES, PROXY_INIT = proxies, inits  # noqa: N806 — the registries' names
    total = 0.0
    for name, w in shipped_weights().items():
        net = copy.deepcopy(student)
        if name in PROXY_INIT:
            PROXY_INIT[name](net, torch.Generator().manual_seed(torch.initial_seed()))
        value = TRANSFORMS.get(name, float)(PROXIES[name](teacher, net, x, y))
        if not math.isfinite(value):
            return -math.inf
        total += w * value
    return total
