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


async def test_an_import_changes_only_the_organisaties_it_made_and_leaves_the_others_as_their_source_states(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """An import names its suppliers: it makes the ones the hub does not hold and keeps up what
    it made, but a supplier that recorded itself (or that another source stated since) is its
    own: the import leaves it as it is (publishes nothing for it, names it in its notes), and a
    full run that no longer lists it does not withdraw it."""
    n = random.randrange(10**9)
    own, made = f"lev-own-{n}", f"lev-made-{n}"

    async def organisatie(object_id: str) -> dict[str, object] | None:
        found = await client.get(f"/api/v1/organisaties/{object_id}", headers=auth)
        return dict(found.json()) if found.status_code == 200 else None

    async def publish_itself(object_id: str, naam: str) -> None:
        event = {
            "specversion": "1.0", "id": f"self-{object_id}-{naam}", "source": f"urn:nld:{object_id}",
            "type": "nl.softwarecatalogus.organisatie.vastgelegd.v1", "subject": object_id,
            "data": {"id": object_id, "naam": naam, "type": "Leverancier"},
        }  # fmt: skip
        headers = {**auth, "content-type": "application/cloudevents+json"}
        assert (await client.post("/api/v1/events", json=event, headers=headers)).status_code == 202

        async def stored() -> bool:
            return ((await organisatie(object_id)) or {}).get("naam") == naam

        await eventually(stored, what=f"{object_id} as it stated itself")

    def csv(*rows: tuple[str, str]) -> bytes:
        return ("id;naam;type\r\n" + "".join(f"{i};{naam};Leverancier\r\n" for i, naam in rows)).encode()

    async def imported(*rows: tuple[str, str], mode: str = "incremental") -> dict[str, object]:
        return await run_import(
            client, auth, csv(*rows), "o.csv", objecttype="organisatie", organisatie="gem-a", mode=mode
        )

    await publish_itself(own, "Eigen Naam B.V.")
    first = await imported((own, "Andere Naam"), (made, "Gemaakt"))
    assert first["counts"] == {**first["counts"], "published": 1, "unchanged": 1, "invalid": 0}, first
    assert first["notes"] == [
        f"1 organisatie(s) the rows name are recorded by another source and were left as it states "
        f"them: {own!r} (urn:nld:{own}); a run changes only the organisaties it made"
    ]

    async def made_stored() -> bool:
        return ((await organisatie(made)) or {}).get("naam") == "Gemaakt"

    await eventually(made_stored, what="the supplier the import made")
    again = await imported((own, "Andere Naam"), (made, "Gemaakt en hernoemd"))
    assert again["counts"] == {**again["counts"], "published": 1, "unchanged": 1, "invalid": 0}, again

    async def renamed() -> bool:
        return ((await organisatie(made)) or {}).get("naam") == "Gemaakt en hernoemd"

    await eventually(renamed, what="the supplier the import made, renamed by it")
    assert ((await organisatie(own)) or {})["naam"] == "Eigen Naam B.V."  # published only for `made`

    await publish_itself(made, "Zelf Geregistreerd")  # the supplier the import made records itself
    full = await imported((own, "Eigen Naam B.V."), mode="full")
    assert full["counts"] == {**full["counts"], "withdrawn": 0, "invalid": 0}, full
    assert full["notes"][0] == (
        "1 object(s) of other organisations no longer read were not withdrawn: another source recorded "
        f"them since (organisatie {made!r})"
    )
    assert len(full["notes"]) == 2 and repr(own) in full["notes"][1]  # and `own` left as it is
    signed_in = {"Cookie": "koppelhub_console=" + auth["Authorization"].removeprefix("Bearer ")}
    page = await client.get(f"/console/imports/{full['id']}", headers=signed_in)
    assert page.status_code == 200 and "another source recorded them since" in page.text, page.text
    assert "notes" not in page.text.split("Counts", 1)[1].split("</tr>", 1)[0]  # not among the counts
    marker = await imported((own, "Eigen Naam B.V."), (f"lev-marker-{n}", "Marker"))

    async def marker_stored() -> bool:
        return await organisatie(f"lev-marker-{n}") is not None

    await eventually(marker_stored, what="an organisatie imported after the full run")  # projected after it
    assert marker["counts"]["published"] == 1
    assert ((await organisatie(made)) or {}).get("naam") == "Zelf Geregistreerd"
