"""Hinton KD loss against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdcompress.distill.losses import LOSSES, kd_loss


def test_alpha_zero_is_cross_entropy():
    s, t, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    torch.testing.assert_close(kd_loss(s, t, y, T=4.0, alpha=0.0), F.cross_entropy(s, y))


def test_soft_term_is_zero_when_student_matches_teacher():
    z = torch.randn(5, 6)
    assert float(kd_loss(z, z.clone(), torch.zeros(5, dtype=torch.long), T=3.0, alpha=1.0)) == pytest.approx(0, abs=1e-6)


def test_golden_value():
    # One sample, two classes, T = 2: p_t = softmax([2, 0] / 2), p_s = softmax([0, 0] / 2) = [0.5, 0.5].
    s, t, y = torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    p1 = math.exp(1) / (math.exp(1) + 1)
    kl = p1 * math.log(p1 / 0.5) + (1 - p1) * math.log((1 - p1) / 0.5)
    ce = math.log(2)
    expected = 0.7 * 4 * kl + 0.3 * ce
    assert float(kd_loss(s, t, y, T=2.0, alpha=0.7)) == pytest.approx(expected, rel=1e-6)


def test_registry():
    assert LOSSES["kd"] is kd_loss
