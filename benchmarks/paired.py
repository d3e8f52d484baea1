"""Paired comparison of configs measured in alternating rounds (``benchmarks.observability``).

On a machine shared with other work a single run's CPU per event moves by ±10 % with the
machine's load, more than the 5 % a cost bound asks about. Runs of every config close together
in time (one round) meet about the same load, so the ratio of a config to the reference *within
a round* is far steadier than either figure alone. The cost is the median of those per-round
ratios, and its interval a percentile bootstrap of that median over the rounds: resampling rounds
with replacement keeps each round's pairing. The verdict against a bound is only given when the
whole interval is on one side of it, and only when an A/A comparison (a second hub of the
reference config, nothing changed) shows that the method itself resolves the bound."""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "aa_resolves", "balanced_orders", "paired_cost", "per_round_mean", "spread",
    "tree_parser", "trees", "verdict",
]  # fmt: skip
#: This checkout: the "new" tree of an old/new comparison.
HERE = Path(__file__).resolve().parents[1]


def tree_parser(description: str, *, base_required: bool = False) -> argparse.ArgumentParser:
    """The command line of the in-process old/new comparisons (``benchmarks.sampled``,
    ``unsampled``, ``delivery_metrics``): ``--base``, an old tree to run beside this one."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--base", type=Path, required=base_required,
        help="an old tree to compare (git archive BRANCH | tar -x -C DIR)",
    )  # fmt: skip
    return parser


def trees(base: Path | None) -> dict[str, Path]:
    """The trees to measure by name: ``old`` (``--base``, when given) and ``new`` (this one)."""
    return {"old": base, "new": HERE} if base else {"new": HERE}


def balanced_orders(configs: Sequence[str], rounds: int) -> list[list[str]]:
    """The order of the configs in each round: rotated by one every two rounds and reversed in
    every second round (ABC, CBA, BCA, ACB, ...), so no config always runs first, last, or
    right after the same neighbour, and a load that rises or falls through a round is spread
    evenly."""
    out = []
    for r in range(rounds):
        shift = (r // 2) % max(1, len(configs))
        order = list(configs[shift:]) + list(configs[:shift])
        out.append(order[::-1] if r % 2 else order)
    return out


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max; the half range relative to the median (noise of single runs)."""
    med = statistics.median(values)
    return {
        "median": round(med, 1), "min": round(min(values), 1), "max": round(max(values), 1),
        "spread": round((max(values) - min(values)) / 2 / med, 4) if med else 0.0,
    }  # fmt: skip


def paired_cost(
    values: Sequence[float], reference: Sequence[float], *, resamples: int = 4000, seed: int = 15
) -> dict[str, Any]:
    """``values[i] / reference[i] - 1`` per round: the median and a 95 % bootstrap interval of the
    median (2.5th and 97.5th percentile of the median over ``resamples`` resampled sets of rounds).
    A fixed seed makes the interval reproducible from the same figures."""
    if len(values) != len(reference) or not values:
        raise ValueError("one value per round for both configs")
    ratios = [v / r - 1 for v, r in zip(values, reference, strict=True)]
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    low, high = medians[int(0.025 * (resamples - 1))], medians[int(0.975 * (resamples - 1))]
    return {
        "median": round(statistics.median(ratios), 4), "low": round(low, 4), "high": round(high, 4),
        "per_round": [round(x, 4) for x in ratios],
    }  # fmt: skip


def per_round_mean(*runs: Sequence[float]) -> list[float]:
    """Round by round, the mean of several hubs of one config: the reference a cost is taken
    against when the reference config ran in two hubs (its A/A pair), so neither hub's own
    offset decides the cost alone."""
    if not runs or len({len(r) for r in runs}) != 1:
        raise ValueError("one value per round for every hub")
    return [statistics.fmean(values) for values in zip(*runs, strict=True)]


def aa_resolves(aa: dict[str, Any], bound: float) -> bool:
    """Whether an A/A cost (two identical hubs, nothing changed, by :func:`paired_cost`) shows
    a method fine enough to judge ``bound``: its whole 95 % interval within half the bound
    either side of zero. Two identical hubs that differ by more than that (a hub's own offset,
    or pairs that do not meet the same machine) would decide a cost near the bound by chance."""
    return -bound / 2 <= aa["low"] and aa["high"] <= bound / 2


def verdict(cost: dict[str, Any], bound: float, aa: dict[str, Any] | None = None) -> str:
    """``within`` when the whole interval is at most ``bound``, ``over`` when all of it is above,
    else ``undecided`` (more rounds, or a quieter machine). With the run's A/A cost ``aa``, also
    ``undecided`` whatever the interval when the A/A check fails (:func:`aa_resolves`)."""
    if aa is not None and not aa_resolves(aa, bound):
        return "undecided"
    if cost["high"] <= bound:
        return "within"
    if cost["low"] > bound:
        return "over"
    return "undecided"
