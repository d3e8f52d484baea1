"""SIGKILL a projector or a dispatcher mid-run, start a new one: nothing lost, nothing doubled.

The roles run as real ``koppelhub`` processes against the session's embedded broker and a
fresh database, exactly as they run in production next to each other.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from sqlalchemy import text

from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.postgres.engine import create_engine
from hub.bootstrap import HubProcess
from hub.settings import Settings
from schemas import CloudEvent
from tests.support.hub_api import eventually, subscribe_in_store
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

SOURCE = "urn:nld:oin:00000001234567890000:systeem:crashtest"


def role_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a separately started role needs to join this test's hub."""
    k, d = settings.kafka, settings.delivery
    env = {
        **os.environ,
        "KOPPELHUB_KAFKA_BOOTSTRAP": str(k.bootstrap),
        "KOPPELHUB_DATABASE_URL": str(settings.database_url),
        "KOPPELHUB_DATA_DIR": str(settings.data_dir),
        "KOPPELHUB_KAFKA_TOPIC": k.topic,
        "KOPPELHUB_KAFKA_DLQ_TOPIC": k.dlq_topic,
        "KOPPELHUB_KAFKA_CONSUMER_GROUP": k.consumer_group,
        "KOPPELHUB_KAFKA_PARTITIONS": str(k.partitions),
        "KOPPELHUB_KAFKA_SESSION_TIMEOUT_MS": str(k.session_timeout_ms),
        "KOPPELHUB_KAFKA_HEARTBEAT_INTERVAL_MS": str(k.heartbeat_interval_ms),
        "KOPPELHUB_DELIVERY_RETRY_SCHEDULE": ",".join(str(x) for x in d.retry_schedule),
        "KOPPELHUB_DELIVERY_ALLOW_NETWORKS": ",".join(d.allow_networks),
        "KOPPELHUB_LOG_LEVEL": "warning",
        **extra,
    }
    return env


@contextmanager
def role(name: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-m", "hub", name], env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def make_events(count: int, keys: int) -> list[CloudEvent]:
    return [
        CloudEvent(
            specversion="1.0",
            id=str(uuid.uuid4()),
            source=SOURCE,
            type="nl.signalen.melding.gewijzigd.v1",
            subject=f"key-{i % keys}",
            data={"n": i},
        )
        for i in range(count)
    ]


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Any]:
    assert settings.database_url
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


async def scalar(engine: Any, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar() or 0)


async def test_killed_projector_is_replaced_without_loss_or_double_projection(settings: Settings) -> None:
    assert settings.kafka.bootstrap
    total = 12_000
    await ensure_topics(settings.kafka.bootstrap, settings.kafka)
    log = KafkaEventLog(settings.kafka.bootstrap, settings.kafka)
    await log.start()
    try:
        await log.publish(make_events(total, keys=500))
    finally:
        await log.stop()
    async with database(settings) as engine:
        await subscribe_in_store(engine, "https://example.org/hook")
        # Small batches make a projector's run long enough to kill it in the middle.
        env = role_env(settings, KOPPELHUB_PROJECTOR_BATCH_SIZE="20")
        with role("projector", env) as first:
            await eventually(
                lambda: _more_than(engine, "SELECT count(*) FROM event_archive", 200),
                timeout=60,
                what="the first projector to start",
            )
            first.send_signal(signal.SIGKILL)
            first.wait()
        at_kill = await scalar(engine, "SELECT count(*) FROM event_archive")
        assert 0 < at_kill < total, "the kill did not land mid-run"
        with role("projector", env):
            await eventually(
                lambda: _more_than(engine, "SELECT count(*) FROM processed_events", total - 1),
                timeout=120,
                what="the second projector to catch up",
            )
            # One marker per key, behind every event of its key (and so of its partition): once
            # all markers are projected, anything the restart projected twice would be archived.
            markers = 500
            log = KafkaEventLog(settings.kafka.bootstrap, settings.kafka)
            await log.start()
            try:
                await log.publish(make_events(markers, keys=markers))
            finally:
                await log.stop()
            await eventually(
                lambda: _more_than(engine, "SELECT count(*) FROM processed_events", total + markers - 1),
                timeout=60,
                what="the markers to be projected",
            )
            everything = total + markers
            assert await scalar(engine, "SELECT count(*) FROM event_archive") == everything
            distinct = "SELECT count(DISTINCT (source, event_id)) FROM event_archive"
            assert await scalar(engine, distinct) == everything
            assert await scalar(engine, "SELECT count(*) FROM deliveries") == everything
            assert await scalar(engine, "SELECT count(DISTINCT archive_seq) FROM deliveries") == everything


async def _more_than(engine: Any, sql: str, n: int) -> bool:
    return await scalar(engine, sql) > n


async def test_killed_dispatcher_is_replaced_and_every_event_arrives_in_order(settings: Settings) -> None:
    assert settings.kafka.bootstrap and settings.database_url
    sink = await WebhookSink(delay=0.01).start()
    # This process projects; the dispatcher runs (and dies) as its own process.
    hub = HubProcess(settings, settings.kafka.bootstrap, settings.database_url, roles=("projector",))
    await hub.start()
    try:
        async with database(settings) as engine:
            await subscribe_in_store(engine, sink.url)
            events = make_events(600, keys=20)
            assert hub.event_log is not None
            await hub.event_log.publish(events)
            await eventually(
                lambda: _more_than(engine, "SELECT count(*) FROM deliveries", len(events) - 1),
                timeout=60,
                what="projection",
            )
            # A short lease: the killed dispatcher's claims come back quickly.
            env = role_env(
                settings,
                KOPPELHUB_DELIVERY_LEASE_SECONDS="2",
                KOPPELHUB_DELIVERY_TIMEOUT_SECONDS="1",
                KOPPELHUB_DELIVERY_CONCURRENCY="8",
            )
            with role("dispatcher", env) as first:
                await sink.wait_for(100, delivered=False, timeout=60)
                first.send_signal(signal.SIGKILL)
                first.wait()
            assert len(sink.received) < len(events), "the kill did not land mid-run"
            with role("dispatcher", env):
                await eventually(
                    lambda: _more_than(
                        engine, "SELECT count(*) FROM deliveries WHERE status = 'delivered'", len(events) - 1
                    ),
                    timeout=90,
                    what="every delivery to be recorded",
                )
        first_arrival: dict[str, int] = {}
        per_key: dict[str, list[int]] = {}
        for got in sink.received:
            body = json.loads(got.body)
            if body["id"] in first_arrival:
                continue  # at-least-once: a resend of something already seen
            first_arrival[body["id"]] = body["data"]["n"]
            per_key.setdefault(body["subject"], []).append(body["data"]["n"])
        assert set(first_arrival) == {e.id for e in events}
        for key, seen in per_key.items():
            assert seen == sorted(seen), f"{key} out of order: {seen}"
    finally:
        await hub.shutdown(drain_timeout=10)
        await sink.stop()
