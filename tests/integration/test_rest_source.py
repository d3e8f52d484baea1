"""The ``rest`` connector on the real broker and database against a supplier API on loopback
(allow-listed): every paging style reads every item once, a 429 is waited out for its
Retry-After, a second run sends the first page's validators and a 304 publishes nothing, and a
run that fails halfway keeps the checkpoint of the last acknowledged page and resumes from it;
an item that is not an object is a row error, not dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.ports import ConnectorRecord
from hub.settings import ConnectorSettings, Settings
from schemas import CloudEvent
from tests.support.connectors import ORG, Harness, harness
from tests.support.rest_fake import RestFake

pytestmark = pytest.mark.integration

TYPE = "nl.leverancier.product.v1"
PAGING: dict[str, dict[str, Any]] = {
    "next-link": {"style": "next-link", "next": "links.next"},
    "page": {"style": "page", "size": 10},
    "link-header": {"style": "link-header"},
    "cursor": {"style": "cursor", "cursorParam": "cursor", "cursorPath": "meta.next_cursor"},
}


@pytest.fixture
async def fake() -> AsyncIterator[RestFake]:
    f = await RestFake().start()
    yield f
    await f.stop()


def loopback(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"connectors": ConnectorSettings(allow_networks=["127.0.0.1/32"], backoff_seconds=60)}
    )


async def _connector(h: Harness, fake: RestFake, style: str = "page", **config: Any) -> ConnectorRecord:
    return await h.connectors.create(
        kind="rest",
        organisatie=ORG,
        schedule_seconds=5,
        enabled=True,
        config={
            "url": f"{fake.url}/{style}",
            "items": "data.items" if style == "cursor" else "results",
            "paging": PAGING[style],
            "mapping": {"type": TYPE, "fields": {"naam": "name", "gewijzigd": "updated_at"}},
            **config,
        },
    )


async def _run(h: Harness, connector: ConnectorRecord) -> ConnectorRecord:
    await h.runner.run_connector(await h.connectors.get(connector.id))
    return await h.connectors.get(connector.id)


def _products(events: list[CloudEvent]) -> list[str]:
    return [e.subject or "" for e in events if e.type == TYPE]


@pytest.mark.parametrize("style", list(PAGING))
async def test_every_paging_style_reads_every_item_once(
    settings: Settings, fake: RestFake, style: str
) -> None:
    fake.add(25)
    async with harness(loopback(settings)) as h:
        after = await _run(h, await _connector(h, fake, style))
        events = await h.events()

    assert after.last_error is None, after.last_error
    assert sorted(_products(events), key=lambda s: int(s[2:])) == [f"p-{i}" for i in range(1, 26)]
    assert len(fake.pages(style)) == 3  # 10 + 10 + 5, and no page asked twice


async def test_a_429_is_waited_out_for_its_retry_after_and_the_run_completes(
    settings: Settings, fake: RestFake
) -> None:
    fake.add(5)
    fake.busy = 1
    async with harness(loopback(settings)) as h:
        after = await _run(h, await _connector(h, fake))
        events = await h.events()

    assert after.last_error is None, after.last_error
    assert len(_products(events)) == 5
    refused, retried = fake.requests[0], fake.requests[1]
    assert retried.at - refused.at >= 0.9  # Retry-After: 1


async def test_a_second_run_sends_the_validators_and_a_304_publishes_nothing(
    settings: Settings, fake: RestFake
) -> None:
    fake.add(5)
    async with harness(loopback(settings)) as h:
        connector = await _connector(h, fake)
        await _run(h, connector)
        second = await _run(h, connector)
        events = await h.events()

    assert second.last_error is None, second.last_error
    assert fake.requests[-1].headers.get("If-None-Match") == fake.etag  # answered 304
    assert len(_products(events)) == 5
    assert (second.last_counts or {}).get("published") == 0


async def test_a_run_that_fails_halfway_keeps_the_checkpoint_of_the_last_acknowledged_page_and_resumes(
    settings: Settings, fake: RestFake
) -> None:
    fake.add(30)
    fake.fail_from_page = 3
    incremental = {"param": "updated_after", "field": "updated_at", "overlapSeconds": 0}
    async with harness(loopback(settings)) as h:
        connector = await _connector(h, fake, incremental=incremental)
        failed = await _run(h, connector)
        fake.fail_from_page = None
        resumed = await _run(h, connector)
        events = await h.events()

    assert failed.last_error is not None and "500" in failed.last_error
    assert failed.checkpoint == {"since": "2026-01-01T00:00:20+00:00"}  # pages 1 and 2 acknowledged
    assert resumed.last_error is None, resumed.last_error
    assert fake.requests[3].query.get("updated_after") == "2026-01-01T00:00:20+00:00"
    products = _products(events)
    assert sorted(products, key=lambda s: int(s[2:])) == [f"p-{i}" for i in range(1, 31)]  # each once


async def test_an_item_that_is_not_an_object_is_a_row_error_and_the_others_are_published(
    settings: Settings, fake: RestFake
) -> None:
    fake.add(3)
    fake.items.insert(1, 42)  # type: ignore[arg-type]  # a supplier's list with a number in it
    async with harness(loopback(settings)) as h:
        after = await _run(h, await _connector(h, fake))
        events = await h.events()

    assert after.last_error is None, after.last_error
    assert sorted(_products(events)) == ["p-1", "p-2", "p-3"]
    assert after.last_counts is not None
    assert (after.last_counts["read"], after.last_counts["invalid"]) == (4, 1)
    assert [e["message"] for e in after.last_counts["errors"]] == [
        "page 1, item 2: a number, not a JSON object"
    ]
