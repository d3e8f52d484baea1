"""The OpenTelemetry SDK, only when the standard OTEL_* variables configure an exporter.

``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or
``OTEL_TRACES_EXPORTER=otlp``) installs a tracer provider with a batching OTLP/HTTP exporter;
the SDK reads the rest (service name, headers, sampler) from the environment itself. Without
them, nothing is installed and spans stay no-ops. ``OTEL_SDK_DISABLED=true`` wins."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

__all__ = ["configure_tracing", "hashed_once"]

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
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # A parentbased_* sampler from the environment keeps the SDK's default for an unsampled
    # remote parent (leave the span out): the dispatcher may then skip such spans altogether.
    follow_unsampled_parents(isinstance(provider.sampler, ParentBased))
    return True


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
