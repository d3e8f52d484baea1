"""The ``koppelhub`` connector run as the connectors role runs it (ConnectorRunner on the
in-memory twins), following a fake of another hub's pull API on loopback through the real
guarded egress: what it republishes, its checkpoint, and its errors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.koppelhub.rules import VIA
from hub.adapters.egress import egress
from hub.adapters.memory import (
    InMemoryConnectorStore,
    InMemoryConnectorTables,
    InMemoryEventLog,
    InMemoryFingerprintStore,
)
from hub.adapters.memory.connectors import InMemoryImportStore
from hub.errors import BrokerUnavailable
from hub.ports import ConnectorRecord
from hub.services.connectors import ConnectorRunner
from hub.settings import ConnectorSettings
from schemas.bindings import from_kafka_record
from subscriptions.ssrf import NetworkPolicy
from tests.support.hub_fake import TOKEN, HubFake

HERE = "urn:nld:oin:00000000000000000002:systeem:koppelhub"
THERE = "urn:nld:oin:00000000000000000001:systeem:koppelhub"
PARTNER = "urn:nld:oin:00000000000000000099:systeem:cmdb"
ORG = "org-regio"


def vastgelegd(n: int, **attrs: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"e-{n}",
        "source": PARTNER,
        "type": "nl.softwarecatalogus.applicatie.vastgelegd.v1",
        "subject": f"app-{n}",
        "datacontenttype": "application/json",
        "organisatie": "org-leverancier",
        "data": {"id": f"app-{n}", "naam": f"Applicatie {n}", "aanbieder": "org-leverancier"},
        **attrs,
    }


def derived(n: int) -> dict[str, Any]:
    return {
        **vastgelegd(n),
        "id": f"d-{n}",
        "source": THERE,
        "type": "nl.softwarecatalogus.applicatie.aangemaakt.v1",
    }


@dataclass
class Follower:
    runner: ConnectorRunner
    store: InMemoryConnectorStore
    log: InMemoryEventLog

    async def connector(self, fake: HubFake, token: str = TOKEN, page: int = 2) -> ConnectorRecord:
        config = {
            "url": fake.url,
            "auth": {"token": token},
            "subscription": str(fake.subscription),
            "pageSize": page,
        }
        return await self.store.create(
            kind="koppelhub", organisatie=ORG, config=config, schedule_seconds=5, enabled=True
        )

    async def run(self, record: ConnectorRecord) -> ConnectorRecord:
        await self.runner.run_connector(await self.store.get(record.id))
        return await self.store.get(record.id)

    def published(self) -> list[dict[str, Any]]:
        return [
            from_kafka_record(r.key, r.value, r.headers).model_dump(mode="json", exclude_none=True)
            for partition in self.log.partitions
            for r in partition
        ]


@pytest.fixture
def follower(tmp_path: Path) -> Follower:
    tables, log = InMemoryConnectorTables(), InMemoryEventLog()
    store = InMemoryConnectorStore(tables)
    runner = ConnectorRunner(
        store, InMemoryImportStore(tables), InMemoryFingerprintStore(tables), log,
        ConnectorSettings(allow_networks=["127.0.0.1/32"]),
        hub_urn=HERE, data_dir=tmp_path, egress=egress(NetworkPolicy.parse("127.0.0.1/32")),
    )  # fmt: skip
    return Follower(runner, store, log)


@pytest.fixture
async def fake() -> AsyncIterator[HubFake]:
    f = await HubFake(THERE).start()
    yield f
    await f.stop()


async def test_inbound_events_are_republished_with_their_own_source_and_id_and_the_hub_they_came_from(
    follower: Follower, fake: HubFake
) -> None:
    fake.add(vastgelegd(1), derived(1), vastgelegd(2), vastgelegd(3, **{VIA: HERE}), vastgelegd(4))
    record = await follower.connector(fake)

    after = await follower.run(record)

    assert after.last_error is None
    got = sorted(follower.published(), key=lambda e: e["id"])
    assert [(e["id"], e["source"]) for e in got] == [("e-1", PARTNER), ("e-2", PARTNER), ("e-4", PARTNER)]
    assert all(e[VIA] == THERE and e["data"] == vastgelegd(int(e["id"][2:]))["data"] for e in got)
    assert after.last_counts is not None and after.last_counts["published"] == 3


async def test_the_cursor_is_the_checkpoint_and_the_next_run_reads_only_what_is_new(
    follower: Follower, fake: HubFake
) -> None:
    fake.add(vastgelegd(1), vastgelegd(2), vastgelegd(3))
    record = await follower.connector(fake)
    first = await follower.run(record)
    fake.add(vastgelegd(4))
    fake.requests.clear()

    second = await follower.run(record)

    assert first.checkpoint is not None and second.checkpoint != first.checkpoint
    assert fake.requests[0]["after"] == first.checkpoint["after"]
    assert sorted(e["id"] for e in follower.published()) == ["e-1", "e-2", "e-3", "e-4"]
    assert second.last_counts is not None and second.last_counts["published"] == 1


async def test_a_run_with_nothing_new_publishes_nothing_and_keeps_the_checkpoint(
    follower: Follower, fake: HubFake
) -> None:
    fake.add(vastgelegd(1))
    record = await follower.connector(fake)
    first = await follower.run(record)

    second = await follower.run(record)

    assert second.checkpoint == first.checkpoint
    assert second.last_counts is not None and second.last_counts["published"] == 0
    assert len(follower.published()) == 1


async def test_a_page_of_only_derived_events_still_moves_the_checkpoint(
    follower: Follower, fake: HubFake
) -> None:
    fake.add(derived(1), derived(2), derived(3))
    record = await follower.connector(fake)

    after = await follower.run(record)

    assert follower.published() == []
    assert after.checkpoint is not None and after.checkpoint["after"]
    fake.requests.clear()
    await follower.run(record)
    assert len(fake.requests) == 1  # straight from the end, not the three again


async def test_a_wrong_token_fails_the_run_saying_the_other_hub_refused_it(
    follower: Follower, fake: HubFake
) -> None:
    fake.add(vastgelegd(1))
    record = await follower.connector(fake, token="khub_wrong")

    after = await follower.run(record)

    assert after.last_error is not None and "refused the token (401)" in after.last_error
    assert "auth.token" in after.last_error and "khub_wrong" not in after.last_error
    assert after.checkpoint is None and follower.published() == []


async def test_an_unknown_subscription_fails_the_run_naming_it(follower: Follower, fake: HubFake) -> None:
    record = await follower.connector(fake)
    config = {**record.config, "subscription": str(uuid.uuid4())}
    record = await follower.store.update(record.id, config=config)

    after = await follower.run(record)

    assert after.last_error is not None and config["subscription"] in after.last_error


async def test_a_429_with_retry_after_is_waited_out_and_the_run_succeeds(follower: Follower) -> None:
    fake = await HubFake(THERE, busy=2).start()
    try:
        fake.add(vastgelegd(1))
        after = await follower.run(await follower.connector(fake))
    finally:
        await fake.stop()

    assert after.last_error is None and len(follower.published()) == 1
    assert len(fake.requests) == 3


async def test_a_hub_that_has_this_hubs_name_is_refused(follower: Follower) -> None:
    fake = await HubFake(HERE).start()
    try:
        fake.add(vastgelegd(1))
        after = await follower.run(await follower.connector(fake))
    finally:
        await fake.stop()

    assert after.last_error is not None and "KOPPELHUB_SOURCE_URN" in after.last_error
    assert follower.published() == []


async def test_an_invalid_event_is_a_row_error_and_the_others_go_through(
    follower: Follower, fake: HubFake
) -> None:
    fake.add(vastgelegd(1), {**vastgelegd(2), "specversion": "0.3"}, vastgelegd(3))
    record = await follower.connector(fake, page=10)

    after = await follower.run(record)

    assert after.last_error is None
    assert sorted(e["id"] for e in follower.published()) == ["e-1", "e-3"]
    assert after.last_counts is not None and after.last_counts["invalid"] == 1


async def test_an_item_of_a_page_that_is_not_an_object_is_a_row_error_saying_where_it_stood(
    follower: Follower, fake: HubFake
) -> None:
    fake.add(vastgelegd(1))
    fake.add_encoded([b'"an event?"', b"null"])
    fake.add(vastgelegd(2))
    record = await follower.connector(fake, page=2)

    after = await follower.run(record)

    assert after.last_error is None
    assert sorted(e["id"] for e in follower.published()) == ["e-1", "e-2"]
    assert after.last_counts is not None
    assert (after.last_counts["read"], after.last_counts["invalid"]) == (4, 2)
    assert [e["message"] for e in after.last_counts["errors"]] == [
        "page 1, item 2: a string, not a JSON object",
        "page 2, item 1: null, not a JSON object",
    ]


async def test_a_page_the_log_did_not_acknowledge_leaves_the_checkpoint_where_it_was(
    follower: Follower, fake: HubFake
) -> None:
    fake.add(vastgelegd(1), vastgelegd(2))
    record = await follower.connector(fake)
    first = await follower.run(record)
    fake.add(vastgelegd(3), vastgelegd(4))
    follower.log.unavailable = BrokerUnavailable("the broker is down")

    failed = await follower.run(record)
    follower.log.unavailable = None
    again = await follower.run(record)

    assert failed.last_error is not None and failed.checkpoint == first.checkpoint
    assert again.last_error is None and again.last_counts is not None and again.last_counts["published"] == 2
    assert sorted(e["id"] for e in follower.published()) == ["e-1", "e-2", "e-3", "e-4"]
