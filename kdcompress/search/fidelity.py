"""How much of the teacher a cut still computes, before any training (``search.cut_rank: fidelity``).

A cut keeps the teacher's trained weights, so how far its outputs stay from the teacher's says how much a short
distillation must repair. A zero-cost proxy cannot see this (it scores networks re-initialised), and the number of
weights a cut keeps sees it only roughly: on the shipped teacher, a cut keeping 470 k weights by pruning 10 % of
the channels of every layer ended 10 KD epochs 0.9 points below (validation) a cut keeping 308 k weights by
dropping two whole blocks — the pruned channels hurt every layer's output, the dropped blocks (residual branches)
only their own.

The score is ``-KL(teacher || cut)`` on held-out training images after the cut's batch-norm statistics are
re-estimated on other training images (a cut changes the statistics its normalisation layers see; without
re-estimating, every cut looks broken). On seven cuts of the shipped teacher it put the three that distilled best
(validation 94.25-94.43 %) first, and the channel-pruned ones (93.3-93.8 %) after them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# A teacher of up to 150 MFLOPs (the shipped one: 132) is compared on 1,024 images (and as many to re-estimate
# statistics on); a larger one on fewer, so ranking its cuts costs about the same: a ResNet-18 at 224 px (1.8 GFLOPs)
# on 128.
PROBE_IMAGES, PROBE_MIN_IMAGES, PROBE_BUDGET_FLOPS = 1024, 128, 1024 * 150e6


def probe_images(teacher_flops: int | None) -> int:
    """How many images the fidelity probe uses for a teacher of ``teacher_flops`` per image."""
    if not teacher_flops:
        return PROBE_IMAGES
    return int(min(PROBE_IMAGES, max(PROBE_MIN_IMAGES, PROBE_BUDGET_FLOPS // teacher_flops)))


@dataclass
class FidelityProbe:
    """Training images to re-estimate a cut's normalisation statistics on, others to compare it with the teacher
    on, and the teacher's logits there."""

    calibration: torch.Tensor
    images: torch.Tensor
    teacher_logits: torch.Tensor

    @classmethod
    def of(cls, teacher_logits: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
           prep: Callable[[torch.Tensor], torch.Tensor], n: int = 1024, seed: int = 0) -> FidelityProbe:
        """``n`` calibration and ``n`` comparison images drawn (seeded) from the training images ``x``."""
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        n = min(n, len(x) // 2)
        images = prep(x[idx[n:2 * n]])
        with torch.no_grad():
            logits = teacher_logits(images)
        return cls(prep(x[idx[:n]]), images, logits)

    @torch.no_grad()
    def score(self, cut: nn.Module) -> float:
        """``-KL(teacher || cut)`` (nats, batch mean) after re-estimating ``cut``'s batch-norm statistics (in
        place: pass a copy you do not need)."""
        norms = [m for m in cut.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
        cut.train()
        for i in range(0, len(self.calibration), 256):
            cut(self.calibration[i:i + 256])
        cut.eval()
        logits = torch.cat([cut(self.images[i:i + 256]) for i in range(0, len(self.images), 256)])
        kl = F.kl_div(F.log_softmax(logits, 1), F.log_softmax(self.teacher_logits, 1), reduction="batchmean",
                      log_target=True)
        return -float(kl)
