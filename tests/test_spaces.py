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


@pytest.mark.parametrize("family", ["resnet", "mobilenetv2"])
def test_large_images_get_an_imagenet_style_stem(family):
    """At 224 px a family's stem strides are 2 and 4 (conv + max pool), so that its largest student costs what a
    mobile network does; below 64 px the space is the one seeded searches have always sampled."""
    import numpy as np

    from kdcompress.search.space import get_space

    assert get_space(family, 28).choices["stem_stride"] == get_space(family).choices["stem_stride"] == [1, 2]
    large = get_space(family, 224)
    assert large.choices["stem_stride"] == [2, 4] and get_space(family).choices["stem_stride"] == [1, 2]
    x = torch.zeros(1, 3, 224, 224)

    def median_gflops(space) -> float:
        rng = random.Random(0)
        return float(np.median([count_flops(build_student(family, space.sample(rng).as_dict(), 3, 10).eval(), x)
                                for _ in range(10)])) / 1e9

    small_stem, imagenet_stem = median_gflops(get_space(family)), median_gflops(large)
    # measured: resnet 6.0 -> 1.5 GFLOPs, mobilenetv2 1.8 -> 0.46 (ResNet-18: 1.8, MobileNetV2: 0.3)
    assert imagenet_stem < 0.35 * small_stem and imagenet_stem < 2.0, (small_stem, imagenet_stem)
    rng = random.Random(0)
    assert all(large.sample(rng).as_dict()["stem_stride"] in (2, 4) for _ in range(20))
