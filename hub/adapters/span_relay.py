"""Spans of ``koppelhub run``'s children exported by the parent, off the children's event loops.

Encoding a span for OTLP is the SDK's own Python (``encode_spans`` builds protobuf messages
field by field) and runs in the export thread of the process that made the span. In the work
child, whose CPU bounds end-to-end throughput, that thread took about 96 us per sampled span
on 2026-12-01 (py-spy, ``benchmarks.where`` with every trace sampled): more than making the
span (about 70 us). The parent ``run`` process idles meanwhile. So a child of ``run`` ends
its spans into a :class:`RelaySpanProcessor`, which sends them (plain values, a few us a span)
over a datagram socket the parent made; the parent's :class:`SpanRelay` makes them SDK spans
again and hands them to its own batching OTLP exporter, with the parent's resource (the same
``OTEL_*`` variables, so the same service name and attributes).

The socket is a ``socketpair`` inherited by the parent's own children only (nothing else can
write to it), so its datagrams are trusted and decoded with :mod:`marshal`: plain tuples,
dicts, strings and numbers, as span data is. A roles-apart deployment has no parent: its
processes export as before (:func:`hub.adapters.tracing.configure_tracing`).

What is dropped is counted and logged, never waited for: a child never blocks on the parent.
"""

from __future__ import annotations

import contextlib
import functools
import marshal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import structlog
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

__all__ = ["RelaySpanProcessor", "SpanRelay", "compact", "readable"]

log = structlog.get_logger(__name__)

#: Spans per datagram; a larger batch is sent once it is full, a smaller one by the timer.
BATCH = 64
#: Seconds a span may wait in a child before it is sent (the parent's exporter adds its own
#: OTEL_BSP_SCHEDULE_DELAY).
DELAY = 0.5
#: The socket buffer asked for (the kernel caps it at net.core.wmem_max / rmem_max).
BUFFER = 4 * 1024 * 1024
#: Seconds between two ``spans_dropped`` lines of one child (each says how many so far).
WARN_EVERY = 10.0
#: The largest datagram received: a batch that would be larger is split in the child.
MAX_DATAGRAM = 192 * 1024

_Context = tuple[int, int, int, bool, tuple[tuple[str, str], ...]]
_NO_STATE: tuple[tuple[str, str], ...] = ()


def _context(c: SpanContext) -> _Context:
    state = c.trace_state
    return (
        c.trace_id,
        c.span_id,
        int(c.trace_flags),
        c.is_remote,
        tuple(state.items()) if state else _NO_STATE,
    )


def _span_context(c: _Context) -> SpanContext:
    trace_id, span_id, flags, remote, state = c
    return SpanContext(trace_id, span_id, remote, TraceFlags(flags), _trace_state(state))


@functools.lru_cache(maxsize=256)
def _trace_state(items: tuple[tuple[str, str], ...]) -> TraceState:
    return TraceState(list(items))  # immutable: one per distinct state


@functools.lru_cache(maxsize=64)
def _scope(name: str, version: str | None, schema_url: str | None) -> InstrumentationScope:
    return InstrumentationScope(name, version, schema_url)


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(attributes, MappingProxyType):  # a ReadableSpan's: the SDK's own dict, copied
        return attributes.copy()
    return dict(attributes or {})


def compact(span: ReadableSpan) -> tuple[Any, ...]:
    """A finished span as plain values (what the OTLP encoder reads of it). Made on the event
    loop of a busy child, so read at C speed where the SDK allows: ``attributes.copy()`` is
    the attributes' own dict copied (``dict(span.attributes)`` goes key by key through a lock),
    and spans without events or links skip them (a deliver attempt has none)."""
    scope = span.instrumentation_scope
    status = span.status
    events = span.events
    links = span.links
    return (
        span.name,
        _context(span.context),
        None if span.parent is None else _context(span.parent),
        span.kind.value,
        span.start_time,
        span.end_time,
        _attributes(span.attributes),
        tuple((e.name, e.timestamp, dict(e.attributes or {})) for e in events) if events else (),
        tuple((_context(k.context), dict(k.attributes or {})) for k in links) if links else (),
        (status.status_code.value, status.description),
        None if scope is None else (scope.name, scope.version, scope.schema_url),
    )


def readable(item: Sequence[Any], resource: Resource) -> ReadableSpan:
    """The SDK span :func:`compact` was made of, with ``resource`` (the exporting process's)."""
    name, context, parent, kind, start, end, attributes, events, links, status, scope = item
    return ReadableSpan(
        name=name,
        context=_span_context(context),
        parent=None if parent is None else _span_context(parent),
        resource=resource,
        attributes=attributes,
        events=[Event(n, a, timestamp=t) for n, t, a in events],
        links=[Link(_span_context(c), a) for c, a in links],
        kind=SpanKind(kind),
        status=Status(StatusCode(status[0]), status[1]),
        start_time=start,
        end_time=end,
        instrumentation_scope=None if scope is None else _scope(*scope),
    )


class RelaySpanProcessor(SpanProcessor):
    """In a child of ``run``: sampled spans, as :func:`compact` values, to the parent in
    datagrams of up to :data:`BATCH` spans, at least every :data:`DELAY` seconds. A full
    socket (the parent not keeping up) drops the batch and counts it (``dropped``)."""

    def __init__(self, sock: socket.socket, batch: int = BATCH, delay: float = DELAY) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
        self._sock, self._batch, self._delay = sock, batch, delay
        self._spans: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sent = self.dropped = 0
        self._warned_at = -WARN_EVERY
        self._thread = threading.Thread(target=self._timer, name="KoppelhubSpanRelay", daemon=True)
        self._thread.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        item = compact(span)
        with self._lock:
            self._spans.append(item)
            if len(self._spans) < self._batch:
                return
            spans, self._spans = self._spans, []
        self._send(spans)

    def _timer(self) -> None:
        while not self._stop.wait(self._delay):
            self.force_flush()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        with self._lock:
            spans, self._spans = self._spans, []
        if spans:
            self._send(spans)
        return True

    def shutdown(self) -> None:
        self._stop.set()
        self.force_flush()
        self._sock.close()

    def _send(self, spans: list[tuple[Any, ...]]) -> None:
        data = marshal.dumps(spans)
        if len(data) > MAX_DATAGRAM and len(spans) > 1:
            half = len(spans) // 2
            self._send(spans[:half])
            self._send(spans[half:])
            return
        try:
            self._sock.send(data)
        except OSError as e:  # full (BlockingIOError), too large, or the parent is gone
            with self._lock:  # the timer thread sends too: counts are not lost between them
                self.dropped += len(spans)
                dropped, warn = self.dropped, (now := time.monotonic()) - self._warned_at >= WARN_EVERY
                if warn:  # a line, not a flood
                    self._warned_at = now
            if warn:
                log.warning("spans_dropped", count=len(spans), dropped=dropped, reason=type(e).__name__)
        else:
            with self._lock:
                self.sent += len(spans)


class SpanRelay:
    """In ``run``: the socket its children send their spans on (:attr:`child_end`, inherited
    through ``pass_fds``) and a thread that gives each span to ``processor`` (the parent's
    batching OTLP exporter). :meth:`close` after the children have stopped: every span they
    sent before is handed on, then the thread ends."""

    def __init__(self, processor: SpanProcessor, resource: Resource) -> None:
        self._processor, self._resource = processor, resource
        self._parent_end, self.child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            self._parent_end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        self.received = self.undecodable = 0
        self._thread = threading.Thread(target=self._receive, name="KoppelhubSpanRelayIn", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while data := self._parent_end.recv(MAX_DATAGRAM):  # b"": close() says stop
            try:
                spans = [readable(item, self._resource) for item in marshal.loads(data)]  # noqa: S302 - our children's
            except (EOFError, ValueError, TypeError) as e:
                self.undecodable += 1
                log.warning("span_relay_undecodable", bytes=len(data), error=str(e))
                continue
            for span in spans:
                self._processor.on_end(span)
            self.received += len(spans)

    def close(self, timeout: float = 5.0) -> None:
        """Stop after every datagram sent so far (an empty one queues behind them), then
        flush the exporter."""
        with contextlib.suppress(OSError):
            self.child_end.send(b"")
        self._thread.join(timeout)
        self._processor.force_flush()
        self.child_end.close()
        self._parent_end.close()
