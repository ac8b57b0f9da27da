"""Distillation losses: pure functions over tensors, one paper each, registered in :data:`LOSSES`."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


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


Loss = Callable[..., torch.Tensor]

LOSSES: dict[str, Loss] = {
    "kd": kd_loss,
    "dkd": dkd_loss,
}
