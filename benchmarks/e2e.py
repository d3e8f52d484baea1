"""End-to-end figures: publish throughput, delivered events/s, and latency at a fixed rate.

    .venv/bin/python -m benchmarks.e2e            # full run (make bench)
    .venv/bin/python -m benchmarks.e2e --quick    # smoke run, small numbers

Starts ``koppelhub run`` as a separate process on embedded Tansu and PostgreSQL in a fresh
temporary data dir, runs a webhook sink in this process with one subscription to it, and
publishes through ``POST /api/v1/events``. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pstats
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import (
    BATCH,
    STRUCTURED,
    CpuMeter,
    Hub,
    Publisher,
    Sink,
    describe_machine,
    machine_info,
    make_event,
    percentile,
    start_hub,
    wait_idle,
)

FLOOR_DELIVERED_PER_S = 1000.0
FLOOR_P99_MS = 250.0
PHASES = ("batch", "structured", "latency")


class Bench:
    def __init__(self, args: argparse.Namespace, hub: Hub, sink: Sink):
        self.args = args
        self.hub = hub
        self.sink = sink
        self.meter = CpuMeter(hub.process_groups)
        self.tag = uuid.uuid4().hex[:8]
        self.results: dict[str, Any] = {}

    def ids(self, phase: str, n: int) -> list[str]:
        return [f"{self.tag}-{phase}-{i}" for i in range(n)]

    async def settle(self, phase: str, ids: list[str], within: float) -> float | None:
        """Wait until the sink has every id (monotonic time of the last first arrival)."""
        if not await self.sink.wait_all(within):
            print(
                f"  ! {phase}: {self.sink.missing} of {len(ids)} events not delivered within {within:.0f} s"
            )
            return None
        return max(self.sink.arrivals[i] for i in ids) / 1e9

    async def idle(self) -> None:
        await wait_idle(self.meter, within=30)

    async def warm_up(self) -> None:
        """Join the consumer group, open pools and connections before anything is measured."""
        ids = self.ids("warmup", 200)
        pub = Publisher(self.hub, 4)
        started = time.monotonic()
        try:
            self.sink.expect(ids)
            bodies = [
                json.dumps([make_event(i, n) for n, i in enumerate(ids[k : k + 20])]).encode()
                for k in range(0, len(ids), 20)
            ]
            await pub.post_all([(b, 20) for b in bodies], BATCH, 4)
            ok = await self.settle("warm-up", ids, 120)
        finally:
            await pub.close()
        if ok is None:
            raise RuntimeError("warm-up events were not delivered; see the hub log")
        print(f"warm-up: 200 events delivered in {time.monotonic() - started:.1f} s")
        await self.idle()

    async def batch_phase(self) -> None:
        """Publish N events in batches of 100; measure accepted/s and delivered/s end to end."""
        n, size, conns = self.args.events, self.args.batch_size, self.args.connections
        ids = self.ids("batch", n)
        events = [make_event(event_id, i) for i, event_id in enumerate(ids)]
        bodies = [json.dumps(events[k : k + size]).encode() for k in range(0, n, size)]
        del events
        self.sink.expect(ids)
        pub = Publisher(self.hub, conns)
        cpu0 = self.meter.sample()
        t0 = time.monotonic()
        try:
            accepted = await pub.post_all([(b, size) for b in bodies], BATCH, conns)
        finally:
            await pub.close()
        t_pub = time.monotonic()
        cpu_pub = self.meter.sample()
        last = await self.settle("batch", ids, max(120.0, n / 100))
        t_end = last if last is not None else time.monotonic()
        cpu_end = self.meter.sample()
        delivered = len(ids) - self.sink.missing
        self.results["publish_batch"] = {
            "events": n,
            "batch_size": size,
            "connections": conns,
            "accepted": accepted,
            "seconds": round(t_pub - t0, 3),
            "events_per_s": round(accepted / (t_pub - t0), 1),
            "requests_per_s": round(len(bodies) / (t_pub - t0), 1),
            "statuses": dict(pub.statuses),
            "cpu_cores": CpuMeter.usage(cpu0, cpu_pub, t_pub - t0),
        }
        self.results["e2e_delivered"] = {
            "events": n,
            "delivered": delivered,
            "complete": last is not None,
            "seconds": round(t_end - t0, 3),
            "events_per_s": round(delivered / (t_end - t0), 1),
            "after_publish_s": round(t_end - t_pub, 3),
            "cpu_cores_after_publish": CpuMeter.usage(cpu_pub, cpu_end, time.monotonic() - t_pub),
        }
        await self.idle()

    async def structured_phase(self) -> None:
        """Single events in structured mode, ``--single-concurrency`` requests in flight."""
        n, conc = self.args.single_events, self.args.single_concurrency
        ids = self.ids("single", n)
        bodies = [json.dumps(make_event(event_id, i)).encode() for i, event_id in enumerate(ids)]
        self.sink.expect(ids)
        pub = Publisher(self.hub, conc)
        cpu0 = self.meter.sample()
        t0 = time.monotonic()
        try:
            accepted = await pub.post_all([(b, 1) for b in bodies], STRUCTURED, conc)
        finally:
            await pub.close()
        seconds = time.monotonic() - t0
        cpu1 = self.meter.sample()
        last = await self.settle("structured", ids, max(120.0, n / 50))
        self.results["publish_structured"] = {
            "events": n,
            "concurrency": conc,
            "accepted": accepted,
            "seconds": round(seconds, 3),
            "events_per_s": round(accepted / seconds, 1),
            "statuses": dict(pub.statuses),
            "delivered_all_after_s": round(last - t0, 3) if last is not None else None,
            "cpu_cores": CpuMeter.usage(cpu0, cpu1, seconds),
        }
        await self.idle()

    async def latency_phase(self) -> None:
        """Offer ``--rate`` single events/s for ``--duration`` s on a monotonic schedule."""
        rate, duration = self.args.rate, self.args.duration
        n = int(rate * duration)
        ids = self.ids("latency", n)
        self.sink.expect(ids)
        pub = Publisher(self.hub, 64)
        loop = asyncio.get_running_loop()
        lag: list[float] = []
        sent_at: list[float] = []

        async def send(i: int) -> None:
            event = make_event(ids[i], i)
            event["data"]["sentns"] = time.monotonic_ns()
            await pub.post(json.dumps(event).encode(), STRUCTURED, (ids[i],))

        tasks: list[asyncio.Task[None]] = []
        cpu0 = self.meter.sample()
        start = loop.time() + 0.05
        try:
            for i in range(n):
                due = start + i / rate
                if (delay := due - loop.time()) > 0:
                    await asyncio.sleep(delay)
                now = loop.time()
                lag.append(now - due)
                sent_at.append(now)
                tasks.append(asyncio.create_task(send(i)))
            await asyncio.gather(*tasks)
        finally:
            await pub.close()
        cpu1 = self.meter.sample()
        last = await self.settle("latency", ids, 60)
        latencies = [
            (self.sink.arrivals[i] - self.sink.sent_ns[i]) / 1e6 for i in ids if i in self.sink.sent_ns
        ]
        acks = [
            (pub.ack_ns[i] - self.sink.sent_ns[i]) / 1e6
            for i in ids
            if i in pub.ack_ns and i in self.sink.sent_ns
        ]
        span = sent_at[-1] - sent_at[0] if n > 1 else 0.0
        self.results["latency"] = {
            "offered_rate": rate,
            "duration_s": duration,
            "events": n,
            "achieved_rate": round((n - 1) / span, 1) if span > 0 else float(n),
            "max_send_lag_ms": round(max(lag) * 1000, 2),
            "accepted": pub.statuses.get(202, 0),
            "delivered": len(latencies),
            "complete": last is not None,
            **{f"p{p}_ms": round(percentile(latencies, p), 1) for p in (50, 95, 99)},
            "max_ms": round(max(latencies), 1) if latencies else None,
            "publish_ack_p50_ms": round(percentile(acks, 50), 1),
            "publish_ack_p99_ms": round(percentile(acks, 99), 1),
            "cpu_cores": CpuMeter.usage(cpu0, cpu1, loop.time() - start),
        }


async def subscribe(hub: Hub, sink: Sink) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{hub.base_url}/api/v1/subscriptions", json={"sink": sink.url}, headers=hub.auth) as r,
    ):
        body = await r.json(content_type=None)
        if r.status != 201:
            raise RuntimeError(f"creating the subscription failed: {r.status} {body}")
        return str(body["id"])


def floors(results: dict[str, Any]) -> list[dict[str, Any]]:
    e2e, lat = results.get("e2e_delivered", {}), results.get("latency", {})
    delivered = e2e.get("events_per_s") if e2e.get("complete") else None
    p99 = lat.get("p99_ms") if lat.get("complete") else None
    return [
        {
            "floor": f"delivered end to end >= {FLOOR_DELIVERED_PER_S:,.0f} events/s",
            "value": delivered,
            "unit": "events/s",
            "pass": delivered is not None and delivered >= FLOOR_DELIVERED_PER_S,
        },
        {
            "floor": f"p99 < {FLOOR_P99_MS:.0f} ms at {lat.get('offered_rate', '?')} events/s offered",
            "value": p99,
            "unit": "ms",
            "pass": p99 is not None and p99 < FLOOR_P99_MS,
        },
    ]


def table(results: dict[str, Any]) -> str:
    rows = [("figure", "value")]
    if b := results.get("publish_batch"):
        rows += [
            (
                f"publish, batch mode ({b['batch_size']}/request, {b['connections']} connections)",
                f"{b['events_per_s']:,.0f} events/s accepted ({b['requests_per_s']:,.0f} requests/s)",
            )
        ]
    if s := results.get("publish_structured"):
        rows += [
            (
                f"publish, structured mode ({s['concurrency']} concurrent)",
                f"{s['events_per_s']:,.0f} events/s accepted",
            )
        ]
    if e := results.get("e2e_delivered"):
        rows += [
            (
                f"end to end, {e['events']:,} events publish -> sink",
                f"{e['events_per_s']:,.0f} events/s delivered ({e['delivered']:,} in {e['seconds']:.1f} s)",
            )
        ]
    if lat := results.get("latency"):
        rows += [
            (
                f"offered {lat['offered_rate']:.0f} events/s for {lat['duration_s']:.0f} s",
                f"achieved {lat['achieved_rate']:.1f}/s, delivered {lat['delivered']:,}/{lat['events']:,}",
            ),
            (
                "latency publish -> delivery p50 / p95 / p99 / max",
                f"{lat['p50_ms']:.1f} / {lat['p95_ms']:.1f} / {lat['p99_ms']:.1f} / {lat['max_ms']:.1f} ms",
            ),
            (
                "  of which publish -> 202 p50 / p99",
                f"{lat['publish_ack_p50_ms']:.1f} / {lat['publish_ack_p99_ms']:.1f} ms",
            ),
        ]
    for f in results.get("floors", []):
        shown = "n/a" if f["value"] is None else f"{f['value']:,} {f['unit']}"
        rows.append((f"floor: {f['floor']}", f"{shown}  {'PASS' if f['pass'] else 'FAIL'}"))
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b}" for a, b in rows]
    lines.insert(1, "-" * len(max(lines, key=len)))
    return "\n".join(lines)


def print_cpu(results: dict[str, Any]) -> None:
    print("\nCPU cores used per process (2 cores = 2.0; 'other' = load outside this benchmark):")
    for name, key in (
        ("publish_batch", "cpu_cores"),
        ("e2e_delivered", "cpu_cores_after_publish"),
        ("publish_structured", "cpu_cores"),
        ("latency", "cpu_cores"),
    ):
        if name in results:
            cores = results[name][key]
            print(
                f"  {name + ' ' + key.removeprefix('cpu_cores').strip('_'):<36} "
                + "  ".join(f"{k} {v:.2f}" for k, v in cores.items())
            )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    info = machine_info()
    print(describe_machine(info))
    results: dict[str, Any] = {
        "machine": info,
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    sink = await Sink().start()
    started = time.monotonic()
    hub = await start_hub(profile=args.profile_hub)
    print(f"hub ready in {time.monotonic() - started:.1f} s at {hub.base_url} (data dir {hub.data_dir})")
    try:
        await subscribe(hub, sink)
        bench = Bench(args, hub, sink)
        await bench.warm_up()
        for name in args.phases:
            print(f"running {name} …", flush=True)
            await getattr(bench, f"{name}_phase")()
        results.update(bench.results)
    finally:
        try:
            code = await hub.stop()
            print(f"hub stopped (SIGTERM, drained) in {hub.stop_seconds:.1f} s, exit code {code}")
            if code != 0:
                print(hub.log_tail())
        finally:
            await sink.stop()
            if not args.keep_data:
                hub.remove()
    results["sink"] = {"requests": sink.requests, "duplicates": sink.duplicates}
    results["floors"] = floors(results)
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000, help="events in the batch-mode phase (20,000)")
    p.add_argument("--batch-size", type=int, default=100, help="events per batch request (100)")
    p.add_argument(
        "--connections", type=int, default=4, help="concurrent publish connections, batch mode (4)"
    )
    p.add_argument("--single-events", type=int, default=2_000, help="events in structured mode (2,000)")
    p.add_argument("--single-concurrency", type=int, default=16, help="requests in flight, structured (16)")
    p.add_argument("--rate", type=float, default=200.0, help="offered events/s in the latency phase (200)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of the latency phase (20)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2,000 / 300 events, 5 s latency phase")
    p.add_argument(
        "--json",
        type=Path,
        nargs="?",
        const=Path("-"),
        default=None,
        help="also write the results as JSON (to stdout, or to the given file)",
    )
    p.add_argument(
        "--profile-hub",
        type=Path,
        default=None,
        metavar="FILE",
        help="run the hub under cProfile, write its stats to FILE and print the top entries",
    )
    p.add_argument("--keep-data", action="store_true", help="keep the temporary data dir and hub.log")
    p.add_argument("--check", action="store_true", help="exit 1 when a floor is missed")
    p.add_argument(
        "--phases",
        type=lambda v: [x.strip() for x in v.split(",") if x.strip()],
        default=list(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (all)",
    )
    args = p.parse_args(argv)
    if unknown := set(args.phases) - set(PHASES):
        p.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    if args.quick:
        args.events, args.single_events, args.duration = min(args.events, 2_000), 300, 5.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(main_async(args))
    print_cpu(results)
    print()
    print(table(results))
    if args.profile_hub is not None and args.profile_hub.exists():
        print(f"\nhub profile ({args.profile_hub}), top 25 by own time:")
        pstats.Stats(str(args.profile_hub), stream=sys.stdout).sort_stats("tottime").print_stats(25)
    if args.json is not None:
        text = json.dumps(results, indent=2, default=str)
        if str(args.json) == "-":
            print(text)
        else:
            args.json.write_text(text + "\n")
    return 1 if args.check and not all(f["pass"] for f in results["floors"]) else 0


if __name__ == "__main__":
    sys.exit(main())
