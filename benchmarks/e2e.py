"""End-to-end figures: publish throughput, delivered events/s, and latency at a fixed rate.

    .venv/bin/python -m benchmarks.e2e            # full run (make bench)
    .venv/bin/python -m benchmarks.e2e --quick    # smoke run, small numbers

Starts ``koppelhub run`` as a separate process on embedded Tansu and PostgreSQL in a fresh
temporary data dir, runs a webhook sink in this process with one subscription to it, and
publishes through ``POST /api/v1/events``. benchmarks/README.md says what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CpuMeter,
    describe_machine,
    machine_info,
    percentile,
    run_interruptible,
    write_json,
)
from benchmarks.hubprocess import Hub, start_hub
from benchmarks.issuer import LoopbackIssuer
from benchmarks.limits import broker_rates, post_rate
from benchmarks.stages import stage_lines, stage_times
from benchmarks.summary import failed, figures
from benchmarks.summary import table as summary_table
from benchmarks.traffic import (
    BATCH,
    STRUCTURED,
    Publisher,
    Sink,
    make_event,
    subscribe,
    systeem_token,
    wait_idle,
)

PHASES = ("batch", "structured", "latency")


class Bench:
    """The phases, run one after the other against one hub and one sink."""

    def __init__(self, args: argparse.Namespace, hub: Hub, sink: Sink):
        self.args, self.hub, self.sink = args, hub, sink
        self.meter = CpuMeter(hub.process_groups)
        self.tag = uuid.uuid4().hex[:8]  # fresh event ids per run and phase
        self.results: dict[str, Any] = {}

    def ids(self, phase: str, n: int) -> list[str]:
        return [f"{self.tag}-{phase}-{i}" for i in range(n)]

    async def settle(self, phase: str, ids: list[str], within: float) -> float | None:
        """Wait until the sink has every id; the monotonic time the last one arrived, or None."""
        if not await self.sink.wait_all(within):
            print(f"  ! {phase}: {self.sink.missing} of {len(ids)} events not delivered in {within:.0f} s")
            return None
        return max(self.sink.arrivals[i] for i in ids) / 1e9

    async def publish(
        self, phase: str, ids: list[str], per_request: int, workers: int
    ) -> tuple[dict[str, Any], float, float | None]:
        """Publish ``ids`` (batch mode when ``per_request`` > 1), wait for their delivery.

        Returns the publish figures, the start time, and when the last event arrived (or None)."""
        chunks = [ids[k : k + per_request] for k in range(0, len(ids), per_request)]
        if per_request > 1:
            mode = BATCH
            bodies = [(json.dumps([make_event(e, int(e.rsplit("-", 1)[1])) for e in c]).encode(), len(c))
                      for c in chunks]  # fmt: skip
        else:
            mode = STRUCTURED
            bodies = [(json.dumps(make_event(c[0], n)).encode(), 1) for n, c in enumerate(chunks)]
        self.sink.expect(ids)
        pub = Publisher(self.hub, workers)
        cpu0, api0, t0 = self.meter.sample(), self.hub.api_cpu_seconds(), time.monotonic()
        try:
            accepted = await pub.post_all(bodies, mode, workers)
        finally:
            await pub.close()
        seconds = time.monotonic() - t0
        api_cpu = self.hub.api_cpu_seconds() - api0
        figures = {
            "events": len(ids), "per_request": per_request, "connections": workers, "accepted": accepted,
            "seconds": round(seconds, 3), "events_per_s": round(accepted / seconds, 1),
            "requests_per_s": round(len(bodies) / seconds, 1), "statuses": dict(pub.statuses),
            "cpu_cores": CpuMeter.usage(cpu0, self.meter.sample(), seconds),
            "api_cpu_us_per_event": round(api_cpu / accepted * 1e6, 1) if accepted else None,
        }  # fmt: skip
        last = await self.settle(phase, ids, max(120.0, len(ids) / 100))
        return figures, t0, last

    async def warm_up(self) -> None:
        """Join the consumer group, fill pools and connections before anything is measured."""
        started = time.monotonic()
        _, _, last = await self.publish("warm-up", self.ids("warmup", 200), 20, 4)
        if last is None:
            raise RuntimeError(f"warm-up events were not delivered; hub log:\n{self.hub.log_tail()}")
        print(f"warm-up: 200 events delivered in {time.monotonic() - started:.1f} s", flush=True)
        await wait_idle(self.meter)

    async def batch_phase(self) -> None:
        """N events in batches; accepted/s, and delivered/s from the first publish to the last arrival."""
        a = self.args
        ids = self.ids("batch", a.events)
        cpu0 = self.meter.sample()
        figures, t0, last = await self.publish("batch", ids, a.batch_size, a.connections)
        t_end = last if last is not None else time.monotonic()
        delivered = len(ids) - self.sink.missing
        self.results["publish_batch"] = figures
        self.results["e2e_delivered"] = {
            "events": len(ids), "delivered": delivered, "complete": last is not None,
            "seconds": round(t_end - t0, 3), "events_per_s": round(delivered / (t_end - t0), 1),
            "cpu_cores": CpuMeter.usage(cpu0, self.meter.sample(), time.monotonic() - t0),
        }  # fmt: skip
        await wait_idle(self.meter)

    async def structured_phase(self) -> None:
        """Single events in structured mode, ``--single-concurrency`` requests in flight."""
        ids = self.ids("single", self.args.single_events)
        figures, t0, last = await self.publish("structured", ids, 1, self.args.single_concurrency)
        figures["all_delivered_after_s"] = round(last - t0, 3) if last is not None else None
        self.results["publish_structured"] = figures
        await wait_idle(self.meter)

    async def latency_phase(self) -> None:
        """Offer ``--rate`` single events/s for ``--duration`` s on a monotonic schedule; each
        event carries its send time (``data.sentns``, CLOCK_MONOTONIC), the sink its arrival."""
        rate, duration = self.args.rate, self.args.duration
        ids = self.ids("latency", int(rate * duration))
        self.sink.expect(ids)
        pub = Publisher(self.hub, 64)
        loop = asyncio.get_running_loop()
        lag: list[float] = []

        async def send(i: int) -> None:
            event = make_event(ids[i], i)
            event["data"]["sentns"] = time.monotonic_ns()
            await pub.post(json.dumps(event).encode(), STRUCTURED, (ids[i],))

        tasks: list[asyncio.Task[None]] = []
        cpu0, start = self.meter.sample(), loop.time() + 0.05
        try:
            for i in range(len(ids)):
                due = start + i / rate  # the schedule, not sleep-after-send: no drift
                if (delay := due - loop.time()) > 0:
                    await asyncio.sleep(delay)
                lag.append(loop.time() - due)
                tasks.append(asyncio.create_task(send(i)))
            span = loop.time() - start
            await asyncio.gather(*tasks)
        finally:
            await pub.close()
        cpu = CpuMeter.usage(cpu0, self.meter.sample(), loop.time() - start)
        last = await self.settle("latency", ids, 60)
        sent, arrived = self.sink.sent_ns, self.sink.arrivals
        latency = [(arrived[i] - sent[i]) / 1e6 for i in ids if i in sent]
        ack = [(pub.ack_ns[i] - sent[i]) / 1e6 for i in ids if i in pub.ack_ns and i in sent]
        self.results["latency"] = {
            "offered_rate": rate, "duration_s": duration, "events": len(ids),
            "achieved_rate": round((len(ids) - 1) / span, 1) if len(ids) > 1 and span > 0 else None,
            "max_send_lag_ms": round(max(lag, default=0.0) * 1000, 2), "accepted": pub.statuses[202],
            "delivered": len(latency), "complete": last is not None,
            **{f"p{p}_ms": round(percentile(latency, p), 1) for p in (50, 95, 99, 100)},
            "publish_202_p50_ms": round(percentile(ack, 50), 1),
            "publish_202_p99_ms": round(percentile(ack, 99), 1), "cpu_cores": cpu,
            "load_average": os.getloadavg(),
            "stages": await stage_times(self.hub.data_dir, ids, sent, arrived),
        }  # fmt: skip


async def measure_limits(hub: Hub, sink: Sink, args: argparse.Namespace) -> dict[str, Any]:
    """The machine's raw rates in this run (benchmarks.limits): POSTs to the same sink, and
    produce and consume on the hub's broker."""
    requests = max(1_000, min(args.events, 20_000))
    post = await post_rate([sink.url], requests=requests, concurrency=64)
    bootstrap = json.loads((hub.data_dir / "broker.json").read_text())["bootstrap"]
    produce, consume = await broker_rates(bootstrap, records=requests)
    return {"post": post.as_dict(), "produce": produce.as_dict(), "consume": consume.as_dict()}


def table(results: dict[str, Any]) -> str:
    rows = [("figure", "value")]
    if b := results.get("publish_batch"):
        rows.append(
            (
                f"publish, batch mode ({b['per_request']}/request, {b['connections']} connections)",
                f"{b['events_per_s']:,.0f} events/s accepted ({b['requests_per_s']:,.0f} requests/s)",
            )
        )
    if s := results.get("publish_structured"):
        rows.append(
            (
                f"publish, structured mode ({s['connections']} concurrent)",
                f"{s['events_per_s']:,.0f} events/s accepted ({s['accepted']:,} events)",
            )
        )
    if e := results.get("e2e_delivered"):
        rows.append(
            (
                f"end to end, {e['events']:,} batch events publish -> sink",
                f"{e['events_per_s']:,.0f} events/s delivered ({e['delivered']:,} in {e['seconds']:.1f} s)",
            )
        )
    if lat := results.get("latency"):
        ms = " / ".join(f"{lat[f'p{p}_ms']:.1f}" for p in (50, 95, 99, 100))
        rows += [
            (f"offered {lat['offered_rate']:.0f} events/s for {lat['duration_s']:.0f} s",
             f"achieved {lat['achieved_rate']} events/s; delivered {lat['delivered']:,}/{lat['events']:,}"),
            ("latency publish -> delivery p50 / p95 / p99 / max", f"{ms} ms"),
            ("  of which publish -> 202 p50 / p99",
             f"{lat['publish_202_p50_ms']:.1f} / {lat['publish_202_p99_ms']:.1f} ms"),
            ("  load average (1, 5, 15 min) at its end", " / ".join(f"{x:.1f}" for x in lat["load_average"])),
        ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b}" for a, b in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    if lat and lat.get("stages"):
        lines += ["latency per stage (benchmarks/stages.py):", *stage_lines(lat["stages"])]
    return "\n".join(lines)


def cpu_lines(results: dict[str, Any]) -> list[str]:
    lines = ["CPU cores used per process group ('other' = load outside this benchmark):"]
    for name in ("publish_batch", "e2e_delivered", "publish_structured", "latency"):
        if cores := results.get(name, {}).get("cpu_cores"):
            lines.append(f"  {name:<20}" + "  ".join(f"{k} {v:.2f}" for k, v in cores.items()))
    return lines


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_info()}
    results["params"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    print(describe_machine(results["machine"]), flush=True)
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)  # finally: stop the hub
    sink = await Sink().start()
    issuer = await LoopbackIssuer().start() if args.credential == "jwt" else None
    try:
        started = time.monotonic()
        env = dict(kv.split("=", 1) for kv in args.hub_env) | (issuer.hub_env() if issuer else {})
        hub = await start_hub(profile=args.profile_hub, env=env)
        print(f"hub ready in {time.monotonic() - started:.1f} s on {hub.base_url}, {hub.workdir}", flush=True)
        try:
            await subscribe(hub, sink.url)
            if args.credential == "token":  # publish as a municipality's system: token lookup + checks
                hub.token = await systeem_token(hub)
            elif issuer is not None:  # an OIDC identity: the JWT check (its result kept up to 60 s)
                hub.token = issuer.token(["functioneel-beheerder"])
            bench = Bench(args, hub, sink)
            try:
                await bench.warm_up()
                for name in args.phases:
                    print(f"running {name} …", flush=True)
                    await getattr(bench, f"{name}_phase")()
                if not args.no_limits:
                    print("measuring the raw limits (POST to the sink, broker produce/consume) …", flush=True)
                    results["limits"] = await measure_limits(hub, sink, args)
            finally:
                results.update(bench.results)
        finally:
            code = await hub.stop()
            print(f"hub stopped (SIGTERM, drained) in {hub.stop_seconds or 0:.1f} s, exit code {code}")
            if code != 0:
                print(hub.log_tail())
            if not args.keep_data:
                hub.remove()
    finally:
        await sink.stop()
        if issuer is not None:
            await issuer.stop()
    results["sink"] = {"requests": sink.requests, "duplicates": sink.duplicates}
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--events", type=int, default=20_000, help="events in the batch-mode phase (20,000)")
    add("--batch-size", type=int, default=100, help="events per batch request (100)")
    add("--connections", type=int, default=4, help="concurrent publish connections in batch mode (4)")
    add("--single-events", type=int, default=2_000, help="events in the structured-mode phase (2,000)")
    add("--single-concurrency", type=int, default=16, help="requests in flight, structured mode (16)")
    add("--rate", type=float, default=200.0, help="offered events/s in the latency phase (200)")
    add("--duration", type=float, default=20.0, help="seconds of the latency phase (20)")
    add("--quick", action="store_true", help="smoke run: 2,000 batch and 300 single events, 5 s latency")
    add("--json", type=Path, nargs="?", const=Path("-"), metavar="FILE",
        help="also write the results as JSON, to FILE or (without FILE) to stdout")  # fmt: skip
    add("--phases", type=lambda v: [x.strip() for x in v.split(",") if x.strip()], default=list(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (all)")  # fmt: skip
    add("--profile-hub", type=Path, metavar="FILE", help="run the hub under cProfile, stats to FILE")
    add("--keep-data", action="store_true", help="keep the temporary data dir and hub.log")
    add("--credential", choices=["admin", "token", "jwt", "systeem"], default="admin",
        help="publish with the admin token, a systeem API token (role checks per event; 'systeem' is "
             "its old name), or an RS256 JWT of a loopback OIDC issuer (functioneel-beheerder)")  # fmt: skip
    add("--hub-env", action="append", default=[], metavar="KEY=VALUE",
        help="a setting for the hub, e.g. KOPPELHUB_WRITE_AHEAD=false (repeatable)")  # fmt: skip
    add("--no-limits", action="store_true", help="skip measuring the raw limits (benchmarks.limits)")
    add("--check", action="store_true", help="exit 1 when a floor is missed")
    args = p.parse_args(argv)
    if unknown := set(args.phases) - set(PHASES):
        p.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    if args.credential == "systeem":
        args.credential = "token"
    if args.quick:
        args.events, args.single_events, args.duration = min(args.events, 2_000), 300, 5.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = run_interruptible(main_async(args))
    if results is None:
        return 130
    rows = figures("e2e", results)
    print("\n" + "\n".join(cpu_lines(results)) + "\n\n" + table(results))
    print("\n" + summary_table(rows, results.get("limits")))
    if args.profile_hub is not None and args.profile_hub.exists():
        print(f"\nhub profile ({args.profile_hub}), top 25 by own time (cProfile inflates Python time):")
        pstats.Stats(str(args.profile_hub), stream=sys.stdout).sort_stats("tottime").print_stats(25)
    if args.json is not None:
        write_json(args.json, results)
    return 1 if args.check and failed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
