"""``koppelhub status`` and ``koppelhub dlq list|redrive`` against a broker and database, as an
operator runs them next to a hub (a redrive leaves an audit entry naming the operating-system
user); and a clear refusal when no hub runs for the data dir."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.postgres.audit import PostgresAuditLog
from hub.adapters.postgres.engine import create_engine
from hub.cli import main
from hub.cli_actor import os_user
from hub.ports.audit import AuditEntry, AuditQuery
from hub.ports.log import LogRecord
from hub.settings import Settings
from schemas import validate_event
from schemas.bindings import to_kafka_record
from tests.support.hub_api import event

pytestmark = pytest.mark.e2e


def _env(settings: Settings) -> dict[str, str]:
    k = settings.kafka
    assert k.bootstrap and settings.database_url
    return {
        "KOPPELHUB_DATA_DIR": str(settings.data_dir),
        "KOPPELHUB_DATABASE_URL": settings.database_url,
        "KOPPELHUB_KAFKA_BOOTSTRAP": k.bootstrap,
        "KOPPELHUB_KAFKA_TOPIC": k.topic,
        "KOPPELHUB_KAFKA_DLQ_TOPIC": k.dlq_topic,
        "KOPPELHUB_KAFKA_CONSUMER_GROUP": k.consumer_group,
        "KOPPELHUB_KAFKA_PARTITIONS": str(k.partitions),
    }


async def _park_one(settings: Settings) -> str:
    assert settings.kafka.bootstrap
    await ensure_topics(settings.kafka.bootstrap, settings.kafka)
    log = KafkaEventLog(settings.kafka.bootstrap, settings.kafka)
    await log.start()
    try:
        parked = validate_event(event("cli-key", 1))
        rec = to_kafka_record(parked)
        origin = LogRecord(settings.kafka.topic, 0, 41, rec.key, rec.value, tuple(rec.headers))
        await log.dead_letter(rec.key, rec.value, rec.headers, ValueError("unknown type"), origin)
    finally:
        await log.stop()
    return parked.id


async def _trail(settings: Settings, action: str) -> list[AuditEntry]:
    assert settings.database_url
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        page = await PostgresAuditLog(engine).list(AuditQuery(action=action), limit=10, cursor=None)
        return list(page.items)
    finally:
        await engine.dispose()


def test_status_and_dlq_commands_read_and_redrive_the_running_hubs_log(settings: Settings) -> None:
    event_id = asyncio.run(_park_one(settings))
    runner = CliRunner()
    env = _env(settings)

    result = runner.invoke(main, ["status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["dlq"]["records"] == 1 and doc["log"]["lag"] == 0 and doc["outbox"]["pending"] == 0

    table = runner.invoke(main, ["status"], env=env)
    assert table.exit_code == 0 and "DLQ " in table.output and "1 records" in table.output

    listed = runner.invoke(main, ["dlq", "list", "--json"], env=env)
    [item] = json.loads(listed.output)["items"]
    assert (item["koppelhub_error"], item["event"]["id"]) == ("unknown type", event_id)
    assert "ValueError: unknown type" in runner.invoke(main, ["dlq", "list"], env=env).output

    redriven = runner.invoke(main, ["dlq", "redrive", item["id"]], env=env)
    assert redriven.exit_code == 0 and "Redriven: 1 records." in redriven.output
    [entry] = asyncio.run(_trail(settings, "koppelhub dlq redrive"))
    assert (entry.target, entry.outcome, entry.actor_name, entry.actor_credential, entry.changes) == (
        "/api/v1/dlq/redrive",
        "ok",
        "cli",
        f"cli:{os_user()}",
        ["offsets"],
    )
    after = json.loads(runner.invoke(main, ["status", "--json"], env=env).output)
    assert sum(p["endOffset"] for p in after["log"]["partitions"]) == 1  # back on the events topic


def test_dlq_redrive_wants_positions_or_all(settings: Settings) -> None:
    result = CliRunner().invoke(main, ["dlq", "redrive"], env=_env(settings))
    assert result.exit_code == 2 and "--all" in result.output
    result = CliRunner().invoke(main, ["dlq", "redrive", "zero"], env=_env(settings))
    assert result.exit_code == 2 and "partition:offset" in result.output


def test_status_refuses_when_no_hub_runs_for_the_data_dir(settings: Settings, tmp_path: Path) -> None:
    env = _env(settings) | {"KOPPELHUB_KAFKA_BOOTSTRAP": "", "KOPPELHUB_DATA_DIR": str(tmp_path / "fresh")}
    result = CliRunner().invoke(main, ["status"], env=env)
    assert result.exit_code == 1
    assert "no Koppelhub runs for the data dir" in result.output and "koppelhub run" in result.output
    assert not (tmp_path / "fresh" / "broker.log").exists()  # refused without starting a broker
