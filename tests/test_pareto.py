"""The Pareto front of (latency, accuracy) points."""

from __future__ import annotations

from kdcompress.report.pareto import pareto_front


def test_dominated_points_leave_the_front_and_it_is_ordered_by_speed():
    pts = {"teacher": (1.0, 93.7), "fast": (0.1, 92.0), "mid": (0.3, 93.0), "worse": (0.35, 92.5),
           "slow_int8": (0.12, 91.0)}
    assert pareto_front(pts) == ["fast", "mid", "teacher"]


def test_ties_and_single_points():
    assert pareto_front({"only": (0.5, 50.0)}) == ["only"]
    assert pareto_front({}) == []
    # identical points: neither dominates the other
    assert pareto_front({"a": (0.2, 90.0), "b": (0.2, 90.0), "c": (0.3, 89.0)}) == ["a", "b"]
    # equal latency, better accuracy dominates; equal accuracy, faster dominates
    assert pareto_front({"a": (0.2, 90.0), "b": (0.2, 91.0)}) == ["b"]
    assert pareto_front({"a": (0.2, 90.0), "b": (0.1, 90.0)}) == ["b"]
