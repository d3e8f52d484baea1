"""What metrics and tracing cost: ``benchmarks.e2e``'s batch phase with them off, then on.

    .venv/bin/python -m benchmarks.observability                  # 8 rounds of 5,000 events
    .venv/bin/python -m benchmarks.observability --configs off,metrics+tracing=always_on

Issue 15's bound: metrics and tracing switched on cost at most 5 % of end-to-end throughput.
One hub per config is started in a fresh data dir (one sink and one subscription each) and
warmed up; then every round publishes ``--events`` fresh events to each hub in turn (the e2e
batch phase, until the sink has every one and the hub is idle again), in an order that changes
from round to round (:func:`benchmarks.paired.balanced_orders`):

- ``off``: ``KOPPELHUB_METRICS=false`` and ``OTEL_SDK_DISABLED=true``;
- ``metrics``: the defaults (Prometheus, multiprocess files), no tracing;
- ``metrics+tracing``: and the OpenTelemetry SDK exporting OTLP/HTTP to a collector stand-in
  on loopback (a real HTTP server that decodes each request and counts its spans, then
  discards them), sampled by ``--sampler`` (``parentbased_traceidratio:0.1``, the README's
  production advice) or by its own (``metrics+tracing=parentbased_always_on``). The embedded
  Tansu broker reads the same variables and exports its own metrics there (broker CPU, not the
  hub's).

Per config it prints the median and the spread of delivered events/s and of the hub's CPU per
delivered event (user+system time of the hub's processes from /proc, API and worker children
included; not the broker's or PostgreSQL's), and against ``off`` the paired cost: the median of
the per-round ratios with a 95 % bootstrap interval, and whether that interval is within the
5 % bound, over it, or undecided (:mod:`benchmarks.paired`). Spans the collector received are
counted, so a processor that dropped spans (and so saved their cost) shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import e2e
from benchmarks.collector import Collector
from benchmarks.common import REPO, cpu_seconds, describe_machine, machine_info
from benchmarks.hubprocess import Hub, start_hub
from benchmarks.paired import aa_resolves, balanced_orders, paired_cost, per_round_mean, spread, verdict
from benchmarks.traffic import Sink, subscribe

OFF = {"KOPPELHUB_METRICS": "false", "OTEL_SDK_DISABLED": "true"}
METRICS = {"OTEL_SDK_DISABLED": "true"}
CONFIGS = ("off", "metrics", "metrics+tracing")
#: The tag of the reference's second hub, added to every run unless --no-aa: the A/A pair.
AA = "#aa"
#: Issue 15: metrics and tracing switched on cost at most 5 %.
BOUND = 0.05


def parse_config(config: str) -> tuple[str, str | None, bool]:
    """``NAME[#TAG][=SAMPLER][@baseline]``: the config's name, its own sampler (metrics+tracing
    only) and whether it runs the ``--baseline`` tree. A tag makes a second hub of the same config
    (``off,off#2``: an A/A comparison shows what two hubs differ by with nothing changed)."""
    rest, at, _ = config.partition("@")
    name, eq, sampler = rest.partition("=")
    return name.partition("#")[0], (sampler if eq else None), bool(at)


def hub_env(
    config: str, endpoint: str, baseline: Path | None = None, sampler: str = "parentbased_always_on"
) -> dict[str, str]:
    """The hub's environment for ``config``; ``<config>@baseline`` runs the code in the
    ``--baseline`` tree (first on PYTHONPATH, for the hub and its children). ``sampler`` is
    OTEL_TRACES_SAMPLER, with its argument after a colon (``parentbased_traceidratio:0.25``),
    unless the config names its own (``metrics+tracing=always_on``)."""
    name, own, at_baseline = parse_config(config)
    if at_baseline:
        assert baseline is not None
        return {**hub_env(config.partition("@")[0], endpoint, sampler=sampler), "PYTHONPATH": str(baseline)}
    if name == "off":
        return dict(OFF)
    if name == "metrics":
        return dict(METRICS)
    name, _, arg = (own or sampler).partition(":")
    return {
        "OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": name, "OTEL_SERVICE_NAME": "koppelhub-bench",
        **({"OTEL_TRACES_SAMPLER_ARG": arg} if arg else {}),
    }  # fmt: skip


def cpu_by_process(hub: Hub) -> dict[str, float]:
    """CPU seconds of each of the hub's processes, by its roles (``run`` for the parent)."""
    out: dict[str, float] = {}
    groups = hub.process_groups()
    for pid in groups["hub"] + groups["work"]:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if Path(f"/proc/{pid}").exists() else []
        name = argv[argv.index(b"--roles") + 1].decode() if b"--roles" in argv else "run"
        if "pg_watchdog" in b" ".join(argv).decode(errors="replace"):
            name = "pg_watchdog"
        stat = cpu_seconds(pid)
        if stat is not None:
            out[name] = out.get(name, 0.0) + stat
    return out


@dataclass
class Running:
    """One config's hub, its sink and subscription, kept for every round."""

    config: str
    hub: Hub
    sink: Sink
    bench: e2e.Bench
    traces: str  # the collector path its spans arrive on
    #: The partitions of each projector member after the warm-up (from /api/v1/status): a hub
    #: whose members split them unevenly would batch differently from its pair.
    members: list[list[int]] = field(default_factory=list)


async def start(config: str, endpoint: str, args: argparse.Namespace) -> Running:
    """A hub with ``config`` and a sink of its own, subscribed and warmed up."""
    sink = await Sink().start()
    endpoint = f"{endpoint}/{''.join(c if c.isalnum() or c in '._' else '-' for c in config)}"
    traces = f"/{endpoint.split('/', 3)[3]}/v1/traces"
    # A baseline's workers run `python -m hub` in its tree: its code, not this checkout's.
    cwd = args.baseline if parse_config(config)[2] else REPO
    try:
        hub = await start_hub(env=hub_env(config, endpoint, args.baseline, args.sampler), cwd=cwd)
    except BaseException:
        await sink.stop()
        raise
    running = Running(config, hub, sink, e2e.Bench(e2e.parse_args(
        ["--phases", "batch", "--events", str(args.events)]), hub, sink), traces)  # fmt: skip
    try:
        await subscribe(hub, sink.url)
        await running.bench.warm_up()
        running.members = await members(hub)
    except BaseException:
        await stop(running)
        raise
    return running


async def members(hub: Hub) -> list[list[int]]:
    """Each projector member's partitions, as ``GET /api/v1/status`` reports them."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{hub.base_url}/api/v1/status", headers=hub.auth) as r:
            status = await r.json()
    return sorted(sorted(m.get("partitions", [])) for m in status["log"]["members"])


async def stop(running: Running) -> None:
    await running.hub.stop()
    running.hub.remove()
    await running.sink.stop()


async def measure(running: Running, round_: int) -> dict[str, Any]:
    """One batch phase (``--events`` fresh events) on an idle hub: its hub CPU per delivered
    event, from the first publish until the hub is idle again after the last delivery."""
    bench = running.bench
    bench.tag = f"r{round_}-{uuid.uuid4().hex[:8]}"  # fresh event ids every round
    bench.results = {}
    before, by_process0 = bench.meter.sample(), cpu_by_process(running.hub)
    await bench.batch_phase()  # waits until the hub is idle again after the last delivery
    after, by_process = bench.meter.sample(), cpu_by_process(running.hub)
    delivered = bench.results["e2e_delivered"]
    hub_cpu = after["hub"] + after["work"] - before["hub"] - before["work"]
    n = max(1, delivered["delivered"])
    return {
        "config": running.config, "round": round_, "events": delivered["events"],
        "delivered": delivered["delivered"], "events_per_s": delivered["events_per_s"],
        "seconds": delivered["seconds"], "hub_cpu_s": round(hub_cpu, 3),
        "hub_cpu_us_per_event": round(hub_cpu / n * 1e6, 1),
        "postgres_cpu_s": round(after["postgres"] - before["postgres"], 3),
        # Tansu reads the OTEL_* variables too and exports its own metrics: its CPU competes
        # with the hub's for the machine, so it shows in the throughput, not in the hub's CPU.
        "broker_cpu_us_per_event": round((after["broker"] - before["broker"]) / n * 1e6, 1),
        "hub_cpu_us_per_event_by_process": {
            k: round((v - by_process0.get(k, 0.0)) / n * 1e6, 1) for k, v in by_process.items()
        }, "other_cores": delivered["cpu_cores"].get("other"),
    }  # fmt: skip


async def one_round(hubs: Sequence[Running], round_: int, *, together: bool) -> list[dict[str, Any]]:
    """One batch phase on each hub (in the order given): all at the same time (``together``),
    so every hub meets the same machine from its first event to its last, or one after the
    other (the e2e figure of a hub alone, but each phase meets the load of its own seconds)."""
    if together:
        return list(await asyncio.gather(*(measure(h, round_) for h in hubs)))
    return [await measure(h, round_) for h in hubs]


async def started(
    hubs: dict[str, Running], configs: Sequence[str], endpoint: str, args: argparse.Namespace
) -> None:
    """Start (and warm up) a hub for each of ``configs``, in that order, into ``hubs``."""
    for config in configs:
        hubs[config] = await start(config, endpoint, args)
        print(f"started {config}: projector members' partitions {hubs[config].members}", flush=True)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Each round runs one batch phase on every config's hub in :func:`balanced_orders`, all at
    once unless ``--apart``; with ``--fresh`` every round starts its hubs anew (fresh data dirs,
    in the round's order) and stops them after, else each config's hub is kept for every round.
    The paired summary relies on the phases of one round meeting the same machine: at once they
    do (an A/A pair then differs by 1-3 %, on a machine at a load of 5-14); one after the other
    their seconds differ, and on a shared machine so does the load (A/A pairs 10-20 % apart)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    runs: list[dict[str, Any]] = []
    hubs: dict[str, Running] = {}
    spans = dict.fromkeys(args.configs, 0)
    members: dict[str, list[list[list[int]]]] = {c: [] for c in args.configs}
    try:
        if not args.fresh:
            await started(hubs, args.configs, endpoint, args)
        for round_, order in enumerate(balanced_orders(args.configs, args.rounds), 1):
            print(f"round {round_} at {time.strftime('%H:%M:%S')}, load {os.getloadavg()[0]:.1f}", flush=True)
            if args.fresh:
                await started(hubs, order, endpoint, args)
            spans0 = {c: Collector.by_path.get(r.traces, 0) for c, r in hubs.items()}
            for r in await one_round([hubs[c] for c in order], round_, together=not args.apart):
                runs.append(r)
                print(f"round {round_}: {r['config']:<40} {r['events_per_s']:>8,.0f}/s "
                      f"{r['hub_cpu_us_per_event']:>7,.0f} us/event", flush=True)  # fmt: skip
            if args.fresh or round_ == args.rounds:
                if not args.fresh:  # the span processor's schedule delay (5 s): the last spans arrive
                    await asyncio.sleep(6)
                for config, running in list(hubs.items()):
                    if args.fresh:  # a stopped hub has flushed its spans
                        await stop(hubs.pop(config))
                    spans[config] += Collector.by_path.get(running.traces, 0) - spans0[config]
                    members[config].append(running.members)
    finally:
        for running in hubs.values():
            await stop(running)
        server.shutdown()
    return {
        "machine": machine_info(), "together": not args.apart, "fresh": args.fresh, "runs": runs,
        "spans_received": spans, "members": members, "undecodable_requests": Collector.undecodable,
        "summary": summarise(runs, args.bound),
    }  # fmt: skip


def summarise(runs: Sequence[dict[str, Any]], bound: float = BOUND) -> dict[str, Any]:
    """Per config the median and range of its CPU per event and throughput over the rounds and,
    against ``off`` (or the first config), the paired cost with its 95 % interval and verdict.
    With the reference's A/A pair (``off`` and ``off#aa``) the reference of each round is the
    mean of the two, the A/A cost (``off#aa`` against ``off``) is the pair's own entry, and a
    verdict is only given when that pair shows the method resolves the bound
    (:func:`benchmarks.paired.aa_resolves`)."""
    configs = list(dict.fromkeys(r["config"] for r in runs))
    by = {c: sorted((r for r in runs if r["config"] == c), key=lambda r: r["round"]) for c in configs}
    reference = "off" if "off" in by else configs[0]
    pair = by.get(reference + AA)
    cpu_of = {c: [r["hub_cpu_us_per_event"] for r in mine] for c, mine in by.items()}
    rate_of = {c: [r["events_per_s"] for r in mine] for c, mine in by.items()}
    ref_cpu, ref_rate = cpu_of[reference], rate_of[reference]
    aa: dict[str, Any] | None = None
    if pair is not None and len(pair) == len(by[reference]):
        aa = paired_cost(cpu_of[reference + AA], ref_cpu)
        ref_cpu = per_round_mean(ref_cpu, cpu_of[reference + AA])
        ref_rate = per_round_mean(ref_rate, rate_of[reference + AA])
    out: dict[str, Any] = {}
    for config, mine in by.items():
        cpu, rate = cpu_of[config], rate_of[config]
        figures: dict[str, Any] = {"rounds": len(mine), "hub_cpu_us_per_event": spread(cpu),
                                   "events_per_s": spread(rate), "broker_cpu_us_per_event":
                                   spread([r["broker_cpu_us_per_event"] for r in mine])}  # fmt: skip
        if config == reference + AA and aa is not None:
            figures |= {"reference": reference, "aa": True, "cpu_cost": aa, "cpu_verdict":
                        "resolves" if aa_resolves(aa, bound) else "too wide",
                        "throughput_cost": paired_cost(rate_of[reference], rate)}  # fmt: skip
        elif config != reference and len(ref_cpu) == len(mine):
            cpu_cost = paired_cost(cpu, ref_cpu)
            # Throughput lost: 1 - rate/rate_ref, as a cost (positive when slower).
            slower = paired_cost(ref_rate, rate)
            figures |= {"reference": reference if aa is None else f"{reference}, {reference}{AA}",
                        "cpu_cost": cpu_cost, "cpu_verdict": verdict(cpu_cost, bound, aa),
                        "throughput_cost": slower,
                        "throughput_verdict": verdict(slower, bound, aa)}  # fmt: skip
        out[config] = figures
    return out


def table(summary: dict[str, Any], bound: float = BOUND) -> str:
    def cost(c: dict[str, Any] | None) -> str:
        if c is None:
            return f"{'(reference)':>26}"
        return f"{c['median'] * 100:>+6.1f}% [{c['low'] * 100:+5.1f}, {c['high'] * 100:+5.1f}]"

    lines = [
        f"{'config':<40} {'delivered/s':>11} {'±':>5} {'hub CPU/event':>13} {'±':>5} "
        f"{'CPU cost [95 %]':>26} {'throughput cost [95 %]':>26} {'broker':>9}  verdict (≤{bound:.0%})"
    ]
    for config, f in summary.items():
        rate, cpu = f["events_per_s"], f["hub_cpu_us_per_event"]
        verdicts = ""
        if f.get("aa"):
            verdicts = f"A/A: the method {f['cpu_verdict']} ±{bound / 2:.1%} (two identical hubs)"
        elif "cpu_cost" in f:
            verdicts = f"CPU {f['cpu_verdict']}, throughput {f['throughput_verdict']}"
        lines.append(
            f"{config:<40} {rate['median']:>11,.0f} {rate['spread']:>5.0%} {cpu['median']:>10,.0f} us "
            f"{cpu['spread']:>5.0%} {cost(f.get('cpu_cost'))} {cost(f.get('throughput_cost'))} "
            f"{f['broker_cpu_us_per_event']['median']:>6,.0f} us  {verdicts}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.observability", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--events", type=int, default=5_000, help="events in each round's batch phase (5,000)")
    p.add_argument("--rounds", type=int, default=8, help="rounds, each config once per round (8)")
    p.add_argument("--configs", type=lambda v: [c for c in v.split(",") if c], default=list(CONFIGS),
                   help=f"comma-separated NAME[=SAMPLER][@baseline]; NAME: {','.join(CONFIGS)}")  # fmt: skip
    p.add_argument("--baseline", type=Path, metavar="TREE",
                   help="a checkout (e.g. of main) whose code <config>@baseline runs")  # fmt: skip
    p.add_argument("--sampler", default="parentbased_traceidratio:0.1", metavar="NAME[:ARG]",
                   help="OTEL_TRACES_SAMPLER[:OTEL_TRACES_SAMPLER_ARG] of metrics+tracing "
                   "(parentbased_traceidratio:0.1: one trace in ten, the README's advice)")  # fmt: skip
    p.add_argument("--bound", type=float, default=BOUND, help="the cost bound judged (0.05)")
    p.add_argument("--apart", action="store_true",
                   help="run each round's phases one after the other, not at once: each hub alone "
                   "on the machine (e2e's figure), but phases meet different loads")  # fmt: skip
    p.add_argument("--fresh", action="store_true",
                   help="start every round's hubs anew (fresh data dirs, in the round's order) "
                   "instead of keeping one hub per config for every round")  # fmt: skip
    p.add_argument("--no-aa", dest="aa", action="store_false",
                   help=f"no second hub of the reference ({CONFIGS[0]}{AA}): no A/A check")  # fmt: skip
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = p.parse_args(argv)
    reference = "off" if "off" in args.configs else args.configs[0]
    if args.aa and reference + AA not in args.configs:
        args.configs.insert(args.configs.index(reference) + 1, reference + AA)
    parsed = [parse_config(c) for c in args.configs]
    if any(at for _, _, at in parsed) and args.baseline is None:
        p.error("a <config>@baseline needs --baseline TREE")
    if unknown := {name for name, _, _ in parsed} - set(CONFIGS):
        p.error(f"unknown config(s): {', '.join(sorted(unknown))}")
    if len(set(args.configs)) != len(args.configs):
        p.error("a config given twice")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(describe_machine(machine_info()), flush=True)
    results = asyncio.run(main_async(args))
    print("\n" + table(results["summary"], args.bound))
    received = ", ".join(f"{c} {n}" for c, n in results["spans_received"].items())
    print(
        "(hub CPU per delivered event: /proc user+system of the hub's processes; broker: Tansu's CPU per "
        "event; ± the half range over the rounds; cost: median of the per-round ratios to the reference; "
        f"spans received: {received})"
    )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
