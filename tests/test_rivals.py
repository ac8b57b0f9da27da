"""Teacher-free proxies: identities that hold for the formulas in their papers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdcompress.models.students import build_resnet
from kdcompress.search.rivals import grad_norm, nwot, snip, synflow, zen


def _net(widths=(8, 16, 16), depths=(1, 1, 1)):
    torch.manual_seed(0)
    return build_resnet({"stem": 8, "widths": list(widths), "depths": list(depths)}, 1, 5)


def _batch(n=12):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 10, 10, generator=g), torch.randint(0, 5, (n,), generator=g)


def test_synflow_equals_depth_times_output_for_a_homogeneous_net():
    """For a bias-free linear chain, R is degree-1 homogeneous in each layer, so Σ θ·∂R/∂θ = L·R (Euler)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    x = torch.zeros(5, 1, 2, 2)
    w1, w2 = net[1].weight.detach().abs().double(), net[2].weight.detach().abs().double()
    r = float((w2 @ w1 @ torch.ones(4, dtype=torch.float64)).sum())
    assert synflow(None, net, x, None) == pytest.approx(math.log(2 * r), rel=1e-9)
    assert net[1].weight.min() < 0  # the student itself is untouched


def test_grad_norm_and_snip_match_a_manual_backward():
    net, (x, y) = _net(), _batch()
    gn, sn = grad_norm(None, net, x, y), snip(None, net, x, y)
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    assert gn == pytest.approx(sum(float(p.grad.norm()) for p in net.parameters()), rel=1e-5)
    assert sn == pytest.approx(sum(float((p.grad * p).abs().sum()) for p in net.parameters() if p.ndim > 1), rel=1e-5)


def test_nwot_punishes_indistinguishable_samples():
    net, (x, y) = _net(), _batch()
    distinct = nwot(None, net, x, y)
    duplicated = torch.cat([x[:6], x[:6]])
    assert math.isfinite(distinct)
    assert nwot(None, net, duplicated, y) < distinct  # K_H becomes singular: log|det| = -inf


def test_zen_grows_with_depth_and_is_seeded():
    x, y = _batch()
    torch.manual_seed(3)
    a = zen(None, _net(), x, y)
    torch.manual_seed(3)
    assert zen(None, _net(), x, y) == pytest.approx(a)
    torch.manual_seed(3)
    assert zen(None, _net(depths=(3, 3, 3)), x, y) > a
