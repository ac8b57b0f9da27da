"""Distillation: losses (pure functions) and the trainer."""

from kdcompress.distill.losses import LOSSES, kd_loss
from kdcompress.distill.trainer import DistillResult, distill, load_student

__all__ = ["LOSSES", "DistillResult", "distill", "kd_loss", "load_student"]
