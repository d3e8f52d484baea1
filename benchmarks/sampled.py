"""CPU that tracing costs per event when its trace IS sampled, step by step, two code trees.

    .venv/bin/python -m benchmarks.sampled --base /tmp/x15-sampled-base --rounds 4

As ``benchmarks.unsampled`` (the same child approach: a fresh interpreter per tree and mode, the
hub's own modules only), but like ``benchmarks.e2e``'s batch phase: publish requests of 100
events each on the in-memory app, the projector draining them from the in-memory log, and the
dispatcher's attempt (``Dispatcher._attempt``: span, signing, aiohttp POST) for every event to a
loopback sink, 100 at a time. The SDK is installed by ``hub.adapters.tracing`` in both modes,
exporting over OTLP/HTTP to :mod:`benchmarks.collector` on loopback: ``none``
(``parentbased_always_off``: every event carries a context, no trace sampled) and ``all``
(``parentbased_always_on``: every trace sampled). The batch span processor is flushed at the
end of each step, so its thread's CPU (encoding, export) is in the step's process CPU
(``time.process_time`` counts every thread). The figure that matters is ``all - none`` per step:
what a sampled event costs over one whose trace is left out.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks import paired
from benchmarks.collector import Collector

CHILD = """
import asyncio, json, os, tempfile, time, uuid
from pathlib import Path
from hub.adapters.tracing import configure_tracing
assert configure_tracing()
import httpx
from opentelemetry import trace
from hub.adapters.memory import (
    InMemoryDatabase, InMemoryEventLog, InMemoryOutbox, InMemoryProjectionStore, InMemorySubscriptionStore,
)
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext
from hub.logging import configure_logging
from hub.ports.delivery import ClaimedDelivery
from hub.services.delivery_policy import RetryPolicy
from hub.services.dispatcher import Dispatcher
from hub.services.projector import Projector
from hub.settings import Settings
from hub.tracing import TRACEPARENT
from subscriptions.delivery import DeliveryClient
from subscriptions.retry import RetrySchedule
from subscriptions.sender import WebhookSender
from subscriptions.ssrf import NetworkPolicy

N = int(os.environ["BENCH_N"])
BATCH = 100
SINK = os.environ["BENCH_SINK"]
HEADERS = {"Authorization": "Bearer t", "content-type": "application/cloudevents-batch+json"}

def batch(b: int) -> list[dict[str, object]]:
    return [{"specversion": "1.0", "id": f"e{b}-{n}", "source": "urn:x", "type": "nl.test.thing.v1",
             "data": {"n": n, "naam": "iets"}} for n in range(BATCH)]

def flush() -> None:
    trace.get_tracer_provider().force_flush()

async def ready() -> dict[str, bool]:
    return {}

async def drain(log: InMemoryEventLog) -> None:
    projector = Projector(lambda: log.consumer("koppelhub-projector"), InMemoryProjectionStore(), log,
                          derive=None)
    done = asyncio.Event()
    done.set()
    await projector.run(asyncio.Event(), drain=done)

def claims(log: InMemoryEventLog, sub: uuid.UUID) -> list[ClaimedDelivery]:
    out = []
    for n, record in enumerate(log.partitions[0]):
        event = json.loads(record.value) if record.value else {}
        headers = dict(record.headers)
        tp = headers.get("ce_" + TRACEPARENT)
        if tp is not None and TRACEPARENT not in event:
            event[TRACEPARENT] = tp.decode()
        event.setdefault("id", f"r{n}")
        out.append(ClaimedDelivery(
            id=uuid.uuid4(), subscription_id=sub, attempts=0, event_id=str(event["id"]), archive_seq=n,
            event=event, sink=SINK, secret="whsec_" + "a" * 32, headers={},
        ))
    return out

async def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="koppelhub-bench-sampled-") as data_dir:
        log = InMemoryEventLog(partitions=1)
        settings = Settings(data_dir=Path(data_dir), admin_token="t")
        configure_logging(settings)
        ctx = ApiContext(
            settings=settings, event_log=log,
            subscriptions=InMemorySubscriptionStore(InMemoryDatabase()),
            landscape=InMemoryProjectionStore([]), network_policy=NetworkPolicy.parse([]),
            auth=TokenAuthenticator("t"), readiness=ready,
        )
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
            return await steps(client, log)

async def steps(client: httpx.AsyncClient, log: InMemoryEventLog) -> dict[str, float]:
    for b in range(2):  # warm up: imports, first-call caches
        await client.post("/api/v1/events", content=json.dumps(batch(-1 - b)), headers=HEADERS)
    flush()
    warm = len(log.partitions[0])
    out: dict[str, float] = {}
    started = time.process_time()
    for b in range(N // BATCH):
        r = await client.post("/api/v1/events", content=json.dumps(batch(b)), headers=HEADERS)
        assert r.status_code == 202, r.text
    flush()
    out["publish"] = time.process_time() - started
    records = len(log.partitions[0])
    started = time.process_time()
    await drain(log)
    flush()
    out["project"] = (time.process_time() - started) * N / records
    policy = RetryPolicy(RetrySchedule.of([60.0]), slow_down_s=0)
    async with WebhookSender(NetworkPolicy.parse(["127.0.0.0/8"])) as sender:
        outbox = InMemoryOutbox(InMemoryDatabase())
        dispatcher = Dispatcher(outbox, DeliveryClient(sender), policy, asyncio.Event())
        todo = claims(log, uuid.uuid4())
        for c in todo[:warm]:
            await dispatcher._attempt(c)
        flush()
        todo = todo[warm:]
        started = time.process_time()
        for i in range(0, len(todo), BATCH):
            results = await asyncio.gather(*(dispatcher._attempt(c) for c in todo[i:i + BATCH]))
            assert all(r.new_status == "delivered" for r in results), results[0]
        out["deliver made"] = time.process_time() - started  # export deferred: the spans alone
        flush()
        out["deliver"] = time.process_time() - started
    return {k: v / N * 1e6 for k, v in out.items()}

print(json.dumps(asyncio.run(main())))
"""

STEPS = ("publish", "project", "deliver")
MODES = {
    "none": "parentbased_always_off",
    "all": "parentbased_always_on",
    "deferred": "parentbased_always_on",
}


class _Sink(BaseHTTPRequestHandler):
    """A webhook sink on loopback that takes every delivery (keep-alive, 204)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the dispatcher opens up to 100 connections at once
    daemon_threads = True


def _serve(handler: type[BaseHTTPRequestHandler]) -> str:
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def _run(tree: Path, mode: str, n: int, sink: str, collector: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        PYTHONPATH=str(tree),
        BENCH_N=str(n),
        BENCH_SINK=sink + "/hook",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector,
        OTEL_TRACES_SAMPLER=MODES[mode],
    )
    if mode == "deferred":  # every span kept until the step's flush: making and exporting apart
        big = str(2 * n)
        env.update(
            OTEL_BSP_SCHEDULE_DELAY="3600000", OTEL_BSP_MAX_QUEUE_SIZE=big, OTEL_BSP_MAX_EXPORT_BATCH_SIZE=big
        )
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(trees: dict[str, Path], rounds: int, n: int) -> dict[str, dict[str, float]]:
    sink, collector = _serve(_Sink), _serve(Collector)
    seen: dict[tuple[str, str, str], list[float]] = {}
    names = list(trees)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]  # both orders: the second one ran dearer before
        for mode in MODES:
            for name in order:
                for step, us in _run(trees[name], mode, n, sink, collector).items():
                    seen.setdefault((name, mode, step), []).append(us)
    out: dict[str, dict[str, float]] = {}
    for name in names:
        row: dict[str, float] = {}
        for step in STEPS:
            on, off = seen[(name, "all", step)], seen[(name, "none", step)]
            row[f"{step} none"] = round(statistics.median(off), 1)
            row[f"{step} all-none"] = round(statistics.median(a - b for a, b in zip(on, off, strict=True)), 1)
        row["sampled event"] = round(sum(row[f"{s} all-none"] for s in STEPS), 1)
        made, flushed, off = (
            seen[(name, m, k)]
            for m, k in (("deferred", "deliver made"), ("deferred", "deliver"), ("none", "deliver"))
        )
        row["deliver: spans made"] = round(
            statistics.median(a - b for a, b in zip(made, off, strict=True)), 1
        )
        row["deliver: export at flush"] = round(
            statistics.median(a - b for a, b in zip(flushed, made, strict=True)), 1
        )
        out[name] = row
    out["spans received"] = {"spans": Collector.spans}
    return out


if __name__ == "__main__":
    parser = paired.tree_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--events", type=int, default=3000)
    args = parser.parse_args()
    print(json.dumps(main(paired.trees(args.base), args.rounds, args.events), indent=2))
