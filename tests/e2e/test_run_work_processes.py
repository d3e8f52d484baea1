"""``koppelhub run`` with two projector and dispatcher processes (``KOPPELHUB_WORK_PROCESSES=2``):
both take part in the work, and the order per key holds across them (the claim takes only a
key's head, and never a leased one, whichever process asks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_run_command import DISPATCH, INTAKE, TOKEN, WORK, free_port, run_env
from tests.support.hub_api import event, subscribe
from tests.support.processes import counted_by, role_children
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

KEYS, PER_KEY = 40, 50


async def until_ready(client: httpx.AsyncClient, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert proc.returncode is None, "koppelhub run exited before it was ready"
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/readyz")).status_code == 200:
                return
        assert time.monotonic() < deadline, "koppelhub run did not become ready"
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def hub_run(
    env: dict[str, str], port: int, drain: float = 200
) -> AsyncIterator[tuple[asyncio.subprocess.Process, httpx.AsyncClient]]:
    """``koppelhub run`` with ``env``, ready, and a client of its API; at the end of the block a
    SIGTERM, which must end it with status 0 within ``drain`` seconds (killed if it does not,
    or if the block failed)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "run", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            await until_ready(client, proc)
            yield proc, client
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), drain) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_two_work_processes_both_deliver_and_each_keys_deliveries_stay_in_order(
    tmp_path: Path, sink: WebhookSink
) -> None:
    port = free_port()
    env = run_env(
        tmp_path,
        port,
        KOPPELHUB_WORKERS="2",
        KOPPELHUB_WORK_PROCESSES="2",
        KOPPELHUB_PROJECTOR_BATCH_SIZE="64",
        KOPPELHUB_DELIVERY_ALLOW_NETWORKS="127.0.0.0/8",
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # Event i is the (i // KEYS)-th of its key: each key's events are published in order.
    batch = [event(f"key-{i % KEYS}", i) for i in range(KEYS * PER_KEY)]
    async with hub_run(env, port) as (proc, client):
        work = [pid for roles, pid in role_children(proc.pid) if roles == WORK]
        assert len(work) == 2, role_children(proc.pid)
        await subscribe(client, auth, sink.url, ordering="key")
        for start in range(0, len(batch), 500):
            response = await client.post(
                "/api/v1/events",
                content=json.dumps(batch[start : start + 500]),
                headers={**auth, "content-type": "application/cloudevents-batch+json"},
            )
            assert response.status_code == 202, response.text
        received = await sink.wait_for(len(batch), timeout=240)
        # Both processes delivered (and projected): the work was shared, not merely started twice.
        metrics = tmp_path / "metrics"
        delivered = [counted_by(pid, "koppelhub_deliveries_total", metrics) for pid in work]
        projected = [counted_by(pid, "koppelhub_events_projected_total", metrics) for pid in work]
        assert all(delivered) and all(projected), (delivered, projected)
    arrived: dict[str, list[int]] = defaultdict(list)
    for got in received:
        body = got.json()
        arrived[body["subject"]].append(body["data"]["n"])
    published: dict[str, list[int]] = defaultdict(list)
    for sent in batch:
        published[str(sent["subject"])].append(sent["data"]["n"])  # type: ignore[index]
    # Each key's deliveries arrived in publish order, each once.
    assert arrived == published


def _nice(pid: int) -> int:
    """The nice value of process ``pid`` (field 19 of ``/proc/<pid>/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[16])


def _autogroup_nice(pid: int) -> int | None:
    """The nice value of ``pid``'s autogroup (``/proc/<pid>/autogroup``: "/autogroup-N nice M"),
    None without autogroups. With them, the CPU is shared between autogroups first, so the
    process's own nice alone does not lower it against a process of another session. The file is
    absent on a kernel without autogroups, and empty for a process in a CPU cgroup of its own (a
    container, as on the CI machine): the kernel then schedules by cgroup, not by autogroup."""
    try:
        fields = Path(f"/proc/{pid}/autogroup").read_text().split()
    except OSError:
        return None
    return int(fields[-1]) if fields else None


@pytest.mark.parametrize(("setting", "steps"), [(None, 10), ("0", 0)])
async def test_work_children_run_koppelhub_work_nice_steps_below_the_intake_children(
    tmp_path: Path, setting: str | None, steps: int
) -> None:
    port = free_port()
    extra = {"KOPPELHUB_WORK_NICE": setting} if setting is not None else {}
    env = run_env(tmp_path, port, KOPPELHUB_WORKERS="2", KOPPELHUB_WORK_PROCESSES="2", **extra)
    async with hub_run(env, port, drain=120) as (proc, _):
        children = role_children(proc.pid)
        assert sorted(roles for roles, _ in children) == [INTAKE, DISPATCH, WORK, WORK], children
        own = _nice(proc.pid)
        # The intake children keep run's own priority; each work and dispatch child is lowered from it.
        assert {roles: _nice(pid) for roles, pid in children if roles == INTAKE} == {INTAKE: own}
        lowered = [_nice(pid) for roles, pid in children if roles in (WORK, DISPATCH)]
        assert lowered == [min(19, own + steps)] * 3
        if _autogroup_nice(proc.pid) is not None:  # each child is a session, so an autogroup, of its own
            assert [_autogroup_nice(pid) for roles, pid in children if roles == INTAKE] == [0]
            lowered = [_autogroup_nice(pid) for roles, pid in children if roles in (WORK, DISPATCH)]
            assert lowered == [steps] * 3
