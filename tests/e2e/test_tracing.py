"""One trace from publish to the subscriber: the caller's traceparent is continued by the
publish span, carried through Kafka, continued by the projector and the delivery attempt, and
sent to the sink as the traceparent header (same trace id)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub.bootstrap import HubProcess
from tests.support.hub_api import event, eventually, subscribe_in_store
from tests.support.sink import WebhookSink
from tests.support.tracing import by_name, recording

pytestmark = pytest.mark.e2e

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from recording()


async def test_a_subscriber_receives_the_publishers_trace_and_every_step_is_in_it(
    hub: HubProcess,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    sink: WebhookSink,
    spans: InMemorySpanExporter,
) -> None:
    assert hub.engine is not None
    await subscribe_in_store(hub.engine, sink.url)
    headers = {
        **auth,
        "content-type": "application/cloudevents+json",
        "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
    }
    sent = event("traced", 1)
    assert (await client.post("/api/v1/events", content=json.dumps(sent), headers=headers)).status_code == 202

    [received] = await sink.wait_for(1)
    assert json.loads(received.body)["id"] == sent["id"]
    version, trace_id, span_id, _flags = received.headers["traceparent"].split("-")
    assert (version, trace_id) == ("00", TRACE)

    async def delivery_span_ended() -> bool:
        return "deliver attempt" in by_name(spans)

    await eventually(delivery_span_ended, what="the delivery attempt's span")
    found = by_name(spans)
    in_trace = {
        n for n, ss in found.items() for s in ss if s.context and f"{s.context.trace_id:032x}" == TRACE
    }
    # The projection's span is the publish span's child: one "project batch" span per trace
    # context in the projector's batch, not one per event.
    assert {"publish", "project batch", "deliver attempt"} <= in_trace
    [publish] = found["publish"]
    assert publish.context is not None
    parent = publish.context.span_id
    projections = [s for s in found["project batch"] if s.parent and s.parent.span_id == parent]
    assert [(s.attributes or {}).get("messaging.batch.message_count") for s in projections] == [1]
    [attempt] = found["deliver attempt"]
    assert attempt.context is not None and f"{attempt.context.span_id:016x}" == span_id  # the sink's parent
