"""Operator calls on the real broker and database: lag against real numbers (batched records,
where Tansu's ListOffsets is wrong), the DLQ listed with its errors, a redrive that projects a
record parked by mistake, and a still-poisonous record that returns with its new error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from hub.bootstrap import HubProcess
from hub.settings import Settings
from schemas import validate_event
from schemas.bindings import to_kafka_record
from tests.support.hub_api import event, eventually, landscape_event, publish, subscribe_in_store
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e


@pytest.fixture
async def api_only(settings: Settings) -> AsyncIterator[tuple[HubProcess, httpx.AsyncClient]]:
    """The API alone: nothing projects, so the group's commits are what the test makes them."""
    assert settings.kafka.bootstrap and settings.database_url
    process = HubProcess(settings, settings.kafka.bootstrap, settings.database_url, ("api",))
    await process.start()
    await process.wait_started()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{process.api_port}", timeout=30) as client:
        yield process, client
    await process.shutdown(drain_timeout=5)


async def _commit(settings: Settings, positions: dict[int, int]) -> None:
    """Commit positions for the projector's group as a member would (manual assignment)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=settings.kafka.consumer_group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = {TopicPartition(settings.kafka.topic, p): o for p, o in positions.items()}
        consumer.assign(list(tps))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in tps.items()})
    finally:
        await consumer.stop()


async def test_status_lag_is_end_minus_committed_on_batched_records(
    api_only: tuple[HubProcess, httpx.AsyncClient], settings: Settings, auth: dict[str, str]
) -> None:
    _hub, client = api_only
    for batch in range(3):  # 100 events per call: the producer sends them in large batches
        response = await publish(
            client, auth, *(event(f"k{n % 7}", n) for n in range(batch * 100, batch * 100 + 100))
        )
        assert response.status_code == 202

    before = (await client.get("/api/v1/status", headers=auth)).json()["log"]
    assert sum(p["endOffset"] for p in before["partitions"]) == 300
    assert before["lag"] == 300 and all(p["committed"] is None for p in before["partitions"])

    ends = {p["partition"]: p["endOffset"] for p in before["partitions"]}
    busy = max(ends, key=lambda p: ends[p])
    await _commit(settings, {busy: ends[busy] - 5})

    # The log's half of the status is read at most once a second (shared_log_status): the
    # commit shows within that second.
    async def committed_shows() -> bool:
        nonlocal after
        after = (await client.get("/api/v1/status", headers=auth)).json()
        return any(p["partition"] == busy and p["committed"] is not None for p in after["log"]["partitions"])

    after: dict[str, Any] = {}
    await eventually(committed_shows, timeout=10, what="the commit in the status")
    part = next(p for p in after["log"]["partitions"] if p["partition"] == busy)
    assert (part["committed"], part["lag"]) == (ends[busy] - 5, 5)
    assert after["log"]["lag"] == 300 - ends[busy] + 5
    assert after["dlq"]["records"] == 0 and after["outbox"]["pending"] == 0


async def test_an_operator_finds_parked_records_and_redrives_them(
    hub: HubProcess, settings: Settings, client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    assert hub.engine is not None and settings.kafka.bootstrap
    await subscribe_in_store(
        hub.engine, sink.url, filters=[{"exact": {"type": "nl.signalen.melding.gewijzigd.v1"}}]
    )
    invalid = validate_event(
        landscape_event("organisatie", "vastgelegd", {"id": "org-2", "naam": "B", "type": "X"})
    )
    # A good event parked by mistake (as during an outage a bug mistook for poison).
    good = validate_event(event("parked-key", 1))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        rec = to_kafka_record(invalid)
        await producer.send_and_wait(settings.kafka.topic, key=rec.key, value=rec.value, headers=rec.headers)
        rec = to_kafka_record(good)
        parked = [
            *rec.headers,
            ("koppelhub_error", b"database away"),
            ("koppelhub_error_class", b"Outage"),
            ("koppelhub_origin", b"elsewhere/0/0"),
        ]
        await producer.send_and_wait(settings.kafka.dlq_topic, key=rec.key, value=rec.value, headers=parked)
    finally:
        await producer.stop()

    async def dlq() -> list[dict[str, object]]:
        items: list[dict[str, object]] = (await client.get("/api/v1/dlq", headers=auth)).json()["items"]
        return items

    async def two_parked() -> bool:
        return len(await dlq()) == 2

    await eventually(two_parked, what="the invalid event parked beside the mistaken one")
    items = {i["koppelhub_error_class"]: i for i in await dlq()}
    poison, mistaken = items["InvalidLandscapeEvent"], items["Outage"]
    assert "data.type" in str(poison["koppelhub_error"])
    assert str(poison["koppelhub_origin"]).startswith(settings.kafka.topic + "/")
    assert poison["event"]["id"] == invalid.id  # type: ignore[index]
    assert (await client.get("/api/v1/status", headers=auth)).json()["dlq"]["records"] == 2

    body = {"offsets": [{"partition": mistaken["partition"], "offset": mistaken["offset"]}]}
    for _ in range(2):  # twice: the projector's dedupe keeps the second harmless
        response = await client.post("/api/v1/dlq/redrive", json=body, headers=auth)
        assert response.status_code == 202 and len(response.json()["redriven"]) == 1

    [delivered] = await sink.wait_for(1)
    assert json.loads(delivered.body)["id"] == good.id

    response = await client.post("/api/v1/dlq/redrive", json={"offsets": [poison["id"]]}, headers=auth)
    assert response.status_code == 202

    async def parked_again() -> bool:
        return len(await dlq()) == 3

    await eventually(parked_again, what="the still-invalid event parked again")
    again = [i for i in await dlq() if i["id"] not in (poison["id"], mistaken["id"])]
    assert again[0]["koppelhub_error_class"] == "InvalidLandscapeEvent"
    assert again[0]["koppelhub_origin"] != poison["koppelhub_origin"]  # parked from its new place
    # Marker: an event published after everything is delivered, and the good one only once.
    await publish(client, auth, marker := event("marker", 2))
    await sink.wait_for(2)
    ids = [json.loads(r.body)["id"] for r in sink.received]
    assert ids.count(good.id) == 1 and ids[-1] == marker["id"]
