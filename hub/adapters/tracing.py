"""The OpenTelemetry SDK, only when the standard OTEL_* variables configure an exporter.

``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or
``OTEL_TRACES_EXPORTER=otlp``) installs a tracer provider with a batching OTLP/HTTP exporter;
the SDK reads the rest (service name, headers, sampler) from the environment itself. Without
them, nothing is installed and spans stay no-ops. ``OTEL_SDK_DISABLED=true`` wins. A child of
``koppelhub run`` sends its spans to the parent, which exports them (:func:`span_relay`)."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor

    from hub.adapters.span_relay import SpanRelay

__all__ = ["RELAY_FD_ENV", "configure_tracing", "hashed_once", "span_relay"]

#: In a child of ``run``: the socket its spans go to the parent on (hub/adapters/span_relay.py).
RELAY_FD_ENV = "KOPPELHUB_SPAN_RELAY_FD"

_WANTS_OTLP = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def configure_tracing() -> bool:
    """Install the SDK with an OTLP exporter when configured; True when it did."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "")
    if exporter == "none" or not (exporter == "otlp" or any(os.environ.get(v) for v in _WANTS_OTLP)):
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    from hub.tracing import follow_unsampled_parents

    created = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "koppelhub")})
    resource = hashed_once(created)
    provider = TracerProvider(resource=resource)  # its sampler from OTEL_TRACES_SAMPLER
    relay = _inherited_relay()
    if relay is not None:  # a child of `run`: the parent exports (hub/adapters/span_relay.py)
        from hub.adapters.span_relay import RelaySpanProcessor

        provider.add_span_processor(RelaySpanProcessor(relay))
    else:
        _Exporting.processor = BatchSpanProcessor(OTLPSpanExporter())
        _Exporting.resource = resource
        provider.add_span_processor(_Exporting.processor)
    trace.set_tracer_provider(provider)
    # A parentbased_* sampler from the environment keeps the SDK's default for an unsampled
    # remote parent (leave the span out): the dispatcher may then skip such spans altogether.
    follow_unsampled_parents(isinstance(provider.sampler, ParentBased))
    return True


def _inherited_relay() -> socket.socket | None:
    """The datagram socket ``run`` gave this child (:data:`RELAY_FD_ENV`), taken out of the
    environment so that a process this one starts does not take an fd it never inherited."""
    fd = os.environ.pop(RELAY_FD_ENV, "")
    if not fd.isdigit():
        return None
    try:
        sock = socket.socket(fileno=int(fd))
    except OSError:
        return None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_DGRAM:
        sock.detach()  # not ours to close
        return None
    return sock


class _Exporting:
    """This process's own batching OTLP exporter, once :func:`configure_tracing` made one."""

    processor: SpanProcessor | None = None
    resource: Resource | None = None


def span_relay() -> SpanRelay | None:
    """For ``run``'s children: a relay into this process's exporter (None when tracing is not
    configured here). Pass its ``child_end`` to them as :data:`RELAY_FD_ENV`."""
    if _Exporting.processor is None or _Exporting.resource is None:
        return None
    from hub.adapters.span_relay import SpanRelay

    return SpanRelay(_Exporting.processor, _Exporting.resource)


def hashed_once(resource: Resource) -> Resource:
    """``resource`` with its hash worked out once. The OTLP encoder groups every exported span
    by its resource, hashing it per span, and ``Resource.__hash__`` JSON-encodes a copy of the
    attributes each time: 7.8 us a span, about a fifth of what exporting one costs (py-spy of
    ``benchmarks.sampled``). A resource's attributes cannot change, so its hash cannot either;
    equality is the SDK's own."""
    from opentelemetry.sdk.resources import Resource

    class HashedOnce(Resource):
        def __init__(self, original: Resource) -> None:
            super().__init__(original.attributes, original.schema_url)
            self.__hash = super().__hash__()

        def __hash__(self) -> int:
            return self.__hash

    return HashedOnce(resource)
