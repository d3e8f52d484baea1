"""Poison records written straight to Kafka (by an older hub or another producer, past the
publish checks) are dead-lettered one by one; the good records around them are projected and
delivered, and the projector keeps running."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from hub.bootstrap import HubProcess
from hub.settings import Settings
from tests.e2e.test_dead_letters import read_dlq
from tests.support.hub_api import SOURCE, TYPE, subscribe_in_store
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

MAX_EVENT_BYTES = 4096  # the projector parks records above 8 x this unread


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_event_bytes": MAX_EVENT_BYTES})


def record(event_id: str, value: bytes) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A binary-mode record with JSON data, built by hand so nothing checks it on the way."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", SOURCE.encode()),
        ("ce_type", TYPE.encode()),
        ("ce_subject", b"same-key"),
        ("content-type", b"application/json"),
    ]
    return b"same-key", value, headers


# Each would have stopped the projector (TypeError / RecursionError from the serialiser or the
# parser) or jammed its partition for ever (a PostgreSQL refusal retried as an outage).
POISON = {
    "deep-252": (b'{"a":' * 252 + b"1" + b"}" * 252, "EnvelopeError"),
    "deep-1000": (b"[" * 1000 + b"]" * 1000, "EnvelopeError"),
    "int-2**64": (b'{"n": 18446744073709551616}', "EnvelopeError"),
    "surrogate": (b'{"s": "\\ud800"}', "EnvelopeError"),
    "infinity": (b'{"x": 1e999}', "EnvelopeError"),
    "nul-key": (b'{"a\\u0000": 1}', "EnvelopeError"),
    "too-large": (b'{"s": "' + b"x" * (9 * MAX_EVENT_BYTES) + b'"}', "RecordTooLarge"),
}


async def test_poison_records_between_good_ones_are_parked_and_the_good_ones_delivered(
    hub: HubProcess, settings: Settings, sink: WebhookSink, client: httpx.AsyncClient
) -> None:
    assert hub.engine is not None and settings.kafka.bootstrap
    await subscribe_in_store(hub.engine, sink.url)
    # An id PostgreSQL cannot index (over the 2704-byte btree entry limit, incompressible):
    # refused per record with SQLSTATE 54000, which used to be retried as an outage.
    long_id = secrets.token_hex(2000)
    records = [
        record("good-1", b'{"ok": 1}'),
        *(record(name, value) for name, (value, _) in POISON.items()),
        record(long_id, b'{"ok": "but the id is too long to index"}'),
        record("good-2", b'{"ok": 2}'),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:  # one partition, in this order
            await producer.send(settings.kafka.topic, key=key, value=value, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()

    delivered = await sink.wait_for(2)
    assert [json.loads(r.body)["id"] for r in delivered] == ["good-1", "good-2"]
    parked = await read_dlq(settings, len(POISON) + 1)
    by_id = {p["ce_id"].decode(): p for p in parked}
    for name, (_, error_class) in POISON.items():
        assert by_id[name]["koppelhub_error_class"].decode() == error_class, name
        assert by_id[name]["koppelhub_error"], f"{name}: the reason travels with the record"
    assert by_id[long_id]["koppelhub_error_class"] == b"DataRejected"
    assert hub.projector is not None and hub.projector.running
    assert hub.projector.stats.dead_lettered == len(POISON) + 1
    assert (await client.get("/readyz")).status_code == 200


async def test_a_record_too_large_for_the_dead_letter_topic_is_parked_without_its_value(
    hub: HubProcess, settings: Settings, sink: WebhookSink
) -> None:
    assert hub.engine is not None and settings.kafka.bootstrap
    await subscribe_in_store(hub.engine, sink.url)
    # Over the hub producer's 1 MiB request limit, as an import once wrote them.
    huge = b'{"s": "' + b"x" * 1_200_000 + b'"}'
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap, acks="all", max_request_size=4 * 1024 * 1024
    )
    await producer.start()
    try:
        for key, value, headers in (record("huge", huge), record("after-huge", b"{}")):
            await producer.send(settings.kafka.topic, key=key, value=value, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()

    delivered = await sink.wait_for(1)
    assert [json.loads(r.body)["id"] for r in delivered] == ["after-huge"]
    (parked,) = await read_dlq(settings, 1)
    assert parked["koppelhub_error_class"] == b"RecordTooLarge"
    assert parked["koppelhub_value_dropped"] == str(len(huge)).encode()
    assert parked["ce_id"] == b"huge"
    assert parked["_value"] == b""
