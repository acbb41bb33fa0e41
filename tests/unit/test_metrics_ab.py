"""A/B statistics (recsys.metrics.ab): Wilson intervals, two-proportion p-values, the arm report, BCa lifts."""

import numpy as np
import pytest

from recsys.metrics.ab import (
    ArmCounts,
    experiment_report,
    lift_interval,
    two_proportion_p_value,
    wilson_interval,
)


def test_wilson_interval_matches_the_closed_form():
    # Wilson (1927) for 3/10 at 95%: centre (p + z^2/2n) / (1 + z^2/n), half-width as published.
    low, high = wilson_interval(3, 10)
    assert (low, high) == pytest.approx((0.1078, 0.6032), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_p_value_of_two_proportions():
    assert two_proportion_p_value(50, 100, 50, 100) == pytest.approx(1.0)
    # z = (0.6 - 0.4) / sqrt(0.5 * 0.5 * (2 / 100)) = 2.828 -> p = 0.00468
    assert two_proportion_p_value(60, 100, 40, 100) == pytest.approx(0.00468, abs=1e-4)
    assert two_proportion_p_value(0, 0, 1, 10) == 1.0


def test_report_gives_lift_against_the_first_arm():
    rows = experiment_report([("control", "greedy", ArmCounts(impressions=100, clicked=10, items_shown=1000)),
                              ("explore", "thompson", ArmCounts(impressions=100, clicked=15, items_shown=1000,
                                                                items_explored=250))])
    assert rows[0]["is_control"] and rows[0]["lift_vs_control"] == 0.0
    assert rows[1]["lift_vs_control"] == pytest.approx(0.5)
    assert rows[1]["share_explored"] == 0.25
    assert 0 < rows[1]["p_value_vs_control"] < 1
    assert rows[1]["ctr_ci95"][0] < 0.15 < rows[1]["ctr_ci95"][1]


def test_the_lift_and_its_bootstrap_interval():
    treatment, control = np.array([1] * 60 + [0] * 40), np.array([1] * 50 + [0] * 50)
    lift, low, high = lift_interval(treatment, control)
    assert lift == pytest.approx(0.2)
    assert low < 0.2 < high and high - low < 1.0
    assert lift_interval(treatment, control, seed=3) != (lift, low, high)  # the seed is the bootstrap's
    assert lift_interval(treatment, control) == (lift, low, high)


@pytest.mark.parametrize(("treatment", "control"), [([1, 0], [1]), ([1], [1, 0]), ([1, 0], [0, 0])])
def test_an_undefined_lift_is_nan(treatment, control):
    assert all(np.isnan(lift_interval(treatment, control)))
