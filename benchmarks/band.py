"""A fixed, seeded set of students whose FLOPs lie in one band — the situation a budgeted search is in (across
wildly different sizes capacity dominates and any size proxy ranks trivially). Shared by the proxy benchmarks."""

from __future__ import annotations

import random

import torch

from kdcompress.models.students import build_student
from kdcompress.search.proxies import count_flops
from kdcompress.search.space import get_space


def band_students(
    spaces: list[str], per_space: int, lo: float, hi: float, seed: int = 0, shape: tuple[int, int, int] = (1, 28, 28),
    num_classes: int = 10,
) -> list[dict]:
    """``per_space`` distinct candidates of every space whose FLOPs lie in ``[lo, hi]``, as
    ``{"space", "genes", "flops", "params"}``: random samples, shrunk one gene at a time until they fit."""
    x, out = torch.zeros(1, *shape), []
    for name in spaces:
        space, rng, seen = get_space(name), random.Random(seed), set()
        while len(seen) < per_space:
            cand = space.sample(rng)
            while cand is not None:
                net = build_student(name, cand.as_dict(), shape[0], num_classes).eval()
                flops = count_flops(net, x)
                if flops <= hi:
                    break
                cand = space.shrink(cand, rng)
            if cand is not None and lo <= flops and cand.key not in seen:
                seen.add(cand.key)
                out.append({"space": name, "genes": cand.as_dict(), "flops": flops,
                            "params": sum(p.numel() for p in net.parameters())})
    return out
