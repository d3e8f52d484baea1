"""A failed connector run says why in the connector's ``lastError`` and the log, and never
with a secret of its config: a stored config that no longer validates (a stricter model after an
upgrade) fails the run with pydantic's reasons, without the input pydantic would quote; a source
that cannot be reached is named by its URL without the credentials in it."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from hub.adapters import memory
from hub.adapters.egress import egress
from hub.services.connectors import ConnectorRunner
from hub.settings import ConnectorSettings
from subscriptions.ssrf import NetworkPolicy
from tests.support.connector_app import LOOPBACK

HERE = "urn:nld:oin:00000001001234567000:systeem:hub"


def _runner(tmp_path: Path) -> tuple[memory.InMemoryConnectorStore, ConnectorRunner]:
    """A runner on in-memory stores whose connectors may reach loopback only."""
    tables = memory.InMemoryConnectorTables()
    connectors = memory.InMemoryConnectorStore(tables)
    stores = (
        memory.InMemoryImportStore(tables),
        memory.InMemoryFingerprintStore(tables),
        memory.InMemoryEventLog(),
    )
    settings = ConnectorSettings(allow_networks=[LOOPBACK])
    runner = ConnectorRunner(
        connectors,
        *stores,
        settings,
        hub_urn=HERE,
        data_dir=tmp_path,
        egress=egress(NetworkPolicy.parse(LOOPBACK)),
    )
    return connectors, runner


async def test_a_stored_config_that_no_longer_validates_fails_the_run_without_its_secrets(
    tmp_path: Path,
) -> None:
    connectors, runner = _runner(tmp_path)
    # Two auth schemes at once: refused by the model, so only a store written around the API
    # (or by an older version) holds it.
    auth = {"token": "t0ken-s3cret", "basic": {"username": "koppelhub", "password": "pw-s3cret"}}
    record = await connectors.create(
        kind="signalen", organisatie="org-1", config={"url": "http://127.0.0.1:9/signals", "auth": auth},
        schedule_seconds=3600, enabled=True,
    )  # fmt: skip

    with capture_logs() as logs:
        await runner.run_connector(record)

    failed = await connectors.get(record.id)
    assert failed.last_error is not None and failed.last_error.startswith("ValidationError: auth: ")
    assert "choose one of token, basic" in failed.last_error
    assert "s3cret" not in failed.last_error
    said = [entry for entry in logs if entry["event"] == "connector_run_failed"]
    assert len(said) == 1 and "s3cret" not in str(said)


async def test_a_source_that_cannot_be_reached_is_named_without_the_credentials_in_its_url(
    tmp_path: Path,
) -> None:
    connectors, runner = _runner(tmp_path)
    record = await connectors.create(
        kind="rest", organisatie="org-1",
        config={"url": "http://koppelhub:pw-s3cret@127.0.0.1:9/zaken",
                "mapping": {"type": "nl.zaken.zaak.gewijzigd.v1", "fields": {}}},
        schedule_seconds=3600, enabled=True,
    )  # fmt: skip

    with capture_logs() as logs:
        await runner.run_connector(record)

    failed = await connectors.get(record.id)
    assert failed.last_error == "SourceUnavailable: GET http://127.0.0.1:9/zaken: ConnectError"
    assert "s3cret" not in str(logs)
