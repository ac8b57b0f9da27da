"""Every student family: genes build a working network with the interface the proxies read, mutation changes one
gene, shrinking makes the network smaller."""

from __future__ import annotations

import random

import pytest
import torch

from kdcompress.models.pruning import PRUNED_FAMILY
from kdcompress.models.students import build_student
from kdcompress.search.proxies import count_flops
from kdcompress.search.space import SPACES

FAMILIES = sorted(set(SPACES) - {PRUNED_FAMILY})


@pytest.mark.parametrize("family", FAMILIES)
def test_sampled_genes_build_a_network_with_features_and_head(family):
    space, rng = SPACES[family], random.Random(0)
    for _ in range(5):
        net = build_student(family, space.sample(rng).as_dict(), 1, 7)
        x = torch.rand(3, 1, 28, 28)
        feats = net.forward_features(x)
        assert feats.ndim == 4 and feats.shape[1] == net.head.in_features
        assert net(x).shape == (3, 7)


@pytest.mark.parametrize("family", sorted(SPACES))
def test_mutation_changes_exactly_one_gene(family):
    space, rng = SPACES[family], random.Random(1)
    for _ in range(40):
        parent = space.sample(rng)
        child = space.mutate(parent, rng)
        a, b = space._to_flat(parent.as_dict()), space._to_flat(child.as_dict())
        assert a.keys() == b.keys() and sum(a[k] != b[k] for k in a) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_shrink_never_grows_the_network(family):
    space, rng, x = SPACES[family], random.Random(2), torch.zeros(1, 1, 28, 28)
    for _ in range(10):
        cand = space.sample(rng)
        smaller = space.shrink(cand, rng)
        if smaller is None:
            continue
        big, small = (build_student(family, c.as_dict(), 1, 10).eval() for c in (cand, smaller))
        assert count_flops(small, x) <= count_flops(big, x)
        assert sum(p.numel() for p in small.parameters()) <= sum(p.numel() for p in big.parameters())
