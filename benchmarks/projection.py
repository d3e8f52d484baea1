"""Landscape projection throughput: N ``vastgelegd`` events from the broker into PostgreSQL.

Fills a fresh topic on the embedded Tansu broker with ``--events`` landscape events (mixed
object types; ``--changes`` of them re-assert an existing object with a new status or name),
then runs the hub's own :class:`~hub.services.projector.Projector` on it, in this process
(``--processes 1``) or in N child processes in one consumer group as ``koppelhub run`` with
``KOPPELHUB_WORK_PROCESSES=N`` does (:mod:`benchmarks.projectors`), against the embedded
PostgreSQL, with one subscription matching the derived events (so the outbox rows are written
as in production; no dispatcher runs). Reports events/s projected and derived notifications/s,
from the first batch to the last event applied (over all processes).

    .venv/bin/python -m benchmarks.projection            # 100,000 events, 10 % changes
    .venv/bin/python -m benchmarks.projection --events 20000 --check
    .venv/bin/python -m benchmarks.projection --processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.common import CpuMeter, children, cpu_seconds, describe_machine, machine_info
from benchmarks.limits import WAL_POSITION_SQL, broker_rates, insert_rate
from benchmarks.projectors import Job, projectors
from benchmarks.summary import failed, figures, table
from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.postgres.engine import create_engine, migrate
from hub.adapters.postgres.landscape_tables import LANDSCAPE_TABLES
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.adapters.postgres.tables import deliveries, event_archive
from hub.embedded import provision
from hub.logging import configure_logging
from hub.settings import KafkaSettings, Settings
from schemas import CloudEvent, validate_event
from subscriptions.signing import generate_secret

SOURCE = "urn:nld:oin:00000001234567890000:systeem:bench"
MIX = {
    "organisatie": 5,
    "applicatie": 15,
    "gebruik": 50,
    "koppeling": 20,
    "referentiecomponent": 5,
    "standaard": 5,
}
STATUSES = ["Verwerving", "Gepland", "In productie", "Uit te faseren", "Uitgefaseerd"]


def _data(objecttype: str, i: int, version: int) -> dict[str, Any]:
    oid = f"{objecttype[:3]}-{i:07d}"
    if objecttype == "organisatie":
        return {"id": oid, "naam": f"Gemeente {i} v{version}", "type": "Gemeente", "status": "Actief"}
    if objecttype == "applicatie":
        return {"id": oid, "naam": f"Applicatie {i} v{version}", "aanbieder": f"org-{i % 500:07d}",
                "licentietype": "Open source", "referentiecomponenten": [f"ref-{i % 50:07d}"]}  # fmt: skip
    if objecttype == "gebruik":
        return {"id": oid, "afnemer": f"org-{i % 300:07d}", "applicatie": f"app-{i % 5000:07d}",
                "status": STATUSES[(i + version) % len(STATUSES)], "versie": "1.0",
                "interneAantekening": "contract loopt"}  # fmt: skip
    if objecttype == "koppeling":
        return {"id": oid, "applicatieA": f"app-{i % 5000:07d}", "applicatieB": f"app-{(i * 7) % 5000:07d}",
                "type": "api", "richting": "AnaarB", "organisatie": f"org-{i % 300:07d}",
                "status": f"versie {version}"}  # fmt: skip
    return {"id": oid, "naam": f"{objecttype} {i} v{version}"}


def make_events(total: int, changes: int, seed: int = 7) -> list[CloudEvent]:
    """``total - changes`` new objects, then ``changes`` real changes of distinct earlier ones."""
    kinds = [k for k, weight in MIX.items() for _ in range(weight)]
    created = [(kinds[i % len(kinds)], i) for i in range(total - changes)]
    plan = [(kind, i, 0) for kind, i in created]
    plan += [(kind, i, 1) for kind, i in random.Random(seed).sample(created, changes)]
    return [
        validate_event({
            "specversion": "1.0", "id": str(uuid.uuid4()), "source": SOURCE,
            "type": f"nl.softwarecatalogus.{kind}.vastgelegd.v1", "subject": data["id"],
            "time": "2026-11-22T10:00:00Z", "datacontenttype": "application/json", "data": data,
        })
        for kind, i, version in plan
        for data in [_data(kind, i, version)]
    ]  # fmt: skip


async def fill_topic(bootstrap: str, kafka: KafkaSettings, events: list[CloudEvent]) -> float:
    log = KafkaEventLog(bootstrap, kafka)
    await log.start()
    started = time.monotonic()
    try:
        for start in range(0, len(events), 2_000):
            await log.publish(events[start : start + 2_000])
    finally:
        await log.stop()
    return time.monotonic() - started


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="koppelhub-bench-projection-"))
    tag = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(topic=f"bench.{tag}", dlq_topic=f"bench.{tag}.dlq", consumer_group=f"bench-{tag}")
    settings = Settings(data_dir=data_dir, kafka=kafka, projector_batch_size=args.batch_size)
    configure_logging(Settings(log_level="warning", log_format="console"))
    infra = provision(settings)
    try:
        migrate(infra.database_url)
        await ensure_topics(infra.kafka_bootstrap, kafka)
        events = make_events(args.events, args.changes)
        fill_seconds = await fill_topic(infra.kafka_bootstrap, kafka, events)
        # The events now live in the topic only: kept here, they were a heap the projector's full
        # collections scanned again and again (about 8 % of its CPU at 30,000 events), which a
        # projector in `run` does not have.
        total = len(events)
        del events
        gc.collect()
        engine = create_engine(infra.database_url)
        await PostgresSubscriptionStore(engine).create(
            sink="https://sink.example/hook", protocol="HTTP", source=settings.source_urn, types=None,
            filters=[], headers={}, config={}, secret=generate_secret(),
        )  # fmt: skip
        job = Job(infra.database_url, infra.kafka_bootstrap, kafka, settings.source_urn, args.batch_size,
                  args.members)  # fmt: skip
        runner = projectors(job, args.processes)
        wal_start = await _wal(engine)
        sizes_start = await _sizes(engine)
        await runner.start()
        try:
            meter = CpuMeter(lambda: _groups(data_dir, runner.pids()))
            first: float | None = None
            cpu_start, own_start = meter.sample(), _cpu(runner.pids())
            deadline = time.monotonic() + args.timeout
            while runner.totals()["applied"] < total and time.monotonic() < deadline and not runner.dead():
                if first is None and runner.totals()["batches"]:
                    first, cpu_start, own_start = time.monotonic(), meter.sample(), _cpu(runner.pids())
                await asyncio.sleep(0.01)
            if runner.dead():
                raise RuntimeError("a projector exited before every event was applied; see its output above")
            finished = time.monotonic()
            seconds = finished - (first or finished)
            cpu = CpuMeter.usage(cpu_start, meter.sample(), seconds)
            own = [b - a for a, b in zip(own_start, _cpu(runner.pids()), strict=True)]
            wal = (await _wal(engine))[0] - wal_start[0]
            sizes_end = await _sizes(engine)
        finally:
            await runner.stop()
        fpi = (await _wal(engine))[1] - wal_start[1]  # after the stop: its processes' statistics flushed
        stats, per_process = runner.totals(), runner.per_process()
        async with engine.connect() as conn:
            stored = {t: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                      for t, table in LANDSCAPE_TABLES.items()}  # fmt: skip
            outbox = (await conn.execute(select(func.count()).select_from(deliveries))).scalar_one()
            ours = select(func.count()).select_from(event_archive).where(event_archive.c.source == SOURCE)
            archived = (await conn.execute(ours)).scalar_one()  # the derived ones have the hub's source
        await engine.dispose()
        limits: dict[str, Any] = {}
        if not args.no_limits:
            print("measuring the raw limits (batched INSERT, broker produce/consume) …", flush=True)
            produce, consume = await broker_rates(infra.kafka_bootstrap, records=min(args.events, 50_000))
            insert = await insert_rate(infra.database_url, rows=min(args.events, 100_000))
            limits = {"insert": insert.as_dict(), "consume": consume.as_dict(), "produce": produce.as_dict()}
    finally:
        infra.close()
        shutil.rmtree(data_dir, ignore_errors=True)  # about 175 MB of broker and database per run
    return {
        "events": total, "changes": args.changes, "applied": stats["applied"], "archived": archived,
        "duplicates": stats["duplicates"], "seconds": seconds, "fill_seconds": fill_seconds,
        "events_per_s": stats["applied"] / seconds if seconds > 0 else 0.0,
        "derived": stats["derived"], "derived_per_s": stats["derived"] / seconds if seconds > 0 else 0.0,
        "outbox": outbox, "stored": stored, "cores": cpu, "batch_size": args.batch_size,
        "wal_per_event": round(wal / max(stats["applied"], 1), 1),
        "fpi_per_event": round(fpi / max(stats["applied"], 1), 3),
        "grown_per_event": _grown(sizes_start, sizes_end, stats["applied"]),
        "batches": stats["batches"], "members": args.members, "processes": args.processes,
        "per_process": [
            {**p, "cpu_seconds": c, "cores": round(c / seconds, 2) if seconds > 0 else 0.0}
            for p, c in zip(per_process, own, strict=True)
        ],
        "machine": machine_info(), "limits": limits,
    }  # fmt: skip


#: Every table and index of the hub's schema with its size on disk.
_SIZES = text(
    """
    SELECT c.relname::text, c.relkind = 'i', pg_relation_size(c.oid)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')
    """
)


async def _sizes(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(_SIZES)
        return {f"{name}{' (index)' if index else ''}": size for name, index, size in rows}


def _grown(before: dict[str, int], after: dict[str, int], events: int) -> dict[str, float]:
    """Bytes each table and index grew per projected event, largest first (those that grew)."""
    grown = {name: (size - before.get(name, 0)) / max(events, 1) for name, size in after.items()}
    return dict(sorted(((n, round(b, 1)) for n, b in grown.items() if b > 0), key=lambda x: -x[1]))


async def _wal(engine: AsyncEngine) -> tuple[int, int]:
    """The write-ahead log's position and how many full-page images it holds so far (a page's
    first change after a checkpoint is logged whole: ``pg_stat_wal``)."""
    async with engine.connect() as conn:
        position = int((await conn.execute(text(WAL_POSITION_SQL))).scalar_one())
        return position, int((await conn.execute(text("SELECT wal_fpi FROM pg_stat_wal"))).scalar_one())


def _cpu(pids: list[int]) -> list[float]:
    """CPU seconds of each projector process (0 for one gone)."""
    return [cpu_seconds(pid) or 0.0 for pid in pids]


def _groups(data_dir: Path, projectors: list[int]) -> dict[str, list[int]]:
    """Pids per group: the projector process(es) (this one or the children), PostgreSQL, the broker."""
    postgres: list[int] = []
    with contextlib.suppress(OSError, ValueError):
        postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        postgres = [postmaster, *children(postmaster)]
    broker: list[int] = []
    with contextlib.suppress(OSError, ValueError, KeyError):
        broker = [int(json.loads((data_dir / "broker.json").read_text())["pid"])]
    return {"projector": projectors, "postgres": postgres, "broker": broker}


def _micros(r: dict[str, Any], group: str) -> float:
    """CPU per projected event of one group of processes, in µs: what a busy machine does not
    blur (wall-clock figures are noise while others share the cores)."""
    return float(r["cores"].get(group, 0.0)) * r["seconds"] / max(r["applied"], 1) * 1e6


def _processes(r: dict[str, Any]) -> str:
    processes = r.get("processes", 1)
    if processes == 1:
        return f"{r['members']} consumers in this process"
    return f"{processes} processes x {r['members']} consumers in one group"


def _per_process_lines(r: dict[str, Any]) -> list[str]:
    """One line per projector child (none for the in-process projector): how the group's
    partitions and CPU split between them, and what a rebalance delivered twice."""
    if r.get("processes", 1) == 1:
        return []
    return [
        f"  projector {n}: {p['applied']:,} events applied, {p['duplicates']:,} seen again, "
        f"{p['cores']:.2f} cores"
        for n, p in enumerate(r["per_process"], 1)
    ]


def _wal_lines(r: dict[str, Any]) -> list[str]:
    """What PostgreSQL wrote per event, weighed in the raw insert's rows (the same cluster)."""
    per_event, insert = r.get("wal_per_event"), (r.get("limits") or {}).get("insert") or {}
    if not per_event:
        return []
    line = f"  PostgreSQL's write-ahead log per event: {per_event:,.0f} B"
    if insert.get("wal_per_item"):
        line += f", as much as {per_event / insert['wal_per_item']:.1f} rows of the raw insert"
    if (fpi := r.get("fpi_per_event")) is not None:
        line += f"; {fpi:.2f} full-page images per event"
    grown = list((r.get("grown_per_event") or {}).items())
    top = ", ".join(f"{name} {size:,.0f} B" for name, size in grown[:6])
    more = f", {len(grown) - 6} more" if len(grown) > 6 else ""
    return [line, f"  grown per event, tables and indexes: {top or 'none'}{more}"]


def report(r: dict[str, Any]) -> str:
    return "\n".join([
        f"machine: {describe_machine(r['machine'])}",
        f"topic filled with {r['events']:,} events ({r['changes']:,} changes) in {r['fill_seconds']:.1f} s",
        f"projected {r['applied']:,} events in {r['seconds']:.2f} s ({r['batches']:,} batches of at most "
        f"{r['batch_size']}, {_processes(r)}):",
        f"  {r['events_per_s']:,.0f} events/s projected",
        f"  {r['derived']:,} derived notifications, {r['derived_per_s']:,.0f}/s (archived, outbox row each)",
        "  cores used: " + ", ".join(f"{group} {cores:.2f}" for group, cores in r["cores"].items())
        + "  (other: load outside this benchmark; high means noisy figures)",
        *_per_process_lines(r),
        "  CPU per event: " + ", ".join(f"{g} {_micros(r, g):,.0f} µs" for g in ("projector", "postgres")),
        "  stored: " + ", ".join(f"{t} {n:,}" for t, n in r["stored"].items()),
        *_wal_lines(r),
        "", table(figures("projection", r), r.get("limits")),
    ])  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=None, help="default: 10 %% of --events")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=Settings().projector_batch_size,
        help="projector batch (KOPPELHUB_PROJECTOR_BATCH_SIZE)",
    )
    parser.add_argument(
        "--members",
        type=int,
        default=Settings().projector_members,
        help="consumers (KOPPELHUB_PROJECTOR_MEMBERS)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=Settings().work_processes,
        help="projector processes, each with --members consumers in the one group (KOPPELHUB_WORK_PROCESSES);"
        " 1: the projector runs in this process",
    )
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--no-limits", action="store_true", help="skip measuring the raw limits")
    parser.add_argument("--check", action="store_true", help="exit 1 when the floor is missed")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    if args.changes is None:
        args.changes = args.events // 10
    result = asyncio.run(run(args))
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 1 if args.check and failed(figures("projection", result)) else 0


if __name__ == "__main__":
    sys.exit(main())
