"""The projector continues each event's trace (issue 15, Traces): one "project batch" span per
trace context in a batch, the child of that publish span, and one of its own for the events
that carry none. A span per event would be the hub's largest tracing cost (benchmarks.observability)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub.adapters.memory import InMemoryEventLog, InMemoryProjectionStore
from schemas import CloudEvent
from tests.support.tracing import by_name, recording
from tests.unit.test_projector_policy import drain

ONE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from recording()


def traced(event_id: str, traceparent: str | None) -> CloudEvent:
    extension = {} if traceparent is None else {"traceparent": traceparent}
    return CloudEvent(
        specversion="1.0", id=event_id, source="urn:nld:test", type="nl.test.event.v1", subject="k",
        data={}, **extension,
    )  # fmt: skip


async def test_a_batch_has_one_project_batch_span_per_trace_as_the_child_of_its_publish(
    spans: InMemorySpanExporter,
) -> None:
    log, store = InMemoryEventLog(partitions=1), InMemoryProjectionStore()
    await log.publish([traced("a1", ONE), traced("b1", OTHER), traced("a2", ONE), traced("u1", None)])

    projector = await drain(log, store)

    assert projector.stats.batches == 1 and projector.stats.applied == 4
    found = by_name(spans)
    assert set(found) == {"project batch"}  # no span per event
    counts = {
        (f"{s.parent.trace_id:032x}", f"{s.parent.span_id:016x}") if s.parent else None: (
            s.attributes or {}
        ).get("messaging.batch.message_count")
        for s in found["project batch"]
    }
    assert counts == {tuple(ONE.split("-")[1:3]): 2, tuple(OTHER.split("-")[1:3]): 1, None: 1}
    for span in found["project batch"]:  # each continues its publish's trace, not a new one
        if span.parent is not None:
            assert span.context is not None and span.context.trace_id == span.parent.trace_id


async def test_an_unsampled_publish_gets_no_project_batch_span_when_the_sampler_follows_its_parent(
    spans: InMemorySpanExporter,
) -> None:
    # Under a parentbased_* sampler (what OTEL_TRACES_SAMPLER configures) the span of a publish
    # that was not sampled would not be recorded: the projector makes none for it, while a
    # sampled publish and the events without a trace context still get theirs.
    from hub.tracing import follow_unsampled_parents

    unsampled = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    follow_unsampled_parents()  # the test SDK samples every span now, even of unsampled parents
    try:
        log, store = InMemoryEventLog(partitions=1), InMemoryProjectionStore()
        await log.publish(
            [traced("s1", ONE), traced("n1", unsampled), traced("n2", unsampled), traced("u1", None)]
        )
        projector = await drain(log, store)
    finally:
        follow_unsampled_parents(False)

    assert projector.stats.applied == 4  # every event projected, its context still on it
    parents = [f"{s.parent.trace_id:032x}" if s.parent else None for s in by_name(spans)["project batch"]]
    assert sorted(parents, key=str) == sorted([ONE.split("-")[1], None], key=str)
