"""Outages `koppelhub run` rides out (issue 16): a power cut loses nothing accepted, an
embedded broker that keeps dying makes the hub exit non-zero for its supervisor (one that
dies once is started again: tests/e2e/test_restarts.py), one data dir has one owner,
and a killed hub leaves no broker behind. Every process is a real ``koppelhub run``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from hub import pg_watchdog
from hub.adapters.postgres.engine import libpq_url
from hub.datadir import own_data_dir
from hub.embedded import provision
from hub.settings import Settings
from tests.e2e.test_run_command import free_port
from tests.support.hub_api import event

pytestmark = pytest.mark.e2e

TOKEN = "outage-token"


def run_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPELHUB_")}
    return env | {
        "KOPPELHUB_DATA_DIR": str(data_dir),
        "KOPPELHUB_HTTP_PORT": str(port),
        "KOPPELHUB_ADMIN_TOKEN": TOKEN,
        "KOPPELHUB_LOG_LEVEL": "warning",
        **extra,
    }


@contextmanager
def koppelhub_run(data_dir: Path, **extra: str) -> Iterator[tuple[subprocess.Popen[str], httpx.Client]]:
    """A ready ``koppelhub run`` on ``data_dir`` and a client for its API; killed on the way out."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "run"],
        env=run_env(data_dir, port, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, "koppelhub run exited before it was ready"
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "koppelhub run did not become ready"
                time.sleep(0.1)
            yield proc, client
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def broker_pid(data_dir: Path) -> int:
    return int(json.loads((data_dir / "broker.json").read_text())["pid"])


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def publish(client: httpx.Client, batch: list[dict[str, object]]) -> None:
    response = client.post(
        "/api/v1/events",
        content=json.dumps(batch),
        headers={"Authorization": f"Bearer {TOKEN}", "content-type": "application/cloudevents-batch+json"},
    )
    assert response.status_code == 202, response.text


def test_a_power_cut_loses_no_accepted_event_and_projects_none_twice(tmp_path: Path) -> None:
    batch = [event(f"key-{i % 7}", i) for i in range(300)]
    # Small projector batches keep the projection behind, so the cut lands with accepted events
    # only in the broker's memory.
    with koppelhub_run(tmp_path, KOPPELHUB_PROJECTOR_BATCH_SIZE="5") as (proc, client):
        publish(client, batch)
        broker, postmaster = broker_pid(tmp_path), postmaster_pid(tmp_path)
        for pid in (proc.pid, broker, postmaster):  # everything at once
            os.kill(pid, signal.SIGKILL)
        assert gone(broker) and gone(postmaster)

    with koppelhub_run(tmp_path) as (proc, client):
        proc.send_signal(signal.SIGTERM)  # drains what the restart relayed
        assert proc.wait(timeout=90) == 0

    infra = provision(Settings(data_dir=tmp_path), broker_needed=False)
    try:
        with psycopg.connect(libpq_url(infra.database_url)) as conn:
            archived = [row[0] for row in conn.execute("SELECT event_id FROM event_archive")]
    finally:
        infra.close()
    assert sorted(archived) == sorted(e["id"] for e in batch)  # every one, and once


def test_run_exits_non_zero_for_its_supervisor_when_the_embedded_broker_keeps_dying(tmp_path: Path) -> None:
    with koppelhub_run(tmp_path, KOPPELHUB_SHUTDOWN_TIMEOUT_SECONDS="20") as (proc, _client):
        # A dead embedded broker is started again (tests/e2e/test_restarts.py); one that keeps
        # dying makes `run` exit 75 for its own supervisor (README "Outages").
        deadline = time.monotonic() + 120
        while proc.poll() is None:
            assert time.monotonic() < deadline, "run did not give up on a broker that keeps dying"
            with contextlib.suppress(OSError, ValueError, KeyError, ProcessLookupError):
                os.kill(broker_pid(tmp_path), signal.SIGKILL)
            time.sleep(0.05)
        code = proc.wait()
        err = proc.stderr.read() if proc.stderr else ""
        assert code == 75, err[-3000:]
        assert "embedded broker died" in err


def test_a_second_run_on_a_data_dir_in_use_refuses_naming_the_owner(tmp_path: Path) -> None:
    with own_data_dir(tmp_path):
        second = subprocess.run(
            [sys.executable, "-m", "hub", "run"],
            env=run_env(tmp_path, free_port()),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert second.returncode != 0
    assert f"(pid {os.getpid()}) owns the data dir" in second.stderr


def test_a_killed_run_leaves_no_broker_behind(tmp_path: Path) -> None:
    with koppelhub_run(tmp_path) as (proc, _client):
        broker = broker_pid(tmp_path)
        proc.kill()
        proc.wait()
        assert gone(broker), "the embedded broker outlived its killed parent"


def test_a_killed_run_leaves_no_postgresql_behind(tmp_path: Path) -> None:
    with koppelhub_run(tmp_path) as (proc, _client):
        postmaster = postmaster_pid(tmp_path)
        proc.kill()
        proc.wait()
        assert gone(postmaster, within=30), "the embedded PostgreSQL outlived its killed parent"


ORPHAN = """
import os, signal, sys
from pathlib import Path
from hub.embedded import EmbeddedPostgres
print(EmbeddedPostgres(Path(sys.argv[1]) / "postgres").start(follow_parent=False), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def orphaned_postgresql(data_dir: Path) -> tuple[int, str]:
    """An embedded PostgreSQL whose starter was SIGKILLed: its postmaster's pid and URL."""
    orphaned = subprocess.run(
        [sys.executable, "-c", ORPHAN, str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert orphaned.returncode == -signal.SIGKILL, orphaned.stderr
    return postmaster_pid(data_dir), orphaned.stdout.strip().splitlines()[-1]


STARTER = """
import sys
from pathlib import Path
from hub.embedded import EmbeddedPostgres
postgres = EmbeddedPostgres(Path(sys.argv[1]) / "postgres")
print("started", postgres.start(follow_parent=False), flush=True)
postgres.stop()
"""


def test_a_start_that_finds_postgresql_on_its_way_down_waits_rather_than_failing(tmp_path: Path) -> None:
    # A killed run's watchdog asks for a shutdown and a supervisor starts run again at once: the
    # new start found the postmaster "stopping", and pgserver asserted it was ready (stop 25's CI).
    # A session held open keeps a smart shutdown "stopping" for as long as the test needs.
    orphan, url = orphaned_postgresql(tmp_path)
    with psycopg.connect(url) as session:
        os.kill(orphan, signal.SIGTERM)  # smart shutdown: waits for the open session
        deadline = time.monotonic() + 30
        while pg_watchdog.status(tmp_path / "postgres") != "stopping":
            assert time.monotonic() < deadline, "the postmaster never said it was stopping"
            time.sleep(0.05)
        starter = subprocess.Popen(
            [sys.executable, "-c", STARTER, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert starter.stdout is not None
            said = []
            for line in starter.stdout:  # the marker: it says it waits, while the session is open
                said.append(line)
                if "embedded_postgres_settling" in line or "started" in line:
                    break
            assert "embedded_postgres_settling" in said[-1] and "state=stopping" in said[-1], said
            session.close()  # the old server ends; the start goes on with one of its own
            rest = starter.communicate(timeout=120)[0]
        finally:
            starter.kill()
    assert starter.returncode == 0, rest
    assert "started postgresql://" in rest, rest
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()  # neither the old nor its own is left


def test_a_run_after_a_killed_one_reuses_its_orphaned_postgresql_and_stops_it_on_exit(tmp_path: Path) -> None:
    # A PostgreSQL whose starter was killed with nothing to stop it (an older hub, a killed watchdog).
    orphan = orphaned_postgresql(tmp_path)[0]
    assert not gone(orphan, within=0.5)

    with koppelhub_run(tmp_path) as (proc, _client):
        assert postmaster_pid(tmp_path) == orphan  # reused, not a second server on the same files
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
    assert gone(orphan, within=30), "the orphaned PostgreSQL outlived the run that reused it"
