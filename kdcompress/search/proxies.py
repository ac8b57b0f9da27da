"""Zero-cost proxies that rank a randomly initialised student against a teacher without training it.

Every proxy has the same signature, ``proxy(teacher: Signals, student: nn.Module, x, y) -> float`` (higher is
better), and is registered in :data:`PROXIES`. The DisWOT terms are pure functions over tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kdcompress.models.pruning import PRUNED_FAMILY, PruningSource
from kdcompress.search import rivals
from kdcompress.search.combo import combo
from kdcompress.search.probe import ProxyBatch, Signals, gaussian_init_, student_signals


def sp_relation(f_t: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
    """Sample-relation distance, DisWOT's M_r (Dong et al., CVPR 2023, Eq. 4; Similarity-Preserving KD, Tung & Mori,
    ICCV 2019, Eq. 2–4).

    ``A = reshape(F, (N, -1))``, ``G = rownorm(A Aᵀ)`` for teacher and student, ``M_r = ‖G_t − G_s‖²_F / N²``.
    Feature shapes may differ except in the batch dimension.
    """
    n = f_t.shape[0]
    g_t = F.normalize(f_t.reshape(n, -1) @ f_t.reshape(n, -1).T, dim=1)
    g_s = F.normalize(f_s.reshape(n, -1) @ f_s.reshape(n, -1).T, dim=1)
    return ((g_t - g_s) ** 2).sum() / n**2


def class_semantic(w_t: torch.Tensor, w_s: torch.Tensor) -> torch.Tensor:
    """Semantic distance, DisWOT's M_s (Dong et al., CVPR 2023, Eq. 3), in its width-independent form.

    The paper compares ICKD-style channel correlations of the classifier-weight gradients (``K×C``), which needs the
    student's feature width ``C`` to equal the teacher's. Our students' widths differ, so we compare the *class*
    correlation ``G = rownorm(W Wᵀ)`` (``K×K``, defined for any ``C``): ``M_s = ‖G_t − G_s‖²_F / K²``. It is used for
    every candidate so that all scores in one search come from the same formula.
    """
    k = w_t.shape[0]
    g_t = F.normalize(w_t @ w_t.T, dim=1)
    g_s = F.normalize(w_s @ w_s.T, dim=1)
    return ((g_t - g_s) ** 2).sum() / k**2


def ickd_semantic(w_t: torch.Tensor, w_s: torch.Tensor) -> torch.Tensor:
    """DisWOT's M_s exactly as the authors' code computes it (``distiller_zoo/ICKD.py`` on ``K×C×1×1`` gradients).

    For each class k the ``C×C`` outer product ``g_k g_kᵀ``, rows L2-normalised; squared difference summed over all
    classes and divided by ``C·K``. Needs equal ``C`` for teacher and student.
    """
    if w_t.shape != w_s.shape:
        raise ValueError(f"ickd_semantic needs equal classifier shapes, got {tuple(w_t.shape)} vs {tuple(w_s.shape)}")
    k, c = w_t.shape
    g_t = F.normalize(w_t[:, :, None] * w_t[:, None, :], dim=2)
    g_s = F.normalize(w_s[:, :, None] * w_s[:, None, :], dim=2)
    return ((g_t - g_s) ** 2).sum() / (c * k)


def diswot_terms(teacher: Signals, student: Signals) -> tuple[float, float]:
    """DisWOT's two distances ``(M_s, M_r)`` between a student's signals and the teacher's (both ≥ 0)."""
    m_s = class_semantic(teacher.classifier_grad, student.classifier_grad)
    m_r = sp_relation(teacher.features, student.features)
    return float(m_s), float(m_r)


def diswot_score(teacher: Signals, student: Signals) -> float:
    """DisWOT score (Dong et al., CVPR 2023, Eq. 5): ``−(M_s + M_r)``; higher means a better student for KD."""
    m_s, m_r = diswot_terms(teacher, student)
    return -(m_s + m_r)


def diswot(teacher: Signals, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """DisWOT proxy as published: student signals from one forward + one CE backward at its current (random) init,
    scored ``−(M_s + M_r)``.

    Not the default: on our Fashion-MNIST benchmark its ranking of same-budget students is uncorrelated with their
    distilled accuracy (benchmarks/results/search_correlation.json, README "Which proxy ranks students here").
    """
    return diswot_score(teacher, student_signals(student, x, y))


def diswot_semantic(teacher: Signals, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """DisWOT's semantic term alone, ``−M_s`` (an ablation of the two terms of Dong et al., CVPR 2023)."""
    return -diswot_terms(teacher, student_signals(student, x, y))[0]


def diswot_relation(teacher: Signals, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """DisWOT's sample-relation term alone, ``−M_r`` (an ablation of the two terms of Dong et al., CVPR 2023)."""
    return -diswot_terms(teacher, student_signals(student, x, y))[1]


def diswot_log(teacher: Signals, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """DisWOT with scale-free terms (our variant): ``−(log M_s + log M_r)``.

    The published sum lets whichever term is larger decide alone: on our Fashion-MNIST teacher ``M_s`` is 50–400×
    ``M_r`` (benchmarks/results/proxy_repeatability.json). In logs each term counts by its *relative* change, and
    multiplying either by a constant (a wider teacher, another K) shifts every candidate equally.
    """
    m_s, m_r = diswot_terms(teacher, student_signals(student, x, y))
    return -(math.log(max(m_s, _TINY)) + math.log(max(m_r, _TINY)))


_TINY = 1e-30


def params(teacher: Signals, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Parameter count: the capacity baseline every proxy must beat."""
    return float(sum(p.numel() for p in student.parameters()))


def flops(teacher: Signals, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """FLOPs of one sample's forward pass (``torch.utils.flop_counter``)."""
    return float(count_flops(student, x[:1]))


def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Exact FLOPs of ``model(x)`` as counted by ``torch.utils.flop_counter`` (put ``model`` in eval mode first)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


# The initialisation each proxy scores a student at, when it is not PyTorch's default.
PROXY_INIT: dict[str, Callable[[nn.Module, torch.Generator], None]] = {
    name: gaussian_init_ for name in ("diswot", "diswot_semantic", "diswot_relation", "diswot_log")
}
# Proxies that compare the student with the teacher's signals (the others ignore the teacher).
TEACHER_PROXIES = frozenset([*PROXY_INIT, "combo"])

def score_student(
    name: str, teacher: Signals | None, family: str, genes: dict, in_channels: int, num_classes: int,
    x: torch.Tensor, y: torch.Tensor, seed: int, pruning: PruningSource | None = None,
) -> float:
    """Score a freshly built student of ``family``/``genes`` with proxy ``name``, at the init that proxy asks for."""
    from kdcompress.models.students import build_student

    torch.manual_seed(seed)
    student = build_student(family, genes, in_channels, num_classes, pruning)
    if family == PRUNED_FAMILY:  # it arrives with the teacher's trained weights; proxies score architectures at init
        for m in student.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    if name in PROXY_INIT:
        PROXY_INIT[name](student, torch.Generator().manual_seed(seed))
    return PROXIES[name](teacher, student, x, y)


def score_batches(
    name: str, batches: list[ProxyBatch], family: str, genes: dict, in_channels: int, num_classes: int,
    pruning: PruningSource | None = None,
) -> float:
    """Proxy ``name`` averaged over scoring batches, each with its own student init (``batch.seed``)."""
    return sum(score_student(name, b.teacher, family, genes, in_channels, num_classes, b.x, b.y, b.seed, pruning)
               for b in batches) / len(batches)


Proxy = Callable[[Signals, nn.Module, torch.Tensor, torch.Tensor], float]

PROXIES: dict[str, Proxy] = {
    "diswot": diswot,
    "diswot_semantic": diswot_semantic,
    "diswot_relation": diswot_relation,
    "diswot_log": diswot_log,
    "params": params,
    "flops": flops,
    "grad_norm": rivals.grad_norm,
    "snip": rivals.snip,
    "synflow": rivals.synflow,
    "nwot": rivals.nwot,
    "zen": rivals.zen,
    "combo": combo,
}
