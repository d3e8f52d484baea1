"""How long ``GET /healthz`` waits while the hub takes one big publish batch.

Starts ``koppelhub run`` (embedded broker and PostgreSQL), then publishes one
``application/cloudevents-batch+json`` request of ``--events`` small events while a second
connection asks ``/healthz`` every ``--interval`` seconds; prints p50/p99/max of those answers
and the publish time. Issue 9's floor: ``/healthz`` never stalls beyond 200 ms.

    .venv/bin/python -m benchmarks.healthz_stall                     # 10,000 events, the batch cap
    .venv/bin/python -m benchmarks.healthz_stall --env KOPPELHUB_HTTP_PARSE_OFFLOAD_BYTES=999999999
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from benchmarks.common import percentile
from benchmarks.hubprocess import start_hub


def batch(n: int) -> bytes:
    envelope = {"specversion": "1.0", "source": "urn:nld:b", "type": "nl.b.t.v1"}
    return json.dumps([{**envelope, "id": f"e{i}", "data": {"n": i}} for i in range(n)]).encode()


async def measure(base_url: str, auth: dict[str, str], events: int, interval: float) -> dict[str, float]:
    body = batch(events)
    latencies: list[float] = []
    done = asyncio.Event()
    async with aiohttp.ClientSession() as probe, aiohttp.ClientSession() as publisher:
        async with probe.get(f"{base_url}/healthz") as r:  # warm the probe's connection
            await r.read()

        async def poll() -> None:
            while not done.is_set():
                started = time.perf_counter()
                async with probe.get(f"{base_url}/healthz") as r:
                    await r.read()
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(interval)

        poller = asyncio.create_task(poll())
        started = time.perf_counter()
        headers = {**auth, "content-type": "application/cloudevents-batch+json"}
        async with publisher.post(f"{base_url}/api/v1/events", data=body, headers=headers) as r:
            status = r.status
            await r.read()
        publish_seconds = time.perf_counter() - started
        done.set()
        await poller
    return {
        "status": status,
        "bytes": len(body),
        "publish_s": publish_seconds,
        "probes": len(latencies),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
    }


async def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument(
        "--events", type=int, default=10_000, help="events in the batch (KOPPELHUB_MAX_BATCH_EVENTS: 10,000)"
    )
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between /healthz probes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the hub, repeatable")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    hub = await start_hub(env=env)
    try:
        for round_ in range(1, args.rounds + 1):
            figures = await measure(hub.base_url, hub.auth, args.events, args.interval)
            print(
                f"round {round_}: {figures['status']} for {args.events} events ({figures['bytes']} bytes) "
                f"in {figures['publish_s']:.2f} s; /healthz over {figures['probes']} probes: "
                f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
                f"max {figures['max_ms']:.1f} ms"
            )
    finally:
        await hub.stop()
        hub.remove()


if __name__ == "__main__":
    asyncio.run(main())
