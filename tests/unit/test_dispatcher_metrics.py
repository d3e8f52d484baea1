"""The dispatcher's delivery metrics: counted per recording round, as recorded (one counter
write per outcome in the round, not one per attempt), and still true totals."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.adapters.prometheus import MULTIPROC_ENV, PrometheusMetrics
from hub.ports.metrics import NoMetrics
from hub.services.delivery_policy import RetryPolicy
from hub.services.dispatcher import Dispatcher
from subscriptions.retry import RetrySchedule
from tests.unit.test_dispatcher import event, hub


class Rounds(NoMetrics):
    """The metrics port writing down each call that counts delivery attempts."""

    def __init__(self) -> None:
        self.rounds: list[tuple[dict[str, int], list[float]]] = []
        self.end_to_end: list[list[float]] = []

    def attempts_recorded(
        self, outcomes: Mapping[str, int], seconds: Iterable[float], delivered_after: Iterable[float] = ()
    ) -> None:
        self.rounds.append((dict(outcomes), list(seconds)))
        self.end_to_end.append(list(delivered_after))


async def test_attempts_are_counted_once_per_recording_round_by_outcome_with_each_time() -> None:
    h = hub()
    rounds = Rounds()
    policy = RetryPolicy(RetrySchedule.of([0.02]), slow_down_s=0)
    h.dispatcher = Dispatcher(h.outbox, h.client, policy, asyncio.Event(), poll_seconds=0.02, metrics=rounds)
    sid = await h.subscribe("https://a.example/hook")
    h.client.scripts["https://a.example/hook"] = [500, 204]
    h.publish(*(event(f"k{n}", n) for n in range(20)))  # the first attempt fails, the rest are delivered

    await h.run_until(lambda: h.status(sid) == ["delivered"] * 20)

    assert len(rounds.rounds) < h.dispatcher.stats.attempts == 21  # fewer calls than attempts
    total: dict[str, int] = {}
    for outcomes, seconds in rounds.rounds:
        assert sum(outcomes.values()) == len(seconds) > 0  # a time for every attempt counted
        for outcome, n in outcomes.items():
            total[outcome] = total.get(outcome, 0) + n
    assert total == {"delivered": 20, "failed": 1}
    assert any(sum(o.values()) > 1 for o, _ in rounds.rounds)  # a round counts many attempts at once
    # End to end: one time per delivered attempt, given with its round, never per attempt.
    for (outcomes, _), after in zip(rounds.rounds, rounds.end_to_end, strict=True):
        assert len(after) == outcomes.get("delivered", 0)
        assert all(0 <= s < 60 for s in after)


def test_a_recording_round_adds_to_the_exposed_counters_and_histogram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    metrics = PrometheusMetrics()
    metrics.attempts_recorded({"delivered": 3, "failed": 1}, [0.002, 0.002, 0.2, 3.0])
    metrics.attempts_recorded({"delivered": 1}, iter([0.004]))

    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.exposition()[0].decode())
        for s in family.samples
    }
    assert got[("koppelhub_deliveries_total", (("outcome", "delivered"),))] == 4
    assert got[("koppelhub_deliveries_total", (("outcome", "failed"),))] == 1
    assert got[("koppelhub_delivery_seconds_count", ())] == 5
    assert got[("koppelhub_delivery_seconds_bucket", (("le", "0.005"),))] == 3
    assert got[("koppelhub_delivery_seconds_sum", ())] == pytest.approx(3.208)
