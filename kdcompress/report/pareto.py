"""The trade-off front: which artifacts no other artifact beats on both latency and accuracy."""

from __future__ import annotations

from collections.abc import Mapping


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """Names of the Pareto-optimal points, fastest first. A point is ``(latency, accuracy)``: lower latency and
    higher accuracy are better. A point is dominated when another is at least as good on both and strictly better
    on one; identical points dominate neither each other, so both stay on the front."""
    front = [
        name for name, (lat, acc) in points.items()
        if not any(l2 <= lat and a2 >= acc and (l2 < lat or a2 > acc) for l2, a2 in points.values())
    ]
    return sorted(front, key=lambda n: (points[n][0], -points[n][1], n))
