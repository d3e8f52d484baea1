"""Signalen figures: a Signalen fake with N meldingen synced by the ``signalen`` connector (first
sync publishes every melding as ``aangemaakt``; a second sync with nothing changed publishes
nothing), then write-back of status changes through the whole hub path.

    .venv/bin/python -m benchmarks.signalen                      # 100,000 meldingen
    .venv/bin/python -m benchmarks.signalen --meldingen 20000    # quicker
    .venv/bin/python -m benchmarks.signalen --profile sync       # cProfile of the first sync

The fake runs in a process of its own (as Signalen would: its JSON rendering is not the hub's
cost). The sync runs as the ``connectors`` role does (:meth:`ConnectorRunner.run_connector`,
built by :func:`hub.bootstrap.connector_runner`) on the embedded broker and PostgreSQL, through
the write-ahead log as ``run`` has it with the embedded broker. The
write-back is measured end to end: ``--changes`` ``status-verzoek`` events (two per melding,
``m`` → ``i`` then ``i`` → ``b``) published to the broker, projected into the connector's
write-back subscription, delivered by the dispatcher (its default concurrency, 16 per
subscription) through :class:`hub.services.writeback.ConnectorSink` to the fake; the clock stops
when the fake has accepted every PATCH, and the fake's log proves the order per melding.

How this maps onto ``koppelhub run`` (KOPPELHUB_WORKERS > 1): the sync runs in this process
exactly as it does in a ``run`` child holding the ``connectors`` role, and the write-back runs
the ``projector`` and ``dispatcher`` roles in this process, as ``run``'s one work child does
(hub/children.py, ``WORK_ROLES``), with the write-ahead log on as ``run`` has it with the
embedded broker (each outcome event committed to PostgreSQL before the broker gets it); both
on uvloop (:func:`hub.serve.run_loop`), as every hub process is. CPU is reported per item
(this process's CPU time: the broker and PostgreSQL are children and are not counted; the
write-back figure includes publishing the verzoeken, about a tenth of it), since wall-clock
figures on a shared machine say little.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import pstats
import shutil
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import delete

from benchmarks.common import CpuMeter, children, describe_machine, machine_info
from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.engine import create_engine, migrate
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.adapters.postgres.write_ahead import WriteAheadEventLog
from hub.adapters.postgres.write_ahead_tables import event_wal
from hub.bootstrap import HubProcess, connector_runner
from hub.embedded import provision
from hub.logging import configure_logging
from hub.serve import run_loop
from hub.services.writeback_subscriptions import sync_write_back
from hub.settings import ConnectorSettings, Settings
from schemas import CloudEvent
from tests.support.signalen_fake import SignalenFake

ORG = "org-benchmark"
VERZOEK = "nl.signalen.melding.status-verzoek.v1"


def serve_fake(n: int, conn: Connection) -> None:
    """The child process: the fake with ``n`` meldingen, plus ``/patches`` (every PATCH as
    ``[melding, state, status]``) on a second port for the benchmark's checks."""

    async def main() -> None:
        fake = await SignalenFake(max_page_size=1000).start()
        fake.add(n)
        control = web.Application()
        control.router.add_get("/count", lambda _: _json(len(fake.patches)))
        control.router.add_get(
            "/patches", lambda _: _json([[p.melding, p.state, p.status] for p in fake.patches])
        )
        runner = web.AppRunner(control, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        conn.send((fake.url, f"http://127.0.0.1:{runner.addresses[0][1]}"))
        await asyncio.Event().wait()  # until terminated

    asyncio.run(main())


async def _json(value: Any) -> web.Response:
    return web.json_response(value)


async def sync(
    settings: Settings, bootstrap: str, database_url: str, url: str, n: int, profile: bool
) -> dict[str, Any]:
    engine = create_engine(database_url, pool_size=4)
    await ensure_topics(bootstrap, settings.kafka)
    log = KafkaEventLog(bootstrap, settings.kafka)
    await log.start()
    # The write-ahead log on, as ``run``'s connectors role has it with the embedded broker: each
    # page's events are committed to PostgreSQL before the broker gets them.
    wal = WriteAheadEventLog(engine, log)
    runner = connector_runner(settings, engine, wal)
    store = PostgresConnectorStore(engine)
    out: dict[str, Any] = {"meldingen": n}
    try:
        record = await store.create(
            kind="signalen", organisatie=ORG, schedule_seconds=5, enabled=True,
            config={"url": url, "auth": {"token": SignalenFake.token}, "pageSize": 1000, "writeBack": True},
        )  # fmt: skip
        out["connector"] = record
        for name in ("first", "second"):
            profiler = cProfile.Profile(time.thread_time) if profile and name == "first" else None
            started, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            await runner.run_connector(await store.get(record.id))
            if profiler:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            took, cpu = time.perf_counter() - started, time.process_time() - cpu
            after = await store.get(record.id)
            assert after.last_error is None, after.last_error
            published = (after.last_counts or {}).get("published")
            out[name] = {
                "seconds": round(took, 2), "published": published, "per_s": round(n / took),
                "cpu_s": round(cpu, 2), "cpu_us": round(cpu / n * 1e6),
            }  # fmt: skip
        out["subscription"] = await sync_write_back(
            PostgresSubscriptionStore(engine), await store.get(record.id)
        )
    finally:
        await asyncio.to_thread(runner.close)
        await wal.close()
        # What the sync wrote ahead stands for events on the sync's topic, which no projector
        # here projects (in ``run`` the work child projects them meanwhile). Left, the
        # write-back phase's hub would relay all of them at its start and project them while
        # it is measured: that made the write-back look slower the more meldingen were synced
        # (472/s after 20,000, 300/s after 100,000).
        async with engine.begin() as conn:
            await conn.execute(delete(event_wal))
        await log.stop()
        await engine.dispose()
    return out


async def write_back(
    settings: Settings,
    bootstrap: str,
    database_url: str,
    control: str,
    meldingen: int,
    profile: bool,
    fake_pid: int,
) -> dict[str, Any]:
    """Two verzoeken per melding through broker, projector, outbox and dispatcher (a topic of
    their own: the sync's events are not what is measured here)."""
    kafka = settings.kafka.model_copy(
        update={"topic": "bench.writeback", "consumer_group": "bench-writeback"}
    )
    settings = settings.model_copy(update={"kafka": kafka})
    await ensure_topics(bootstrap, settings.kafka)
    # embedded_broker: the write-ahead log on, as ``run`` has it with the embedded broker, so each
    # outcome event is committed to PostgreSQL before it goes to the broker (as in production).
    roles = ("projector", "dispatcher")
    hub = HubProcess(settings, bootstrap, database_url, roles=roles, embedded_broker=True)
    await hub.start()
    log = KafkaEventLog(bootstrap, settings.kafka)
    await log.start()
    profiler = cProfile.Profile(time.thread_time) if profile else None
    try:
        events = [
            CloudEvent(
                specversion="1.0", id=str(uuid.uuid4()), source="urn:benchmark:partner", type=VERZOEK,
                subject=str(m), partitionkey=str(m), organisatie=ORG, datacontenttype="application/json",
                data={"state": state, "text": f"naar {state}"},
            )
            for state in ("i", "b") for m in range(1, meldingen + 1)
        ]  # fmt: skip
        if profiler:
            profiler.enable()
        meter = CpuMeter(
            lambda: {
                "hub": [os.getpid()],
                "fake": [fake_pid],
                "broker+postgres": [c for c in children(os.getpid()) if c != fake_pid],
            }
        )
        before = meter.sample()
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(events), 1000):
            await log.publish(events[i : i + 1000])
        async with aiohttp.ClientSession() as http:
            while (count := await (await http.get(f"{control}/count")).json()) < len(events):  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # the count lives in another process
            took, cpu = time.perf_counter() - started, time.process_time() - cpu
            cores = CpuMeter.usage(before, meter.sample(), took)
            patches = await (await http.get(f"{control}/patches")).json()
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    finally:
        await log.stop()
        await hub.shutdown(drain_timeout=15)
    per_melding: dict[int, list[str]] = {}
    for melding, state, status in patches:
        assert status == 200, (melding, state, status)
        per_melding.setdefault(melding, []).append(state)
    in_order = all(states == ["i", "b"] for states in per_melding.values()) and len(per_melding) == meldingen
    return {
        "changes": count, "seconds": round(took, 2), "per_s": round(count / took), "in_order": in_order,
        "cpu_s": round(cpu, 2), "cpu_us": round(cpu / max(count, 1) * 1e6), "cores": cores,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--meldingen", type=int, default=100_000)
    parser.add_argument(
        "--changes", type=int, default=10_000, help="status changes written back (2 per melding)"
    )
    parser.add_argument("--profile", choices=("sync", "writeback"), help="print a cProfile of that phase")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="koppelhub-bench-signalen-"))
    settings = Settings(data_dir=data_dir, connectors=ConnectorSettings(allow_networks=["127.0.0.1/32"]))
    configure_logging(settings)  # as ``run`` does: info, so debug lines are not rendered per delivery
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    fake = ctx.Process(target=serve_fake, args=(args.meldingen, child), daemon=True)
    fake.start()
    url, control = parent.recv()
    infra = provision(settings)
    info = machine_info()
    try:
        migrate(infra.database_url)
        synced = run_loop(
            sync(
                settings,
                infra.kafka_bootstrap,
                infra.database_url,
                url,
                args.meldingen,
                args.profile == "sync",
            )
        )
        wb = run_loop(
            write_back(
                settings, infra.kafka_bootstrap, infra.database_url, control,
                min(args.meldingen, args.changes // 2), args.profile == "writeback", fake.pid or 0,
            )
        )  # fmt: skip
    finally:
        fake.terminate()
        infra.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(describe_machine(info))
    first, second = synced["first"], synced["second"]
    print(
        f"first sync:  {synced['meldingen']} meldingen, {first['published']} published"
        f" in {first['seconds']} s ({first['per_s']}/s; floor 5,000/s);"
        f" the connector used {first['cpu_s']} CPU-s, {first['cpu_us']} µs per melding"
    )
    print(f"second sync: {second['published']} published in {second['seconds']} s "
          f"({second['seconds'] / first['seconds']:.2f} of the first; floor 0.25)")  # fmt: skip
    print(
        f"write-back:  {wb['changes']} status changes in {wb['seconds']} s ({wb['per_s']}/s; floor 300/s),"
        f" order per melding kept: {wb['in_order']}; the hub process used {wb['cpu_s']} CPU-s,"
        f" {wb['cpu_us']} µs per status change"
    )
    print(f"             cores used meanwhile: {wb['cores']}")


if __name__ == "__main__":
    main()
