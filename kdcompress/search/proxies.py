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

from kdcompress.models.probe import ProxyBatch, Signals, gaussian_init_, student_signals
from kdcompress.models.pruning import PRUNED_FAMILY, PruningSource, reinitialise_
from kdcompress.registry import Registry
from kdcompress.search import rivals
from kdcompress.search.combo import weighted_sum


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


def sp_relation_sample0(f_t: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
    """DisWOT's relation term as the authors' NAS-Bench-201 scoring code computes it (a variant of Eq. 4).

    ``exps/parse_nb201_distill.py`` (lliai/DisWOT-CVPR2023) calls ``Similarity()(tfeature[-1], sfeature[-1])[0]``
    where ``features[-1]`` is the globally pooled ``N×D`` feature and the loss expects *lists* of maps: it zips over
    the batch, so each "batch" is one sample's ``D`` vector viewed as ``D×1``, and ``[0]`` keeps the first sample.
    What it computes is therefore, for sample 0's pooled feature ``v``: ``G = rownorm(v vᵀ)`` (``D×D``),
    ``‖G_t − G_s‖²_F / D²``. Takes the maps before pooling (``N×D×H×W``) and pools them; needs equal ``D``.
    """
    if f_t.shape[1] != f_s.shape[1]:
        raise ValueError(f"sp_relation_sample0 needs equal channel counts, got {f_t.shape[1]} vs {f_s.shape[1]}")
    d = f_t.shape[1]
    v_t, v_s = f_t[0].reshape(d, -1).mean(1), f_s[0].reshape(d, -1).mean(1)
    g_t = F.normalize(v_t[:, None] * v_t[None, :], dim=1)
    g_s = F.normalize(v_s[:, None] * v_s[None, :], dim=1)
    return ((g_t - g_s) ** 2).sum() / d**2


def class_semantic(w_t: torch.Tensor, w_s: torch.Tensor) -> torch.Tensor:
    """A width-independent stand-in for DisWOT's M_s (ours, not the paper's): the *class* correlation of the
    classifier-weight gradients, ``G = rownorm(W Wᵀ)`` (``K×K``, defined for any ``C``), ``‖G_t − G_s‖²_F / K²``.

    The paper's M_s is :func:`ickd_semantic` (``C×C`` per class), defined only where the student's classifier width
    equals the teacher's.
    """
    k = w_t.shape[0]
    g_t = F.normalize(w_t @ w_t.T, dim=1)
    g_s = F.normalize(w_s @ w_s.T, dim=1)
    return ((g_t - g_s) ** 2).sum() / k**2


def ickd_semantic(w_t: torch.Tensor, w_s: torch.Tensor) -> torch.Tensor:
    """DisWOT's semantic distance M_s (Dong et al., CVPR 2023, Eq. 3) exactly as the authors' code computes it
    (``distiller_zoo/ICKD.py`` on the ``K×C×1×1`` classifier-weight gradients).

    For each class k the ``C×C`` outer product ``g_k g_kᵀ``, rows L2-normalised; squared difference summed over all
    classes and divided by ``C·K``. Needs equal ``C`` for teacher and student.

    Computed in closed form, without the ``K×C×C`` tensor (17 GB for an ImageNet ResNet-50): row ``i`` of
    rownorm(``g gᵀ``) is ``sign(g_i) ĝ`` (zero where ``g_i`` is), so a class contributes
    ``nnz(g_t) + nnz(g_s) − 2 (ĝ_t·ĝ_s) Σ_i sign(g_t,i) sign(g_s,i)``.
    """
    if w_t.shape != w_s.shape:
        raise ValueError(f"ickd_semantic needs equal classifier shapes, got {tuple(w_t.shape)} vs {tuple(w_s.shape)}")
    k, c = w_t.shape
    sign_t, sign_s = torch.sign(w_t), torch.sign(w_s)
    cosine = (F.normalize(w_t, dim=1) * F.normalize(w_s, dim=1)).sum(1)
    per_class = sign_t.abs().sum(1) + sign_s.abs().sum(1) - 2 * cosine * (sign_t * sign_s).sum(1)
    return per_class.sum() / (c * k)


def same_width(teacher: Signals, student: Signals) -> bool:
    """Whether the student's classifier reads as many features as the teacher's: where DisWOT's M_s is defined."""
    return teacher.classifier_grad.shape == student.classifier_grad.shape


def diswot_score(teacher: Signals, student: Signals) -> float:
    """DisWOT as its authors run it (Dong et al., CVPR 2023, Eq. 5), per regime; higher is better.

    Where the student's classifier width equals the teacher's: ``−(M_s + M_r)``, M_s the per-class ``C×C``
    correlation of the classifier-weight gradients (:func:`ickd_semantic`), M_r the sample relation
    (:func:`sp_relation`) — the paper's equation, as in the authors' fixed-width spaces (NAS-Bench-201; ResNet-20
    depths). Where the widths differ, M_s is undefined and the score is ``−M_r`` alone, as the authors' own
    width-varying search does (``searcher/evo_search_zen.py``). In a search that mixes both regimes, a same-width
    candidate carries the extra term.
    """
    m_r = float(sp_relation(teacher.features, student.features))
    if not same_width(teacher, student):
        return -m_r
    return -(float(ickd_semantic(teacher.classifier_grad, student.classifier_grad)) + m_r)


def diswot_code_score(teacher: Signals, student: Signals) -> float:
    """DisWOT with the relation term as the authors' NAS-Bench-201 code computes it (:func:`sp_relation_sample0`),
    per regime like :func:`diswot_score`; where widths differ, the SP relation of ``evo_search_zen.py``."""
    if not same_width(teacher, student) or teacher.features.shape[1] != student.features.shape[1]:
        return -float(sp_relation(teacher.features, student.features))
    return -float(ickd_semantic(teacher.classifier_grad, student.classifier_grad)
                  + sp_relation_sample0(teacher.features, student.features))


def kxk_terms(teacher: Signals, student: Signals) -> tuple[float, float]:
    """Our width-independent DisWOT variant's two distances ``(M_s^{K×K}, M_r)`` (both ≥ 0): the class-correlation
    semantic term (:func:`class_semantic`) for every candidate, and the sample relation."""
    m_s = class_semantic(teacher.classifier_grad, student.classifier_grad)
    m_r = sp_relation(teacher.features, student.features)
    return float(m_s), float(m_r)


def diswot(teacher: Signals, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """DisWOT as its authors run it: student signals from one forward + one CE backward at its current (random) init,
    scored by :func:`diswot_score` (``−(M_s + M_r)`` where the classifier widths match, ``−M_r`` where they differ).

    Not the default: on our Fashion-MNIST benchmark its ranking of same-budget students is uncorrelated with their
    distilled accuracy (benchmarks/results/search_correlation.json, README "Which proxy ranks students here").
    """
    return diswot_score(teacher, student_signals(student, x, y))


def diswot_code(teacher: Signals, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """DisWOT with the authors' code-variant relation term (:func:`diswot_code_score`)."""
    return diswot_code_score(teacher, student_signals(student, x, y))


def diswot_relation(teacher: Signals, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """DisWOT's sample-relation term alone, ``−M_r``: what the authors score with where widths vary."""
    return -float(sp_relation(teacher.features, student_signals(student, x, y).features))


def diswot_kxk(teacher: Signals, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Our width-independent DisWOT variant: ``−(M_s^{K×K} + M_r)`` for every candidate (:func:`kxk_terms`)."""
    return -sum(kxk_terms(teacher, student_signals(student, x, y)))


def diswot_kxk_semantic(teacher: Signals, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The K×K class-correlation term of our variant alone, ``−M_s^{K×K}``."""
    return -kxk_terms(teacher, student_signals(student, x, y))[0]


def diswot_kxk_log(teacher: Signals, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Our variant with scale-free terms: ``−(log M_s^{K×K} + log M_r)``.

    The plain sum lets whichever term is larger decide alone: on our Fashion-MNIST teacher ``M_s^{K×K}`` is
    50–400× ``M_r`` (benchmarks/results/proxy_repeatability.json). In logs each term counts by its *relative* change,
    and multiplying either by a constant (a wider teacher, another K) shifts every candidate equally.
    """
    m_s, m_r = kxk_terms(teacher, student_signals(student, x, y))
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
    name: gaussian_init_ for name in ("diswot", "diswot_code", "diswot_relation", "diswot_kxk", "diswot_kxk_semantic",
                                      "diswot_kxk_log")
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
        reinitialise_(student)
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


def combo(teacher: Signals | None, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """RoBoT-style weighted sum of the other proxies (He et al., ICLR 2024; :mod:`kdcompress.search.combo`)."""
    return weighted_sum(PROXIES, PROXY_INIT, teacher, student, x, y)


Proxy = Callable[[Signals, nn.Module, torch.Tensor, torch.Tensor], float]

PROXIES: Registry[Proxy] = Registry("proxy", {
    "diswot": diswot,
    "diswot_code": diswot_code,
    "diswot_relation": diswot_relation,
    "diswot_kxk": diswot_kxk,
    "diswot_kxk_semantic": diswot_kxk_semantic,
    "diswot_kxk_log": diswot_kxk_log,
    "params": params,
    "flops": flops,
    "grad_norm": rivals.grad_norm,
    "snip": rivals.snip,
    "synflow": rivals.synflow,
    "nwot": rivals.nwot,
    "zen": rivals.zen,
    "combo": combo,
})
