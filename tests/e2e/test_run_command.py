"""`koppelhub run` on embedded infrastructure: announces itself, and a SIGTERM right after
publishing still projects everything that was accepted before the in-memory broker stops."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from hub.adapters.postgres.engine import libpq_url
from hub.embedded import provision
from hub.settings import Settings
from tests.support.hub_api import event
from tests.support.processes import counted_by, role_children

pytestmark = pytest.mark.e2e

TOKEN = "run-command-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_taken_http_port_is_refused_before_broker_and_database_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPELHUB_")}
        env |= {"KOPPELHUB_DATA_DIR": str(tmp_path / "data"), "KOPPELHUB_HTTP_PORT": str(port)}

        command = [sys.executable, "-m", "hub", "run"]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr and "KOPPELHUB_HTTP_PORT" in result.stderr
    assert "Unclosed" not in result.stderr
    assert not (tmp_path / "data").exists(), "broker, database or admin token were started or made"


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether ``pid`` ends within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def run_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPELHUB_")}
    return (
        env
        | {
            "KOPPELHUB_DATA_DIR": str(data_dir),
            "KOPPELHUB_HTTP_PORT": str(port),
            "KOPPELHUB_ADMIN_TOKEN": TOKEN,
            "KOPPELHUB_LOG_LEVEL": "warning",
            # Small batches keep the projector behind the publisher, so the SIGTERM lands with
            # accepted events still only in the broker's memory.
            "KOPPELHUB_PROJECTOR_BATCH_SIZE": "5",
            # 600 such batches must fit in the drain on a loaded CI machine too (60 s did not).
            "KOPPELHUB_SHUTDOWN_TIMEOUT_SECONDS": "150",
        }
        | extra
    )


def publish(client: httpx.Client, batch: list[dict[str, object]]) -> None:
    response = client.post(
        "/api/v1/events",
        content=json.dumps(batch),
        headers={"Authorization": f"Bearer {TOKEN}", "content-type": "application/cloudevents-batch+json"},
    )
    assert response.status_code == 202, response.text


def wait_ready(client: httpx.Client, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "koppelhub run exited before it was ready"
        with contextlib.suppress(httpx.TransportError):
            if client.get("/readyz").status_code == 200:
                return
        assert time.monotonic() < deadline, "koppelhub run did not become ready"
        time.sleep(0.1)


def archived_ids(data_dir: Path) -> list[str]:
    """The ids in the event archive of ``data_dir``'s PostgreSQL (started for the look if it
    is not running)."""
    infra = provision(Settings(data_dir=data_dir), broker_needed=False)
    try:
        with psycopg.connect(libpq_url(infra.database_url)) as conn:
            return [row[0] for row in conn.execute("SELECT event_id FROM event_archive").fetchall()]
    finally:
        infra.close()


INTAKE, WORK, DISPATCH = "api,connectors", "projector,dispatcher", "dispatcher"


@pytest.mark.parametrize(
    ("workers", "work", "dispatch", "expected"),
    [
        ("1", "1", "1", []),
        ("3", "1", "1", [INTAKE, INTAKE, DISPATCH, WORK]),
        ("2", "2", "0", [INTAKE, WORK, WORK]),
    ],
)
def test_sigterm_after_publishing_drains_every_accepted_event_into_postgresql(
    tmp_path: Path, workers: str, work: str, dispatch: str, expected: list[str]
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "run"],
        env=run_env(tmp_path, port, KOPPELHUB_WORKERS=workers, KOPPELHUB_WORK_PROCESSES=work)
        | {"KOPPELHUB_DISPATCH_PROCESSES": dispatch},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(3)]
        assert f"http://127.0.0.1:{port}/api/v1" in banner[1]
        assert f"http://127.0.0.1:{port}/docs" in banner[2]
        batch = [event(f"key-{i % 7}", i) for i in range(3000)]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_ready(client, proc)
            for start in range(0, len(batch), 500):  # spread over the API processes' connections
                publish(client, batch[start : start + 500])
        children = role_children(proc.pid)
        assert [r for r, _pid in children] == expected
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=200) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert not (tmp_path / "broker.json").exists(), "the embedded broker was not stopped"

    # The broker is gone with its log; whatever was accepted must be in the archive now, once.
    archived = archived_ids(tmp_path)
    assert sorted(archived) == sorted(e["id"] for e in batch)
    # With two work processes both projected: the drain had two owners, and lost nothing.
    work_pids = [pid for roles, pid in children if roles == WORK]
    projected = [
        counted_by(pid, "koppelhub_events_projected_total", tmp_path / "metrics") for pid in work_pids
    ]
    assert len(work_pids) < 2 or all(projected), projected


@pytest.mark.parametrize("work", ["1", "2"])
def test_a_killed_role_process_is_replaced_and_nothing_accepted_is_lost(tmp_path: Path, work: str) -> None:
    port = free_port()
    log = tmp_path / "run.log"  # a file, not a pipe: the processes' logs never block on it
    env = run_env(tmp_path / "data", port, KOPPELHUB_WORKERS="2", KOPPELHUB_WORK_PROCESSES=work)
    with log.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "run"],
            env=env | {"KOPPELHUB_LOG_LEVEL": "info"},
            stdout=subprocess.DEVNULL,
            stderr=err_file,
        )
    accepted: list[dict[str, object]] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            wait_ready(client, proc)
            first = role_children(proc.pid)
            expected = [INTAKE, DISPATCH] + [WORK] * int(work)
            assert [roles for roles, _pid in first] == expected
            # A work process, then the intake one; with two work processes the other one works on.
            for round_, (killed, pid) in enumerate([first[-1], first[0]]):
                batch = [event(f"key-{i % 7}", 10_000 * round_ + i) for i in range(1000)]
                publish(client, batch)  # accepted, mostly not projected yet
                accepted += batch
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 60
                while (
                    pid in (now := dict((p, r) for r, p in role_children(proc.pid)))
                    or sorted(now.values()) != expected
                ):
                    assert time.monotonic() < deadline, f"the killed {killed} process was not replaced"
                    time.sleep(0.1)
                survivors = {p for _r, p in first if p != pid}
                assert survivors <= set(now), "a process that was not killed was started again"
                first = role_children(proc.pid)
                # The parent kept the API's socket: this publish waits for the new API process
                # at worst, it is never refused.
                after = [event(f"key-{i % 7}", 10_000 * round_ + 5_000 + i) for i in range(500)]
                publish(client, after)
                accepted += after
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert log.read_text().count('"child_restarted"') == 2, log.read_text()[-3000:]
    # The killed projector's consumers stay in the group until their session ends, so the drain
    # may leave their partitions to the write-ahead log, as a killed single-process run does:
    # the next start relays it. Every accepted event is archived then, and once.
    port = free_port()
    again = subprocess.Popen(
        [sys.executable, "-m", "hub", "run"],
        env=env | {"KOPPELHUB_HTTP_PORT": str(port)},
        stdout=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_ready(client, again)
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=180) == 0
    finally:
        if again.poll() is None:
            again.kill()
            again.wait()
    assert sorted(archived_ids(tmp_path / "data")) == sorted(e["id"] for e in accepted)


def metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_metrics_of_the_api_process_count_what_the_other_role_processes_did(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "run"],
        env=run_env(tmp_path, port, KOPPELHUB_WORKERS="2"),
        stdout=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_ready(client, proc)
            publish(client, [event(f"key-{i % 7}", i) for i in range(200)])
            # The projector runs in the other process; the API's /metrics must still see it.
            deadline = time.monotonic() + 60
            while metric(text := client.get("/metrics").text, "koppelhub_events_projected_total") < 200:
                assert time.monotonic() < deadline, text
                time.sleep(0.2)
            assert metric(text, "koppelhub_events_projected_total") == 200
            assert metric(text, 'koppelhub_events_published_total{mode="batch"}') == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=200) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_killed_run_leaves_no_role_process_behind(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "run"],
        env=run_env(tmp_path, port, KOPPELHUB_WORKERS="2"),
        stdout=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_ready(client, proc)
        children = [pid for _roles, pid in role_children(proc.pid)]
        assert len(children) == 3  # intake, work, spare dispatcher
        proc.kill()
        proc.wait()
        for pid in children:
            assert gone(pid), f"role process {pid} outlived its killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # PostgreSQL outlives a killed run by design (pgserver shares it): stop it (fast shutdown).
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((tmp_path / "postgres" / "postmaster.pid").read_text().split()[0]), signal.SIGINT)


def test_the_roles_still_run_apart_one_process_each_whatever_the_worker_count(settings: Settings) -> None:
    port = free_port()
    k = settings.kafka
    env = {key: value for key, value in os.environ.items() if not key.startswith("KOPPELHUB_")} | {
        "KOPPELHUB_DATA_DIR": str(settings.data_dir),
        "KOPPELHUB_DATABASE_URL": str(settings.database_url),
        "KOPPELHUB_KAFKA_BOOTSTRAP": str(k.bootstrap),
        "KOPPELHUB_KAFKA_TOPIC": k.topic,
        "KOPPELHUB_KAFKA_DLQ_TOPIC": k.dlq_topic,
        "KOPPELHUB_KAFKA_CONSUMER_GROUP": k.consumer_group,
        "KOPPELHUB_KAFKA_PARTITIONS": str(k.partitions),
        "KOPPELHUB_KAFKA_SESSION_TIMEOUT_MS": str(k.session_timeout_ms),
        "KOPPELHUB_KAFKA_HEARTBEAT_INTERVAL_MS": str(k.heartbeat_interval_ms),
        "KOPPELHUB_PROJECTOR_MEMBERS": "1",
        "KOPPELHUB_HTTP_PORT": str(port),
        "KOPPELHUB_ADMIN_TOKEN": TOKEN,
        "KOPPELHUB_LOG_LEVEL": "warning",
        "KOPPELHUB_WORKERS": "4",  # a setting of `run` only
    }
    roles = [
        subprocess.Popen([sys.executable, "-m", "hub", role], env=env, stdout=subprocess.DEVNULL)
        for role in ("projector", "api")
    ]
    projector, api = roles
    batch = [event(f"key-{i % 7}", i) for i in range(50)]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_ready(client, api)
            publish(client, batch)
        assert role_children(api.pid) == [] and role_children(projector.pid) == []
        assert settings.database_url is not None
        deadline = time.monotonic() + 60
        with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM event_archive").fetchone() != (len(batch),):
                assert projector.poll() is None and time.monotonic() < deadline, "not projected"
                time.sleep(0.2)
        for proc in roles:
            proc.send_signal(signal.SIGTERM)
        assert [proc.wait(timeout=120) for proc in roles] == [0, 0]
    finally:
        for proc in roles:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
