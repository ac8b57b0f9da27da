"""Property tests (hypothesis): the profile parser never fails with anything but a KDCompressError, and the CI gate's
decision rule behaves as a decision rule must (shift-equivariant, monotone in the slowdown, silent on no change)."""

from __future__ import annotations

import math

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdcompress.check.verdict import judge_accuracy, judge_latency
from kdcompress.check.paired import PairedSamples
from kdcompress.errors import KDCompressError
from kdcompress.profiles import Check, Profile, available_profiles, load_profile, validate_profile

SECTIONS = ["name", "description", "target", "budget", "search", "distill", "export", "bench", "check", "data",
            "version"]
KEYS = SECTIONS + [f for m in Profile.model_fields.values() if hasattr(m.annotation, "model_fields")
                   for f in m.annotation.model_fields] + ["populaton", "x", ""]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["fp16", "cuda", "onnxruntime", "synflow", "resnet"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
                      max_leaves=12)
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parses_or_says_why(fn) -> None:
    try:
        assert isinstance(fn(), Profile)
    except KDCompressError as e:
        assert str(e) and "\n" not in str(e)


@SLOW
@given(st.one_of(values, st.dictionaries(st.sampled_from(KEYS), values, max_size=6)))
def test_any_profile_document_validates_or_gives_one_user_error(raw):
    _parses_or_says_why(lambda: validate_profile(raw, "p.yaml"))


@SLOW
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=4), st.sampled_from(sorted(available_profiles())),
       st.lists(st.sampled_from(KEYS), min_size=1, max_size=3))
def test_overrides_of_a_shipped_profile_validate_or_give_one_user_error(section, name, path):
    overrides = {".".join(path): section.get(path[-1], None) if section else 0}
    _parses_or_says_why(lambda: load_profile(name, overrides))


@SLOW
@given(st.text(max_size=200))
def test_any_yaml_text_validates_or_gives_one_user_error(text):
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # load_profile turns this into a KDCompressError; tested in test_bad_input.py
    _parses_or_says_why(lambda: validate_profile(raw, "p.yaml"))


times = st.lists(st.floats(0.5, 2.0), min_size=5, max_size=30)
ORDER = {"pass": 0, "inconclusive": 1, "regression": 2}


def _samples(candidate: list[float], control: list[float]) -> PairedSamples:
    n = min(len(candidate), len(control))
    return PairedSamples(candidate[:n], control[:n], 100, 5)


@settings(max_examples=200, deadline=None)
@given(times, times, times, times, st.floats(1.0, 1.5))
def test_the_gate_is_shift_equivariant_and_monotone_in_the_slowdown(fc, fk, bc, bk, slower):
    fresh, base, policy = _samples(fc, fk), _samples(bc, bk), Check()
    v = judge_latency(fresh, base, policy)
    worse = judge_latency(_samples([t * slower for t in fresh.candidate_ms], fresh.control_ms), base, policy)
    # every fresh log-ratio moves by log(slower): the estimate and its bounds move by exactly that much
    assert math.isclose(math.log1p(worse.change), math.log1p(v.change) + math.log(slower), abs_tol=1e-9)
    if v.lower is not None and worse.lower is not None:
        assert math.isclose(math.log1p(worse.lower), math.log1p(v.lower) + math.log(slower), abs_tol=1e-9)
    assert ORDER[worse.status] >= ORDER[v.status]  # a slower artifact is never judged better
    if v.lower is not None and v.upper is not None:
        assert v.lower <= v.change <= v.upper


@settings(max_examples=100, deadline=None)
@given(times, times)
def test_no_change_is_never_a_regression(candidate, control):
    same = _samples(candidate, control)
    assert judge_latency(same, same, Check()).status != "regression"


@given(st.floats(0, 100), st.floats(-5, 5), st.floats(0, 5))
def test_accuracy_fails_exactly_when_it_drops_more_than_allowed(base, change, allowed):
    v = judge_accuracy({"value": base + change}, {"value": base}, Check(max_accuracy_drop=allowed))
    assert (v.status == "regression") == (-change > allowed + 1e-9 and not np.isclose(-change, allowed))
