"""Two work processes' dispatchers at a low rate: claims, empty claims and CPU per event, with
and without the wake-up rule (hub/services/dispatcher_wakeup.py), in alternating rounds.

Two projector stores (the members of two work processes) take turns projecting one event per
batch at ``--rate`` events/s into a fresh embedded PostgreSQL, each NOTIFYing as the hub's
projector does; two dispatchers, each on its own LISTEN connection, claim and deliver to a sink
that answers at once. ``off`` is main's wake-up (every NOTIFY wakes every dispatcher), ``on``
the rule (a projector names its process while its dispatcher would claim; the other skips it).
Both run in this one process (one event loop), so the CPU figure is both dispatchers, both
projector stores and the feeder together; PostgreSQL's CPU is its processes'. Claims, empty
claims and rows per claim do not depend on the machine's load as CPU does.

    .venv/bin/python -m benchmarks.wakeup_race                       # 6 rounds of 15 s, 200/s
    .venv/bin/python -m benchmarks.wakeup_race --rounds off,on --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from benchmarks.common import children, cpu_seconds, percentile, run_interruptible
from hub.adapters.postgres.engine import create_engine, migrate
from hub.adapters.postgres.outbox import OutboxListener, PostgresOutbox
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.embedded import EmbeddedPostgres
from hub.ports import ClaimedDelivery, LoggedEvent
from hub.services.delivery_policy import RetryPolicy
from hub.services.dispatcher import Dispatcher
from hub.services.dispatcher_wakeup import Beside
from hub.services.projection import apply_events
from schemas import validate_event
from subscriptions.delivery import DeliveryTarget
from subscriptions.retry import RetrySchedule
from subscriptions.sender import DeliveryOutcome, Disposition


class _Sink:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.more = asyncio.Event()

    async def deliver(
        self, target: DeliveryTarget, event: Mapping[str, Any], msg_id: str, *, timeout_s: float | None = None
    ) -> DeliveryOutcome:
        self.arrived[str(event["id"])] = time.monotonic()
        self.more.set()
        return DeliveryOutcome(
            disposition=Disposition.DELIVERED, status_code=204, error=None, duration_ms=0.1
        )


class _Counted(PostgresOutbox):
    claims = 0
    empty = 0

    async def claim(
        self, limit: int, lease_seconds: float, room: Mapping[uuid.UUID, int] | None = None
    ) -> list[ClaimedDelivery]:
        got = await super().claim(limit, lease_seconds, room)
        type(self).claims += 1
        type(self).empty += not got
        return got


def _event(n: int) -> LoggedEvent:
    e = validate_event({
        "specversion": "1.0", "id": str(uuid.uuid4()), "type": "nl.example.thing.changed.v1",
        "source": "urn:nld:oin:00000001001234567000:systeem:bench", "subject": f"k{n}", "data": {"n": n},
    })  # fmt: skip
    return LoggedEvent(e, 0, n)


def _claiming(dispatcher: Dispatcher) -> Callable[[], bool]:
    return lambda: dispatcher.claiming


async def _round(url: str, rule: bool, rate: float, seconds: float, pg_pid: int) -> dict[str, float]:
    engine = create_engine(url, pool_size=6, pre_ping=False, synchronous_commit=False)
    sink, stop = _Sink(), asyncio.Event()
    rules = [Beside(writer="a"), Beside(writer="b")] if rule else [None, None]
    stores, listeners, runs = [], [], []
    for r in rules:
        stores.append(PostgresProjectionStore(engine, *((r.payload, r.committed) if r else ())))
        listener = OutboxListener(url, r.wakes if r else None)
        await listener.start()
        await listener.listening.wait()
        listeners.append(listener)
        d = Dispatcher(_Counted(engine), sink, RetryPolicy(RetrySchedule.of([1.0])), listener.wakeup)
        if r is not None:
            r.beside(_claiming(d), listener.wakeup.set)
        runs.append(asyncio.create_task(d.run(stop)))
    await asyncio.sleep(1.0)  # started and idle
    committed: dict[str, float] = {}
    _Counted.claims = _Counted.empty = 0
    pg_before = sum(cpu_seconds(p) or 0.0 for p in [pg_pid, *children(pg_pid)])
    cpu_before, started = time.process_time(), time.monotonic()
    n = 0
    while (due := started + n / rate) < started + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        logged = _event(n)
        await apply_events(stores[n % 2], [logged], None)
        committed[logged.event.id] = time.monotonic()
        n += 1
    async with asyncio.timeout(30):
        while len(sink.arrived) < n:
            sink.more.clear()
            await sink.more.wait()
    cpu = time.process_time() - cpu_before
    pg = sum(cpu_seconds(p) or 0.0 for p in [pg_pid, *children(pg_pid)]) - pg_before
    claims, empty = _Counted.claims, _Counted.empty
    stop.set()
    await asyncio.gather(*runs)
    for listener in listeners:
        await listener.stop()
    await engine.dispose()
    waits = [1000 * (sink.arrived[i] - t) for i, t in committed.items()]
    return {
        "claims_per_event": claims / n, "empty_per_event": empty / n,
        "cpu_ms_per_event": 1000 * cpu / n, "pg_ms_per_event": 1000 * pg / n,
        "commit_to_post_p50_ms": percentile(waits, 50), "commit_to_post_p99_ms": percentile(waits, 99),
    }  # fmt: skip


async def _main(args: argparse.Namespace) -> int:
    # As the hub runs: a delivered attempt is not logged (debug), so it costs nothing here either.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="koppelhub-bench-wakeup-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "postgres")
        url = postgres.start()
        try:
            migrate(url)
            engine = create_engine(url)
            await PostgresSubscriptionStore(engine).create(
                sink="https://sink.example/hook", protocol="HTTP", source=None, types=None, filters=[],
                headers={}, config={}, secret="whsec_" + "A" * 32,
            )  # fmt: skip
            await engine.dispose()
            pg_pid = int((Path(tmp) / "postgres" / "postmaster.pid").read_text().split()[0])
            results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
            for which in args.rounds:
                got = await _round(url, which == "on", args.rate, args.seconds, pg_pid)
                results[which].append(got)
                print(which, "  ".join(f"{k} {v:.3f}" for k, v in got.items()), flush=True)
            for which, rows in results.items():
                if rows:
                    print(f"median {which}:", "  ".join(
                        f"{k} {statistics.median(r[k] for r in rows):.3f}" for k in rows[0]))  # fmt: skip
        finally:
            postgres.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="events/s offered (200)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each round (15)")
    parser.add_argument("--rounds", type=lambda v: v.split(","), default="off,on,on,off,off,on".split(","),
                        help="off/on in the order to run them (off,on,on,off,off,on)")  # fmt: skip
    return run_interruptible(_main(parser.parse_args(argv))) or 0


if __name__ == "__main__":
    sys.exit(main())
