"""``koppelhub run`` with an OTLP exporter configured: the spans of its API child (publish) and its
work child (project batch, deliver attempt) reach the collector as one trace, with the service
name the ``OTEL_*`` variables give, also those ended during the SIGTERM drain and those of a work
process that replaced a killed one (the children's spans go to the parent, which exports them:
hub/adapters/span_relay.py)."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from benchmarks.collector import Collector
from tests.e2e.test_run_command import TOKEN, WORK, free_port, run_env
from tests.e2e.test_run_work_processes import hub_run
from tests.support.hub_api import event, eventually, subscribe
from tests.support.processes import role_children
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

TRACE = "0af7651916cd43dd8448eb211c80319c"
AFTER = "1af7651916cd43dd8448eb211c80319c"  # published after the work process was replaced
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class OtlpReceiver(Collector):
    """The benchmarks' OTLP/HTTP collector stand-in (benchmarks/collector.py: decodes each
    protobuf export request, answers the embedded broker's metrics on other paths), keeping
    (service name, span name, trace id) of every span."""

    spans_seen: ClassVar[list[tuple[str, str, str]]] = []

    def received(self, request: Any) -> None:
        for resource_spans in request.resource_spans:
            attributes = resource_spans.resource.attributes
            service = next((a.value.string_value for a in attributes if a.key == "service.name"), "")
            for scope in resource_spans.scope_spans:
                OtlpReceiver.spans_seen.extend((service, s.name, s.trace_id.hex()) for s in scope.spans)


@pytest.fixture
def collector() -> Iterator[str]:
    OtlpReceiver.spans_seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), OtlpReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def in_trace(trace_id: str = TRACE) -> set[tuple[str, str]]:
    with OtlpReceiver.lock:
        return {(service, name) for service, name, trace in OtlpReceiver.spans_seen if trace == trace_id}


def traced_env(tmp_path: Path, port: int, collector: str) -> dict[str, str]:
    return run_env(
        tmp_path,
        port,
        KOPPELHUB_WORKERS="2",
        KOPPELHUB_DELIVERY_ALLOW_NETWORKS="127.0.0.0/8",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector,
        OTEL_SERVICE_NAME="koppelhub-traced",
        OTEL_TRACES_SAMPLER="parentbased_always_on",
    )


async def publish_traced(client: httpx.AsyncClient, trace_id: str) -> None:
    response = await client.post(
        "/api/v1/events",
        content=json.dumps(event(trace_id, 1)),
        headers={
            **AUTH,
            "content-type": "application/cloudevents+json",
            "traceparent": f"00-{trace_id}-b7ad6b7169203331-01",
        },
    )
    assert response.status_code == 202, response.text


async def test_run_exports_one_trace_from_publish_to_delivery_across_its_processes(
    tmp_path: Path, sink: WebhookSink, collector: str
) -> None:
    port = free_port()
    # The block's end sends SIGTERM at once: the attempt's span may end after the sink answered,
    # so it is exported during the drain, by a parent that waits for its children's spans.
    async with hub_run(traced_env(tmp_path, port, collector), port, drain=120) as (_, client):
        await subscribe(client, AUTH, sink.url)
        await publish_traced(client, TRACE)
        [received] = await sink.wait_for(1)
        assert received.headers["traceparent"].split("-")[1] == TRACE
    service = "koppelhub-traced"
    assert {(service, "publish"), (service, "project batch"), (service, "deliver attempt")} <= in_trace()


async def test_a_work_process_killed_and_replaced_still_sends_its_spans_to_the_parent(
    tmp_path: Path, sink: WebhookSink, collector: str
) -> None:
    port = free_port()
    async with hub_run(traced_env(tmp_path, port, collector), port, drain=120) as (proc, client):
        await subscribe(client, AUTH, sink.url)
        [killed] = [pid for roles, pid in role_children(proc.pid) if roles == WORK]
        os.kill(killed, signal.SIGKILL)

        async def replaced() -> bool:
            return any(roles == WORK and pid != killed for roles, pid in role_children(proc.pid))

        await eventually(replaced, what="a new work process", timeout=60)
        await publish_traced(client, AFTER)
        await sink.wait_for(1, timeout=120)

        async def exported() -> bool:
            return {name for _, name in in_trace(AFTER)} >= {"project batch", "deliver attempt"}

        await eventually(exported, what="the new work process's spans, exported by the parent")
    assert {name for _, name in in_trace(AFTER)} >= {"publish", "project batch", "deliver attempt"}
