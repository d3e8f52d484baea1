"""Reading the Softwarecatalogus (the connector's fetch and probe) against the OpenRegister fake
on loopback: keyset paging that misses nothing while the list moves, incremental reads from the
checkpoint with the overlap, only the organisation's own objects, and the probe; a list page of
the wrong shape fails the run, and an item that is not an object is a row error."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors.base import Batch, ConnectorContext, SourceRefused
from connectors.registry import create
from connectors.softwarecatalogus.connector import SoftwarecatalogusConnector
from hub.adapters.egress import egress
from subscriptions.ssrf import NetworkPolicy
from tests.support.openregister_fake import OpenRegisterFake

ORG, GEM, LEV = "org-voorbeeldstad", str(uuid.uuid4()), str(uuid.uuid4())


@pytest.fixture
async def fake() -> AsyncIterator[OpenRegisterFake]:
    f = await OpenRegisterFake().start()
    yield f
    await f.stop()


def connector(fake: OpenRegisterFake, tmp_path: Path, **config: Any) -> SoftwarecatalogusConnector:
    auth = {"basic": fake.user(f"u-{uuid.uuid4().hex[:6]}", GEM)}
    ctx = ConnectorContext(
        organisatie=ORG, scope="sc-1", work_dir=tmp_path, egress=egress(NetworkPolicy.parse("127.0.0.1/32"))
    )
    made = create("softwarecatalogus", {"url": fake.url, "auth": auth, "organisatie": GEM, **config}, ctx)
    assert isinstance(made, SoftwarecatalogusConnector)
    return made


def ids(batches: list[Batch]) -> list[str]:
    return [b.records[i].data["object"]["id"] for b in batches for i in range(len(b.records))]


async def test_an_object_updated_during_the_run_does_not_make_the_next_page_skip_one(
    fake: OpenRegisterFake, tmp_path: Path
) -> None:
    orgs = [fake.add("organisatie", {"naam": f"Org {n}", "type": "Gemeente"}) for n in range(5)]
    batches = []
    async for batch in connector(fake, tmp_path, pageSize=2).fetch(None):
        batches.append(batch)
        if len(batches) == 1:
            fake.change("organisatie", orgs[0], naam="Org 0 hernoemd")  # moves to the end of the list

    read = ids(batches)
    assert set(read) == set(orgs)  # page numbers over the moved list would have skipped orgs[2]
    assert read.count(orgs[0]) == 2  # and the change itself was read
    assert batches[-1].complete and batches[-1].checkpoint is not None
    assert (
        batches[-1].checkpoint["updated"]["organisatie"]
        == fake.objects["organisatie"][orgs[0]]["@self"]["updated"]
    )


async def test_a_next_run_asks_from_its_checkpoint_minus_the_overlap_and_reads_only_the_change(
    fake: OpenRegisterFake, tmp_path: Path
) -> None:
    orgs = [fake.add("organisatie", {"naam": f"Org {n}", "type": "Gemeente"}) for n in range(4)]
    reader = connector(fake, tmp_path, pageSize=10, overlapSeconds=0.5)
    first = [b async for b in reader.fetch(None)]
    fake.change("organisatie", orgs[1], website="https://org1.example.nl")
    fake.requests.clear()

    second = [b async for b in reader.fetch(first[-1].checkpoint)]

    checkpoint = first[-1].checkpoint["updated"]["organisatie"]  # type: ignore[index]
    asked = [q for m, s, q, _ in fake.requests if s == "organisatie"]
    assert (
        asked[0]["@self[updated][gte]"]
        == (datetime.fromisoformat(checkpoint) - timedelta(seconds=0.5)).isoformat()
    )
    assert ids(second) == [orgs[3], orgs[1]]  # the last one read again (overlap), then the change


async def test_only_the_organisations_own_applicaties_gebruik_and_koppelingen_are_read(
    fake: OpenRegisterFake, tmp_path: Path
) -> None:
    ours = fake.add("module", {"naam": "Eigen module", "aanbieder": GEM})
    fake.add("module", {"naam": "Module van de leverancier", "aanbieder": LEV})
    own_use = fake.add("gebruik", {"afnemer": GEM, "module": ours, "status": "Gepland"})
    fake.add("gebruik", {"afnemer": LEV, "module": ours, "status": "Gepland"})
    own_link = fake.add("koppeling", {"moduleA": ours, "moduleB": ours, "type": "api"}, organisation=GEM)
    fake.add("koppeling", {"moduleA": ours, "moduleB": ours, "type": "api"}, organisation=LEV)

    read = connector(fake, tmp_path)
    batches = [b async for b in read.fetch(None)]

    assert ids(batches) == [ours, own_use, own_link]
    mapped = [c.object for b in batches for r in b.records for c in read.map(r)]
    assert [(m.objecttype, m.model_dump().get("afnemer")) for m in mapped] == [
        ("applicatie", None), ("gebruik", ORG), ("koppeling", None)
    ]  # fmt: skip


async def test_the_probe_reads_one_organisatie_and_reports_the_total(
    fake: OpenRegisterFake, tmp_path: Path
) -> None:
    for n in range(3):
        fake.add("organisatie", {"naam": f"Org {n}", "type": "Gemeente"})

    assert await connector(fake, tmp_path).probe() == {"reachable": True, "organisaties": 3}
    assert [q["_limit"] for _, _, q, _ in fake.requests] == ["1"]


class OddCatalogue(OpenRegisterFake):
    """A catalogue whose every list page answers ``results`` as set."""

    results: Any = None

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response({"results": self.results, "total": 1, "page": 1, "pages": 1, "limit": 20})


async def test_a_list_page_whose_results_are_not_a_list_fails_the_run(tmp_path: Path) -> None:
    odd = await OddCatalogue().start()
    odd.results = {"id": str(uuid.uuid4())}
    try:
        with pytest.raises(SourceRefused, match="not an objects list"):
            [b async for b in connector(odd, tmp_path).fetch(None)]
    finally:
        await odd.stop()


async def test_an_item_of_a_list_page_that_is_not_an_object_is_rejected_saying_where_it_stood(
    tmp_path: Path,
) -> None:
    odd = await OddCatalogue().start()
    odd.results = ["x", 7]
    try:
        first, *_ = [b async for b in connector(odd, tmp_path).fetch(None)]
    finally:
        await odd.stop()

    assert first.records == []
    assert [r.problems for r in first.rejected] == [
        [("", "organisatie page 1, item 1: a string, not a JSON object")],
        [("", "organisatie page 1, item 2: a number, not a JSON object")],
    ]
