"""W3C trace context through the hub (OpenTelemetry API only; the SDK and its OTLP exporter are
wired by :mod:`hub.adapters.tracing` when OTEL_* variables ask for them, else every span is a
no-op that still carries its parent's context).

The trace context travels with the event as the CloudEvents distributed-tracing extension
(``traceparent``): set at publish, carried in the Kafka record (``ce_traceparent``), read by
the projector and the dispatcher, and sent to the sink as the ``traceparent`` header."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from schemas import CloudEvent

__all__ = [
    "TRACEPARENT",
    "carried",
    "carry_trace",
    "context_of",
    "current_traceparent",
    "follow_unsampled_parents",
    "left_out",
    "passed_on",
    "traceparent_of",
    "tracer",
    "tracing_on",
]

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()


@cache
def tracer() -> trace.Tracer:
    """The hub's tracer, got once: the SDK builds a new tracer (and its instrumentation scope)
    on every ``get_tracer``, a fifth of a sampled attempt's tracing CPU (benchmarks/tracing.py).
    Got before a provider is installed it is the API's proxy, which turns into the installed
    provider's tracer on first use after."""
    return trace.get_tracer("koppelhub")


def context_of(carrier: Mapping[str, str] | str | None) -> Context | None:
    """The trace context in HTTP headers or a ``traceparent`` value; None when there is none."""
    if carrier is None:
        return None
    if isinstance(carrier, str):
        return _context_of_traceparent(carrier)
    if TRACEPARENT not in carrier:
        return None
    return _PROPAGATOR.extract(carrier)


@lru_cache(maxsize=4096)
def _context_of_traceparent(traceparent: str) -> Context:
    """One parse per event's traceparent, not one per delivery of it (an event fans out to every
    matching subscription, and each attempt continues its trace). A Context is immutable."""
    return _PROPAGATOR.extract({TRACEPARENT: traceparent})


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span (None when there is no valid trace), written as
    the W3C propagator writes it, without its carrier dict and header regex per call."""
    return traceparent_of(trace.get_current_span())


def traceparent_of(span: trace.Span) -> str | None:
    """The ``traceparent`` that continues ``span`` (None when it is not a valid trace): for a
    span that is not made current, so a hot path need not attach and detach a context."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def carried(event: CloudEvent) -> str | None:
    """The ``traceparent`` extension ``event`` carries, or None (also for a non-text extension
    of that name: CloudEvents allows an integer, which is no trace context). Read from the
    model's extras (pydantic's ``model_extra``), not ``getattr(event, "traceparent", None)``,
    which goes through pydantic's ``__getattr__`` (an AttributeError raised and caught when the
    event has none). Process CPU: the projector's count of a batch's trace contexts 0.89 ->
    0.21 us per event (100 events sharing a traceparent); publish's look for a parent in an
    event without one 2.2 -> 0.24 us per request."""
    value = (event.model_extra or {}).get(TRACEPARENT)
    return value if isinstance(value, str) else None


def carry_trace(events: Sequence[CloudEvent], traceparent: str | None) -> None:
    """Give every event that carries no trace context of its own ``traceparent`` (the publish
    span's), as its CloudEvents distributed-tracing extension; an event's own is kept.

    Set in place (:meth:`CloudEvent.stamp`), as :func:`hub.api.ownership.stamp_events` sets the
    organisation: these are the request's own events, parsed just now and seen by nobody else.
    A ``model_copy`` per event was most of what an unsampled publish cost in tracing
    (benchmarks.unsampled)."""
    if traceparent is None:
        return
    for event in events:
        event.stamp(TRACEPARENT, traceparent)


def tracing_on() -> bool:
    """Whether an SDK tracer provider is installed. Without one every span is a no-op, so a hot
    path (one delivery attempt) may skip making spans and pass the context on with :func:`passed_on`.
    Once installed a provider stays (OpenTelemetry sets it once), so a yes is kept: the check is an
    environment lookup and an ABC isinstance, about 3 us, asked once per attempt."""
    if not _Provider.installed:
        _Provider.installed = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return _Provider.installed


class _Provider:
    installed = False  # set by the first tracing_on() after an SDK provider was installed
    follows_parent = False  # set by follow_unsampled_parents()


def follow_unsampled_parents(on: bool = True) -> None:
    """Told by whoever installed the SDK that its sampler leaves out every span whose remote
    parent was not sampled: every ``parentbased_*`` sampler ``OTEL_TRACES_SAMPLER`` names does
    (the SDK's defaults), a sampler built in code need not."""
    _Provider.follows_parent = on


def left_out(traceparent: str | None) -> bool:
    """Whether a span continuing ``traceparent`` would not be recorded anyway: its publish was
    not sampled and the sampler follows that (:func:`follow_unsampled_parents`). Then a hot path
    (one delivery attempt, one projector batch) skips the span and passes the context on with
    :func:`passed_on`: the sampler's decision, a span id and a non-recording span are about 4 us
    per attempt, most of the tracing cost of an event whose trace is left out (nine in ten under
    a 0.1 ratio)."""
    return _Provider.follows_parent and traceparent is not None and _unsampled(traceparent)


#: A version-00 ``traceparent`` exactly as the hub writes it (:func:`traceparent_of`): lowercase
#: hex, neither id all zeros, nothing after the flags. For such a header the W3C propagator's
#: answer is known without asking it: a valid context with these ids and flags, written back as
#: the same text. Each publish has a traceparent of its own, so the caches below miss once per
#: publish, in the projector and again in the dispatcher; a miss on a plain header is one
#: fullmatch instead of the propagator's parse and the SDK's context objects (process CPU per
#: miss: left_out 6.0 -> 0.8 us, left_out and passed_on 7.9 -> 1.4 us). Anything else (another
#: version, uppercase, a trailing part, padding) still goes to the propagator.
_PLAIN = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


@lru_cache(maxsize=4096)
def _unsampled(traceparent: str) -> bool:
    """A valid trace context with the sampled flag off (an invalid one starts a new trace, which
    the sampler decides anew). Cached: the events of one publish share their traceparent."""
    if _PLAIN.fullmatch(traceparent):  # the sampled flag is bit 0 of the last hex digit
        return traceparent[-1] in "02468ace"
    context = trace.get_current_span(_context_of_traceparent(traceparent)).get_span_context()
    return context.is_valid and not context.trace_flags.sampled


@lru_cache(maxsize=4096)
def passed_on(traceparent: str) -> str | None:
    """What :func:`current_traceparent` gives inside a no-op span continuing ``traceparent``: the
    same trace and span id when it is valid, else None. Cached: a fan-out asks once per delivery.
    A plain header (:data:`_PLAIN`) is passed on as it is, which is what the propagator would
    write back; anything else from the context :func:`left_out` parsed already (one propagator
    parse per event's traceparent, not two), as the W3C propagator writes it."""
    if _PLAIN.fullmatch(traceparent):
        return traceparent
    return traceparent_of(trace.get_current_span(_context_of_traceparent(traceparent)))
