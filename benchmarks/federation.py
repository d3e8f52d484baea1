"""Hub-to-hub figures: N landscape events of another hub followed by the ``koppelhub`` connector.

    .venv/bin/python -m benchmarks.federation                    # 100,000 events
    .venv/bin/python -m benchmarks.federation --events 20000 --check
    .venv/bin/python -m benchmarks.federation --profile          # cProfile of the first run

The other hub is a fake of its pull API (``tests/support/hub_fake.py``: the hub's own page
shape, pages of 1,000, pre-encoded events) in a process of its own: its database query and
JSON rendering are the other hub's cost, not this one's. The run is what the ``connectors``
role does (:meth:`ConnectorRunner.run_connector`, built by :func:`hub.bootstrap.connector_runner`):
read each page through the guarded egress, filter and mark the events, check each envelope,
publish them to the embedded broker (acks=all) and commit the cursor in PostgreSQL after each
page. The clock stops when the run has finished (every event acknowledged, the last cursor
committed). A second run with nothing new must publish nothing.

Besides wall-clock it reports CPU seconds per event of this process (``time.process_time``) and
of the broker, PostgreSQL and the fake (from /proc): on a loaded machine the wall-clock figure
says little, CPU per event says what the work costs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import pstats
import shutil
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import CpuMeter, children, describe_machine, machine_info
from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.engine import create_engine, migrate
from hub.bootstrap import connector_runner
from hub.embedded import provision
from hub.settings import ConnectorSettings, Settings
from tests.support.hub_fake import TOKEN, HubFake

FLOOR_EVENTS_PER_S = 5_000
THERE = "urn:nld:oin:00000000000000000001:systeem:koppelhub"
HERE = "urn:nld:oin:00000000000000000002:systeem:koppelhub"
PARTNER = "urn:nld:oin:00000000000000000099:systeem:cmdb"
ORG = "org-benchmark"


def events(n: int) -> list[bytes]:
    """``n`` applicatie ``vastgelegd`` events as the other hub's archive holds them."""
    return [
        orjson.dumps(
            {
                "specversion": "1.0",
                "id": f"00000000-0000-4000-8000-{i:012d}",
                "source": PARTNER,
                "type": "nl.softwarecatalogus.applicatie.vastgelegd.v1",
                "subject": f"app-{i}",
                "time": "2026-11-29T21:00:00Z",
                "datacontenttype": "application/json",
                "organisatie": "org-leverancier",
                "data": {
                    "id": f"app-{i}",
                    "naam": f"Applicatie {i}",
                    "aanbieder": "org-leverancier",
                    "licentietype": "Open source",
                    "omschrijving": "Een applicatie van de leverancier",
                },
            }
        )
        for i in range(n)
    ]


def serve_fake(n: int, conn: Connection) -> None:
    """The child process: the other hub's pull API with ``n`` events."""

    async def main() -> None:
        fake = await HubFake(THERE).start()
        fake.add_encoded(events(n))
        conn.send((fake.url, str(fake.subscription)))
        await asyncio.Event().wait()  # until terminated

    asyncio.run(main())


async def follow(
    settings: Settings,
    bootstrap: str,
    database_url: str,
    url: str,
    subscription: str,
    fake_pid: int,
    profile: bool,
) -> dict[str, Any]:
    engine = create_engine(database_url, pool_size=4)
    await ensure_topics(bootstrap, settings.kafka)
    log = KafkaEventLog(bootstrap, settings.kafka)
    await log.start()
    runner = connector_runner(settings, engine, log)
    store = PostgresConnectorStore(engine)
    meter = CpuMeter(
        lambda: {
            "hub": [os.getpid()],
            "fake": [fake_pid],
            "broker+postgres": [c for c in children(os.getpid()) if c != fake_pid],
        }
    )
    out: dict[str, Any] = {}
    try:
        config = {"url": url, "auth": {"token": TOKEN}, "subscription": subscription}
        record = await store.create(
            kind="koppelhub", organisatie=ORG, config=config, schedule_seconds=5, enabled=True
        )
        for name in ("first", "second"):
            profiler = cProfile.Profile() if profile and name == "first" else None
            before = meter.sample()
            started, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            await runner.run_connector(await store.get(record.id))
            if profiler:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            took, cpu = time.perf_counter() - started, time.process_time() - cpu
            cores = CpuMeter.usage(before, meter.sample(), took)
            after = await store.get(record.id)
            assert after.last_error is None, after.last_error
            published = int((after.last_counts or {}).get("published", 0))
            out[name] = {
                "seconds": round(took, 2), "published": published, "cpu_s": round(cpu, 2),
                "cores": cores, "checkpoint": after.checkpoint,
            }  # fmt: skip
    finally:
        await asyncio.to_thread(runner.close)
        await log.stop()
        await engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--check", action="store_true", help="exit 1 when the floor or a check is missed")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the first run")
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="koppelhub-bench-federation-"))
    settings = Settings(
        data_dir=data_dir, source_urn=HERE, connectors=ConnectorSettings(allow_networks=["127.0.0.1/32"])
    )
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    fake = ctx.Process(target=serve_fake, args=(args.events, child), daemon=True)
    fake.start()
    url, subscription = parent.recv()
    infra = provision(settings)
    info = machine_info()
    try:
        migrate(infra.database_url)
        result = asyncio.run(
            follow(
                settings,
                infra.kafka_bootstrap,
                infra.database_url,
                url,
                subscription,
                fake.pid or 0,
                args.profile,
            )
        )
    finally:
        fake.terminate()
        infra.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    first, second = result["first"], result["second"]
    n = args.events
    per_s = n / first["seconds"] if first["seconds"] else float("inf")
    cores = first["cores"]
    print(describe_machine(info))
    print(
        f"first run:  {n} events followed, {first['published']} published in {first['seconds']} s "
        f"({per_s:,.0f}/s; floor {FLOOR_EVENTS_PER_S:,}/s)"
    )
    print(
        f"            CPU per event: this process {first['cpu_s'] / n * 1e6:.0f} µs, broker+postgres "
        f"{cores.get('broker+postgres', 0) * first['seconds'] / n * 1e6:.0f} µs, the fake (other hub) "
        f"{cores.get('fake', 0) * first['seconds'] / n * 1e6:.0f} µs; cores used: {cores}"
    )
    print(f"second run: {second['published']} published in {second['seconds']} s (nothing new: must be 0)")
    checks = [
        ("every event published once", first["published"] == n),
        ("the second run publishes nothing", second["published"] == 0),
        ("the cursor was kept", bool(first["checkpoint"]) and second["checkpoint"] == first["checkpoint"]),
        (f"at least {FLOOR_EVENTS_PER_S:,} events/s", per_s >= FLOOR_EVENTS_PER_S),
    ]
    for label, passed in checks:
        print(f"  [{'ok' if passed else 'MISSED'}] {label}")
    ok = all(passed for _, passed in checks)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
