"""Publish continues the caller's W3C trace (the traceparent header, else the event's own
traceparent attribute) and the event carries it on in the Kafka binding (ce_traceparent)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub.adapters.memory import (
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
)
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext
from hub.settings import Settings
from subscriptions.ssrf import NetworkPolicy
from tests.support.tracing import by_name, installed, recording

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE}-00f067aa0ba902b7-01"
OWN = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
AUTH = {"Authorization": "Bearer t"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from recording()


async def _ready() -> dict[str, bool]:
    return {}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryEventLog]]:
    async with client_of(tmp_path) as (client, log):
        yield client, log


@asynccontextmanager
async def client_of(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryEventLog]]:
    """The in-memory app and its event log (also for a fresh interpreter without an SDK)."""
    log = InMemoryEventLog(partitions=1)
    db = InMemoryDatabase()
    ctx = ApiContext(
        settings=Settings(data_dir=tmp_path, admin_token="t"),
        event_log=log,
        subscriptions=InMemorySubscriptionStore(db),
        landscape=InMemoryProjectionStore([]),
        network_policy=NetworkPolicy.parse([]),
        auth=TokenAuthenticator("t"),
        readiness=_ready,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://h"
    ) as c:
        yield c, log


def _event(n: int, **extra: str) -> dict[str, str]:
    return {"specversion": "1.0", "id": f"e{n}", "source": "urn:x", "type": "nl.test.thing.v1", **extra}


def _carried(log: InMemoryEventLog) -> list[str | None]:
    return [
        dict(r.headers).get("ce_traceparent", b"").decode() or None
        for partition in log.partitions
        for r in partition
    ]


async def test_publish_joins_the_callers_trace_and_the_events_carry_it_on(
    app: tuple[httpx.AsyncClient, InMemoryEventLog], spans: InMemorySpanExporter
) -> None:
    client, log = app
    headers = {**AUTH, "content-type": "application/cloudevents-batch+json", "traceparent": CALLER}
    body = json.dumps([_event(1), _event(2, traceparent=OWN)])
    assert (await client.post("/api/v1/events", content=body, headers=headers)).status_code == 202

    [publish] = by_name(spans)["publish"]
    assert publish.context is not None and f"{publish.context.trace_id:032x}" == TRACE
    assert publish.parent is not None and f"{publish.parent.span_id:016x}" == "00f067aa0ba902b7"
    first, second = _carried(log)
    assert first == f"00-{TRACE}-{publish.context.span_id:016x}-01"  # a child of the publish span
    assert second == OWN  # an event's own trace context is kept


async def test_without_a_header_the_events_own_traceparent_is_the_parent(
    app: tuple[httpx.AsyncClient, InMemoryEventLog], spans: InMemorySpanExporter
) -> None:
    client, log = app
    headers = {**AUTH, "content-type": "application/cloudevents+json"}
    assert (
        await client.post("/api/v1/events", json=_event(1, traceparent=OWN), headers=headers)
    ).status_code == 202
    [publish] = by_name(spans)["publish"]
    assert publish.context is not None and f"{publish.context.trace_id:032x}" == OWN.split("-")[1]
    assert _carried(log) == [OWN]


async def test_a_traceparent_extension_that_is_not_text_starts_a_trace_of_its_own(
    app: tuple[httpx.AsyncClient, InMemoryEventLog], spans: InMemorySpanExporter
) -> None:
    # CloudEvents allows an integer extension, also one named traceparent; it is no W3C trace
    # context, so the publish starts a trace of its own (it was a 500: the parent was looked
    # up in the integer) and the event keeps its own value.
    client, log = app
    headers = {**AUTH, "content-type": "application/cloudevents+json"}
    event = {**_event(1), "traceparent": 5}
    assert (await client.post("/api/v1/events", json=event, headers=headers)).status_code == 202
    [publish] = by_name(spans)["publish"]
    assert publish.parent is None
    assert _carried(log) == ["5"]


async def test_an_unsampled_publish_carries_its_unsampled_context_on(
    app: tuple[httpx.AsyncClient, InMemoryEventLog],
) -> None:
    # An SDK that samples nothing here (outside the spans fixture): the events carry the
    # publish's context with the sampled flag off, so the projector's and the dispatcher's
    # parent-based samplers leave the whole trace out instead of sampling its deliveries anew.
    installed()
    client, log = app
    headers = {**AUTH, "content-type": "application/cloudevents+json"}
    assert (await client.post("/api/v1/events", json=_event(1), headers=headers)).status_code == 202
    [carried] = _carried(log)
    assert carried is not None
    assert int(carried.split("-")[3], 16) & 1 == 0  # the sampled flag is off


PUBLISH_WITHOUT_SDK = """
import asyncio, json, tempfile
from pathlib import Path
from tests.unit.test_tracing import AUTH, _carried, _event, client_of

async def main() -> None:
    async with client_of(Path(tempfile.mkdtemp())) as (client, log):
        headers = {**AUTH, "content-type": "application/cloudevents+json"}
        assert (await client.post("/api/v1/events", json=_event(1), headers=headers)).status_code == 202
        print(json.dumps(_carried(log)))

asyncio.run(main())
"""


def test_without_an_sdk_publishes_nobody_traces_leave_events_untouched() -> None:
    # A fresh interpreter: this one has the test SDK installed once any test recorded spans.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", PUBLISH_WITHOUT_SDK], env=clean, cwd=root, capture_output=True, check=True
    )
    assert json.loads(out.stdout.decode().strip().splitlines()[-1]) == [None]


CONFIGURE = (
    "from hub.adapters.tracing import configure_tracing; from opentelemetry import trace; "
    "print(configure_tracing(), type(trace.get_tracer_provider()).__name__)"
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "False ProxyTracerProvider"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "True TracerProvider"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "True TracerProvider"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
            "False ProxyTracerProvider",
        ),
    ],
)
def test_an_otlp_exporter_is_installed_only_when_otel_variables_ask_for_one(
    env: dict[str, str], expected: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", CONFIGURE], env=clean | env, capture_output=True, check=True)
    assert out.stdout.decode().strip() == expected


LEFT_OUT = (
    "from hub.adapters.tracing import configure_tracing; from hub.tracing import left_out; "
    "configure_tracing(); "
    f"print(left_out({CALLER[:-2] + '00'!r}), left_out({CALLER!r}), left_out('rubbish'), left_out(None))"
)


@pytest.mark.parametrize(
    ("sampler", "expected"),
    [
        ({}, "True False False False"),  # the SDK's default: parentbased_always_on
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
            "True False False False",
        ),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
            "False False False False",
        ),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, "False False False False"),
    ],
)
def test_only_a_sampler_that_follows_the_parent_leaves_unsampled_traces_out(
    sampler: dict[str, str], expected: str
) -> None:
    # The dispatcher skips the attempt's span only where the sampler would drop it anyway: an
    # unsampled publish under a parentbased_* sampler; a sampler that decides anew still gets
    # to decide, and an invalid context starts a trace of its own.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env = clean | {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", **sampler}
    out = subprocess.run([sys.executable, "-c", LEFT_OUT], env=env, capture_output=True, check=True)
    assert out.stdout.decode().strip() == expected


def test_the_traceparent_sent_on_is_the_one_the_w3c_propagator_writes() -> None:
    """hub.tracing writes traceparent itself (no propagator carrier per attempt) and keeps one
    parsed context per event's traceparent: both must agree with the propagator, sampled or not."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from hub.tracing import context_of, current_traceparent

    for incoming in (CALLER, CALLER[:-2] + "00", "00-not-a-trace"):
        for _ in range(2):  # the second time from the cache
            span = trace.get_current_span(context_of(incoming))
            with trace.use_span(span):
                written: dict[str, str] = {}
                TraceContextTextMapPropagator().inject(written)
                assert current_traceparent() == written.get("traceparent")
    assert current_traceparent() is None


@pytest.mark.parametrize(
    "value",
    [OWN, CALLER.replace("-01", "-00"), OWN.upper(), "00-" + "0" * 32 + "-b7ad6b7169203331-01", "rubbish"],
)
def test_without_an_sdk_a_delivery_passes_on_what_a_no_op_span_would(value: str) -> None:
    # The dispatcher skips the no-op span when no SDK is installed (hub.tracing.tracing_on) and
    # sends passed_on(event traceparent) instead: it must be what the span would have given.
    from opentelemetry.trace import NoOpTracer

    from hub.tracing import context_of, current_traceparent, passed_on

    with NoOpTracer().start_as_current_span("deliver attempt", context=context_of(value)):
        expected = current_traceparent()
    assert passed_on(value) == expected


async def test_a_publish_makes_one_span_and_a_health_probe_none(
    app: tuple[httpx.AsyncClient, InMemoryEventLog], spans: InMemorySpanExporter
) -> None:
    # FastAPI makes a server span per request (and three operation spans per routed call) as
    # soon as an SDK is installed: a publish would be traced twice and every probe once.
    client, _ = app
    headers = {**AUTH, "content-type": "application/cloudevents+json", "traceparent": CALLER}
    assert (await client.post("/api/v1/events", json=_event(1), headers=headers)).status_code == 202
    assert (await client.get("/healthz")).status_code == 200
    assert [s.name for s in spans.get_finished_spans()] == ["publish"]


def _traceparents() -> Iterator[str]:
    """Every mix of parts near what the hub writes, each part varied where the propagator is
    strict (version, case, length, all-zero ids, flags, a trailing part, padding)."""
    versions = ("00", "01", "ff", "0")
    traces = (TRACE, "0" * 32, TRACE.upper(), TRACE[:31], TRACE + "0")
    spans = ("00f067aa0ba902b7", "0" * 16, "00F067AA0BA902B7", "00f067aa0ba902b")
    flags = ("00", "01", "02", "03", "0a", "ff", "0B", "0", "000")
    ends = ("", "-", "-00", " ", "\n")
    for parts in itertools.product(versions, traces, spans, flags):
        for end in ends:
            yield "-".join(parts) + end
            yield end + "-".join(parts)


def test_the_quick_look_at_a_traceparent_agrees_with_the_w3c_propagator() -> None:
    """left_out and passed_on read a plain header without the propagator (hub.tracing._PLAIN):
    for any text they must say what a span continuing the propagator's parse would."""
    for value in _traceparents():
        _agrees_with_the_propagator(value)


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=60) | st.text("0123456789abcdef-", min_size=50, max_size=60))
def test_the_quick_look_at_any_text_agrees_with_the_w3c_propagator(value: str) -> None:
    _agrees_with_the_propagator(value)


def _agrees_with_the_propagator(value: str) -> None:
    from opentelemetry import trace

    from hub.tracing import context_of, follow_unsampled_parents, left_out, passed_on, traceparent_of

    parsed = trace.get_current_span(context_of(value)).get_span_context()
    follow_unsampled_parents()
    try:
        assert left_out(value) == (parsed.is_valid and not parsed.trace_flags.sampled), value
    finally:
        follow_unsampled_parents(False)
    assert passed_on(value) == traceparent_of(trace.NonRecordingSpan(parsed)), value


RESOURCE = """
import json
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from hub.adapters.tracing import configure_tracing

encoded = []  # every JSON encoding in this process (the SDK's Resource.__hash__ makes one)
encode = json.JSONEncoder.encode

def counted(self, o):
    encoded.append(o)
    return encode(self, o)

json.JSONEncoder.encode = counted
configure_tracing()
resource = trace.get_tracer_provider().resource
plain = Resource(resource.attributes, resource.schema_url)

def encodings(r: Resource) -> int:
    before = len(encoded)
    hash(r), hash(r)
    return len(encoded) - before

print(resource.attributes["service.name"], resource == plain, hash(resource) == hash(plain),
      encodings(plain), encodings(resource))
"""


def test_the_exported_resource_is_the_sdks_own_hashed_once() -> None:
    # The OTLP encoder hashes every exported span's resource; the SDK's hash JSON-encodes the
    # attributes each time. The hub's resource is equal to the SDK's and hashes alike, but
    # encodes its attributes for the hash once, when made: hashing it again encodes nothing,
    # where the SDK's own resource encodes them on every hash (two hashes, two encodings).
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env = clean | {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SERVICE_NAME": "hub-x"}
    out = subprocess.run([sys.executable, "-c", RESOURCE], env=env, capture_output=True, check=True)
    assert out.stdout.decode().split() == ["hub-x", "True", "True", "2", "0"]
