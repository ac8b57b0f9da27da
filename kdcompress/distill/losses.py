"""Distillation losses: pure functions over tensors, one paper each, registered in :data:`LOSSES`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn

from kdcompress import loss_configs as C
from kdcompress.registry import Registry


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor, T: float = 4.0, alpha: float = 0.9
) -> torch.Tensor:
    """Knowledge distillation (Hinton, Vinyals & Dean, 2015, §2):

    ``L = α · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)) + (1 − α) · CE(z_s, y)``.

    The ``T²`` factor keeps the soft-target gradients on the scale of the hard-target ones as ``T`` changes.
    """
    log_p_s = F.log_softmax(student_logits / T, dim=1)
    log_p_t = F.log_softmax(teacher_logits / T, dim=1)
    soft = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (T * T)
    if alpha >= 1.0:
        return soft
    return alpha * soft + (1.0 - alpha) * F.cross_entropy(student_logits, targets)


def dkd_parts(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
              T: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The two parts of Decoupled KD (Zhao et al., CVPR 2022, §3.1, Eq. 2–3), per sample, each scaled by ``T²``:

    - TCKD ``= KL(b_t ‖ b_s)`` over the binary split ``b = [p_gt, 1 − p_gt]`` (target class vs all others);
    - NCKD ``= KL(p̂_t ‖ p̂_s)`` over the non-target classes, renormalised among themselves.

    Classical KD decomposes as ``KD = TCKD + (1 − p_gt^t) · NCKD`` (their Eq. 1); DKD weights the parts freely.
    Computed in log space (the non-target mass as a logsumexp), so no probability is rounded to zero.
    """
    log_p_s = F.log_softmax(student_logits / T, dim=1)
    log_p_t = F.log_softmax(teacher_logits / T, dim=1)
    gt = F.one_hot(targets, student_logits.shape[1]).bool()

    def binary(log_p: torch.Tensor) -> torch.Tensor:  # log [p_gt, 1 - p_gt]
        return torch.stack([log_p[gt], torch.logsumexp(log_p.masked_fill(gt, -torch.inf), dim=1)], dim=1)

    b_s, b_t = binary(log_p_s), binary(log_p_t)
    tckd = (b_t.exp() * (b_t - b_s)).sum(1)
    n_s = F.log_softmax((student_logits / T).masked_fill(gt, -torch.inf), dim=1)
    n_t = F.log_softmax((teacher_logits / T).masked_fill(gt, -torch.inf), dim=1)
    nckd = torch.where(gt, 0.0, n_t.exp() * (n_t - n_s)).sum(1)
    return tckd * T * T, nckd * T * T


def dkd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor, T: float = 4.0,
    alpha: float = 1.0, beta: float = 8.0, ce: float = 1.0, ramp: float = 1.0,
) -> torch.Tensor:
    """Decoupled Knowledge Distillation (Zhao et al., CVPR 2022, Eq. 3 and their training recipe):

    ``L = ce · CE(z_s, y) + ramp · (α · TCKD + β · NCKD)``, batch means of :func:`dkd_parts`. ``ramp`` is the
    linear warm-up of the distillation term their recipe uses (``min(epoch / warmup, 1)``), given by the trainer.
    """
    tckd, nckd = dkd_parts(student_logits, teacher_logits, targets, T)
    loss = ramp * (alpha * tckd.mean() + beta * nckd.mean())
    return loss + ce * F.cross_entropy(student_logits, targets) if ce else loss


# Feature losses. Each takes the last feature map before pooling (N, C, H, W) of student and teacher, or the pooled
# embedding (N, D); where the paper passes the student through a learned adapter first (FitNets' regressor, ICKD's
# embedding), the caller applies it — these functions hold no parameters.


def fitnet_loss(student_hint: torch.Tensor, teacher_hint: torch.Tensor) -> torch.Tensor:
    """FitNets hint loss (Romero et al., ICLR 2015, Eq. 3): the squared distance between the teacher's hint and the
    student's guided layer mapped by the regressor (here a learned 1x1 convolution), as a mean over elements (as
    torchdistill's and CRD's ``HintLoss``: ``MSELoss``)."""
    return F.mse_loss(student_hint, teacher_hint)


def sp_loss(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """Similarity-Preserving KD (Tung & Mori, ICCV 2019, Eq. 2-4): the batch's b x b similarity matrices
    ``G = Q Q^T`` (Q: each sample's activations flattened), each row L2-normalised, compared as
    ``||G_t - G_s||_F^2 / b^2``. Invariant to the feature maps' channel count and size, so none is adapted."""
    b = student_features.shape[0]

    def similarity(f: torch.Tensor) -> torch.Tensor:
        q = f.reshape(b, -1)
        return F.normalize(q @ q.T, dim=1)

    return (similarity(teacher_features) - similarity(student_features)).pow(2).sum() / (b * b)


def ickd_loss(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """Inter-Channel Correlation KD (Liu et al., ICCV 2021, Eq. 2-4): per sample, the C x C Gram matrix of the
    channels over the spatial positions, each row L2-normalised; ``sum ||G_s - G_t||^2 / (C · b)``. The student's
    map must already have the teacher's channel count (their learned 1x1 embedding); spatial sizes may differ.
    As the DisWOT authors' ``distiller_zoo/ICKD.py`` computes it."""
    b, c = teacher_features.shape[:2]

    def gram(f: torch.Tensor) -> torch.Tensor:
        v = f.reshape(b, c, -1)
        return F.normalize(v @ v.transpose(1, 2), dim=2)

    return (gram(student_features) - gram(teacher_features)).pow(2).sum() / (c * b)


def _pairwise_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    sq = e.pow(2).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * e @ e.T).clamp(min=eps).sqrt()
    return d * (1 - torch.eye(len(e), dtype=e.dtype, device=e.device))  # exact zeros on the diagonal


def rkd_loss(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor, distance: float = 25.0,
             angle: float = 50.0) -> torch.Tensor:
    """Relational KD (Park et al., CVPR 2019, Eq. 4-7): the Huber (smooth L1) loss between the students' and the
    teacher's pairwise distances, each normalised by its mean over distinct pairs (``distance`` weight), plus that
    between the cosines of the angles every triplet forms (``angle`` weight); the paper's weights 25 and 50.
    Invariant to scaling either embedding; the teacher's side carries no gradient."""
    s = student_embedding.reshape(len(student_embedding), -1)
    t = teacher_embedding.reshape(len(teacher_embedding), -1).detach()

    def distances(e: torch.Tensor) -> torch.Tensor:
        d = _pairwise_distances(e)
        return d / d[d > 0].mean()

    def angles(e: torch.Tensor) -> torch.Tensor:
        u = F.normalize(e[None, :, :] - e[:, None, :], p=2, dim=2)
        return (u @ u.transpose(1, 2)).reshape(-1)

    loss = torch.zeros((), dtype=s.dtype, device=s.device)
    if distance:
        loss = loss + distance * F.smooth_l1_loss(distances(s), distances(t))
    if angle:
        loss = loss + angle * F.smooth_l1_loss(angles(s), angles(t))
    return loss


def nd_loss(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor, class_means: torch.Tensor,
            labels: torch.Tensor) -> torch.Tensor:
    """ND loss (Wang et al., "Improving Knowledge Distillation via Regularizing Feature Norm and Direction", NeurIPS
    2023, Eq. 7): per sample ``1 - <s, c_y / ||c_y||> / max(||s||, ||t||)``, the batch mean — the student's
    embedding pulled towards the direction of its class's mean teacher embedding ``c_y`` and to a norm at least the
    teacher's. As the authors' ``DirectNormLoss`` computes it; ``class_means`` are the teacher's over the training
    set."""
    e = F.normalize(class_means[labels], dim=1)
    longest = torch.maximum(student_embedding.norm(dim=1), teacher_embedding.norm(dim=1))
    return (1 - (student_embedding * e).sum(1) / longest).mean()


def class_activation_maps(features: torch.Tensor, classifier_weight: torch.Tensor) -> torch.Tensor:
    """CAMs (Zhou et al., CVPR 2016): the classifier's weights applied at every position, ``(N, K, H, W)``; their
    spatial mean is the logits less the bias."""
    return torch.einsum("nchw,kc->nkhw", features, classifier_weight)


def cat_kd_loss(student_cams: torch.Tensor, teacher_cams: torch.Tensor, resolution: int = 2,
                normalize: bool = True) -> torch.Tensor:
    """Class Attention Transfer (Guo et al., CVPR 2023, Eq. 5-6): both networks' CAMs average-pooled to
    ``resolution`` x ``resolution``, each map L2-normalised over its positions (``normalize``), compared by MSE —
    as the authors' ``CAT_loss`` in their mdistiller fork computes it."""
    s = F.adaptive_avg_pool2d(student_cams, resolution)
    t = F.adaptive_avg_pool2d(teacher_cams, resolution)
    if normalize:
        s, t = F.normalize(s, dim=(2, 3)), F.normalize(t, dim=(2, 3))
    return F.mse_loss(s, t)


def _relations(a: torch.Tensor, heads: int) -> torch.Tensor:
    """log R: per relation head, ``softmax(A_r A_rᵀ / √d_r)`` over the tokens of ``a`` (B, N, D), split into
    ``heads`` heads of ``d_r = D / heads`` channels; (B, heads, N, N)."""
    b, n, d = a.shape
    a = a.reshape(b, n, heads, d // heads).transpose(1, 2)
    return F.log_softmax(a @ a.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)


def relation_heads(widths: tuple[int, int], wanted: int) -> int:
    """The largest count of relation heads up to ``wanted`` that divides both widths."""
    return max(h for h in range(1, wanted + 1) if widths[0] % h == 0 and widths[1] % h == 0)


def minilm_relation_loss(student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...],
                         heads: int = 12) -> torch.Tensor:
    """MiniLMv2 (Wang et al., "MiniLMv2: Multi-Head Self-Attention Relation Distillation for Compressing Pretrained
    Transformers", Findings of ACL 2021, §3.1, Eq. 1–4): for each of the queries, keys and values of one attention
    layer — (B, N, D) tensors, D may differ between the networks — the relations of every relation head,
    ``R = softmax(A_r A_rᵀ / √d_r)``, and ``L = Σ_{Q,K,V} KL(R^T ‖ R^S)``, the KL averaged over batch, relation
    heads and tokens. Relation heads (``heads``, the largest count up to it that divides both widths) free the
    student's head count and width from the teacher's."""
    total = student[0].new_zeros(())
    for s, t in zip(student, teacher, strict=True):
        h = relation_heads((s.shape[-1], t.shape[-1]), heads)
        log_s, log_t = _relations(s, h), _relations(t, h)
        total = total + (log_t.exp() * (log_t - log_s)).sum(-1).mean()
    return total


def embedding(f: torch.Tensor) -> torch.Tensor:
    """The embedding: global average pooling of a feature map."""
    return torch.flatten(F.adaptive_avg_pool2d(f, 1), 1)


def _same_size(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both maps at the smaller of their two spatial sizes (average pooling)."""
    size = (min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3]))
    return F.adaptive_avg_pool2d(a, size), F.adaptive_avg_pool2d(b, size)


@dataclass
class Taps:
    """What one training batch offers the losses: both networks' logits, their last feature maps (when a feature
    loss is on), the learned adapters by loss name, and ``labels`` — ``[(1, y)]``, or for a mixed batch
    ``[(lam, y_a), (1 - lam, y_b)]``, over which label-dependent losses are weighted."""

    s_logits: torch.Tensor
    t_logits: torch.Tensor
    labels: list[tuple[float, torch.Tensor]]
    epoch: int = 0  # 0-based, of ``epochs``
    epochs: int = 1
    s_maps: torch.Tensor | None = None
    t_maps: torch.Tensor | None = None
    adapters: Mapping[str, nn.Module] = field(default_factory=dict)
    s_classifier: torch.Tensor | None = None  # (K, C) weights of the classifiers, for class activation maps
    t_classifier: torch.Tensor | None = None
    class_means: torch.Tensor | None = None  # the teacher's mean embedding per class (ND)
    s_tokens: tuple[torch.Tensor, ...] | None = None  # last attention layer's queries, keys, values (B, N, D)
    t_tokens: tuple[torch.Tensor, ...] | None = None

    def labelled(self, loss: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return sum(w * loss(y) for w, y in self.labels)  # type: ignore[return-value]


def _conv_adapter(c_s: int, c_t: int) -> nn.Module:
    """A learned 1x1 convolution + batch norm from the student's channels to the teacher's (FitNets' regressor,
    ICKD's embedding)."""
    return nn.Sequential(nn.Conv2d(c_s, c_t, 1, bias=False), nn.BatchNorm2d(c_t))


def _conv_if_widths_differ(c_s: int, c_t: int) -> nn.Module:
    return _conv_adapter(c_s, c_t) if c_s != c_t else nn.Identity()


def _linear_if_widths_differ(c_s: int, c_t: int) -> nn.Module:  # ND's EmbTrans
    return nn.Linear(c_s, c_t) if c_s != c_t else nn.Identity()


@dataclass(frozen=True)
class Loss:
    """A registered loss: its pure function, its profile section (``distill.loss.<name>``, a class of
    :mod:`kdcompress.loss_configs`), what it taps (``logits``; ``maps``: the last feature maps, and through them the
    embeddings or class activation maps), the learned adapter it trains beside the student (``(c_s, c_t) -> module``)
    and ``term(section, taps)``, its weighted value on a batch."""

    fn: Callable[..., torch.Tensor]
    config: type[BaseModel]
    term: Callable[[Any, Taps], torch.Tensor]
    adapter: Callable[[int, int], nn.Module] | None = None
    needs_class_means: bool = False

    @property
    def taps(self) -> str:
        return self.config.taps  # type: ignore[attr-defined]  # declared with the config, torch-free


def _dkd_term(c: C.DKDLoss, b: Taps) -> torch.Tensor:
    # their recipe ramps the distillation term up linearly over the first ``warmup`` share of the epochs
    ramp = min((b.epoch + 1) / (c.warmup * b.epochs), 1.0) if c.warmup > 0 else 1.0
    return b.labelled(lambda y: dkd_loss(b.s_logits, b.t_logits, y, c.T, c.alpha, c.beta, c.ce, ramp))


def _cat_term(c: C.CATLoss, b: Taps) -> torch.Tensor:
    assert b.s_maps is not None and b.t_maps is not None and b.s_classifier is not None and b.t_classifier is not None
    cams = (class_activation_maps(b.s_maps, b.s_classifier),
            class_activation_maps(b.t_maps, b.t_classifier.to(b.t_maps.device)))
    return c.weight * cat_kd_loss(*cams, c.resolution, c.normalize)


def _nd_term(c: C.NDLoss, b: Taps) -> torch.Tensor:
    assert b.class_means is not None, "fit the teacher's class means first"
    s_emb, t_emb = b.adapters["nd"](embedding(b.s_maps)), embedding(b.t_maps)
    centres = b.class_means.to(s_emb.device)
    return c.weight * b.labelled(lambda y: nd_loss(s_emb, t_emb, centres, y))


# The order is the order the terms are summed in (the feature losses first, as before the registry drove them).
LOSSES: Registry[Loss] = Registry("loss", {
    "fitnet": Loss(fitnet_loss, C.FitNetLoss, adapter=_conv_adapter,
                   term=lambda c, b: c.weight * fitnet_loss(*_same_size(b.adapters["fitnet"](b.s_maps), b.t_maps))),
    "sp": Loss(sp_loss, C.SPLoss, term=lambda c, b: c.weight * sp_loss(b.s_maps, b.t_maps)),
    "ickd": Loss(ickd_loss, C.ICKDLoss, adapter=_conv_if_widths_differ,
                 term=lambda c, b: c.weight * ickd_loss(b.adapters["ickd"](b.s_maps), b.t_maps)),
    "rkd": Loss(rkd_loss, C.RKDLoss,
                term=lambda c, b: rkd_loss(embedding(b.s_maps), embedding(b.t_maps), c.distance, c.angle)),
    "nd": Loss(nd_loss, C.NDLoss, adapter=_linear_if_widths_differ, needs_class_means=True, term=_nd_term),
    "cat": Loss(cat_kd_loss, C.CATLoss, term=_cat_term),
    "kd": Loss(kd_loss, C.KDLoss,
               term=lambda c, b: b.labelled(lambda y: kd_loss(b.s_logits, b.t_logits, y, c.T, c.alpha))),
    "dkd": Loss(dkd_loss, C.DKDLoss, term=_dkd_term),
    "minilm": Loss(minilm_relation_loss, C.MiniLMLoss,
                   term=lambda c, b: c.weight * minilm_relation_loss(b.s_tokens, b.t_tokens, c.relation_heads)),
})


def total_loss(cfg: C.Losses, taps: Taps) -> torch.Tensor:
    """The profile's ``distill.loss`` on a batch: the sum of the terms of every loss it names."""
    total = taps.s_logits.new_zeros(())
    for name, entry in LOSSES.items():
        section = getattr(cfg, name)
        if section is not None:
            total = total + entry.term(section, taps)
    return total
