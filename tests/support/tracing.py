"""One OpenTelemetry SDK for the test process, recording only while a test asks for spans.

The global tracer provider can be set once per process, and every other test would record
spans too; a sampler switch keeps them no-ops except inside the ``spans`` fixture."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes


class Switch(Sampler):
    def __init__(self) -> None:
        self.on = False

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: object = None,
    ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE if self.on else Decision.DROP, attributes)

    def get_description(self) -> str:
        return "test switch"


_EXPORTER = InMemorySpanExporter()
_SWITCH = Switch()
_INSTALLED = False


def installed() -> None:
    """The test SDK, installed once; it samples nothing outside :func:`recording`."""
    global _INSTALLED
    if not _INSTALLED:
        provider = TracerProvider(sampler=ParentBased(_SWITCH, remote_parent_not_sampled=_SWITCH))
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
        _INSTALLED = True


def recording() -> Iterator[InMemorySpanExporter]:
    """For a ``spans`` fixture: the finished spans of one test (the SDK records only while
    it runs)."""
    installed()
    _EXPORTER.clear()
    _SWITCH.on = True
    try:
        yield _EXPORTER
    finally:
        _SWITCH.on = False
        _EXPORTER.clear()


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found
