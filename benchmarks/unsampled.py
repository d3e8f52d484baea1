"""CPU that tracing costs per event when its trace is NOT sampled, step by step, two code trees.

    .venv/bin/python -m benchmarks.unsampled --base /tmp/x15-cut-base --rounds 5

Each step runs in a fresh interpreter per tree and mode (the tracer provider is set once per
process): ``nosdk`` (no OTEL_* variables) and ``off`` (the SDK installed by
``hub.adapters.tracing`` with ``parentbased_always_off``: nothing is sampled, every event still
carries its trace context). Steps, process CPU (``time.process_time``) per event:

- ``publish``: ``POST /api/v1/events`` (one structured event per request, or ``--batch`` events
  per batch request, which then share their publish's traceparent) on the in-memory app;
- ``project``: the projector draining those events from the in-memory log (batches of 50);
- ``deliver``: the dispatcher's tracing step per attempt (``left_out`` + ``passed_on``).

The figure that matters is ``off - nosdk`` per step: what the SDK costs an unsampled event.
Rounds alternate the trees in both orders (old-new, then new-old), and medians are printed.
The child uses the hub's own modules only (the in-memory app and event log, the projector), so
any tree of the hub can be measured, with or without its tests.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks import paired

CHILD = """
import asyncio, json, os, tempfile, time
from pathlib import Path
if os.environ.get("OTEL_TRACES_SAMPLER"):
    from hub.adapters.tracing import configure_tracing
    assert configure_tracing()
import httpx
from hub.adapters.memory import (
    InMemoryDatabase, InMemoryEventLog, InMemoryProjectionStore, InMemorySubscriptionStore,
)
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext
from hub.logging import configure_logging
from hub.services.projector import Projector
from hub.settings import Settings
from hub.tracing import TRACEPARENT, left_out, passed_on
from subscriptions.ssrf import NetworkPolicy

N = int(os.environ["BENCH_N"])
BATCH = int(os.environ.get("BENCH_BATCH", "1"))
HEADERS = {"Authorization": "Bearer t", "content-type": "application/cloudevents+json"}
BATCH_HEADERS = {**HEADERS, "content-type": "application/cloudevents-batch+json"}

def event(n: int) -> dict[str, str]:
    return {"specversion": "1.0", "id": f"e{n}", "source": "urn:x", "type": "nl.test.thing.v1"}

async def ready() -> dict[str, bool]:
    return {}

async def drain(log: InMemoryEventLog) -> None:
    store = InMemoryProjectionStore()
    projector = Projector(lambda: log.consumer("koppelhub-projector"), store, log, derive=None, batch_size=50)
    done = asyncio.Event()
    done.set()
    await projector.run(asyncio.Event(), drain=done)

async def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="koppelhub-bench-unsampled-") as data_dir:
        log = InMemoryEventLog(partitions=1)
        settings = Settings(data_dir=Path(data_dir), admin_token="t")
        configure_logging(settings)  # as ``run`` does: debug lines (one per batch) not rendered
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
    for n in range(50):  # warm up: imports, first-call caches
        await client.post("/api/v1/events", json=event(-n), headers=HEADERS)
    started = time.process_time()
    if BATCH == 1:
        for n in range(N):
            await client.post("/api/v1/events", json=event(n), headers=HEADERS)
    else:  # as benchmarks.e2e's batch phase: the events of a request share their traceparent
        for b in range(N // BATCH):
            events = [event(b * BATCH + i) for i in range(BATCH)]
            await client.post("/api/v1/events", json=events, headers=BATCH_HEADERS)
    publish = time.process_time() - started
    records = len(log.partitions[0])  # the warm-up's too
    started = time.process_time()
    await drain(log)
    project = (time.process_time() - started) * N / records
    carried = [dict(r.headers).get("ce_" + TRACEPARENT, b"").decode() or None for r in log.partitions[0]]
    started = time.process_time()
    for tp in carried:
        if tp is None or left_out(tp):
            passed_on(tp) if tp else None
    deliver = (time.process_time() - started) * N / records
    return {k: v / N * 1e6 for k, v in (("publish", publish), ("project", project), ("deliver", deliver))}

print(json.dumps(asyncio.run(main())))
"""

STEPS = ("publish", "project", "deliver")


def _run(tree: Path, mode: str, n: int, batch: int = 1) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONPATH=str(tree), BENCH_N=str(n), BENCH_BATCH=str(batch))
    if mode == "off":  # an exporter that is never reached: nothing is sampled
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_TRACES_SAMPLER="parentbased_always_off"
        )
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(trees: dict[str, Path], rounds: int, n: int, batch: int = 1) -> dict[str, dict[str, float]]:
    seen: dict[tuple[str, str, str], list[float]] = {}
    names = list(trees)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]  # both orders: the second one ran dearer before
        for mode in ("nosdk", "off"):
            for name in order:
                for step, us in _run(trees[name], mode, n, batch).items():
                    seen.setdefault((name, mode, step), []).append(us)
    out: dict[str, dict[str, float]] = {}
    for name in names:
        row: dict[str, float] = {}
        for step in STEPS:
            off, nosdk = seen[(name, "off", step)], seen[(name, "nosdk", step)]
            row[f"{step} off"] = round(statistics.median(off), 2)
            row[f"{step} off-nosdk"] = round(
                statistics.median(a - b for a, b in zip(off, nosdk, strict=True)), 2
            )
        out[name] = row
    return out


if __name__ == "__main__":
    parser = paired.tree_parser(__doc__.splitlines()[0], base_required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1,
                        help="events per publish (1: structured; 100: as e2e's batch phase)")  # fmt: skip
    args = parser.parse_args()
    print(json.dumps(main(paired.trees(args.base), args.rounds, args.events, args.batch), indent=2))
