"""The embedded broker: started once per data dir, reused by a second command, stopped by its owner."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hub.embedded import EmbeddedBroker, Infrastructure, provision
from hub.settings import Settings

pytestmark = pytest.mark.integration


def accepts(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_a_second_command_reuses_the_running_broker_and_only_the_owner_stops_it(tmp_path: Path) -> None:
    owner = EmbeddedBroker(tmp_path / "broker.json", tmp_path / "broker.log")
    bootstrap = owner.start()
    try:
        guest = EmbeddedBroker(tmp_path / "broker.json", tmp_path / "broker.log")
        assert guest.start() == bootstrap
        assert not guest.owned
        guest.stop()
        assert accepts(bootstrap), "a guest must not stop the owner's broker"
    finally:
        owner.stop()
    assert not accepts(bootstrap)
    assert not (tmp_path / "broker.json").exists()


def test_a_stale_state_file_starts_a_new_broker(tmp_path: Path) -> None:
    (tmp_path / "broker.json").write_text('{"bootstrap": "127.0.0.1:1", "pid": 999999}')
    broker = EmbeddedBroker(tmp_path / "broker.json", tmp_path / "broker.log")
    try:
        assert broker.start() != "127.0.0.1:1"
        assert broker.owned
    finally:
        broker.stop()


def test_a_broker_whose_run_was_killed_is_not_reused_while_it_is_still_closing(tmp_path: Path) -> None:
    """A supervisor that starts ``run`` again at once after a SIGKILL finds the old broker still
    listening: its death signal (SIGTERM) has not ended it yet. Attaching to it lost the new
    run its broker a moment later (the fault suite's "run" kill after a broker restart)."""
    dead_owner = subprocess.Popen(["true"])  # a pid that is gone
    dead_owner.wait()
    dying = subprocess.Popen(["sleep", "60"])  # the old broker, still running
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    old = f"127.0.0.1:{listener.getsockname()[1]}"
    state = {"bootstrap": old, "pid": dying.pid, "owner": dead_owner.pid}
    (tmp_path / "broker.json").write_text(json.dumps(state))
    threading.Timer(0.3, dying.terminate).start()  # its death signal arrives
    broker = EmbeddedBroker(tmp_path / "broker.json", tmp_path / "broker.log")
    try:
        started = time.monotonic()
        assert broker.start() != old
        assert broker.owned
        assert time.monotonic() - started >= 0.25, "it did not wait for the old broker to go"
    finally:
        broker.stop()
        listener.close()
        dying.kill()
        dying.wait()


def test_a_process_that_needs_no_broker_starts_none(tmp_path: Path, infra: Infrastructure) -> None:
    settings = Settings(data_dir=tmp_path, database_url=infra.database_url)
    provisioned = provision(settings, broker_needed=False)
    try:
        assert provisioned.broker is None
        assert provisioned.kafka_bootstrap == ""
        assert not (tmp_path / "broker.json").exists()
    finally:
        provisioned.close()


def test_a_dead_broker_is_started_again_on_its_port_but_not_when_it_keeps_dying(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker.json", tmp_path / "broker.log")
    bootstrap = broker.start()
    try:
        for _ in range(3):
            old = json.loads((tmp_path / "broker.json").read_text())["pid"]
            os.kill(old, signal.SIGKILL)
            while not broker.died():
                time.sleep(0.01)
            assert broker.restart()
            assert broker.bootstrap == bootstrap  # the roles' clients keep their address
            assert json.loads((tmp_path / "broker.json").read_text())["pid"] != old
            assert not broker.died()
        os.kill(json.loads((tmp_path / "broker.json").read_text())["pid"], signal.SIGKILL)
        while not broker.died():
            time.sleep(0.01)
        assert not broker.restart(), "a fourth restart within a minute: `run` exits 75 instead"
    finally:
        broker.stop()
