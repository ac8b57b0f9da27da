"""Teacher-free zero-cost proxies, the baselines DisWOT must beat (same signature as every proxy; the teacher's
signals are ignored). Each scores a student at its PyTorch default initialisation on one batch; higher is better.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from kdcompress.models.probe import Signals


def _ce_backward(student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    student.train()
    student.zero_grad(set_to_none=True)
    F.cross_entropy(student(x), y).backward()


def grad_norm(teacher: Signals | None, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """grad_norm (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021, §3):
    ``Σ_l ‖∂L/∂θ_l‖₂`` over every parameter tensor, for the cross-entropy of one batch."""
    _ce_backward(student, x, y)
    return float(sum(p.grad.norm() for p in student.parameters() if p.grad is not None))


def snip(teacher: Signals | None, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """SNIP connection sensitivity (Lee et al., ICLR 2019, Eq. 6), summed as in Abdelfattah et al. (ICLR 2021):
    ``Σ |∂L/∂θ ⊙ θ|`` over conv and linear weights."""
    _ce_backward(student, x, y)
    weights = [p for p in student.parameters() if p.grad is not None and p.ndim > 1]
    return float(sum((p.grad * p.detach()).abs().sum() for p in weights))


def synflow(teacher: Signals | None, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """SynFlow (Tanaka et al., NeurIPS 2020, Eq. 2 and Alg. 1), data-free: with every parameter replaced by its
    absolute value and an all-ones input, ``R = 1ᵀ f(1)`` and the score is ``Σ θ ⊙ ∂R/∂θ``. Returned as its natural
    log (the sum spans hundreds of orders of magnitude across a space); computed in float64, BN in eval mode."""
    model = copy.deepcopy(student).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad(set_to_none=True)
    model(torch.ones(1, *x.shape[1:], dtype=torch.float64)).sum().backward()
    total = sum(float((p.grad * p).detach().sum()) for p in model.parameters() if p.grad is not None)
    return math.log(total) if total > 0 else float("-inf")


def nwot(teacher: Signals | None, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """NASWOT (Mellor et al., "Neural Architecture Search without Training", ICML 2021, Eq. 2):
    binary ReLU codes ``c_i`` per sample, ``K_H[i, j] = N_A − d_H(c_i, c_j)`` summed over the observed ReLU layers
    (``nn.ReLU``/``nn.ReLU6`` modules and residual-block outputs), score ``log |det K_H|``."""
    n = len(x)
    k = torch.zeros(n, n, dtype=torch.float64)

    def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        c = (out.detach().flatten(1) > 0).double()
        k.add_(c @ c.T + (1 - c) @ (1 - c).T)

    from kdcompress.models.students import BasicBlock

    # a BasicBlock ends in a ReLU; its inner functional ReLU is not observed. ReLU6 is not a subclass of ReLU.
    kinds = (nn.ReLU, nn.ReLU6, BasicBlock)
    handles = [m.register_forward_hook(hook) for m in student.modules() if isinstance(m, kinds)]
    try:
        student.train()
        with torch.no_grad():
            student(x)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(k)
    return float(logdet) if float(sign) > 0 else float("-inf")


def zen(teacher: Signals | None, student: nn.Module, x: torch.Tensor, y: torch.Tensor, alpha: float = 0.01) -> float:
    """Zen-score (Lin et al., "Zen-NAS", ICCV 2021, Eq. 5–6): with Gaussian weights and Gaussian input ``z``,
    ``log E‖f(z) − f(z + α ε)‖`` on the pre-pooling feature map, plus ``Σ_BN log sqrt(mean_c σ²_c)`` where
    ``σ²_c`` is the batch variance each BatchNorm normalises by (BN in train mode).

    Defined for our student families (``forward_features``); any other network (a pruned teacher) scores ``-inf``,
    so zen never prefers a candidate it cannot measure.
    """
    from kdcompress.models.probe import gaussian_init_

    if not hasattr(student, "forward_features"):
        return float("-inf")

    model = copy.deepcopy(student).train()
    gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,))))
    gaussian_init_(model, gen)
    bn_vars: list[torch.Tensor] = []
    handles = [m.register_forward_pre_hook(lambda _m, inp: bn_vars.append(inp[0].var(dim=(0, 2, 3)).mean()))
               for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    z = torch.randn(x.shape, generator=gen)
    eps = torch.randn(x.shape, generator=gen)
    try:
        with torch.no_grad():
            f1 = model.forward_features(z)
            n_bn = len(bn_vars)
            f2 = model.forward_features(z + alpha * eps)
    finally:
        for h in handles:
            h.remove()
    delta = float((f1 - f2).abs().sum() / len(x))
    bn_term = sum(0.5 * math.log(float(v)) for v in bn_vars[:n_bn] if float(v) > 0)
    return (math.log(delta) if delta > 0 else float("-inf")) + bn_term
