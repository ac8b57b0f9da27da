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


Loss = Callable[..., torch.Tensor]

LOSSES: dict[str, Loss] = {
    "kd": kd_loss,
}
