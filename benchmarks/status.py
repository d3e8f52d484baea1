"""Latency of ``GET /api/v1/status`` on a loaded hub: 1,000 subscriptions, 100,000 pending
deliveries (plus 100,000 delivered ones as history, 20 failing subscriptions with attempts).

    .venv/bin/python -m benchmarks.status            # 50 calls after the set-up
    .venv/bin/python -m benchmarks.status --calls 200
    .venv/bin/python -m benchmarks.status --explain  # also EXPLAIN ANALYZE each store query

Starts ``koppelhub run`` (embedded Tansu and PostgreSQL, fresh data dir), publishes 1,000 events
and waits until they are projected (the log has offsets to report), fills the tables with
set-based SQL (the subscriptions are paused or disabled, so the dispatcher leaves the pending
rows alone), then calls the endpoint one at a time and prints p50, p99 and max. Issue 15's
floor: answers within 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
import psycopg

from benchmarks.common import CpuMeter, describe_machine, machine_info, percentile
from benchmarks.hubprocess import start_hub
from benchmarks.traffic import BATCH, Publisher, make_event

SETUP = """
INSERT INTO subscriptions (sink, secret, status, failing_since, consecutive_failures, last_error)
SELECT 'http://127.0.0.1:9/hook-' || g, 'whsec_' || md5(g::text),
       CASE WHEN g <= 20 THEN 'disabled' ELSE 'paused' END,
       CASE WHEN g <= 20 THEN now() - interval '1 hour' END,
       CASE WHEN g <= 20 THEN 100 ELSE 0 END,
       CASE WHEN g <= 20 THEN 'http_503' END
  FROM generate_series(1, 1000) g;
WITH s AS (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM subscriptions)
INSERT INTO deliveries (subscription_id, archive_seq, event_id, ordering_key, status, attempts, delivered_at)
SELECT s.id, g, 'bench-' || g, 'key-' || (g % 97),
       CASE WHEN g <= 100000 THEN 'pending' ELSE 'delivered' END,
       CASE WHEN g <= 100000 THEN 0 ELSE 1 END,
       CASE WHEN g <= 100000 THEN NULL ELSE now() - interval '2 hours' END
  FROM generate_series(1, 200000) g JOIN s ON s.n = 1 + (g % 1000);
INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
SELECT d.id, 1, now() - interval '30 minutes', 12.5, 503, NULL
  FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
 WHERE s.status = 'disabled' AND d.status = 'pending';
UPDATE deliveries SET attempts = 1 WHERE id IN (SELECT delivery_id FROM delivery_attempts);
"""


def explain(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, float]:
    """Execution time (ms, from EXPLAIN ANALYZE) of each statement of the store's status: on a
    loaded machine a steadier figure than the endpoint's wall clock."""
    from hub.adapters.postgres import operations

    times: dict[str, float] = {}
    for name in operations.STATUS_STATEMENTS:
        sql = (
            str(getattr(operations, name))
            .replace(":limit", "50")
            .replace(":cap", str(operations.EXACT_UP_TO + 1))
        )
        best = float("inf")
        for _ in range(5):
            plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql).fetchone()  # type: ignore[call-overload]
            assert plan is not None
            best = min(best, float(plan[0][0]["Execution Time"]))
        times[name] = round(best, 2)
    times["total"] = round(sum(times.values()), 2)
    return times


async def main(calls: int, *, explained: bool = False) -> dict[str, object]:
    hub = await start_hub()
    try:
        # Events first, projected before any subscription exists: the log has offsets to
        # report and the projector is idle while the endpoint is measured.
        publisher = Publisher(hub, connections=4)
        try:
            bodies = [
                (json.dumps([make_event(f"b{b}-{i}", i) for i in range(100)]).encode(), 100)
                for b in range(10)
            ]
            assert await publisher.post_all(bodies, BATCH, workers=4) == 1000
        finally:
            await publisher.close()
        async with aiohttp.ClientSession(base_url=hub.base_url, headers=hub.auth) as http:
            for _ in range(600):
                async with http.get("/api/v1/status") as r:
                    if (await r.json())["log"]["lag"] == 0:
                        break
                await asyncio.sleep(0.1)
        url = f"postgresql://postgres@/postgres?host={hub.data_dir / 'postgres'}"
        started = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SETUP)  # type: ignore[call-overload]
            conn.execute("VACUUM ANALYZE")  # as autovacuum would, soon after: index-only scans
            db_ms = explain(conn) if explained else {}
        setup_s = time.monotonic() - started
        latencies: list[float] = []
        async with aiohttp.ClientSession(base_url=hub.base_url, headers=hub.auth) as http:
            doc: dict[str, object] = {}
            meter = CpuMeter(hub.process_groups)
            cpu_before: dict[str, float] = {}
            for n in range(calls + 3):
                if n == 3:
                    cpu_before = meter.sample()
                t0 = time.perf_counter()
                async with http.get("/api/v1/status") as r:
                    assert r.status == 200, await r.text()
                    doc = await r.json()
                if n >= 3:  # the first calls warm connections and plans
                    latencies.append((time.perf_counter() - t0) * 1000)
            cpu_after = meter.sample()
        # CPU per call (the hub's idle loops included): steadier than latency on a busy machine
        cpu_ms = {
            k: round((cpu_after[k] - cpu_before[k]) / calls * 1000, 2) for k in ("hub", "broker", "postgres")
        }
        cpu_ms["hub"] += round((cpu_after["work"] - cpu_before["work"]) / calls * 1000, 2)  # every role
        return {
            "machine": describe_machine(machine_info()),
            "setup_seconds": round(setup_s, 1),
            "calls": calls,
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(max(latencies), 1),
            "cpu_ms_per_call": cpu_ms,
            "db_ms_best_of_5": db_ms,
            "outbox": doc["outbox"],
            "subscriptions": doc["subscriptions"]["byStatus"],  # type: ignore[index]
            "failing_listed": len(doc["subscriptions"]["failing"]),  # type: ignore[index]
            "log": {k: doc["log"][k] for k in ("lag", "partitions", "members")},  # type: ignore[index]
        }
    finally:
        await hub.stop()
        hub.remove()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE each store statement")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.calls, explained=args.explain)), indent=2))
