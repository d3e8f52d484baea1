"""Helpers for connector and import tests: files, the runner on the real broker and database."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.imports import PostgresImportStore
from hub.bootstrap import connector_runner
from hub.services.connectors import ConnectorRunner
from hub.services.imports import ImportSpec
from hub.settings import Settings
from schemas import CloudEvent
from schemas.bindings import from_kafka_record

ORG = "org-voorbeeldstad"
GEBRUIK_HEADER = ["id", "afnemer", "applicatie", "status", "versie", "referentiecomponenten"]


def write_csv(path: Path, rows: Sequence[Sequence[str]], *, delimiter: str = ",", bom: bool = False) -> Path:
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


@dataclass
class Harness:
    settings: Settings
    runner: ConnectorRunner
    imports: PostgresImportStore
    connectors: PostgresConnectorStore
    event_log: KafkaEventLog

    async def import_file(
        self,
        path: Path,
        objecttype: str,
        *,
        mode: str = "incremental",
        organisatie: str = ORG,
        **options: object,
    ):  # type: ignore[no-untyped-def]
        """Queue an import of ``path``, claim it and run it to the end here; returns its record."""
        spec = ImportSpec(organisatie, objecttype, mode, path.name, path, dict(options))
        record = await self.runner.lifecycle.create(spec)
        claimed = await self.imports.claim()
        assert claimed is not None and claimed.id == record.id
        await self.runner.run_import(claimed)
        return await self.imports.get(record.id)

    async def events(self) -> list[CloudEvent]:
        """Every event on this test's topic so far."""
        consumer = AIOKafkaConsumer(
            self.settings.kafka.topic,
            bootstrap_servers=self.settings.kafka.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        out: list[CloudEvent] = []
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=1500)
                if not batch:
                    break
                for records in batch.values():
                    out.extend(from_kafka_record(r.key, r.value, r.headers) for r in records)
        finally:
            await consumer.stop()
        return out


@asynccontextmanager
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    assert settings.kafka.bootstrap and settings.database_url
    await ensure_topics(settings.kafka.bootstrap, settings.kafka)
    engine = create_engine(settings.database_url)
    log = KafkaEventLog(settings.kafka.bootstrap, settings.kafka)
    await log.start()
    runner = connector_runner(settings, engine, log)
    try:
        yield Harness(settings, runner, PostgresImportStore(engine), PostgresConnectorStore(engine), log)
    finally:
        await log.stop()
        await engine.dispose()


__all__ = ["GEBRUIK_HEADER", "ORG", "Harness", "ImportSpec", "harness", "write_csv"]
