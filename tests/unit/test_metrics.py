"""``GET /metrics``: Prometheus text through prometheus-client, open by default, behind a bearer
token when KOPPELHUB_METRICS_TOKEN is set; counters move with the work; processes that share a
PROMETHEUS_MULTIPROC_DIR add up to true totals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.adapters.memory import (
    InMemoryConnectorTables,
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
)
from hub.adapters.memory.operations import InMemoryLogInspector, InMemoryOperationsStore
from hub.adapters.prometheus import PrometheusMetrics
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext
from hub.settings import Settings
from subscriptions.ssrf import NetworkPolicy

TOKEN = "admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NAMES = {
    "koppelhub_events_published",
    "koppelhub_events_projected",
    "koppelhub_projector_lag",
    "koppelhub_projector_batch_seconds",
    "koppelhub_deliveries",
    "koppelhub_delivery_seconds",
    "koppelhub_outbox_pending",
    "koppelhub_dlq_records",
    "koppelhub_connector_runs",
    "koppelhub_projection_read_again",
}


async def _ready() -> dict[str, bool]:
    return {"test": True}


def _client(tmp_path: Path, log: InMemoryEventLog, **settings: object) -> httpx.AsyncClient:
    db = InMemoryDatabase()
    ctx = ApiContext(
        settings=Settings(data_dir=tmp_path, admin_token=TOKEN, **settings),  # type: ignore[arg-type]
        event_log=log,
        subscriptions=InMemorySubscriptionStore(db),
        landscape=InMemoryProjectionStore([]),
        network_policy=NetworkPolicy.parse([]),
        auth=TokenAuthenticator(TOKEN),
        readiness=_ready,
        log_inspector=InMemoryLogInspector(log),
        operations=InMemoryOperationsStore(db, InMemoryConnectorTables()),
        metrics=PrometheusMetrics(),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://hub")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
async def open_hub(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryEventLog]]:
    log = InMemoryEventLog(partitions=2)
    async with _client(tmp_path, log) as client:
        yield client, log


async def test_metrics_are_open_by_default_and_name_every_metric(
    open_hub: tuple[httpx.AsyncClient, InMemoryEventLog],
) -> None:
    client, _ = open_hub
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert NAMES <= {f.name for f in text_string_to_metric_families(response.text)}


async def test_published_events_are_counted_by_mode_and_lag_is_read_at_scrape_time(
    open_hub: tuple[httpx.AsyncClient, InMemoryEventLog],
) -> None:
    client, log = open_hub
    batch = [
        {"specversion": "1.0", "id": f"e{n}", "source": "urn:x", "type": "t.v1", "subject": "k"}
        for n in range(3)
    ]
    headers = {**AUTH, "content-type": "application/cloudevents-batch+json"}
    assert (
        await client.post("/api/v1/events", content=json.dumps(batch), headers=headers)
    ).status_code == 202
    one = {**AUTH, "content-type": "application/cloudevents+json"}
    assert (await client.post("/api/v1/events", content=json.dumps(batch[0]), headers=one)).status_code == 202

    got = samples((await client.get("/metrics")).text)

    assert got[("koppelhub_events_published_total", (("mode", "batch"),))] == 3
    assert got[("koppelhub_events_published_total", (("mode", "structured"),))] == 1
    lag = {labels: v for (name, labels), v in got.items() if name == "koppelhub_projector_lag"}
    assert sum(lag.values()) == 4 == sum(len(p) for p in log.partitions)  # nothing projected yet
    assert got[("koppelhub_outbox_pending", ())] == 0


async def test_a_metrics_token_is_required_once_configured(tmp_path: Path) -> None:
    async with _client(tmp_path, InMemoryEventLog(), metrics_token="scrape-me") as client:
        refused = await client.get("/metrics")
        assert refused.status_code == 401 and "KOPPELHUB_METRICS_TOKEN" in refused.json()["detail"]
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (
            await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        ).status_code == 200


WRITER = """
from hub.adapters.prometheus import PrometheusMetrics
m = PrometheusMetrics()
m.published("batch", {n})
m.published("structured", 1)
m.published("batch", 1)
for i in range({n}):  # rounds of one attempt: each outcome under its own label (cached children)
    outcome = ("delivered", "failed", "delivered", "dead")[i % 4]
    m.attempts_recorded({{outcome: 1}}, [0.01], [0.5] if outcome == "delivered" else [])
"""
READER = """
from hub.adapters.prometheus import PrometheusMetrics
import sys
sys.stdout.write(PrometheusMetrics().exposition()[0].decode())
"""


def test_processes_sharing_a_metrics_directory_add_up_to_true_totals(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (5, 7):  # two role processes, each gone before the scrape
        subprocess.run([sys.executable, "-c", WRITER.format(n=n)], env=env, check=True)
    text = subprocess.run([sys.executable, "-c", READER], env=env, check=True, capture_output=True).stdout
    got = samples(text.decode())
    assert got[("koppelhub_events_published_total", (("mode", "batch"),))] == 12 + 2
    assert got[("koppelhub_events_published_total", (("mode", "structured"),))] == 2
    # n = 5: d f d D d; n = 7: d f d D d f d
    assert got[("koppelhub_deliveries_total", (("outcome", "delivered"),))] == 3 + 4
    assert got[("koppelhub_deliveries_total", (("outcome", "failed"),))] == 1 + 2
    assert got[("koppelhub_deliveries_total", (("outcome", "dead"),))] == 1 + 1
    assert got[("koppelhub_delivery_seconds_count", ())] == 12
    assert got[("koppelhub_publish_to_delivery_seconds_count", ())] == 7


def test_metrics_switched_off_count_nothing_and_expose_nothing(tmp_path: Path) -> None:
    """KOPPELHUB_METRICS=false (what benchmarks.observability compares against): the process's
    roles get metrics that count nothing, and /metrics renders an empty exposition."""
    from hub.bootstrap import HubProcess

    off = HubProcess(Settings(data_dir=tmp_path, metrics=False), "127.0.0.1:1", "postgresql://unused")
    off.metrics.attempts_recorded({"delivered": 1}, [0.01])
    assert off.metrics.exposition()[0] == b""
    on = HubProcess(Settings(data_dir=tmp_path), "127.0.0.1:1", "postgresql://unused")
    assert isinstance(on.metrics, PrometheusMetrics)
