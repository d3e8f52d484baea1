"""The paired statistics behind benchmarks.observability's verdict on issue 15's 5 % bound."""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.paired import aa_resolves, balanced_orders, paired_cost, per_round_mean, spread, verdict


def test_balanced_orders_put_every_config_in_every_position_equally_often() -> None:
    orders = balanced_orders(["a", "b", "c"], 6)
    assert all(sorted(o) == ["a", "b", "c"] for o in orders)
    for position in range(3):
        assert Counter(o[position] for o in orders) == {"a": 2, "b": 2, "c": 2}


def test_paired_cost_follows_the_per_round_ratio_not_the_load_of_each_round() -> None:
    # The machine's load moves both configs by up to 40 % between rounds; the config always
    # costs 3 % more than the reference within a round.
    load = [1.0, 1.4, 0.9, 1.2, 1.1, 0.8, 1.3, 1.0]
    reference = [500 * f for f in load]
    cost = paired_cost([r * 1.03 for r in reference], reference)
    assert cost["median"] == pytest.approx(0.03)
    assert cost["low"] == pytest.approx(0.03) and cost["high"] == pytest.approx(0.03)
    assert verdict(cost, 0.05) == "within"


def test_a_noisy_cost_around_the_bound_is_undecided_and_a_clear_one_over() -> None:
    reference = [100.0] * 8
    noisy = paired_cost([101, 110, 103, 108, 102, 109, 104, 107], reference)
    assert noisy["low"] <= 0.05 < noisy["high"]
    assert verdict(noisy, 0.05) == "undecided"
    assert verdict(paired_cost([110, 112, 109, 111, 110, 113, 108, 111], reference), 0.05) == "over"


def test_spread_is_the_half_range_relative_to_the_median() -> None:
    assert spread([90, 100, 110]) == {"median": 100, "min": 90, "max": 110, "spread": 0.1}


def test_paired_cost_needs_one_value_per_round_of_each() -> None:
    with pytest.raises(ValueError):
        paired_cost([1.0, 2.0], [1.0])


def test_a_cost_within_the_bound_is_undecided_when_the_aa_pair_differs_by_more_than_half_the_bound() -> None:
    reference = [100.0] * 8
    cost = paired_cost([102, 103, 101, 102, 103, 102, 101, 102], reference)
    assert verdict(cost, 0.05) == "within"
    steady = paired_cost([100, 101, 99, 100, 101, 100, 99, 100], reference)
    assert aa_resolves(steady, 0.05) and verdict(cost, 0.05, aa=steady) == "within"
    # Two identical hubs 4-6 % apart: the method cannot tell a 5 % cost from none.
    apart = paired_cost([95, 104, 96, 105, 94, 106, 95, 104], reference)
    assert not aa_resolves(apart, 0.05)
    assert verdict(cost, 0.05, aa=apart) == "undecided"
    over = paired_cost([110, 112, 109, 111, 110, 113, 108, 111], reference)
    assert verdict(over, 0.05, aa=apart) == "undecided"


def test_the_reference_of_two_hubs_is_their_mean_round_by_round() -> None:
    assert per_round_mean([100, 200], [110, 180]) == [105, 190]
    with pytest.raises(ValueError):
        per_round_mean([1.0, 2.0], [1.0])
