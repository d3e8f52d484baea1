"""The contract every registered connector kind keeps (one test, every kind): its sample config
validates, every event it emits is a valid landscape CloudEvent, and ids are stable across runs.
Also: the connectors package imports neither Kafka nor SQL nor the hub."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors.base import ConnectorContext, RecordRejected
from connectors.events import vastgelegd_event
from connectors.ids import content_hash, event_id
from connectors.kinds import KINDS
from connectors.registry import create
from hub.adapters.egress import egress
from schemas import CloudEvent
from schemas.envelope import validate_event
from schemas.landscape import VOORGESTELD_TYPE, validate_landscape_event, validate_proposal_data
from subscriptions.ssrf import NetworkPolicy
from tests.support.hub_fake import TOKEN as HUB_TOKEN
from tests.support.hub_fake import HubFake
from tests.support.openregister_fake import OpenRegisterFake
from tests.support.publiccode_fake import with_url
from tests.support.signalen_fake import SignalenFake

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("aiokafka", "kafka", "sqlalchemy", "psycopg", "hub", "fastapi")


def _web_sample(kind: str, config: dict[str, Any], servers: Servers) -> dict[str, Any]:
    """API kinds read the loopback fakes instead of their sample's example.org URL."""
    if kind == "signalen":
        return {**config, "url": servers.signalen.url, "auth": {"token": servers.signalen.token}}
    if kind == "rest":
        return {**config, "url": servers.rest_url}
    if kind == "softwarecatalogus":
        return {**config, "url": servers.catalogue.url, "auth": {"basic": servers.catalogue_user}}
    if kind == "koppelhub":
        hub = servers.koppelhub
        return {**config, "url": hub.url, "auth": {"token": HUB_TOKEN}, "subscription": str(hub.subscription)}
    if kind == "publiccode":
        return {**config, "urls": [servers.publiccode_url]}
    return config


async def emitted(kind: str, directory: Path, servers: Servers) -> list[dict[str, Any]]:
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a test fixture directory
    config = _web_sample(kind, KINDS[kind].sample_config(directory), servers)
    ctx = ConnectorContext(
        organisatie="org-1",
        scope=f"contract-{kind}",
        work_dir=directory,
        file_roots=(directory,),
        egress=egress(NetworkPolicy.parse("127.0.0.1/32")),
    )
    connector = create(kind, config, ctx)
    events = []
    async for batch in connector.fetch(None):
        for record in batch.records:
            if connector.relay:  # whole events from another hub, published as they are
                events.append(dict(record.data))
                continue
            if connector.passthrough:
                try:
                    item = connector.item(record)
                except RecordRejected:
                    continue
                attrs = connector.event(item, None)
                source = attrs.pop("source", "urn:nld:oin:00000000000000000000:systeem:test")
                event = CloudEvent(
                    specversion="1.0",
                    id=event_id(ctx.scope, item.kind, item.id, item.digest, 0),
                    source=source,
                    organisatie=ctx.organisatie,
                    **attrs,
                )
                events.append(event.model_dump(mode="json"))
                continue
            try:
                changes = connector.map(record)
            except RecordRejected:
                continue
            for change in changes:
                data = change.object.model_dump(mode="json")
                event = vastgelegd_event(
                    "urn:nld:oin:00000000000000000000:systeem:test",
                    ctx.scope,
                    change.object.objecttype,
                    data,
                    content_hash(data),
                    0,
                )
                events.append(event.model_dump(mode="json"))
    return events


@dataclass
class Servers:
    signalen: SignalenFake
    rest_url: str
    catalogue: OpenRegisterFake
    catalogue_user: dict[str, str]
    koppelhub: HubFake
    publiccode_url: str


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    signalen = await SignalenFake().start()
    signalen.add(3)

    async def products(request: web.Request) -> web.Response:
        return web.json_response({"results": [{"id": "app-1", "name": "Zaaksysteem"}]})

    async def publiccode(request: web.Request) -> web.Response:
        repository = f"http://{request.host}/leverancier/zaaksysteem"
        return web.Response(text=with_url("open-zaak.v0.7.yml", repository), content_type="text/yaml")

    app = web.Application()
    app.router.add_get("/api/producten", products)
    app.router.add_get("/leverancier/zaaksysteem/-/raw/HEAD/publiccode.yml", publiccode)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    catalogue = await OpenRegisterFake().start()
    own = "5b8e0a1c-3f7d-4c2e-9a61-0d4f2b7e8c13"  # the sample config's organisatie
    catalogue.add("organisatie", {"id": own, "naam": "Gemeente Voorbeeldstad", "type": "Gemeente"})
    catalogue.add("gebruik", {"afnemer": own, "module": "m-1", "status": "In productie"}, organisation=own)
    user = catalogue.user("gemeente-voorbeeldstad", own)
    other_hub = await HubFake("urn:nld:oin:00000000000000000001:systeem:koppelhub").start()
    other_hub.add(
        {
            "specversion": "1.0", "id": "e-1", "source": "urn:nld:oin:00000000000000000099:systeem:cmdb",
            "type": "nl.softwarecatalogus.applicatie.vastgelegd.v1", "subject": "app-1",
            "datacontenttype": "application/json", "data": {"id": "app-1", "naam": "Zaaksysteem"},
        }
    )  # fmt: skip
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    publiccode = f"{base}/leverancier/zaaksysteem"
    yield Servers(signalen, f"{base}/api/producten", catalogue, user, other_hub, publiccode)
    await other_hub.stop()
    await catalogue.stop()
    await runner.cleanup()
    await signalen.stop()


def test_kinds_are_registered() -> None:
    assert {"csv", "excel", "ameff"} <= set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_event_of_every_kind_is_a_valid_landscape_event(
    kind: str, tmp_path: Path, servers: Servers
) -> None:
    events = await emitted(kind, tmp_path, servers)

    assert events, f"{kind}: the sample emitted no event"
    for raw in events:
        event = validate_event(raw)
        if not event.type.startswith("nl.softwarecatalogus."):
            continue  # a pass-through kind's own event type: a valid envelope is the contract
        if event.type == VOORGESTELD_TYPE:
            assert validate_proposal_data(event.type, event.data) is not None
            continue
        assert validate_landscape_event(event) is not None


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_kind_emits_the_same_ids_on_a_second_run(
    kind: str, tmp_path: Path, servers: Servers
) -> None:
    first = await emitted(kind, tmp_path / "one", servers)
    second = await emitted(kind, tmp_path / "two", servers)

    assert [e["id"] for e in first] == [e["id"] for e in second]
    assert len({e["id"] for e in first}) == len(first)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_documents_its_config(kind: str) -> None:
    cls = KINDS[kind]
    assert cls.name == kind and cls.source and cls.__doc__
    assert all(f.description for f in cls.config_model.model_fields.values())


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_connectors_import_neither_kafka_nor_sql_nor_the_hub() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN)
        for path in (ROOT / "connectors").rglob("*.py")
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_event_ids_are_uuid5_of_scope_object_content_and_generation() -> None:
    import uuid

    from connectors.ids import NAMESPACE, event_id

    name = "\x1f".join(["scope", "gebruik", "g-é", "-", "3"])
    assert event_id("scope", "gebruik", "g-é", None, 3) == str(uuid.uuid5(NAMESPACE, name))
    assert event_id("scope", "gebruik", "g-é", None, 3) != event_id("scope", "gebruik", "g-é", None, 4)
    # Every value of the variant digit occurs among these (it is patched, not computed).
    for n in range(2000):
        digest = f"{n:032x}" if n % 3 else None
        name = "\x1f".join(["import:org-1", "gebruik", f"g-{n}", digest or "-", str(n % 5)])
        made = event_id("import:org-1", "gebruik", f"g-{n}", digest, n % 5)
        assert made == str(uuid.uuid5(NAMESPACE, name))
