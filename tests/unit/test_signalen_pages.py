"""The Signalen connector's read of a list page that is not what Signalen answers: an item that
is not a melding object is rejected saying where it stood (the meldingen around it are read),
and a page whose ``results`` is not a list fails the run. Against the Signalen fake on loopback,
changed to answer so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors.base import Batch, ConnectorContext, SourceRefused
from connectors.kinds import KINDS  # noqa: F401 - registers every connector kind
from connectors.registry import create
from hub.adapters.egress import egress
from subscriptions.ssrf import NetworkPolicy
from tests.support.signalen_fake import Melding, SignalenFake


class Garbled(SignalenFake):
    """Signalen whose list shows melding 2 as a bare string, and whose whole ``results`` is a
    JSON object once ``results_object`` is set."""

    results_object = False

    def render(self, m: Melding) -> dict[str, Any]:
        return f"melding {m.id}" if m.id == 2 else super().render(m)  # type: ignore[return-value]

    async def _list(self, request: web.Request) -> web.Response:
        if self.results_object:
            return web.json_response({"_links": {"next": {"href": None}}, "count": 1, "results": {"id": 1}})
        return await super()._list(request)


@pytest.fixture
async def fake() -> AsyncIterator[Garbled]:
    f = Garbled()
    await f.start()
    yield f
    await f.stop()


async def _read(fake: SignalenFake, tmp_path: Path) -> list[Batch]:
    ctx = ConnectorContext("org-1", "42", tmp_path, egress=egress(NetworkPolicy.parse("127.0.0.1/32")))
    connector = create("signalen", {"url": fake.url, "auth": {"token": fake.token}, "pageSize": 10}, ctx)
    return [b async for b in connector.fetch(None)]


async def test_an_item_that_is_not_a_melding_object_is_rejected_saying_where_it_stood(
    fake: Garbled, tmp_path: Path
) -> None:
    fake.add(3)

    batches = await _read(fake, tmp_path)

    assert [r.data["id"] for b in batches for r in b.records] == [1, 3]
    assert [r.problems for b in batches for r in b.rejected] == [
        [("", "page 1, item 2: a string, not a JSON object")]
    ]


async def test_a_page_whose_results_are_not_a_list_fails_the_run(fake: Garbled, tmp_path: Path) -> None:
    fake.add(1)
    fake.results_object = True

    with pytest.raises(SourceRefused, match="not its HAL list"):
        await _read(fake, tmp_path)
