"""benchmarks.observability's summary: the A/A pair it adds to every run, and its gate on the verdict."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.observability import parse_args, summarise, table


def runs(config: str, cpu: list[float], rate: float = 500.0) -> list[dict[str, Any]]:
    return [
        {
            "config": config,
            "round": i,
            "hub_cpu_us_per_event": c,
            "events_per_s": rate,
            "broker_cpu_us_per_event": 40,
        }
        for i, c in enumerate(cpu, 1)
    ]


def test_every_run_gets_a_second_hub_of_the_reference_unless_told_not_to() -> None:
    assert parse_args(["--configs", "off,metrics+tracing"]).configs == ["off", "off#aa", "metrics+tracing"]
    assert parse_args(["--configs", "metrics,off"]).configs == ["metrics", "off", "off#aa"]
    assert parse_args(["--configs", "off,metrics", "--no-aa"]).configs == ["off", "metrics"]


def test_the_cost_is_taken_against_the_mean_of_the_aa_pair_and_judged_when_the_pair_agrees() -> None:
    summary = summarise(
        runs("off", [600, 700, 650, 620]) + runs("off#aa", [612, 714, 663, 632])
        + runs("metrics+tracing", [624, 728, 676, 645])
    )  # fmt: skip
    aa = summary["off#aa"]
    assert aa["cpu_cost"]["median"] == pytest.approx(0.02, abs=1e-3) and aa["cpu_verdict"] == "resolves"
    cost = summary["metrics+tracing"]["cpu_cost"]
    assert cost["median"] == pytest.approx(1.04 / 1.01 - 1, abs=1e-3)  # against the pair's mean
    assert summary["metrics+tracing"]["cpu_verdict"] == "within"


def test_no_verdict_when_two_identical_hubs_differ_by_more_than_half_the_bound() -> None:
    summary = summarise(
        runs("off", [600, 700, 650, 620]) + runs("off#aa", [660, 630, 715, 560])
        + runs("metrics+tracing", [630, 700, 690, 610])
    )  # fmt: skip
    assert summary["off#aa"]["cpu_verdict"] == "too wide"
    assert summary["metrics+tracing"]["cpu_verdict"] == "undecided"


def test_the_table_shows_the_aa_pair_and_the_verdicts() -> None:
    summary = summarise(
        runs("off", [600, 700, 650, 620]) + runs("off#aa", [612, 714, 663, 632])
        + runs("metrics+tracing", [624, 728, 676, 645])
    )  # fmt: skip
    lines = table(summary).splitlines()
    assert "A/A: the method resolves ±2.5%" in lines[2]
    assert "CPU within, throughput within" in lines[3]
