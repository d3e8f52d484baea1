"""Poison records go to the dead-letter topic with their error; the partition moves on."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hub.bootstrap import HubProcess
from hub.settings import Settings
from schemas import CloudEvent, validate_event
from schemas.bindings import to_kafka_record
from tests.support.hub_api import eventually, landscape_event, subscribe_in_store
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e


async def read_dlq(settings: Settings, count: int) -> list[dict[str, bytes]]:
    consumer = AIOKafkaConsumer(
        settings.kafka.dlq_topic,
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=f"dlq-reader-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    found: list[dict[str, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    found.extend(dict(r.headers) | {"_value": r.value or b""} for r in records)
    finally:
        await consumer.stop()
    return found


async def test_poison_records_are_dead_lettered_and_later_events_still_arrive(
    hub: HubProcess, settings: Settings, sink: WebhookSink
) -> None:
    assert hub.engine is not None and settings.kafka.bootstrap
    await subscribe_in_store(hub.engine, sink.url)
    good = CloudEvent(
        specversion="1.0",
        id="good-1",
        source="urn:nld:test",
        type="nl.test.event.v1",
        subject="same-key",
        data={"ok": True},
    )
    # A valid CloudEvent whose id PostgreSQL cannot index (beyond the 2704-byte btree entry
    # limit): the store must refuse it. (U+0000 in data, once the example, is now refused
    # earlier, when the record is read; see test_poison_records.)
    unstorable_id = secrets.token_hex(2000)
    unstorable = CloudEvent(
        specversion="1.0",
        id=unstorable_id,
        source="urn:nld:test",
        type="nl.test.event.v1",
        subject="same-key",
        data={"text": "ab"},
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        # Not a CloudEvent at all: no ce_ headers.
        await producer.send_and_wait(settings.kafka.topic, key=b"same-key", value=b"{not json")
        bad = to_kafka_record(unstorable)
        await producer.send_and_wait(settings.kafka.topic, key=bad.key, value=bad.value, headers=bad.headers)
        rec = to_kafka_record(good)
        await producer.send_and_wait(settings.kafka.topic, key=rec.key, value=rec.value, headers=rec.headers)
    finally:
        await producer.stop()

    delivered = await sink.wait_for(1)
    assert [json.loads(r.body)["id"] for r in delivered] == ["good-1"]
    parked = await read_dlq(settings, 2)
    classes = sorted(p["koppelhub_error_class"].decode() for p in parked)
    assert classes == ["DataRejected", "EnvelopeError"]
    for p in parked:
        assert p["koppelhub_error"], "the reason travels with the record"
        assert p["koppelhub_origin"].decode().startswith(settings.kafka.topic + "/")
    assert any(p.get("ce_id") == unstorable_id.encode() for p in parked), "the original headers are kept"
    assert hub.projector is not None and hub.projector.stats.dead_lettered == 2


async def test_invalid_landscape_data_that_skipped_the_api_is_dead_lettered_alone(
    hub: HubProcess, settings: Settings, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    assert settings.kafka.bootstrap
    good = validate_event(
        landscape_event("organisatie", "vastgelegd", {"id": "org-1", "naam": "A", "type": "Gemeente"})
    )
    invalid = validate_event(
        landscape_event("organisatie", "vastgelegd", {"id": "org-2", "naam": "B", "type": "X"})
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for event in (invalid, good):  # same batch, most likely: the good one must still land
            rec = to_kafka_record(event)
            await producer.send(settings.kafka.topic, key=rec.key, value=rec.value, headers=rec.headers)
        await producer.flush()
    finally:
        await producer.stop()

    parked = await read_dlq(settings, 1)
    assert parked[0]["koppelhub_error_class"] == b"InvalidLandscapeEvent"
    assert b"data.type" in parked[0]["koppelhub_error"]

    async def projected() -> bool:
        return (await client.get("/api/v1/organisaties/org-1", headers=auth)).status_code == 200

    await eventually(projected, what="the valid neighbour projected")
    assert (await client.get("/api/v1/organisaties/org-2", headers=auth)).status_code == 404
