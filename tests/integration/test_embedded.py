"""The embedded broker: started once per data dir, reused by a second command, stopped by its owner."""

from __future__ import annotations

import socket
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


def test_a_process_that_needs_no_broker_starts_none(tmp_path: Path, infra: Infrastructure) -> None:
    settings = Settings(data_dir=tmp_path, database_url=infra.database_url)
    provisioned = provision(settings, broker_needed=False)
    try:
        assert provisioned.broker is None
        assert provisioned.kafka_bootstrap == ""
        assert not (tmp_path / "broker.json").exists()
    finally:
        provisioned.close()
