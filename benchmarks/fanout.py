"""Fan-out figures: 10,000 events to 10 subscriptions on local sinks (100,000 deliveries).

    .venv/bin/python -m benchmarks.fanout            # full run
    .venv/bin/python -m benchmarks.fanout --quick    # smoke run, 1,000 events

Starts ``koppelhub run`` as a separate process (embedded Tansu and PostgreSQL, fresh data dir)
and, per phase, ten webhook sinks in this process with one fresh subscription each:

- ``key`` / ``none``: subscriptions with ``ordering`` key / none, events published in batches
  while they are active; deliveries/s from the first publish to the last arrival, and latency
  publish → arrival (``data.sentns`` stamped just before each batch is sent) p50/p99;
- ``drain``: ordering key, subscriptions paused while the events are published and projected,
  then resumed together: the dispatcher alone, deliveries/s from resume to the last arrival;
- ``dead``: like ``key`` but one of the ten sinks refuses connections: the nine healthy
  subscriptions' throughput compared with the ``key`` phase (per subscription).

Floors (benchmarks.summary): issue 17's 4,000 deliveries/s and 40 % of the raw POST rate to
ten sinks of the same kind (benchmarks.limits, measured in the same run); issue 4's dead sink
lowering the others' throughput by less than 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import CpuMeter, describe_machine, free_port, machine_info, percentile
from benchmarks.hubprocess import Hub, start_hub
from benchmarks.limits import post_rate
from benchmarks.summary import failed, figures, table
from benchmarks.traffic import BATCH, Publisher, Sink, make_event, subscribe, wait_idle
from hub.settings import Settings

SUBSCRIPTIONS = 10


async def api(hub: Hub, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{hub.base_url}{path}", json=body, headers=hub.auth) as r,
    ):
        return await r.json(content_type=None) if r.status != 204 else None


class Fanout:
    def __init__(self, args: argparse.Namespace, hub: Hub):
        self.args, self.hub = args, hub
        self.meter = CpuMeter(hub.process_groups)
        self.tag = uuid.uuid4().hex[:8]
        self.results: dict[str, Any] = {}

    async def publish(self, ids: list[str]) -> float:
        """Publish in batches of 100 over 4 connections, stamping ``sentns`` per batch; returns t0."""
        pub = Publisher(self.hub, 4)
        chunks = iter([ids[k : k + 100] for k in range(0, len(ids), 100)])
        t0 = time.monotonic()

        async def worker() -> None:
            for chunk in chunks:
                now = time.monotonic_ns()
                events = []
                for e in chunk:
                    ev = make_event(e, int(e.rsplit("-", 1)[1]))
                    ev["data"]["sentns"] = now
                    events.append(ev)
                await pub.post(json.dumps(events).encode(), BATCH)

        try:
            await asyncio.gather(*(worker() for _ in range(4)))
        finally:
            await pub.close()
        return t0

    async def run_phase(self, name: str, ordering: str, *, dead: bool = False, paused: bool = False) -> None:
        n = self.args.events
        ids = [f"{self.tag}-{name}-{i}" for i in range(n)]
        sinks = [await Sink().start() for _ in range(SUBSCRIPTIONS - (1 if dead else 0))]
        subs = [await subscribe(self.hub, s.url, ordering=ordering) for s in sinks]
        if dead:
            dead_url = f"http://127.0.0.1:{free_port()}/hook"
            subs.append(await subscribe(self.hub, dead_url, ordering=ordering, validate=False))
        for s in sinks:
            s.expect(ids)
        try:
            if paused:
                for sub in subs:
                    await api(self.hub, "PATCH", f"/api/v1/subscriptions/{sub['id']}", {"enabled": False})
            cpu0 = self.meter.sample()
            t0 = await self.publish(ids)
            if paused:
                await wait_idle(self.meter, within=120)
                t0 = time.monotonic()
                cpu0 = self.meter.sample()
                await asyncio.gather(
                    *(
                        api(self.hub, "PATCH", f"/api/v1/subscriptions/{s['id']}", {"enabled": True})
                        for s in subs
                    )
                )
            complete = all(await asyncio.gather(*(s.wait_all(max(120.0, n / 50)) for s in sinks)))
            t_end = max(max(s.arrivals.values(), default=0) for s in sinks) / 1e9
            seconds = (t_end if complete else time.monotonic()) - t0
            delivered = sum(len([i for i in ids if i in s.arrivals]) for s in sinks)
            latencies = [
                (s.arrivals[i] - s.sent_ns[i]) / 1e6
                for s in sinks
                for i in ids
                if i in s.arrivals and i in s.sent_ns
            ]
            self.results[name] = {
                "ordering": ordering, "subscriptions": len(subs), "healthy_sinks": len(sinks),
                "events": n, "deliveries": delivered, "complete": complete, "seconds": round(seconds, 2),
                "deliveries_per_s": round(delivered / seconds, 1),
                "per_subscription_per_s": round(delivered / seconds / len(sinks), 1),
                "latency_ms_p50": round(percentile(latencies, 50), 1) if not paused else None,
                "latency_ms_p99": round(percentile(latencies, 99), 1) if not paused else None,
                "duplicates": sum(s.duplicates for s in sinks),
                "cpu_cores": CpuMeter.usage(cpu0, self.meter.sample(), seconds),
            }  # fmt: skip
            print(f"  {name}: {self.results[name]}", flush=True)
        finally:
            for sub in subs:
                await api(self.hub, "DELETE", f"/api/v1/subscriptions/{sub['id']}")
            for s in sinks:
                await s.stop()
        await wait_idle(self.meter, within=60)


async def measure_limits(args: argparse.Namespace) -> dict[str, Any]:
    """Raw POSTs to ten sinks of the same kind, as many in flight as the dispatcher's default
    (KOPPELHUB_DELIVERY_CONCURRENCY): the ceiling of the deliveries above."""
    sinks = [await Sink().start() for _ in range(SUBSCRIPTIONS)]
    try:
        requests = max(2_000, min(args.events * SUBSCRIPTIONS, 50_000))
        concurrency = Settings().delivery.concurrency
        return {
            "post": (
                await post_rate([s.url for s in sinks], requests=requests, concurrency=concurrency)
            ).as_dict()
        }
    finally:
        for s in sinks:
            await s.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_info(), "params": vars(args)}
    print(describe_machine(results["machine"]), flush=True)
    hub = await start_hub(env=dict(kv.split("=", 1) for kv in args.env))
    try:
        bench = Fanout(args, hub)
        warm = await Sink().start()
        sub = await subscribe(hub, warm.url)
        ids = [f"{bench.tag}-warm-{i}" for i in range(200)]
        warm.expect(ids)
        await bench.publish(ids)
        await warm.wait_all(120)
        await api(hub, "DELETE", f"/api/v1/subscriptions/{sub['id']}")
        await warm.stop()
        await wait_idle(bench.meter)
        plan = {"key": ("key", {}), "none": ("none", {}), "drain": ("key", {"paused": True}),
                "dead": ("key", {"dead": True})}  # fmt: skip
        for name in args.phases:
            ordering, options = plan[name]
            print(f"running {name} …", flush=True)
            await bench.run_phase(name, ordering, **options)
        results.update(bench.results)
        if not args.no_limits:
            print("measuring the raw POST rate to ten sinks …", flush=True)
            results["limits"] = await measure_limits(args)
    except BaseException:
        print(hub.log_tail(60))
        raise
    finally:
        code = await hub.stop()
        print(f"hub stopped, exit code {code}")
        if code != 0:
            print(hub.log_tail())
        hub.remove()
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fanout", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=10_000, help="events per phase (10,000)")
    p.add_argument(
        "--phases",
        type=lambda v: [x.strip() for x in v.split(",") if x.strip()],
        default=["key", "none", "drain", "dead"],
        help="subset of key,none,drain,dead",
    )
    p.add_argument("--env", action="append", default=[], metavar="KOPPELHUB_X=V", help="hub setting")
    p.add_argument("--quick", action="store_true", help="smoke run: 1,000 events per phase")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--no-limits", action="store_true", help="skip measuring the raw POST rate")
    p.add_argument("--check", action="store_true", help="exit 1 when a floor is missed")
    args = p.parse_args(argv)
    if args.quick:
        args.events = min(args.events, 1_000)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(main_async(args))
    print("\n| phase | deliveries | seconds | deliveries/s | per subscription/s | p50 ms | p99 ms | cores |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("key", "none", "drain", "dead"):
        r = results.get(name)
        if r:
            cores = " ".join(f"{k} {v}" for k, v in r["cpu_cores"].items())
            cells = [
                f"{r['deliveries']:,}", r["seconds"], f"{r['deliveries_per_s']:,}",
                f"{r['per_subscription_per_s']:,}", r["latency_ms_p50"], r["latency_ms_p99"], cores,
            ]  # fmt: skip
            print(f"| {name} | " + " | ".join(str(f) for f in cells) + " |")
    rows = figures("fanout", results)
    print("\n" + table(rows, results.get("limits")))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 1 if args.check and failed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
