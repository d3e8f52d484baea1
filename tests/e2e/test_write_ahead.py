"""The write-ahead log: with the embedded broker, a 202 survives the loss of the broker's log.

The embedded broker keeps its log in memory; a hard kill of everything loses it. These tests
take the loss as it looks to the next start: the same database, a broker whose topics are
empty (fresh topic names stand in for a restarted broker). What the API accepted must still
be projected and delivered once, and what was dead-lettered must be parked again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import make_url

from hub.adapters.postgres.engine import libpq_url
from hub.bootstrap import ROLES, HubProcess, import_runner
from hub.services.imports import import_spec
from hub.settings import Settings
from schemas import CloudEvent
from schemas.bindings import to_kafka_record
from tests.conftest import ADMIN_TOKEN, database_url_for
from tests.e2e.test_dead_letters import read_dlq
from tests.support.hub_api import SOURCE, event, eventually, subscribe
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def durable(settings: Settings) -> Settings:
    return settings.model_copy(update={"write_ahead": True})


def broker_lost_its_log(settings: Settings) -> Settings:
    """The same hub after a restart of an in-memory broker: every topic empty."""
    tag = uuid.uuid4().hex[:10]
    kafka = settings.kafka.model_copy(
        update={
            "topic": f"test.{tag}.events",
            "dlq_topic": f"test.{tag}.events.dlq",
            "consumer_group": f"t-{tag}",
        }
    )
    return settings.model_copy(update={"kafka": kafka})


@asynccontextmanager
async def running(settings: Settings, roles: tuple[str, ...] = ROLES) -> AsyncIterator[httpx.AsyncClient]:
    assert settings.kafka.bootstrap and settings.database_url
    hub = HubProcess(settings, settings.kafka.bootstrap, settings.database_url, roles)
    await hub.start()
    try:
        await hub.wait_started()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.api_port}", timeout=30) as client:
            yield client
    finally:
        await hub.shutdown(drain_timeout=15)


async def _count(settings: Settings, sql: str) -> int:
    assert settings.database_url
    async with await psycopg.AsyncConnection.connect(libpq_url(settings.database_url)) as conn:
        row = await (await conn.execute(sql)).fetchone()
    assert row is not None
    return int(row[0])


async def test_an_accepted_event_is_projected_and_delivered_after_the_broker_lost_its_log(
    settings: Settings, sink: WebhookSink
) -> None:
    before = durable(settings)
    accepted = [event(f"key-{n % 5}", n) for n in range(40)]
    async with running(before, ("api",)) as client:  # accepted, never projected
        await subscribe(client, AUTH, sink.url)
        response = await client.post(
            "/api/v1/events",
            content=json.dumps(accepted),
            headers={**AUTH, "content-type": "application/cloudevents-batch+json"},
        )
        assert response.status_code == 202, response.text

    after = broker_lost_its_log(before)
    async with running(after):
        await sink.wait_for(len(accepted), timeout=30)
        projected = f"SELECT count(*) FROM processed_events WHERE source = '{SOURCE}'"
        assert await _count(after, projected) == len(accepted)

        async def pruned() -> bool:
            return await _count(after, "SELECT count(*) FROM event_wal") == 0

        await eventually(pruned, what="the write-ahead log pruned")
    assert sorted(r.json()["id"] for r in sink.delivered) == sorted(e["id"] for e in accepted)
    for key in {e["subject"] for e in accepted}:  # first arrivals in order per key
        arrived = [r.json()["data"]["n"] for r in sink.delivered if r.json()["subject"] == key]
        assert arrived == sorted(arrived)


async def test_publish_answers_503_when_the_database_is_gone_rather_than_a_202_only_memory_holds(
    settings: Settings,
) -> None:
    assert settings.database_url
    async with running(durable(settings), ("api",)) as client:
        name = make_url(settings.database_url).database
        admin = libpq_url(database_url_for(settings.database_url, "postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
        response = await client.post(
            "/api/v1/events", json=event(), headers={**AUTH, "content-type": "application/cloudevents+json"}
        )
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_dead_letter_is_parked_again_after_the_broker_lost_its_log(settings: Settings) -> None:
    before = durable(settings)
    async with running(before, ("projector", "api")):
        producer = AIOKafkaProducer(bootstrap_servers=before.kafka.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(before.kafka.topic, value=b"not a cloudevent", key=b"k")
        finally:
            await producer.stop()
        [parked] = await read_dlq(before, 1)
        assert parked["_value"] == b"not a cloudevent"

    after = broker_lost_its_log(before)
    async with running(after, ("api",)):
        [again] = await read_dlq(after, 1)
    assert again["_value"] == b"not a cloudevent" and "koppelhub_error" in again
    assert await _count(after, "SELECT count(*) FROM dead_letter_log") == 1


async def test_rows_koppelhub_import_published_are_projected_after_the_broker_lost_its_log(
    settings: Settings, tmp_path: Path
) -> None:
    before = durable(settings)
    rows = "".join(f"g-{i};org-a;app-{i};In productie;1.{i}\r\n" for i in range(5))
    source = tmp_path / "gebruik.csv"
    source.write_bytes(("\ufeffid;afnemer;applicatie;status;versie\r\n" + rows).encode())
    spec = import_spec("org-a", "gebruik", source)
    assert before.kafka.bootstrap and before.database_url
    async with import_runner(before, before.kafka.bootstrap, before.database_url) as runner:  # no projector
        import_id = await runner.lifecycle.start(spec)
        outcome = await runner.lifecycle.run(import_id, spec, claimed=False)
    assert outcome.tally is not None and outcome.tally.counts()["published"] == 5

    after = broker_lost_its_log(before)
    archived = "SELECT count(*) FROM event_archive WHERE type = 'nl.softwarecatalogus.gebruik.vastgelegd.v1'"
    async with running(after):

        async def projected() -> bool:
            return await _count(after, archived) == 5

        await eventually(projected, what="the imported rows relayed and projected")


async def test_an_accepted_event_the_projector_read_past_is_delivered_while_the_hub_runs(
    settings: Settings, sink: WebhookSink
) -> None:
    """What a projector member that kept a position of a lost log leaves behind (a CI run of
    ``test_restarts`` lost 14 events so): a row the write-ahead log holds and the log no longer
    has below the group's commits. Before, only the next start relayed it."""
    hub_settings = durable(settings)
    async with running(hub_settings) as client:
        await subscribe(client, AUTH, sink.url)
        await _publish(client, event("key-0", 1))
        await sink.wait_for(1, timeout=30)

        passed_by = event("key-0", 2)
        record = to_kafka_record(CloudEvent.model_validate(passed_by))
        assert hub_settings.database_url
        async with await psycopg.AsyncConnection.connect(libpq_url(hub_settings.database_url)) as conn:
            await conn.execute(
                "INSERT INTO event_wal (source, event_id, key, value, header_names, header_values,"
                " accepted_at) VALUES (%s, %s, %s, %s, %s, %s, now() - interval '1 minute')",
                (
                    passed_by["source"],
                    passed_by["id"],
                    record.key,
                    record.value,
                    [name for name, _ in record.headers],
                    [value for _, value in record.headers],
                ),
            )
        await _publish(client, event("key-1", 3))  # the hub goes on; the row stays behind

        await sink.wait_for(3, timeout=60)
    assert sorted(r.json()["data"]["n"] for r in sink.delivered) == [1, 2, 3]


async def _publish(client: httpx.AsyncClient, published: dict[str, object]) -> None:
    response = await client.post(
        "/api/v1/events",
        content=json.dumps(published),
        headers={**AUTH, "content-type": "application/cloudevents+json"},
    )
    assert response.status_code == 202, response.text
