"""The front's verdict over seeds (kdcompress.report.compare) on synthetic numbers: the paired interval and test
against scipy's, Holm's procedure on a hand example, and the rule on ties, a win inside the noise and clear wins."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from kdcompress.report.compare import holm, paired_difference, verdict, verdicts

OURS = [93.80, 93.95, 93.70]


def test_the_paired_interval_is_students_and_its_test_is_scipys():
    theirs = [93.50, 93.40, 93.60]
    d = [a - b for a, b in zip(OURS, theirs)]
    got = paired_difference(OURS, theirs)
    mean, se = sum(d) / 3, stats.sem(d)
    half = stats.t.ppf(0.975, 2) * se
    assert got.mean == pytest.approx(mean) and got.low == pytest.approx(mean - half)
    assert got.high == pytest.approx(mean + half)
    assert got.p == pytest.approx(stats.ttest_rel(OURS, theirs).pvalue)
    one = paired_difference([94.0], [93.0])  # one seed: no claim
    assert one.p == 1.0 and math.isinf(one.low)
    with pytest.raises(ValueError):
        paired_difference(OURS, [93.0])


def test_holm_steps_down_and_stops_at_the_first_kept_hypothesis():
    assert holm([0.01, 0.04, 0.03]) == [True, False, False]  # 0.01 <= 0.05/3; 0.03 > 0.05/2
    assert holm([0.01, 0.02, 0.04]) == [True, True, True]  # 0.0167, 0.025, 0.05
    assert holm([0.03]) == [True]


def test_a_clear_win_is_a_win():
    v = verdicts({"tp50": (1.5, OURS, [93.10, 93.20, 93.05])})["tp50"]
    assert v.winner == "ours" and v.significant and "more accurate" in v.why


def test_a_win_inside_the_noise_is_a_tie():
    # ours slightly faster and on average 0.1 points better, but the seeds disagree: no claim
    v = verdicts({"tp50": (1.1, OURS, [93.60, 94.05, 93.50])})["tp50"]
    assert not v.significant and v.accuracy.low < 0 < v.accuracy.high
    assert v.winner == "tie" and v.why.startswith("no win")


def test_equal_accuracy_wins_only_with_a_clear_speed_margin():
    same = [93.80, 93.90, 93.72]  # differences 0, +0.05, -0.02
    assert verdicts({"r": (1.3, OURS, same)})["r"].winner == "ours"
    assert verdicts({"r": (1.15, OURS, same)})["r"].winner == "tie"
    assert verdicts({"r": (1 / 1.3, OURS, same)})["r"].winner == "theirs"


def test_faster_but_less_accurate_is_a_trade_off_and_a_recipe_can_win():
    worse = [93.10, 93.20, 93.05]
    assert verdicts({"r": (0.8, OURS, worse)})["r"].winner == "trade-off"
    assert verdicts({"r": (0.8, worse, OURS)})["r"].winner == "theirs"


def test_holm_takes_back_a_win_that_only_one_comparison_of_several_would_give():
    theirs = [93.50, 93.55, 93.50]  # differences 0.30, 0.40, 0.20: p 0.035
    alone = paired_difference(OURS, theirs)
    assert 0.01 < alone.p < 0.05  # significant alone...
    assert verdict(1.1, alone, True).winner == "ours"
    noisy = [93.70, 94.00, 93.60]
    four = verdicts({"a": (1.1, OURS, theirs), "b": (1.1, OURS, noisy), "c": (1.1, OURS, noisy),
                     "d": (1.1, OURS, noisy)})
    assert not four["a"].significant and four["a"].winner == "tie"  # ...not among four (0.05 / 4)


def test_a_wide_interval_supports_no_claim_even_with_a_clear_speed_margin():
    # two seeds that disagree by points: "not significantly different" is not "as accurate"
    v = verdicts({"r": (1.8, [50.0, 25.0], [96.7, 99.2])})["r"]
    assert not v.significant and v.winner == "tie" and "too wide" in v.why
