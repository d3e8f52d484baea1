"""The ``publiccode`` connector through the connector runner on the real broker and database,
against publiccode.yml files on loopback (allow-listed): exact event counts, the run report
naming the invalid file's schema paths and the unmatched ``usedBy`` names, nothing published
by a second run, and only the changed file's applicatie after an edit."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest

from hub.ports import ConnectorRecord
from hub.settings import ConnectorSettings, Settings
from schemas import CloudEvent
from tests.support.connectors import ORG, Harness, harness
from tests.support.publiccode_fake import PubliccodeFake

pytestmark = pytest.mark.integration

UTRECHT = "gm0344"


@pytest.fixture
async def fake() -> AsyncIterator[PubliccodeFake]:
    f = await PubliccodeFake().start()
    yield f
    await f.stop()


def loopback(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"connectors": ConnectorSettings(allow_networks=["127.0.0.1/32"], backoff_seconds=60)}
    )


async def _connector(h: Harness, fake: PubliccodeFake) -> ConnectorRecord:
    urls = [
        f"{fake.url}/open-zaak/open-zaak.git",  # a repository URL
        fake.fixture("medusa.v0.2.yml"),
        fake.fixture("broken.yml"),
        fake.fixture("signalen-lib.v0.4.yml"),
    ]
    repository = f"{fake.url}/open-zaak/open-zaak"
    fake.fixture("open-zaak.v0.7.yml", "/open-zaak/open-zaak/-/raw/HEAD/publiccode.yml", url=repository)
    return await h.connectors.create(
        kind="publiccode",
        organisatie=ORG,
        schedule_seconds=5,
        enabled=True,
        config={"urls": urls, "aliases": {"Gemeente Utrecht": UTRECHT}},
    )


async def _run(h: Harness, connector: ConnectorRecord) -> ConnectorRecord:
    await h.runner.run_connector(await h.connectors.get(connector.id))
    return await h.connectors.get(connector.id)


def _types(events: list[CloudEvent]) -> Counter[str]:
    return Counter(e.type.removeprefix("nl.softwarecatalogus.") for e in events)


async def test_a_first_run_publishes_each_aanbieder_applicatie_and_proposal_once_and_reports_the_rest(
    settings: Settings, fake: PubliccodeFake
) -> None:
    async with harness(loopback(settings)) as h:
        after = await _run(h, await _connector(h, fake))
        events = await h.events()
        assert h.runner.runs is not None
        (run,) = await h.runner.runs.runs(after.id, limit=5)

    assert after.last_error is None, after.last_error
    assert _types(events) == {
        "organisatie.vastgelegd.v1": 3,
        "applicatie.vastgelegd.v1": 3,
        "gebruik.voorgesteld.v1": 1,
    }
    assert all((e.model_extra or {}).get("organisatie") == ORG for e in events)
    (proposal,) = [e for e in events if e.type.endswith("voorgesteld.v1")]
    assert proposal.data["afnemer"] == UTRECHT and proposal.data["toelichting"] == "usedBy: Gemeente Utrecht"
    assert run.status == "succeeded"
    assert (run.counts["published"], run.counts["invalid"]) == (7, 3)
    messages = [e["message"] for e in run.errors]
    broken = [m for m in messages if "broken.yml" in m]
    assert [m.split(": ")[1] for m in broken] == ["developmentStatus", "legal", "softwareType"]
    assert any("usedBy 'Gemeente Nergensdorp' names no known municipality" in m for m in messages)
    assert any("usedBy 'Comune di Firenze' names no known municipality" in m for m in messages)


async def test_a_second_run_publishes_nothing_and_an_edited_file_only_its_applicatie(
    settings: Settings, fake: PubliccodeFake
) -> None:
    async with harness(loopback(settings)) as h:
        connector = await _connector(h, fake)
        await _run(h, connector)
        second = await _run(h, connector)
        path = "/raw/medusa.v0.2.yml"
        fake.files[path] = fake.files[path].replace(b"name: Medusa", b"name: Medusa Editor")
        third = await _run(h, connector)
        events = await h.events()

    assert (second.last_counts or {}).get("published") == 0
    assert (third.last_counts or {}).get("published") == 1
    assert _types(events)["applicatie.vastgelegd.v1"] == 4
    assert [e.data["naam"] for e in events if "Medusa" in str(e.data.get("naam"))] == [
        "Medusa",
        "Medusa Editor",
    ]
    assert len({e.id for e in events}) == len(events)


def _applicaties(events: list[CloudEvent], verb: str) -> dict[str, str]:
    """``naam`` (vastgelegd) or subject (ingetrokken) → subject of the applicatie events of ``verb``."""
    chosen = [e for e in events if e.type == f"nl.softwarecatalogus.applicatie.{verb}.v1"]
    return {str(e.data.get("naam") or e.subject): str(e.subject) for e in chosen}


async def test_a_repository_that_leaves_the_list_or_whose_file_is_gone_is_withdrawn_once_an_outage_never(
    settings: Settings, fake: PubliccodeFake
) -> None:
    names = {"open-zaak.v0.7.yml": "zaak", "medusa.v0.2.yml": "medusa", "signalen-lib.v0.4.yml": "signalen"}
    for name, repo in names.items():
        fake.repositories.append(f"{fake.url}/leverancier/{repo}")
        fake.fixture(
            name, f"/leverancier/{repo}/-/raw/HEAD/publiccode.yml", url=f"{fake.url}/leverancier/{repo}"
        )
    async with harness(loopback(settings)) as h:
        connector = await h.connectors.create(
            kind="publiccode", organisatie=ORG, schedule_seconds=5, enabled=True,
            config={"repositories": f"{fake.url}/orgs/leverancier/repos"},
        )  # fmt: skip
        await _run(h, connector)
        made = _applicaties(await h.events(), "vastgelegd")
        assert sorted(made) == ["Medusa", "Open Zaak", "signals-client"]
        fake.repositories.remove(f"{fake.url}/leverancier/medusa")  # left the list
        fake.status["/leverancier/signalen/-/raw/HEAD/publiccode.yml"] = 410  # gone for good
        fake.status["/leverancier/zaak/-/raw/HEAD/publiccode.yml"] = 500  # an outage: stays
        second = await _run(h, connector)
        withdrawn = [e for e in await h.events() if e.type.endswith(".ingetrokken.v1")]
        third = await _run(h, connector)
        after = await h.events()

    assert second.last_error is None, second.last_error
    assert sorted((e.type, e.subject) for e in withdrawn) == sorted(
        ("nl.softwarecatalogus.applicatie.ingetrokken.v1", made[n]) for n in ("Medusa", "signals-client")
    )
    vastgelegd = next(e for e in after if e.subject == made["Medusa"])
    assert {e.source for e in withdrawn} == {vastgelegd.source}  # the connector's own source
    assert (third.last_counts or {}).get("published") == 0
    assert len([e for e in after if e.type.endswith(".ingetrokken.v1")]) == 2  # once, not again


async def test_a_raw_file_that_fails_for_now_holds_every_withdrawal_of_the_run(
    settings: Settings, fake: PubliccodeFake
) -> None:
    urls = [fake.fixture("medusa.v0.2.yml"), fake.fixture("signalen-lib.v0.4.yml")]
    async with harness(loopback(settings)) as h:
        connector = await h.connectors.create(
            kind="publiccode", organisatie=ORG, schedule_seconds=5, enabled=True, config={"urls": urls}
        )
        await _run(h, connector)
        made = _applicaties(await h.events(), "vastgelegd")
        fake.status["/raw/medusa.v0.2.yml"] = 503  # its applicatie's id is in the file: unknown now
        del fake.files["/raw/signalen-lib.v0.4.yml"]  # 404: gone
        await _run(h, connector)
        held = [e for e in await h.events() if e.type.endswith(".ingetrokken.v1")]
        del fake.status["/raw/medusa.v0.2.yml"]
        await _run(h, connector)
        withdrawn = [e for e in await h.events() if e.type.endswith(".ingetrokken.v1")]

    assert held == []
    assert [e.subject for e in withdrawn] == [made["signals-client"]]


async def test_an_unchanged_file_answers_304_to_the_validators_of_the_last_run_and_is_not_parsed(
    settings: Settings, fake: PubliccodeFake
) -> None:
    async with harness(loopback(settings)) as h:
        connector = await _connector(h, fake)
        await _run(h, connector)
        assert fake.not_modified == 0
        second = await _run(h, connector)
        # The three valid files answered 304 (broken.yml, invalid, is read and reported again).
        assert fake.not_modified == 3
        path = "/raw/medusa.v0.2.yml"
        fake.files[path] = fake.files[path].replace(b"name: Medusa", b"name: Medusa Editor")
        third = await _run(h, connector)
        fourth = await _run(h, connector)
        events = await h.events()

    assert (second.last_counts or {}).get("published") == 0
    assert (second.last_counts or {}).get("withdrawn") == 0  # a 304 keeps its applicatie
    assert (third.last_counts or {}).get("published") == 1  # the edited file: 200, parsed
    assert fake.not_modified == 3 + 2 + 3
    assert (fourth.last_counts or {}).get("published") == 0
    assert not [e for e in events if e.type.endswith(".ingetrokken.v1")]
