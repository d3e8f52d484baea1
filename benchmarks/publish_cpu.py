"""CPU per publish request in the API process: what the publish floors are bounded by.

    .venv/bin/python -m benchmarks.publish_cpu                       # 3,000 single, 200 batches of 100
    .venv/bin/python -m benchmarks.publish_cpu --py-spy /tmp/api      # also py-spy profiles per phase

Starts ``koppelhub run`` with ``KOPPELHUB_WORKERS=2`` (one api+connectors child, one
projector+dispatcher child) and no subscription, then publishes structured events (16 in flight)
and batches (4 in flight). It reports the CPU time of the api child (``/proc/<pid>/stat``) per
request and per event: on a shared machine wall-clock rates say little, CPU per request says
what one core could do. Beside it, per event, the CPU of the PostgreSQL backend of the
write-ahead log's group commit (``application_name`` ``koppelhub-write-ahead``: the ``COPY``
of every accepted event), of all PostgreSQL processes (the projector's work included) and of
the broker (more, smaller produce requests cost it more).
``--py-spy DIR`` records the api child during each phase (py-spy must
be installed; its ``--idle`` is off, so the profile is CPU only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg

from benchmarks.common import _stat, children
from benchmarks.hubprocess import Hub, start_hub
from benchmarks.traffic import BATCH, STRUCTURED, Publisher, make_event

#: The group commit's connection (hub.adapters.postgres.write_ahead.APPLICATION_NAME).
WRITE_AHEAD_APPLICATION = "koppelhub-write-ahead"


def api_children(hub: Hub) -> list[int]:
    """The pids of the children serving the API (``koppelhub worker --roles api,…``)."""
    found = []
    for pid in children(hub.process.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in argv and any(a.startswith(b"api") for a in argv):
            found.append(pid)
    return found


def write_ahead_backends(hub: Hub) -> list[int]:
    """The PostgreSQL backends of the write-ahead group commit (one per api child), found in
    ``pg_stat_activity`` through the embedded server's socket; none without the write-ahead log."""
    with psycopg.connect(host=str(hub.data_dir / "postgres"), user="postgres", dbname="postgres") as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [WRITE_AHEAD_APPLICATION]
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def cpu_seconds(pids: Sequence[int]) -> float:
    return sum(s[1] for s in (_stat(p) for p in pids) if s is not None)


async def phase(
    hub: Hub, name: str, bodies: list[tuple[bytes, int]], mode: str, workers: int, spy: Path | None
) -> dict[str, object]:
    pids = api_children(hub)
    groups = hub.process_groups()
    wal, postgres, broker = write_ahead_backends(hub), groups["postgres"], groups["broker"]
    recorder = None
    if spy is not None and shutil.which("py-spy"):
        out = spy / f"{name}.txt"
        recorder = await asyncio.create_subprocess_exec(
            "py-spy", "record", "--nonblocking", "-r", "200", "-f", "raw", "-o", str(out), "-p", str(pids[0]),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.sleep(1.0)
    pub = Publisher(hub, workers)
    cpu0, t0, load0 = cpu_seconds(pids), time.monotonic(), os.getloadavg()[0]
    wal0, pg0, broker0 = cpu_seconds(wal), cpu_seconds(postgres), cpu_seconds(broker)
    try:
        accepted = await pub.post_all(bodies, mode, workers)
    finally:
        await pub.close()
    seconds, cpu = time.monotonic() - t0, cpu_seconds(pids) - cpu0
    wal_cpu, pg_cpu = cpu_seconds(wal) - wal0, cpu_seconds(postgres) - pg0
    broker_cpu = cpu_seconds(broker) - broker0
    if recorder is not None:
        recorder.send_signal(signal.SIGINT)
        await asyncio.wait_for(recorder.wait(), timeout=30)
    events = sum(n for _, n in bodies)
    result = {
        "requests": len(bodies), "events": events, "accepted": accepted, "statuses": dict(pub.statuses),
        "api_cpu_s": round(cpu, 3), "cpu_us_per_request": round(cpu / len(bodies) * 1e6),
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
        "write_ahead_backend_us_per_event": round(wal_cpu / events * 1e6, 1),
        "postgres_us_per_event": round(pg_cpu / events * 1e6, 1),
        "broker_us_per_event": round(broker_cpu / events * 1e6, 1),
        "wall_events_per_s": round(accepted / seconds),
        "load_average_1m": round((load0 + os.getloadavg()[0]) / 2, 2),
    }  # fmt: skip
    print(f"{name}: {json.dumps(result)}", flush=True)
    return result


async def main_async(args: argparse.Namespace) -> None:
    hub = await start_hub(env={"KOPPELHUB_WORKERS": "2", **dict(kv.split("=", 1) for kv in args.hub_env)})
    tag = uuid.uuid4().hex[:8]
    try:
        ten = range(10)
        warm = [(json.dumps([make_event(f"{tag}-w{i}-{k}", k) for k in ten]).encode(), 10) for i in range(50)]
        await phase(hub, "warm-up", warm, BATCH, 4, None)
        for name in args.phases:
            if name == "structured":
                bodies = [(json.dumps(make_event(f"{tag}-s-{i}", i)).encode(), 1) for i in range(args.single)]
                await phase(hub, name, bodies, STRUCTURED, 16, args.py_spy)
            else:
                n = args.batch_size
                bodies = [
                    (json.dumps([make_event(f"{tag}-b-{i}-{k}", k) for k in range(n)]).encode(), n)
                    for i in range(args.batches)
                ]
                await phase(hub, name, bodies, BATCH, 4, args.py_spy)
    finally:
        await hub.stop()
        hub.remove()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.publish_cpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--single", type=int, default=3000, help="structured requests (3,000)")
    p.add_argument("--batches", type=int, default=200, help="batch requests (200)")
    p.add_argument("--batch-size", type=int, default=100, help="events per batch (100)")
    p.add_argument("--phases", default="structured,batch", type=lambda v: v.split(","))
    p.add_argument("--py-spy", type=Path, metavar="DIR", help="py-spy raw profiles of the api child")
    p.add_argument("--hub-env", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    if args.py_spy is not None:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
