"""What metrics and tracing cost: ``benchmarks.e2e``'s batch phase with them off, then on.

    .venv/bin/python -m benchmarks.observability                  # 20,000 events per run
    .venv/bin/python -m benchmarks.observability --events 5000 --rounds 2

Issue 15's bound: metrics and tracing switched on cost at most 5 % of end-to-end throughput.
Each round starts ``koppelhub run`` three times in fresh data dirs, one sink and one
subscription each, and publishes the same batches (``benchmarks.e2e``'s batch phase):

- ``off``: ``KOPPELHUB_METRICS=false`` and ``OTEL_SDK_DISABLED=true``;
- ``metrics``: the defaults (Prometheus, multiprocess files), no tracing;
- ``metrics+tracing``: and the OpenTelemetry SDK exporting OTLP/HTTP to a collector stand-in
  on loopback (a real HTTP server that decodes each request and counts its spans, then
  discards them), every trace sampled (``parentbased_always_on``). The embedded Tansu broker
  reads the same variables and exports its own metrics there (broker CPU, not the hub's).

It prints, as means over the rounds, delivered events/s and the hub's CPU per delivered
event (user+system time of the hub's processes from /proc, API and worker children included;
not the broker's or
PostgreSQL's) for each, and the cost of each against ``off``. On a machine shared with other
work the throughput follows that load; the CPU per event is the comparable figure. Spans the
collector received are counted, so a processor that dropped spans (and so saved their
cost) shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from benchmarks import e2e
from benchmarks.common import (
    REPO,
    Hub,
    Sink,
    cpu_seconds,
    describe_machine,
    machine_info,
    start_hub,
    subscribe,
    wait_idle,
)

OFF = {"KOPPELHUB_METRICS": "false", "OTEL_SDK_DISABLED": "true"}
METRICS = {"OTEL_SDK_DISABLED": "true"}
CONFIGS = ("off", "metrics", "metrics+tracing")


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that counts the spans in each export request and discards them;
    keep-alive, as an OpenTelemetry Collector is."""

    protocol_version = "HTTP/1.1"

    spans = 0
    requests = 0
    by_path: ClassVar[dict[str, int]] = {}  # spans per request path: each hub has its own
    undecodable = 0  # kept in /tmp/koppelhub-otlp-undecodable-<n>.bin to look at
    lock = threading.Lock()

    def do_POST(self) -> None:
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if not self.path.endswith("/v1/traces"):  # the embedded Tansu exports its metrics here too
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        try:
            request = ExportTraceServiceRequest.FromString(body)
        except DecodeError:
            with Collector.lock:
                Collector.undecodable += 1
                Path(f"/tmp/koppelhub-otlp-undecodable-{Collector.undecodable}.bin").write_bytes(body)
            self.send_response(400)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        n = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with Collector.lock:
            Collector.spans += n
            Collector.by_path[self.path] = Collector.by_path.get(self.path, 0) + n
            Collector.requests += 1
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def hub_env(
    config: str, endpoint: str, baseline: Path | None = None, sampler: str = "parentbased_always_on"
) -> dict[str, str]:
    """The hub's environment for ``config``; ``<config>@baseline`` runs the code in the
    ``--baseline`` tree (first on PYTHONPATH, for the hub and its children). ``sampler`` is
    OTEL_TRACES_SAMPLER, with its argument after a colon (``parentbased_traceidratio:0.25``)."""
    name, at, _ = config.partition("@")
    if at:
        assert baseline is not None
        return {**hub_env(name, endpoint, sampler=sampler), "PYTHONPATH": str(baseline)}
    if config == "off":
        return dict(OFF)
    if config == "metrics":
        return dict(METRICS)
    name, _, arg = sampler.partition(":")
    return {
        "OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": name, "OTEL_SERVICE_NAME": "koppelhub-bench",
        **({"OTEL_TRACES_SAMPLER_ARG": arg} if arg else {}),
    }  # fmt: skip


def cpu_by_process(hub: Hub) -> dict[str, float]:
    """CPU seconds of each of the hub's processes, by its roles (``run`` for the parent)."""
    out: dict[str, float] = {}
    for pid in hub.process_groups()["hub"]:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if Path(f"/proc/{pid}").exists() else []
        name = argv[argv.index(b"--roles") + 1].decode() if b"--roles" in argv else "run"
        if "pg_watchdog" in b" ".join(argv).decode(errors="replace"):
            name = "pg_watchdog"
        stat = cpu_seconds(pid)
        if stat is not None:
            out[name] = out.get(name, 0.0) + stat
    return out


async def run_config(config: str, endpoint: str, args: argparse.Namespace) -> dict[str, Any]:
    """One hub with ``config`` and a sink of its own: warm up, the batch phase, and its hub CPU
    per delivered event."""
    sink = await Sink().start()
    endpoint = f"{endpoint}/{config.replace('@', '-').replace('+', '-')}"  # the spans of this hub
    traces = f"/{endpoint.split('/', 3)[3]}/v1/traces"
    # A baseline's workers run `python -m hub` in its tree: its code, not this checkout's.
    cwd = args.baseline if config.endswith("@baseline") else REPO
    hub = await start_hub(env=hub_env(config, endpoint, args.baseline, args.sampler), cwd=cwd)
    try:
        await subscribe(hub, sink.url)
        bench_args = e2e.parse_args(["--phases", "batch", "--events", str(args.events)])
        bench = e2e.Bench(bench_args, hub, sink)
        await bench.warm_up()
        spans0 = Collector.by_path.get(traces, 0)
        before, by_process0 = bench.meter.sample(), cpu_by_process(hub)
        await bench.batch_phase()  # waits until the hub is idle again after the last delivery
        after, by_process = bench.meter.sample(), cpu_by_process(hub)
        await wait_idle(bench.meter)
        await asyncio.sleep(6)  # the span processor's schedule delay (5 s): the last spans arrive
        delivered = bench.results["e2e_delivered"]
        hub_cpu = after["hub"] - before["hub"]
        spans = Collector.by_path.get(traces, 0) - spans0
        return {
            "config": config, "events": args.events, "delivered": delivered["delivered"],
            "events_per_s": delivered["events_per_s"], "seconds": delivered["seconds"],
            "hub_cpu_s": round(hub_cpu, 3),
            "hub_cpu_us_per_event": round(hub_cpu / max(1, delivered["delivered"]) * 1e6, 1),
            "postgres_cpu_s": round(after["postgres"] - before["postgres"], 3),
            "spans_received": spans,
            "hub_cpu_us_per_event_by_process": {
                k: round((v - by_process0.get(k, 0.0)) / max(1, delivered["delivered"]) * 1e6, 1)
                for k, v in by_process.items()
            }, "undecodable_requests": Collector.undecodable,
            "other_cores": delivered["cpu_cores"].get("other"),
        }  # fmt: skip
    finally:
        await hub.stop()
        hub.remove()
        await sink.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    runs: list[dict[str, Any]] = []
    try:
        for round_ in range(args.rounds):
            if args.together:  # every config at once: each meets the same load from the rest
                print(f"round {round_ + 1}: {', '.join(args.configs)} together …", flush=True)
                started = time.monotonic()
                together = await asyncio.gather(*(run_config(c, endpoint, args) for c in args.configs))
                for run in together:
                    print(f"  {json.dumps(run)}", flush=True)
                print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
                runs.extend(together)
                continue
            for config in args.configs:
                print(f"round {round_ + 1}: {config} …", flush=True)
                started = time.monotonic()
                runs.append(await run_config(config, endpoint, args))
                print(f"  {json.dumps(runs[-1])} ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        server.shutdown()
    return {"machine": machine_info(), "runs": runs, "summary": summarise(runs)}


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per config the mean CPU per event and throughput over the rounds, and each one's cost
    against off (on a busy machine single runs differ by ±10 %: run several rounds)."""
    out: dict[str, Any] = {}
    for config in dict.fromkeys(r["config"] for r in runs):
        mine = [r for r in runs if r["config"] == config]
        if mine:
            out[config] = {
                "rounds": len(mine),
                "hub_cpu_us_per_event": round(sum(r["hub_cpu_us_per_event"] for r in mine) / len(mine), 1),
                "events_per_s": round(sum(r["events_per_s"] for r in mine) / len(mine), 1),
            }
    if base := out.get("off"):
        for figures in out.values():
            figures["cpu_cost"] = round(figures["hub_cpu_us_per_event"] / base["hub_cpu_us_per_event"] - 1, 4)
            figures["throughput_ratio"] = round(figures["events_per_s"] / base["events_per_s"], 3)
    return out


def table(summary: dict[str, Any]) -> str:
    lines = [f"{'config':<17} {'delivered/s':>12} {'vs off':>7} {'hub CPU/event':>14} {'CPU cost':>9}"]
    for config, f in summary.items():
        lines.append(
            f"{config:<17} {f['events_per_s']:>12,.0f} {f.get('throughput_ratio', 1):>7.3f} "
            f"{f['hub_cpu_us_per_event']:>11,.0f} us {f.get('cpu_cost', 0) * 100:>+8.1f}%"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.observability", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--events", type=int, default=20_000, help="events in each batch phase (20,000)")
    p.add_argument("--rounds", type=int, default=1, help="times to run every config, interleaved (1)")
    p.add_argument("--configs", type=lambda v: [c for c in v.split(",") if c], default=list(CONFIGS),
                   help=f"comma-separated, of {','.join(CONFIGS)} (also as <config>@baseline)")  # fmt: skip
    p.add_argument("--together", action="store_true",
                   help="run a round's configs at once (fairer on a machine shared with others)")  # fmt: skip
    p.add_argument("--baseline", type=Path, metavar="TREE",
                   help="a checkout (e.g. of main) whose code <config>@baseline runs")  # fmt: skip
    p.add_argument("--sampler", default="parentbased_always_on", metavar="NAME[:ARG]",
                   help="OTEL_TRACES_SAMPLER[:OTEL_TRACES_SAMPLER_ARG] of metrics+tracing "
                   "(parentbased_always_on: every trace)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = p.parse_args(argv)
    if any(c.endswith("@baseline") for c in args.configs) and args.baseline is None:
        p.error("a <config>@baseline needs --baseline TREE")
    if unknown := {c.removesuffix("@baseline") for c in args.configs} - set(CONFIGS):
        p.error(f"unknown config(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(describe_machine(machine_info()), flush=True)
    results = asyncio.run(main_async(args))
    print("\n" + table(results["summary"]))
    received = [
        f"{r['config']} {'-' if r['spans_received'] is None else r['spans_received']}"
        for r in results["runs"]
    ]
    print(
        "(hub CPU per delivered event: /proc user+system of the hub's processes; "
        f"spans received: {', '.join(received)})"
    )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
