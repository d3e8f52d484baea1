"""Signalen figures: a Signalen fake with N meldingen synced by the ``signalen`` connector (first
sync publishes every melding as ``aangemaakt``; a second sync with nothing changed publishes
nothing), then write-back of status changes (``m`` → ``b``) through the connector sink.

    .venv/bin/python -m benchmarks.signalen                      # 100,000 meldingen
    .venv/bin/python -m benchmarks.signalen --meldingen 20000    # quicker

The sync runs as the ``connectors`` role does (:meth:`ConnectorRunner.run_connector`) on the
embedded broker and PostgreSQL, against the fake on loopback (allow-listed). Write-back calls
:class:`hub.services.writeback.ConnectorSink` directly, ``--concurrency`` meldingen at a time
(one request per melding at a time, so order per melding holds); the dispatcher around it is
measured by benchmarks/fanout.py.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import describe_machine, machine_info
from connectors.base import ConnectorContext
from hub.adapters.egress import egress
from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.engine import create_engine, migrate
from hub.adapters.postgres.fingerprints import PostgresFingerprintStore
from hub.adapters.postgres.imports import PostgresImportStore
from hub.embedded import provision
from hub.services.connectors import ConnectorRunner
from hub.services.writeback import ConnectorSink, connector_sink
from hub.settings import ConnectorSettings, Settings
from subscriptions.delivery import DeliveryTarget
from subscriptions.sender import Disposition
from subscriptions.ssrf import NetworkPolicy
from tests.support.signalen_fake import SignalenFake

ORG = "org-benchmark"


async def run(
    settings: Settings, bootstrap: str, database_url: str, n: int, concurrency: int, wanted: int
) -> dict[str, Any]:
    engine = create_engine(database_url, pool_size=4)
    await ensure_topics(bootstrap, settings.kafka)
    log = KafkaEventLog(bootstrap, settings.kafka)
    await log.start()
    fake = await SignalenFake(max_page_size=1000).start()
    fake.add(n)
    store = PostgresConnectorStore(engine)
    runner = ConnectorRunner(
        store, PostgresImportStore(engine), PostgresFingerprintStore(engine), log, settings.connectors,
        hub_urn=settings.source_urn, data_dir=settings.data_dir,
    )  # fmt: skip
    out: dict[str, Any] = {"meldingen": n}
    try:
        record = await store.create(
            kind="signalen", organisatie=ORG, schedule_seconds=5, enabled=True,
            config={"url": fake.url, "auth": {"token": fake.token}, "pageSize": 1000},
        )  # fmt: skip
        for name in ("first", "second"):
            started = time.perf_counter()
            await runner.run_connector(await store.get(record.id))
            took = time.perf_counter() - started
            after = await store.get(record.id)
            assert after.last_error is None, after.last_error
            counts = after.last_counts or {}
            out[name] = {
                "seconds": round(took, 2),
                "published": counts.get("published"),
                "per_s": round(n / took),
            }

        def context(organisatie: str, scope: str) -> ConnectorContext:
            return ConnectorContext(organisatie=organisatie, scope=scope, work_dir=settings.data_dir,
                                    egress=egress(NetworkPolicy.parse("127.0.0.1/32")))  # fmt: skip

        sink = ConnectorSink(store, log, context, hub_urn=settings.source_urn)
        target = DeliveryTarget(sink=connector_sink(record.id), secrets=())
        changes = min(n, wanted)
        queue = list(range(1, changes + 1))

        async def worker() -> None:
            while queue:
                melding = queue.pop()
                event = {
                    "id": str(uuid.uuid4()),
                    "type": "nl.signalen.melding.status-verzoek.v1",
                    "subject": str(melding),
                    "data": {"state": "b", "text": "in behandeling"},
                }
                outcome = await sink.deliver(target, event, event["id"])
                assert outcome.disposition is Disposition.DELIVERED, outcome

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        took = time.perf_counter() - started
        out["writeback"] = {"changes": changes, "seconds": round(took, 2), "per_s": round(changes / took)}
    finally:
        await fake.stop()
        await log.stop()
        await engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--meldingen", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--changes", type=int, default=5000, help="status changes written back")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="koppelhub-bench-signalen-"))
    settings = Settings(data_dir=data_dir, connectors=ConnectorSettings(allow_networks=["127.0.0.1/32"]))
    infra = provision(settings)
    try:
        migrate(infra.database_url)
        results = asyncio.run(
            run(
                settings,
                infra.kafka_bootstrap,
                infra.database_url,
                args.meldingen,
                args.concurrency,
                args.changes,
            )
        )
    finally:
        infra.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(describe_machine(machine_info()))
    first, second, wb = results["first"], results["second"], results["writeback"]
    print(
        f"first sync:  {results['meldingen']} meldingen, {first['published']} published"
        f" in {first['seconds']} s ({first['per_s']}/s)"
    )
    print(f"second sync: {second['published']} published in {second['seconds']} s "
          f"({second['seconds'] / first['seconds']:.2f} of the first)")  # fmt: skip
    print(f"write-back:  {wb['changes']} status changes in {wb['seconds']} s ({wb['per_s']}/s)")


if __name__ == "__main__":
    main()
