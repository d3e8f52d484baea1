"""CPU per publish in the application alone: the API's own share, measurable on a busy machine.

    .venv/bin/python -m benchmarks.publish_app                 # 5 rounds of 3,000 single events, 30 batches
    .venv/bin/python -m benchmarks.publish_app --rounds 9

``benchmarks.publish_cpu`` measures the api process of a real hub, where the sockets, the
write-ahead log's ``COPY`` and the broker's client take most of the CPU, and where a change of
a few per cent of a request is lost in the spread of a shared machine (±8 % between runs at
load 8). This one calls ``create_app``'s application directly with the ASGI messages uvicorn
would send (no client, no sockets): in-memory stores and event log, the audit trail and
Prometheus metrics on as in ``run``, the heap frozen after the warm-up as the hub does. It
prints, per round, the CPU time (``time.process_time``) per structured request and per event of
batches of 100, then the minimum and median of the rounds. Run old and new code alternately
(``PYTHONPATH=<tree>``) and compare medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from starlette.types import ASGIApp, Message

from benchmarks.traffic import BATCH, STRUCTURED, make_event
from hub.adapters.memory import (
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
)
from hub.adapters.memory.audit import InMemoryAuditLog
from hub.adapters.prometheus import PrometheusMetrics
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext
from hub.serve import run_loop
from hub.services.collector import freeze_start_up_heap
from hub.settings import Settings
from subscriptions.ssrf import NetworkPolicy

TOKEN = "bench-admin-token"


async def _ready() -> dict[str, bool]:
    return {"api": True}


def app_on_memory(data_dir: Path) -> ASGIApp:
    ctx = ApiContext(
        settings=Settings(data_dir=data_dir, admin_token=TOKEN),
        event_log=InMemoryEventLog(partitions=3),
        subscriptions=InMemorySubscriptionStore(InMemoryDatabase()),
        landscape=InMemoryProjectionStore(),
        network_policy=NetworkPolicy.parse("127.0.0.1/32"),
        auth=TokenAuthenticator(TOKEN),
        readiness=_ready,
        audit=InMemoryAuditLog(),
        metrics=PrometheusMetrics(),
    )
    return create_app(ctx)


async def publish(app: ASGIApp, body: bytes, content_type: str) -> None:
    """One ``POST /api/v1/events`` as uvicorn calls the application; it must be answered 202."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/v1/events", "raw_path": b"/api/v1/events", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080),
        "headers": [
            (b"host", b"127.0.0.1:8080"), (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
            (b"user-agent", b"Python/3.11 aiohttp/3.11"), (b"accept", b"*/*"),
        ],
    }  # fmt: skip
    messages: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 202:
        raise RuntimeError(f"publish answered {sent[0]['status']}: {sent[1:]}")


def _body(value: object) -> bytes:
    return json.dumps(value).encode()


async def cpu_per_call(app: ASGIApp, bodies: Sequence[bytes], content_type: str) -> float:
    start = time.process_time()
    for body in bodies:
        await publish(app, body, content_type)
    return (time.process_time() - start) / len(bodies)


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="koppelhub-bench-") as data_dir:
        app = app_on_memory(Path(data_dir))
        rounds = range(args.rounds + 1)  # round 0 warms up
        single = [[_body(make_event(f"s{r}-{i}", i)) for i in range(args.single)] for r in rounds]
        hundred = range(100)
        batches = [
            [_body([make_event(f"b{r}-{i}-{k}", k) for k in hundred]) for i in range(args.batches)]
            for r in rounds
        ]
        structured_us, batch_us = [], []
        for r in rounds:
            one = await cpu_per_call(app, single[r], STRUCTURED) * 1e6
            per_event = await cpu_per_call(app, batches[r], BATCH) * 1e6 / 100
            if r == 0:
                freeze_start_up_heap()  # as the hub does once started (hub.bootstrap.process)
                continue
            structured_us.append(one)
            batch_us.append(per_event)
            print(f"round {r}: structured {one:.1f} µs/request, batch {per_event:.2f} µs/event", flush=True)
    structured, batch = statistics.median(structured_us), statistics.median(batch_us)
    print(
        f"structured: min {min(structured_us):.1f}, median {structured:.1f} µs/request; "
        f"batch: min {min(batch_us):.2f}, median {batch:.2f} µs/event"
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.publish_app", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="measured rounds after one warm-up (5)")
    p.add_argument("--single", type=int, default=3000, help="structured requests per round (3,000)")
    p.add_argument("--batches", type=int, default=30, help="batches of 100 per round (30)")
    run_loop(main_async(p.parse_args(argv)))  # uvloop, as every hub process


if __name__ == "__main__":
    main()
