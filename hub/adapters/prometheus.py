"""Prometheus adapter of :class:`hub.ports.metrics.Metrics` (prometheus-client).

One process (``koppelhub run``): the metrics live in this process's registry. Roles run as
separate processes on one machine: give every one the same ``PROMETHEUS_MULTIPROC_DIR``
(``koppelhub`` sets it to ``<data dir>/metrics`` unless it is set), and the API's ``/metrics``
adds up the files every process writes there (prometheus-client's multiprocess mode): true
totals. prometheus-client picks its value store when it is first imported, so this module
imports it only inside :class:`PrometheusMetrics`, after the CLI has set the variable.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BUCKETS",
    "END_TO_END_BUCKETS",
    "MULTIPROC_ENV",
    "PrometheusMetrics",
    "batch_observer",
    "multiprocess_dir",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds: webhook attempts and projector batches take milliseconds to tens of seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: End to end includes retries: from milliseconds up to the retry schedule's day-long waits.
END_TO_END_BUCKETS = (*BUCKETS[2:], 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86_400.0)


def batch_observer(histogram: Any, buckets: Sequence[float]) -> Callable[[Iterable[float]], None] | None:
    """What many ``histogram.observe(v)`` calls would add, written once per bucket hit and once
    for the sum; None if this prometheus-client's histogram is not laid out as expected.

    prometheus-client has no public batch observe, so this is the one place that reads a
    histogram's private parts: ``_buckets`` (one value per upper bound, +Inf last, each
    counting only its own observations; the exposition adds them up) and ``_sum``. In
    multiprocess mode every value write is a locked write to the process's mmap file (~1 us);
    a round of n attempts took 2n of them per histogram. ``tests/unit/test_metrics_batches.py``
    fails if the layout changes or the renderings differ."""
    bounds = (*buckets, math.inf)
    parts: Any = getattr(histogram, "_buckets", None)
    total: Any = getattr(histogram, "_sum", None)
    if not isinstance(parts, list) or len(parts) != len(bounds):
        return None
    if not all(hasattr(value, "inc") for value in (*parts, total)):
        return None

    def observe_all(amounts: Iterable[float]) -> None:
        counts = [0] * len(bounds)
        added = 0.0
        for amount in amounts:
            counts[bisect_left(bounds, amount)] += 1  # the first bound >= amount, as observe
            added += amount
        if not any(counts):
            return
        total.inc(added)
        for part, count in zip(parts, counts, strict=True):
            if count:
                part.inc(count)

    return observe_all


def _observer(histogram: Any, buckets: Sequence[float]) -> Callable[[Iterable[float]], None]:
    """The histogram's batch observer or, if the library changed, one ``observe`` per value."""
    batched = batch_observer(histogram, buckets)
    if batched is not None:
        return batched
    observe = histogram.observe

    def each(amounts: Iterable[float]) -> None:
        for amount in amounts:
            observe(amount)

    return each


def multiprocess_dir(data_dir: Path) -> Path:
    """Set ``PROMETHEUS_MULTIPROC_DIR`` to ``<data dir>/metrics`` unless set; returns it.
    Call before anything imports prometheus-client (the CLI does, per command)."""
    path = Path(os.environ.setdefault(MULTIPROC_ENV, str(data_dir / "metrics")))
    path.mkdir(parents=True, exist_ok=True)
    return path


class PrometheusMetrics:
    """The hub's metrics in a registry of their own (several hubs in one test process do not
    collide); :meth:`exposition` renders them, summed over processes in multiprocess mode."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

        self._multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        if self._multiprocess and not getattr(values.ValueClass, "_multiprocess", False):
            # prometheus-client was imported before the variable was set: switch its store now,
            # before the first metric is made, or the files would stay empty.
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        r = self._registry = CollectorRegistry()
        self._published = Counter(
            "koppelhub_events_published", "Events accepted by the log, by publish mode", ["mode"], registry=r
        )
        self._warnings = Counter(
            "koppelhub_publish_warnings",
            "Events accepted with a warning (a probable mistake), by kind",
            ["kind"],
            registry=r,
        )
        self._projected = Counter(
            "koppelhub_events_projected", "Events the projector applied for the first time", registry=r
        )
        self._batch = Histogram(
            "koppelhub_projector_batch_seconds", "Time per projector batch", registry=r, buckets=BUCKETS
        )
        self._dlq = Counter(
            "koppelhub_dlq_records", "Records parked in the dead-letter topic by the projector", registry=r
        )
        self._read_again = Counter(
            "koppelhub_projection_read_again",
            "Times a projector member read its uncommitted batches again because the database "
            "went through crash recovery (or a failover) since it read them",
            registry=r,
        )
        self._deliveries = Counter(
            "koppelhub_deliveries",
            "Delivery attempts by what they made of the delivery",
            ["outcome"],
            registry=r,
        )
        self._delivery = Histogram(
            "koppelhub_delivery_seconds", "Time per delivery attempt", registry=r, buckets=BUCKETS
        )
        self._end_to_end = Histogram(
            "koppelhub_publish_to_delivery_seconds",
            "Time from the log accepting an event to its delivery to a subscription (end to end)",
            registry=r,
            buckets=END_TO_END_BUCKETS,
        )
        self._runs = Counter(
            "koppelhub_connector_runs", "Connector runs by kind and outcome", ["kind", "outcome"], registry=r
        )
        mode: Any = {"multiprocess_mode": "mostrecent"}
        self._lag = Gauge(
            "koppelhub_projector_lag",
            "Records not yet committed by the projector",
            ["partition"],
            registry=r,
            **mode,
        )
        self._pending = Gauge(
            "koppelhub_outbox_pending", "Open deliveries (pending or failed)", registry=r, **mode
        )
        #: The labelled children of the per-attempt and per-request counters, by label value:
        #: ``labels()`` checks and joins its values and takes the metric's lock on every call,
        #: 1.3 us of the 6.3 us an attempt's metrics took (multiprocess mode, benchmarks note).
        #: The label values are few (outcomes, publish modes), so the maps stay small.
        self._by_outcome: dict[str, Any] = {}
        self._by_mode: dict[str, Any] = {}
        #: The per-attempt histograms, written once per recording round (see batch_observer).
        self._observe_deliveries = _observer(self._delivery, BUCKETS)
        self._observe_end_to_end = _observer(self._end_to_end, END_TO_END_BUCKETS)

    def published(self, mode: str, count: int) -> None:
        child = self._by_mode.get(mode)
        if child is None:
            child = self._by_mode[mode] = self._published.labels(mode)
        child.inc(count)

    def projected(self, count: int, seconds: float) -> None:
        self._projected.inc(count)
        self._batch.observe(seconds)

    def dead_lettered(self) -> None:
        self._dlq.inc()

    def read_again(self) -> None:
        self._read_again.inc()

    def publish_warned(self, kind: str, count: int) -> None:
        self._warnings.labels(kind).inc(count)

    def attempts_recorded(
        self, outcomes: Mapping[str, int], seconds: Iterable[float], delivered_after: Iterable[float] = ()
    ) -> None:
        """Per recording round: one ``inc(n)`` per outcome, and each histogram written once
        per bucket the round's values fall in plus once for its sum (:func:`batch_observer`),
        not one ``observe`` (two writes) per attempt."""
        for outcome, count in outcomes.items():
            child = self._by_outcome.get(outcome)
            if child is None:
                child = self._by_outcome[outcome] = self._deliveries.labels(outcome)
            child.inc(count)
        self._observe_deliveries(seconds)
        # The clocks of two hosts may disagree a little: never a negative end to end.
        self._observe_end_to_end(s if s > 0.0 else 0.0 for s in delivered_after)

    def connector_run(self, kind: str, outcome: str) -> None:
        self._runs.labels(kind, outcome).inc()

    def observed(self, lag: Mapping[int, int], outbox_pending: int) -> None:
        for partition, value in lag.items():
            self._lag.labels(str(partition)).set(value)
        self._pending.set(outbox_pending)

    def exposition(self) -> tuple[bytes, str]:
        """The text format and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

        if not self._multiprocess:
            return generate_latest(self._registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST

    @staticmethod
    def process_exited() -> None:
        """Drop this process's live gauges from the shared directory (counters stay: totals)."""
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
