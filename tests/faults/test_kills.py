"""The fault suite: hard kills at random points of a run with three subscriptions.

A real ``koppelhub run`` on embedded Tansu and PostgreSQL takes batches of events while, at
random points, everything is SIGKILLed at once (``run``, the broker, PostgreSQL: a power cut)
and started again on the same data dir. Afterwards:

- every acknowledged event (a 202) is archived, and no event is archived twice;
- every subscription received every acknowledged event at least once, each event always
  under the same ``webhook-id``;
- first arrivals are in publication order per key.

``make test`` runs a small run (``KOPPELHUB_FAULT_EVENTS``, default 400, and
``KOPPELHUB_FAULT_KILLS``, default 2); ``make faults`` a long one for the README's figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from hub.adapters.postgres.engine import libpq_url
from hub.embedded import provision
from hub.settings import Settings
from tests.e2e.test_outages import broker_pid, gone, postmaster_pid, run_env
from tests.e2e.test_run_command import free_port
from tests.support.hub_api import event, eventually
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

EVENTS = int(os.environ.get("KOPPELHUB_FAULT_EVENTS", "400"))
KILLS = int(os.environ.get("KOPPELHUB_FAULT_KILLS", "2"))
SEED = int(os.environ.get("KOPPELHUB_FAULT_SEED", "16"))
BATCH = 50
KEYS = 11
TOKEN = "fault-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HUB_ENV = {
    # Small projector batches keep a backlog, so a cut finds accepted events not yet projected.
    "KOPPELHUB_PROJECTOR_BATCH_SIZE": "5",
    "KOPPELHUB_DELIVERY_RETRY_SCHEDULE": "0.2,0.5,1,1,2,2,3,3,5,5,5,5,5,5,5,5,5,5",
    "KOPPELHUB_DELIVERY_POLL_SECONDS": "0.2",
    "KOPPELHUB_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
    # KOPPELHUB_FAULT_WRITE_AHEAD=false shows what the write-ahead log prevents.
    **({"KOPPELHUB_WRITE_AHEAD": wa} if (wa := os.environ.get("KOPPELHUB_FAULT_WRITE_AHEAD")) else {}),
}


class Run:
    """One ``koppelhub run`` process on a data dir, started and killed from an async test."""

    def __init__(self, data_dir: Path):
        self.data_dir, self.port = data_dir, free_port()
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", "run",
            env=run_env(self.data_dir, self.port, KOPPELHUB_ADMIN_TOKEN=TOKEN, **HUB_ENV),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            async with asyncio.timeout(90):
                while True:
                    assert self.proc.returncode is None, "koppelhub run exited before it was ready"
                    try:
                        if (await client.get("/readyz")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def power_cut(self) -> None:
        assert self.proc is not None
        pids = [self.proc.pid, broker_pid(self.data_dir), postmaster_pid(self.data_dir)]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        await self.proc.wait()
        for pid in pids[1:]:
            assert await asyncio.to_thread(gone, pid)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(120):
                assert await self.proc.wait() == 0


@asynccontextmanager
async def sinks(count: int) -> AsyncIterator[list[WebhookSink]]:
    started = [await WebhookSink().start() for _ in range(count)]
    try:
        yield started
    finally:
        for s in started:
            await s.stop()


async def publish(url: str, batch: list[dict[str, Any]]) -> bool:
    """True when the hub acknowledged the batch (202); a refused or cut-off one is not."""
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            response = await client.post(
                "/api/v1/events",
                content=json.dumps(batch),
                headers={**AUTH, "content-type": "application/cloudevents-batch+json"},
            )
    except httpx.TransportError:
        return False
    return response.status_code == 202


def archived_ids(data_dir: Path) -> list[str]:
    infra = provision(Settings(data_dir=data_dir), broker_needed=False)
    try:
        with psycopg.connect(libpq_url(infra.database_url)) as conn:
            return [row[0] for row in conn.execute("SELECT event_id FROM event_archive")]
    finally:
        infra.close()


async def test_power_cuts_at_random_points_lose_nothing_acknowledged_and_double_nothing(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    batches = [
        [event(f"key-{n % KEYS}", n) for n in range(start, min(start + BATCH, EVENTS))]
        for start in range(0, EVENTS, BATCH)
    ]
    cuts = set(rng.sample(range(1, len(batches)), min(KILLS, len(batches) - 1)))
    acked: list[dict[str, Any]] = []
    hub = Run(tmp_path)
    async with sinks(3) as receivers:
        await hub.start()
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
            for s in receivers:
                response = await client.post("/api/v1/subscriptions", json={"sink": s.url}, headers=AUTH)
                assert response.status_code == 201, response.text
        for index, batch in enumerate(batches):
            if index in cuts:
                await asyncio.sleep(rng.random() * 0.05)  # with a projection backlog, deliveries in flight
                await hub.power_cut()
                hub = Run(tmp_path)
                await hub.start()
            if await publish(hub.url, batch):
                acked.extend(batch)

        wanted = {e["id"] for e in acked}

        async def complete() -> bool:
            return all(wanted <= {r.json()["id"] for r in sink.delivered} for sink in receivers)

        with contextlib.suppress(AssertionError):  # judged below, with the archive's figures
            await eventually(complete, timeout=max(60, EVENTS / 20), what="every acknowledged event sent")
        await hub.stop()

    assert len(acked) >= EVENTS - BATCH * KILLS, "too few batches were acknowledged to mean anything"
    archived = archived_ids(tmp_path)
    print(  # the figures `make faults` reports (pytest -s)
        f"\nfault run: {EVENTS} events offered, {len(acked)} acknowledged, {len(cuts)} power cuts; "
        f"lost {len(wanted - set(archived))}, archived twice {len(archived) - len(set(archived))}; "
        + "; ".join(
            f"sink {i}: {len({r.json()['id'] for r in s.delivered} & wanted)} of {len(wanted)} delivered, "
            f"{len(s.received) - len({r.json()['id'] for r in s.received})} sent again"
            for i, s in enumerate(receivers)
        )
    )
    assert wanted <= set(archived), f"{len(wanted - set(archived))} acknowledged events lost"
    assert len(archived) == len(set(archived)), "an event was archived twice"
    number = {e["id"]: (e["subject"], e["data"]["n"]) for e in acked}
    missing = [len(wanted - {r.json()["id"] for r in s.delivered}) for s in receivers]
    assert missing == [0] * len(receivers), f"acknowledged events not delivered, per subscription: {missing}"
    for s in receivers:
        ids_per_event: dict[str, set[str]] = defaultdict(set)
        seen: set[str] = set()
        firsts: dict[str, list[int]] = defaultdict(list)
        for r in s.received:  # in arrival order
            event_id = r.json()["id"]
            ids_per_event[event_id].add(r.headers["webhook-id"])
            if event_id in number and event_id not in seen:
                seen.add(event_id)
                key, n = number[event_id]
                firsts[key].append(n)
        assert all(len(v) == 1 for v in ids_per_event.values()), "a webhook-id changed"
        for key, ns in firsts.items():
            assert ns == sorted(ns), f"first arrivals out of order for {key}"
