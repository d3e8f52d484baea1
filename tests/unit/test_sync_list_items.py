"""A landscape sync (:class:`hub.services.sync.SyncRun`) of a JSON list with items that are not
objects: the ``rest`` connector mapping a supplier's list to applicaties, against the supplier
fake on loopback, with the in-memory fingerprint store and log. Each such item is read, invalid
and a row error naming its page and place; the objects around it are published."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.base import ConnectorContext
from connectors.kinds import KINDS  # noqa: F401 - registers every connector kind
from connectors.registry import create
from hub.adapters.egress import egress
from hub.adapters.memory import InMemoryConnectorTables, InMemoryEventLog, InMemoryFingerprintStore
from hub.ports.connectors import Owner, SyncScope
from hub.services.sync import SyncRun
from schemas.bindings import from_kafka_record
from subscriptions.ssrf import NetworkPolicy
from tests.support.rest_fake import RestFake

SCOPE = SyncScope("urn:nl:koppelhub:test:connector:rest", "org-1", "rest-1")


@pytest.fixture
async def fake() -> AsyncIterator[RestFake]:
    f = await RestFake(page_size=3).start()
    yield f
    await f.stop()


async def test_an_item_that_is_not_an_object_is_read_invalid_and_a_row_error(
    fake: RestFake, tmp_path: Path
) -> None:
    fake.add(4)
    fake.items.insert(1, "p-x")  # type: ignore[arg-type]  # a string among the objects
    fake.items.append(None)  # type: ignore[arg-type]
    ctx = ConnectorContext("org-1", SCOPE.key, tmp_path, egress=egress(NetworkPolicy.parse("127.0.0.1/32")))
    config = {
        "url": f"{fake.url}/page",
        "items": "results",
        "paging": {"style": "page", "size": 3},
        "mapping": {"objecttype": "applicatie", "fields": {"naam": "name"}},
    }
    log = InMemoryEventLog()
    run = SyncRun(
        create("rest", config, ctx),
        SCOPE,
        Owner("connector", uuid.uuid4()),
        InMemoryFingerprintStore(InMemoryConnectorTables()),
        log,
    )

    tally = await run.execute(None)

    published = [from_kafka_record(r.key, r.value, r.headers) for p in log.partitions for r in p]
    assert sorted(e.subject or "" for e in published) == ["p-1", "p-2", "p-3", "p-4"]
    assert (tally.read, tally.published, tally.invalid) == (6, 4, 2)
    assert [e["message"] for e in tally.sample_errors] == [
        "page 1, item 2: a string, not a JSON object",
        "page 2, item 3: null, not a JSON object",
    ]
