"""`koppelhub run` on embedded infrastructure: announces itself, and a SIGTERM right after
publishing still projects everything that was accepted before the in-memory broker stops."""

from __future__ import annotations

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


def test_sigterm_after_publishing_drains_every_accepted_event_into_postgresql(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPELHUB_")}
    env |= {
        "KOPPELHUB_DATA_DIR": str(tmp_path),
        "KOPPELHUB_HTTP_PORT": str(port),
        "KOPPELHUB_ADMIN_TOKEN": TOKEN,
        "KOPPELHUB_LOG_LEVEL": "warning",
        # Small batches keep the projector behind the publisher, so the SIGTERM lands with
        # accepted events still only in the broker's memory.
        "KOPPELHUB_PROJECTOR_BATCH_SIZE": "5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "run"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(3)]
        assert f"http://127.0.0.1:{port}/api/v1" in banner[1]
        assert f"http://127.0.0.1:{port}/docs" in banner[2]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 30
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "koppelhub run did not become ready"
                time.sleep(0.1)
            batch = [event(f"key-{i % 7}", i) for i in range(500)]
            response = client.post(
                "/api/v1/events",
                content=json.dumps(batch),
                headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "content-type": "application/cloudevents-batch+json",
                },
            )
            assert response.status_code == 202
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert not (tmp_path / "broker.json").exists(), "the embedded broker was not stopped"

    # The broker is gone with its log; whatever was accepted must be in the archive now.
    infra = provision(Settings(data_dir=tmp_path), broker_needed=False)
    try:
        with psycopg.connect(libpq_url(infra.database_url)) as conn:
            archived = conn.execute("SELECT event_id FROM event_archive").fetchall()
    finally:
        infra.close()
    assert {row[0] for row in archived} == {e["id"] for e in batch}
