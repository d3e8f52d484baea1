"""The ``publiccode`` connector's parsing, validation and mapping (pure), and its reading of files
and of an Open Catalog API from loopback fakes (no broker: the records it yields)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.base import ConnectorContext, RecordRejected
from connectors.publiccode.connector import PubliccodeConnector, raw_url
from connectors.publiccode.mapping import Matching, applicatie_id, map_document
from connectors.publiccode.schema import MAX_NODES, PubliccodeProblem, load_yaml
from connectors.registry import create
from hub.adapters.egress import egress
from schemas.envelope import validate_event
from schemas.landscape import VOORGESTELD_TYPE, validate_landscape_event
from subscriptions.ssrf import NetworkPolicy
from tests.support.publiccode_fake import FIXTURES, PubliccodeFake

UTRECHT = "gm0344"
MATCHING = Matching(gemeenten={"Gemeente Utrecht": UTRECHT})
LIMIT = 256 * 1024


def doc(name: str) -> dict[str, Any]:
    return load_yaml((FIXTURES / name).read_bytes(), LIMIT)


def test_a_v07_file_maps_to_its_applicatie_aanbieder_and_a_proposal_for_the_known_usedby_only() -> None:
    mapped = map_document(doc("open-zaak.v0.7.yml"), "https://x/publiccode.yml", MATCHING)

    app, org = mapped.applicatie, mapped.organisatie
    assert (app.naam, app.type, app.licentietype) == ("Open Zaak", "Applicatie", "Open source")
    assert app.id == applicatie_id("https://github.com/open-zaak/open-zaak")
    assert org is not None and app.aanbieder == org.id
    assert (org.naam, org.type, org.website) == ("Maykin Media", "Leverancier", "https://www.maykinmedia.nl")
    (proposal,) = mapped.proposals  # "Gemeente Utrecht" twice in usedBy: one proposal
    assert (proposal.afnemer, proposal.applicatie, proposal.versie) == (UTRECHT, app.id, "1.17.0")
    assert (proposal.voorgesteldDoor, proposal.bron) == (org.id, "https://x/publiccode.yml")
    assert mapped.unmatched == ["Gemeente Nergensdorp"]


def test_the_applicatie_carries_licence_description_version_status_landing_page_and_repository() -> None:
    app = map_document(doc("open-zaak.v0.7.yml"), None, MATCHING).applicatie

    assert (app.licentie, app.versie, app.ontwikkelstatus) == ("EUPL-1.2", "1.17.0", "stable")
    assert app.beschrijving == "Productiewaardige API's voor zaakgericht werken."  # nl before en
    assert (app.website, app.broncode) == (
        "https://openzaak.org",
        "https://github.com/open-zaak/open-zaak.git",
    )


def test_an_odd_optional_detail_is_left_out_and_the_file_still_maps() -> None:
    odd = {**doc("medusa.v0.2.yml"), "landingURL": "not a url", "url": "git://example.com/medusa.git"}

    app = map_document(odd, None, MATCHING).applicatie

    assert (app.website, app.broncode, app.licentie) == (None, None, "AGPL-3.0-or-later")
    assert app.beschrijving == "Un editor di testo molto interessante."  # the only language


def test_a_v02_file_is_valid_with_its_unquoted_version_and_date_and_the_copyright_owner_offers_it() -> None:
    mapped = map_document(doc("medusa.v0.2.yml"), None, MATCHING)

    assert mapped.applicatie.naam == "Medusa"
    assert mapped.organisatie is not None and mapped.organisatie.naam == "City of Example"
    assert mapped.organisatie.website is None
    assert (mapped.proposals, mapped.unmatched) == ([], ["Comune di Firenze"])


def test_a_library_is_a_component_offered_by_its_maintenance_contractor() -> None:
    mapped = map_document(doc("signalen-lib.v0.4.yml"), None, MATCHING)

    assert mapped.applicatie.type == "Component"
    assert mapped.organisatie is not None and mapped.organisatie.naam == "Datapunt Amsterdam"


def test_an_invalid_file_names_the_path_of_every_schema_problem() -> None:
    with pytest.raises(PubliccodeProblem) as caught:
        map_document(doc("broken.yml"), None, MATCHING)

    assert [path for path, _ in caught.value.problems] == ["developmentStatus", "legal", "softwareType"]
    assert "'license' is a required property" in dict(caught.value.problems)["legal"]


@pytest.mark.parametrize(
    "spelling",
    [
        "https://github.com/open-zaak/open-zaak",
        "https://GitHub.com/open-zaak/open-zaak/",
        " https://github.com/open-zaak/open-zaak.git",
    ],
)
def test_the_applicatie_id_is_the_same_for_every_spelling_of_the_url(spelling: str) -> None:
    assert applicatie_id(spelling) == applicatie_id("https://github.com/open-zaak/open-zaak.git")
    assert applicatie_id(spelling) != applicatie_id("https://github.com/open-zaak/open-notificaties")


def test_the_aanbieder_is_matched_on_its_uri_not_its_name() -> None:
    base = doc("open-zaak.v0.7.yml")
    renamed = {**base, "organisation": {"uri": "https://www.maykinmedia.nl", "name": "Maykin Media B.V."}}
    namesake = {**base, "organisation": {"uri": "https://other.example", "name": "Maykin Media"}}

    first, second, third = (map_document(d, None, MATCHING).organisatie for d in (base, renamed, namesake))

    assert first is not None and second is not None and third is not None
    assert first.id == second.id != third.id


def test_a_uri_the_config_knows_is_that_organisatie_and_is_not_published_again() -> None:
    known = Matching(organisaties={"https://www.maykinmedia.nl": "org-maykin"})

    mapped = map_document(doc("open-zaak.v0.7.yml"), None, known)

    assert (mapped.applicatie.aanbieder, mapped.organisatie) == ("org-maykin", None)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"x" * (LIMIT + 1), "more than the limit"),
        (b"name: [unclosed", "not valid YAML at line 2"),
        (b"a: 1\n---\nb: 2\n", "not valid YAML"),
        (b"- just\n- a list\n", "not a YAML mapping"),
        (
            b"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + b"".join(
                f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n".encode()
                for p, c in zip("abcde", "bcdef", strict=True)
            ),
            f"more than {MAX_NODES} values",
        ),
    ],
)
def test_yaml_that_is_too_large_malformed_or_an_alias_bomb_is_refused_before_validation(
    raw: bytes, why: str
) -> None:
    with pytest.raises(PubliccodeProblem) as caught:
        load_yaml(raw, LIMIT)
    assert why in str(caught.value)


@pytest.mark.parametrize(
    ("url", "raw"),
    [
        (
            "https://github.com/open-zaak/open-zaak",
            "https://raw.githubusercontent.com/open-zaak/open-zaak/HEAD/publiccode.yml",
        ),
        (
            "https://gitlab.com/commonground/gzac.git",
            "https://gitlab.com/commonground/gzac/-/raw/HEAD/publiccode.yml",
        ),
        ("https://example.org/files/publiccode.yaml", "https://example.org/files/publiccode.yaml"),
    ],
)
def test_a_repository_url_is_read_at_its_publiccode_yml(url: str, raw: str) -> None:
    assert raw_url(url) == raw


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"urls": ["https://a.example/publiccode.yml"], "catalogue": "https://c.example/software"},
        {"urls": ["ftp://a"]},
    ],
)
def test_a_config_needs_exactly_one_http_source(config: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        create("publiccode", config, ConnectorContext("org-1", "s", tmp_path))


# -- reading from loopback ---------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[PubliccodeFake]:
    f = await PubliccodeFake().start()
    yield f
    await f.stop()


def _connector(config: dict[str, Any], tmp_path: Path) -> PubliccodeConnector:
    ctx = ConnectorContext("org-1", "unit", tmp_path, egress=egress(NetworkPolicy.parse("127.0.0.1/32")))
    connector = create("publiccode", {"aliases": {"Gemeente Utrecht": UTRECHT}, **config}, ctx)
    assert isinstance(connector, PubliccodeConnector)
    return connector


async def _read(connector: PubliccodeConnector) -> tuple[list[dict[str, Any]], list[str]]:
    """Every event the records become (validated) and every rejection message."""
    events, errors = [], []
    async for batch in connector.fetch(None):
        for record in batch.records:
            try:
                item = connector.item(record)
            except RecordRejected as e:
                errors += [m for _, m in e.problems]
                continue
            attrs = connector.event(item, None)
            event = validate_event(
                {"specversion": "1.0", "id": item.id + item.kind, "source": "urn:x:y", **attrs}
            )
            validate_landscape_event(event)
            events.append({"type": event.type, "data": event.data})
    return events, errors


async def test_raw_and_repository_urls_are_read_and_an_invalid_or_missing_file_publishes_nothing(
    fake: PubliccodeFake, tmp_path: Path
) -> None:
    repository = f"{fake.url}/open-zaak/open-zaak"
    fake.fixture("open-zaak.v0.7.yml", "/open-zaak/open-zaak/-/raw/HEAD/publiccode.yml", url=repository)
    urls = [
        f"{repository}.git",  # a repository URL
        fake.fixture("medusa.v0.2.yml"),
        fake.fixture("broken.yml"),
        f"{fake.url}/raw/gone.yml",
    ]

    events, errors = await _read(_connector({"urls": urls}, tmp_path))

    assert [(e["type"].split(".")[2], e["data"].get("naam")) for e in events] == [
        ("organisatie", "Maykin Media"),
        ("applicatie", "Open Zaak"),
        ("gebruik", None),
        ("organisatie", "City of Example"),
        ("applicatie", "Medusa"),
    ]
    assert events[2]["type"] == VOORGESTELD_TYPE and events[2]["data"]["afnemer"] == UTRECHT
    assert any("broken.yml: legal: 'license' is a required property" in m for m in errors)
    assert any("broken.yml: softwareType:" in m for m in errors)
    assert any("gone.yml answered 404" in m for m in errors)
    assert any("usedBy 'Gemeente Nergensdorp' names no known municipality" in m for m in errors)
    assert any("usedBy 'Comune di Firenze' names no known municipality" in m for m in errors)


async def test_the_open_catalog_api_is_read_page_by_page_along_links_next(
    fake: PubliccodeFake, tmp_path: Path
) -> None:
    for name in (
        "open-zaak.v0.7.yml",
        "medusa.v0.2.yml",
        "broken.yml",
        "signalen-lib.v0.4.yml",
        "open-zaak.v0.7.yml",
    ):
        fake.listed(name)

    events, errors = await _read(_connector({"catalogue": f"{fake.url}/software"}, tmp_path))

    assert fake.requests == ["/software", "/software?page[after]=sw-2", "/software?page[after]=sw-4"]
    applicaties = [e["data"]["naam"] for e in events if e["type"].endswith("applicatie.vastgelegd.v1")]
    assert applicaties == ["Open Zaak", "Medusa", "signals-client", "Open Zaak"]
    organisaties = [e["data"]["naam"] for e in events if e["type"].endswith("organisatie.vastgelegd.v1")]
    assert organisaties == ["Maykin Media", "City of Example", "Datapunt Amsterdam"]  # once per run
    assert sum("license" in m for m in errors) == 1


async def test_an_organisations_repository_list_is_followed_along_its_link_header(
    fake: PubliccodeFake, tmp_path: Path
) -> None:
    for name, repo in (("open-zaak.v0.7.yml", "open-zaak"), ("signalen-lib.v0.4.yml", "signals-client")):
        url = f"{fake.url}/leverancier/{repo}"
        fake.fixture(name, f"/leverancier/{repo}/-/raw/HEAD/publiccode.yml", url=url)
    names = ("open-zaak", "zonder-publiccode", "signals-client")
    fake.repositories = [f"{fake.url}/leverancier/{name}" for name in names]

    events, errors = await _read(_connector({"repositories": f"{fake.url}/orgs/leverancier/repos"}, tmp_path))

    assert [r for r in fake.requests if r.startswith("/orgs")] == [
        "/orgs/leverancier/repos",
        "/orgs/leverancier/repos?page=2",
    ]
    applicaties = [e["data"]["naam"] for e in events if e["type"].endswith("applicatie.vastgelegd.v1")]
    assert applicaties == ["Open Zaak", "signals-client"]
    assert "/leverancier/zonder-publiccode/-/raw/HEAD/publiccode.yml" in fake.requests
    assert not any("zonder-publiccode" in m for m in errors)  # a repository without one: skipped


async def test_an_item_of_a_repository_list_that_names_no_repository_is_rejected_and_holds_withdrawals(
    fake: PubliccodeFake, tmp_path: Path
) -> None:
    url = f"{fake.url}/leverancier/open-zaak"
    fake.fixture("open-zaak.v0.7.yml", "/leverancier/open-zaak/-/raw/HEAD/publiccode.yml", url=url)
    fake.repositories = [url, ""]  # the second is listed without a URL
    connector = _connector({"repositories": f"{fake.url}/orgs/leverancier/repos"}, tmp_path)

    events, errors = await _read(connector)
    batches = [b async for b in connector.fetch(None)]

    assert [e["data"]["naam"] for e in events if e["type"].endswith("applicatie.vastgelegd.v1")] == [
        "Open Zaak"
    ]
    assert "repository list page 1, item 2: names no repository (no http(s) html_url or url)" in errors
    # Which applicatie the item stood for is unknown: a full run withdraws nothing this time.
    assert not any(b.complete for b in batches)


async def test_a_fork_or_mirror_whose_url_names_another_repository_publishes_nothing(
    fake: PubliccodeFake, tmp_path: Path
) -> None:
    """The url is the applicatie's identity: a copy elsewhere must not speak for the original."""
    fake.fixture("open-zaak.v0.7.yml", "/mirror/open-zaak/-/raw/HEAD/publiccode.yml")  # url: github
    fake.listed("medusa.v0.2.yml", f"{fake.url}/mirror/medusa")

    from_urls, url_errors = await _read(_connector({"urls": [f"{fake.url}/mirror/open-zaak"]}, tmp_path))
    listed, listed_errors = await _read(_connector({"catalogue": f"{fake.url}/software"}, tmp_path))

    assert (from_urls, listed) == ([], [])
    assert (
        "url: 'https://github.com/open-zaak/open-zaak.git' is not the repository it was read from"
        in url_errors[0]
    )
    assert "is not the repository it was read from" in listed_errors[0]
