"""Write-back to the Softwarecatalogus through the dispatcher's client seam (hub.services.writeback)
with the in-memory fingerprint store, against the OpenRegister fake on loopback: a hub change is
written as the organisation, an echo is not, a catalogue version newer than the connector's last
read wins, the connector's own events are refused unasked, and the catalogue's refusals and
outages end as the delivery rules say."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorContext
from connectors.events import import_source
from connectors.softwarecatalogus.mapping import Ids, digest, to_landscape
from hub.adapters.egress import egress
from hub.adapters.memory import InMemoryConnectorTables, InMemoryEventLog, InMemoryFingerprintStore
from hub.ports import ConnectorRecord
from hub.ports.connectors import Published, SyncScope
from hub.services.writeback import ConnectorSink, connector_sink
from schemas.bindings import from_kafka_record
from subscriptions.delivery import DeliveryTarget
from subscriptions.sender import Disposition
from subscriptions.ssrf import NetworkPolicy
from tests.support.openregister_fake import OpenRegisterFake

ORG, GEM, MODULE = "org-voorbeeldstad", str(uuid.uuid4()), str(uuid.uuid4())
HUB = "urn:nld:oin:00000000000000000000:systeem:koppelhub"
IDS = Ids({GEM: ORG})


class OneConnector:
    """The connector store's ``get``, for one connector (the rest of the port is not used)."""

    def __init__(self, record: ConnectorRecord) -> None:
        self.record = record

    async def get(self, connector_id: uuid.UUID) -> ConnectorRecord:
        assert connector_id == self.record.id
        return self.record


@dataclass
class Setup:
    sink: ConnectorSink
    log: InMemoryEventLog
    prints: InMemoryFingerprintStore
    scope: SyncScope
    target: DeliveryTarget
    fake: OpenRegisterFake

    async def deliver(self, event: dict[str, Any]) -> Disposition:
        return (await self.sink.deliver(self.target, event, str(uuid.uuid4()))).disposition

    def outcomes(self) -> list[Any]:
        return [from_kafka_record(r.key, r.value, r.headers) for p in self.log.partitions for r in p]

    async def read(self, object_id: str) -> None:
        """The connector read the catalogue's gebruik as it is now (its fingerprint kept)."""
        model = to_landscape("gebruik", self.fake.objects["gebruik"][object_id], IDS)
        await self.prints.remember(self.scope, [Published("gebruik", object_id, digest(model), 0)])


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    fake = await OpenRegisterFake().start()
    now = datetime.now(UTC)
    config = {"url": fake.url, "auth": {"basic": fake.user("voorbeeldstad", GEM)}, "organisatie": GEM}
    record = ConnectorRecord(
        id=uuid.uuid4(), kind="softwarecatalogus", organisatie=ORG, config=config, schedule_seconds=60,
        enabled=True, checkpoint=None, next_run_at=now, failures=0, last_run_at=None, last_success_at=None,
        last_error=None, last_counts=None, events_published=0, created_at=now, updated_at=now,
    )  # fmt: skip

    def context(organisatie: str, scope: str) -> ConnectorContext:
        policy = egress(NetworkPolicy.parse("127.0.0.1/32"))
        return ConnectorContext(organisatie=organisatie, scope=scope, work_dir=tmp_path, egress=policy)

    log, prints = InMemoryEventLog(), InMemoryFingerprintStore(InMemoryConnectorTables())
    sink = ConnectorSink(OneConnector(record), log, context, hub_urn=HUB, fingerprints=prints)  # type: ignore[arg-type]
    scope = SyncScope(import_source(HUB, "connector", str(record.id)), ORG, str(record.id))
    yield Setup(sink, log, prints, scope, DeliveryTarget(sink=connector_sink(record.id), secrets=()), fake)
    await sink.close()
    await fake.stop()


def derived(verb: str, data: dict[str, Any], *, source: str = HUB) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": f"nl.softwarecatalogus.gebruik.{verb}.v1",
        "subject": data["id"],
        "organisatie": ORG,
        "data": {"versie": None, "referentiecomponenten": [], **data},
    }


def gebruik(object_id: str, status: str) -> dict[str, Any]:
    return {"id": object_id, "afnemer": ORG, "applicatie": MODULE, "status": status}


async def test_a_hub_change_to_what_was_read_last_is_put_as_the_organisation_and_its_fingerprint_kept(
    setup: Setup,
) -> None:
    object_id = setup.fake.add(
        "gebruik", {"afnemer": GEM, "module": MODULE, "status": "Gepland"}, organisation=GEM
    )
    await setup.read(object_id)

    assert (
        await setup.deliver(derived("gewijzigd", gebruik(object_id, "In productie"))) is Disposition.DELIVERED
    )

    (write,) = setup.fake.writes
    assert (write.method, write.user, write.body["status"], write.body["afnemer"]) == (
        "PUT", "voorbeeldstad", "In productie", GEM
    )  # fmt: skip
    kept = (await setup.prints.known(setup.scope, [("gebruik", object_id)]))[("gebruik", object_id)]
    now = digest(to_landscape("gebruik", setup.fake.objects["gebruik"][object_id], IDS))
    assert (kept.hash, kept.generation) == (now, 1)  # the next read of it is no change
    (outcome,) = setup.outcomes()
    assert (outcome.type, outcome.data["actie"]) == (
        "nl.koppelhub.softwarecatalogus.bijgewerkt.v1",
        "bijgewerkt",
    )


async def test_an_object_the_catalogue_already_holds_as_the_hub_has_it_is_not_written(setup: Setup) -> None:
    object_id = setup.fake.add(
        "gebruik", {"afnemer": GEM, "module": MODULE, "status": "Gepland"}, organisation=GEM
    )

    assert await setup.deliver(derived("aangemaakt", gebruik(object_id, "Gepland"))) is Disposition.DELIVERED

    assert setup.fake.writes == []
    (outcome,) = setup.outcomes()
    assert (outcome.type, outcome.data["actie"]) == ("nl.koppelhub.softwarecatalogus.ongewijzigd.v1", "geen")


async def test_a_catalogue_version_newer_than_the_last_read_wins_over_an_older_hub_event(
    setup: Setup,
) -> None:
    object_id = setup.fake.add(
        "gebruik", {"afnemer": GEM, "module": MODULE, "status": "Gepland"}, organisation=GEM
    )
    await setup.read(object_id)
    setup.fake.change("gebruik", object_id, status="Verwerving")  # not read by the connector yet

    assert (
        await setup.deliver(derived("gewijzigd", gebruik(object_id, "In productie"))) is Disposition.DELIVERED
    )

    assert setup.fake.writes == []
    assert setup.fake.objects["gebruik"][object_id]["status"] == "Verwerving"
    (outcome,) = setup.outcomes()
    assert outcome.data["actie"] == "conflict"


async def test_a_new_gebruik_is_created_under_its_id_and_a_removed_one_deleted(setup: Setup) -> None:
    object_id = str(uuid.uuid4())

    assert await setup.deliver(derived("aangemaakt", gebruik(object_id, "Gepland"))) is Disposition.DELIVERED
    assert setup.fake.objects["gebruik"][object_id]["@self"]["organisation"] == GEM
    assert await setup.deliver(derived("verwijderd", gebruik(object_id, "Gepland"))) is Disposition.DELIVERED

    assert [(w.method, w.id) for w in setup.fake.writes] == [("POST", object_id), ("DELETE", object_id)]
    assert object_id not in setup.fake.objects["gebruik"]


async def test_an_event_of_the_connector_itself_is_refused_without_asking_the_catalogue(setup: Setup) -> None:
    own = derived("gewijzigd", gebruik(str(uuid.uuid4()), "Gepland"), source=setup.scope.source)

    assert await setup.deliver(own) is Disposition.PERMANENT

    assert setup.fake.requests == [] and setup.outcomes() == []


async def test_a_refused_object_is_geweigerd_for_good_and_an_outage_is_retried(setup: Setup) -> None:
    setup.fake.refuse_writes = 422
    assert (
        await setup.deliver(derived("aangemaakt", gebruik(str(uuid.uuid4()), "Gepland")))
        is Disposition.PERMANENT
    )
    (outcome,) = setup.outcomes()
    assert outcome.type == "nl.koppelhub.softwarecatalogus.geweigerd.v1"
    assert "422" in outcome.data["reason"] and "Validation failed" in outcome.data["reason"]

    setup.fake.refuse_writes = 500
    assert (
        await setup.deliver(derived("aangemaakt", gebruik(str(uuid.uuid4()), "Gepland"))) is Disposition.RETRY
    )
    assert len(setup.outcomes()) == 1  # no outcome for an attempt that will be retried


async def test_credentials_the_catalogue_refuses_end_the_delivery_at_once(setup: Setup) -> None:
    setup.fake.users["voorbeeldstad"] = ("an-app-password-since-revoked", GEM)

    assert (
        await setup.deliver(derived("aangemaakt", gebruik(str(uuid.uuid4()), "Gepland")))
        is Disposition.PERMANENT
    )

    assert setup.fake.writes == [] and setup.outcomes() == []
