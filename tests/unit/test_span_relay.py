"""The span relay of ``koppelhub run`` (hub/adapters/span_relay.py): a child's sampled spans reach
the parent's exporter as the spans the child made, over a real datagram socketpair, with the
real OpenTelemetry SDK on both ends; a parent that does not read never blocks a child."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.trace.propagation import set_span_in_context
from opentelemetry.trace.span import NonRecordingSpan
from opentelemetry.util.types import Attributes

from hub.adapters.span_relay import MAX_DATAGRAM, RelaySpanProcessor, SpanRelay

RESOURCE = Resource.create({"service.name": "koppelhub-relay-test"})


class RecordOnlyWhenAsked(Sampler):
    """Samples every span but those named ``recorded, not sampled`` (RECORD_ONLY: the SDK ends
    them into every processor with the sampled flag off)."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        decision = Decision.RECORD_ONLY if name == "recorded, not sampled" else Decision.RECORD_AND_SAMPLE
        return SamplingResult(decision, attributes)

    def get_description(self) -> str:
        return "record only when asked"


class Ended(SpanProcessor):
    """Every span the SDK ends into its processors, sampled or not."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def child(
    relay: SpanRelay | socket.socket, **options: Any
) -> tuple[TracerProvider, RelaySpanProcessor, Ended]:
    """A child's provider that relays (on a copy of the child's end, as a child inherits it),
    and keeps what it ended, to compare with what the parent exports."""
    end = relay.child_end if isinstance(relay, SpanRelay) else relay
    provider = TracerProvider(resource=RESOURCE, sampler=RecordOnlyWhenAsked())
    processor = RelaySpanProcessor(end.dup(), **options)
    made = Ended()
    provider.add_span_processor(processor)
    provider.add_span_processor(made)
    return provider, processor, made


def parent() -> tuple[SpanRelay, InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    return SpanRelay(SimpleSpanProcessor(exported), RESOURCE), exported


def otlp(spans: Sequence[ReadableSpan]) -> bytes:
    """The OTLP request these spans make, in span id order."""
    ordered = sorted(spans, key=lambda s: s.context.span_id if s.context else 0)
    encoded: bytes = encode_spans(ordered).SerializeToString()
    return encoded


def test_the_parent_exports_the_very_spans_a_child_made_byte_for_byte_in_otlp() -> None:
    relay, exported = parent()
    provider, processor, made = child(relay)
    tracer = provider.get_tracer("koppelhub", "1.0", schema_url="https://opentelemetry.io/schemas/1.21.0")
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value")]),
    )
    linked = SpanContext(0x1, 0x2, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with tracer.start_span(
        "deliver attempt",
        context=set_span_in_context(NonRecordingSpan(remote)),
        kind=SpanKind.CLIENT,
        attributes={"koppelhub.delivery.attempt": 2, "ratio": 0.5, "ok": False, "names": ("a", "b")},
        links=[Link(linked, {"why": "batch"})],
    ) as span:
        span.set_attribute("koppelhub.delivery.outcome", "failed")
        span.record_exception(ValueError("the sink said 503"))
        span.set_status(Status(StatusCode.ERROR, "503"))
    with tracer.start_span("project batch", kind=SpanKind.CONSUMER):
        pass
    processor.shutdown()  # a child's exit: what it holds is sent
    relay.close()  # the parent, once its children stopped: what they sent is handed on

    sent = made.spans
    assert [s.name for s in sent] == ["deliver attempt", "project batch"]
    assert sorted(s.name for s in exported.get_finished_spans()) == ["deliver attempt", "project batch"]
    assert otlp(exported.get_finished_spans()) == otlp(sent)
    assert (processor.sent, processor.dropped, relay.received) == (2, 0, 2)


def test_a_span_recorded_but_not_sampled_is_not_sent() -> None:
    relay, exported = parent()
    provider, processor, made = child(relay)
    tracer = provider.get_tracer("koppelhub")
    with tracer.start_span("recorded, not sampled"):
        pass
    with tracer.start_span("marker"):
        pass
    processor.shutdown()
    relay.close()
    assert [s.name for s in made.spans] == ["recorded, not sampled", "marker"]
    assert [s.name for s in exported.get_finished_spans()] == ["marker"]


def test_a_batch_larger_than_a_datagram_arrives_whole_in_parts() -> None:
    relay, exported = parent()
    provider, processor, _ = child(relay, batch=10)
    tracer = provider.get_tracer("koppelhub")
    big = "x" * (MAX_DATAGRAM // 4)  # ten of them are about two and a half datagrams
    for i in range(10):
        with tracer.start_span(f"span {i}", attributes={"big": big}):
            pass
    processor.shutdown()
    relay.close()
    assert sorted(s.name for s in exported.get_finished_spans()) == sorted(f"span {i}" for i in range(10))
    assert processor.dropped == 0


def test_a_parent_that_does_not_read_costs_a_child_its_spans_never_a_wait() -> None:
    unread, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)  # nobody reads `unread`
    provider, processor, _ = child(child_end, batch=1)
    tracer = provider.get_tracer("koppelhub")
    big = "x" * 16_384
    made = 0
    while processor.dropped == 0:  # the socket's buffer fills within a few hundred kB
        with tracer.start_span("span", attributes={"big": big}):
            made += 1
        assert made < 10_000, "the socket never filled"
    with tracer.start_span("span", attributes={"big": big}):  # and the next is dropped too
        made += 1
    processor.shutdown()
    assert processor.sent + processor.dropped == made
    assert processor.dropped >= 2
    unread.close()
    child_end.close()
