"""The disk filling up under a running hub (issue 16): publish answers 503 problem+json that
says the disk is full and what to do (never a 500, never a 202 that is then lost), what was
acknowledged before is projected and delivered once space is freed (a refused request may be
too: it may have reached the broker), and the hub recovers by itself.

The hub's data dir (the embedded PostgreSQL's data and WAL with it) is a small tmpfs the test
mounts and fills with a ballast file; without the right to mount (not root, no
CAP_SYS_ADMIN) the test skips and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.runner import AUTH, Run, archived_ids
from tests.support.hub_api import event, eventually
from tests.support.sink import Received, WebhookSink

pytestmark = pytest.mark.e2e

#: Room for the embedded PostgreSQL (≈ 40 MB fresh) and a few WAL segments.
SIZE = "160m"
HUB_ENV = {
    "KOPPELHUB_DELIVERY_RETRY_SCHEDULE": ",".join(["0.2", "0.5"] + ["1"] * 60),
    "KOPPELHUB_DELIVERY_POLL_SECONDS": "0.2",
    "KOPPELHUB_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
    "KOPPELHUB_SHUTDOWN_TIMEOUT_SECONDS": "60",
}


@contextlib.contextmanager
def small_disk(where: Path) -> Iterator[Path]:
    """A ``SIZE`` tmpfs mounted on ``where``; skips the test when mounting is not allowed."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(where)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        why = mounted.stderr.strip()
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root or CAP_SYS_ADMIN): {why}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with a ballast file; returns the file."""
    ballast = disk / "ballast"
    chunk = b"\0" * (1 << 20)
    with ballast.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    assert os.statvfs(disk).f_bavail == 0
    return ballast


async def post(url: str, batch: list[dict[str, Any]]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await client.post(
            "/api/v1/events",
            content=json.dumps(batch),
            headers={**AUTH, "content-type": "application/cloudevents-batch+json"},
        )


async def test_a_full_disk_answers_503_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    with small_disk(tmp_path / "data") as data_dir:
        sink_up = False
        sink = await WebhookSink(responder=lambda _n, _r: 204 if sink_up else 503).start()
        hub = Run(data_dir, tmp_path / "run.log", **HUB_ENV)
        acked: list[dict[str, Any]] = []
        refusals: list[httpx.Response] = []
        refused_ids: set[str] = set()
        try:
            await hub.start()
            async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
                created = await client.post("/api/v1/subscriptions", json={"sink": sink.url}, headers=AUTH)
                assert created.status_code == 201, created.text
            before = [event(f"key-{n % 5}", n) for n in range(200)]
            assert (await post(hub.url, before)).status_code == 202
            acked += before

            ballast = fill(data_dir)  # right after the 202: projection and deliveries still to come
            n = len(acked)
            for _ in range(400):  # until the hub refuses; what it still takes it must keep
                batch = [event(f"key-{i % 5}", i) for i in range(n, n + 50)]
                n += 50
                response = await post(hub.url, batch)
                assert response.status_code in (202, 503), response.text
                if response.status_code == 202:
                    acked += batch
                else:
                    refusals.append(response)
                    refused_ids |= {e["id"] for e in batch}
                    if len(refusals) == 3:
                        break
            assert refusals, "the hub took every batch on a full disk"
            on_full_disk = len(acked) - len(before)
            for refused in refusals:
                assert refused.headers["content-type"].startswith("application/problem+json")
                problem = refused.json()
                assert "disk" in problem["detail"].lower() and "free" in problem["detail"].lower(), problem

            ballast.unlink()  # space again: the hub takes events again by itself
            sink_up = True
            after = [event(f"key-{i % 5}", i) for i in range(n, n + 50)]

            async def accepted_again() -> bool:
                response = await post(hub.url, after)
                assert response.status_code in (202, 503), response.text
                return response.status_code == 202

            await eventually(accepted_again, timeout=60, what="a publish accepted once space was freed")
            acked += after
            wanted = {e["id"] for e in acked}

            def delivered(received: list[Received]) -> set[str]:
                return {r.json()["id"] for r in received}

            async def all_delivered() -> bool:
                await asyncio.sleep(0.2)
                return wanted <= delivered(sink.delivered)

            await eventually(all_delivered, timeout=180, what="every acknowledged event delivered")
            assert await hub.stop() == 0
        finally:
            await hub.abandon()
            await sink.stop()
        archived = archived_ids(data_dir)
    print(  # pytest -s shows it
        f"\nfull disk: {len(before)} events acknowledged before the fill, {on_full_disk} more taken on the "
        f"full disk (free room in pages already written), then {len(refusals)} refusals: 503 "
        f"{refusals[0].json()['title']!r}; after freeing space {len(wanted)} acknowledged, "
        f"{len(set(archived) & wanted)} archived, {len(delivered(sink.delivered) & wanted)} delivered"
    )
    assert len(archived) == len(set(archived))  # nothing twice
    # Every acknowledged event, and nothing the hub was not sent. A refused batch may be archived
    # (the write-ahead commit and the broker's send run at once, so the request that met the full
    # disk may have reached the broker; a 503 asks to retry, and the projector dedupes a retry).
    assert wanted <= set(archived) <= wanted | refused_ids
