"""An import touches only its own organisation's objects (issue 12, "A typo moves other
organisations' data"): a row whose gebruik the hub holds for another organisation is a row
error; an import for an organisation the caller may not act for is refused; ``force``
re-publishes rows whatever the fingerprints say."""

from __future__ import annotations

import random

import httpx
import pytest

from tests.support.hub_api import eventually, run_import

pytestmark = pytest.mark.e2e

HEADER = "id;afnemer;applicatie;status;versie\r\n"


def rows(afnemer: str, n: int = 3) -> bytes:
    return (HEADER + "".join(f"g-{i};{afnemer};app-{i};In productie;1.{i}\r\n" for i in range(n))).encode()


async def gebruik(client: httpx.AsyncClient, auth: dict[str, str], object_id: str) -> dict[str, object]:
    return dict((await client.get(f"/api/v1/gebruik/{object_id}", headers=auth)).json())


async def test_an_import_for_a_mistyped_organisatie_moves_nothing_and_force_republishes(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    first = await run_import(client, auth, rows("gem-a"), "a.csv", objecttype="gebruik", organisatie="gem-a")
    assert first["counts"]["published"] == 3

    async def stored() -> bool:
        return (await client.get("/api/v1/gebruik/g-2", headers=auth)).status_code == 200

    await eventually(stored, what="gem-a's gebruik in the landscape")

    typo = await run_import(
        client, auth, rows(""), "b.csv", objecttype="gebruik", organisatie="gem-bestaat-niet"
    )
    assert typo["counts"]["published"] == 0 and typo["counts"]["invalid"] == 3
    assert {e["column"] for e in typo["errors"]} == {"id"}
    assert "belongs to organisatie 'gem-a'" in typo["errors"][0]["message"]

    again = await run_import(client, auth, rows("gem-a"), "a.csv", objecttype="gebruik", organisatie="gem-a")
    assert again["counts"]["unchanged"] == 3 and again["counts"]["published"] == 0
    forced = await run_import(
        client, auth, rows("gem-a"), "a.csv", objecttype="gebruik", organisatie="gem-a", force="true"
    )
    assert forced["counts"]["published"] == 3 and forced["counts"]["unchanged"] == 0
    assert {(await gebruik(client, auth, f"g-{i}"))["afnemer"] for i in range(3)} == {"gem-a"}


async def test_an_import_for_another_organisation_is_refused_and_anothers_import_is_not_found(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    made = await client.post(
        "/api/v1/tokens",
        json={"name": "b", "role": "gebruik-beheerder", "organisatie": "gem-b"},
        headers=auth,
    )
    beheer_b = {"Authorization": f"Bearer {made.json()['token']}"}
    response = await client.post(
        "/api/v1/imports",
        data={"objecttype": "gebruik", "organisatie": "gem-a"},
        files={"file": ("a.csv", rows("gem-a"))},
        headers=beheer_b,
    )
    assert response.status_code == 403, response.text
    assert "gebruik-beheerder" in response.json()["detail"] and "gem-a" in response.json()["detail"]
    own = await run_import(
        client, beheer_b, rows("gem-b"), "b.csv", objecttype="gebruik", organisatie="gem-b"
    )
    assert own["counts"]["published"] == 3
    theirs = await run_import(
        client, auth, rows("gem-a", 1), "a.csv", objecttype="gebruik", organisatie="gem-a"
    )
    assert (await client.get(f"/api/v1/imports/{theirs['id']}", headers=beheer_b)).status_code == 404
    assert (await client.get(f"/api/v1/imports/{own['id']}", headers=beheer_b)).status_code == 200


async def test_an_organisatie_row_may_not_give_another_organisaties_oin(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """An OIN names one organisation's sources (urn:nld:oin:<OIN>:…): an import that gives it
    to another organisatie is a row error, as such a publish is a 403."""
    taken, free = (f"{random.randrange(10**19, 10**20)}" for _ in range(2))
    owner = {
        "specversion": "1.0", "id": f"org-{taken}", "source": "urn:nld:beheer",
        "type": "nl.softwarecatalogus.organisatie.vastgelegd.v1", "subject": f"gem-{taken}",
        "data": {"id": f"gem-{taken}", "naam": "Gemeente B", "type": "Gemeente", "oin": taken},
    }  # fmt: skip
    published = await client.post(
        "/api/v1/events", json=owner, headers={**auth, "content-type": "application/cloudevents+json"}
    )
    assert published.status_code == 202, published.text

    async def stored() -> bool:
        return (await client.get(f"/api/v1/organisaties/gem-{taken}", headers=auth)).status_code == 200

    await eventually(stored, what="the organisatie that has the OIN")
    csv = (
        f"id;naam;type;oin\r\nlev-{free};Leverancier X;Leverancier;{taken}\r\n"
        f"lev-{taken};Leverancier Y;Leverancier;{free}\r\n"
    )
    done = await run_import(
        client, auth, csv.encode(), "o.csv", objecttype="organisatie", organisatie="gem-a"
    )
    assert done["counts"]["published"] == 1 and done["counts"]["invalid"] == 1, done
    [error] = done["errors"]
    assert error["column"] == "oin" and f"gem-{taken}" in error["message"], error
