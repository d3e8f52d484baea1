"""Objects deleted in the Softwarecatalogus reach the hub: the connector's run (the sync runner with
the in-memory fingerprint store and event log) against the OpenRegister fake on loopback, which
deletes softly as OpenRegister does (gone from every list, 404 by id). A sweep lists every id;
what this connector published and the catalogue no longer holds is withdrawn once, with the
catalogue's source; an object a list missed but the catalogue still holds, another source's
objects and the hub's own deletion written to the catalogue are not withdrawn (no echo)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorContext
from connectors.events import import_source, vastgelegd_event
from connectors.registry import create
from connectors.softwarecatalogus.connector import SoftwarecatalogusConnector
from hub.adapters.egress import egress
from hub.adapters.memory import InMemoryConnectorTables, InMemoryEventLog, InMemoryFingerprintStore
from hub.ports import ConnectorRecord
from hub.ports.connectors import BatchCommit, Owner, Published, SyncScope
from hub.services.sync import SyncRun
from hub.services.writeback import ConnectorSink, connector_sink
from schemas import CloudEvent
from schemas.bindings import from_kafka_record
from subscriptions.delivery import DeliveryTarget
from subscriptions.sender import Disposition
from subscriptions.ssrf import NetworkPolicy
from tests.support.openregister_fake import OpenRegisterFake

ORG, GEM, LEV = "org-voorbeeldstad", str(uuid.uuid4()), str(uuid.uuid4())
HUB = "urn:nld:oin:00000000000000000000:systeem:koppelhub"


class Prints(InMemoryFingerprintStore):
    """The in-memory store, keeping the connector's checkpoint as the hub's connector row would."""

    checkpoint: dict[str, Any] | None = None

    async def commit(self, scope: SyncScope, owner: Owner, batch: BatchCommit) -> None:
        await super().commit(scope, owner, batch)
        if batch.checkpoint is not None:
            self.checkpoint = batch.checkpoint


@dataclass
class Hub:
    fake: OpenRegisterFake
    prints: Prints
    log: InMemoryEventLog
    scope: SyncScope
    config: dict[str, Any]
    tmp_path: Path

    def events(self) -> list[CloudEvent]:
        return [from_kafka_record(r.key, r.value, r.headers) for p in self.log.partitions for r in p]

    async def run(self) -> list[CloudEvent]:
        """One run of the connector from its checkpoint; the events it published."""
        before = {e.id for e in self.events()}
        ctx = ConnectorContext(
            organisatie=ORG,
            scope=self.scope.key,
            work_dir=self.tmp_path,
            egress=egress(NetworkPolicy.parse("127.0.0.1/32")),
        )
        connector = create("softwarecatalogus", self.config, ctx)
        assert isinstance(connector, SoftwarecatalogusConnector)
        owner = Owner("connector", uuid.UUID(self.scope.key))
        await SyncRun(connector, self.scope, owner, self.prints, self.log).execute(self.prints.checkpoint)
        return [e for e in self.events() if e.id not in before]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    fake = await OpenRegisterFake().start()
    key = str(uuid.uuid4())
    scope = SyncScope(import_source(HUB, "connector", key), ORG, key)
    config = {"url": fake.url, "auth": {"basic": fake.user("voorbeeldstad", GEM)}, "organisatie": GEM}
    yield Hub(fake, Prints(InMemoryConnectorTables()), InMemoryEventLog(), scope, config, tmp_path)
    await fake.stop()


def landscape(fake: OpenRegisterFake) -> dict[str, str]:
    """One of each: the organisations, the municipality's module, gebruik and koppeling."""
    fake.add(
        "organisatie", {"id": GEM, "naam": "Gemeente Voorbeeldstad", "type": "Gemeente"}, organisation=GEM
    )
    fake.add("organisatie", {"id": LEV, "naam": "Leverancier BV", "type": "Leverancier"}, organisation=LEV)
    module = fake.add("module", {"naam": "Eigen module", "aanbieder": GEM}, organisation=GEM)
    gebruik = fake.add("gebruik", {"afnemer": GEM, "module": module, "status": "Gepland"}, organisation=GEM)
    koppeling = fake.add("koppeling", {"moduleA": module, "moduleB": module, "type": "api"}, organisation=GEM)
    return {"organisatie": LEV, "applicatie": module, "gebruik": gebruik, "koppeling": koppeling}


def kinds(events: Sequence[CloudEvent]) -> list[tuple[str, str | None]]:
    return sorted((e.type, e.subject) for e in events)


async def test_objects_deleted_in_the_catalogue_are_withdrawn_once_with_the_catalogues_source(
    hub: Hub,
) -> None:
    made = landscape(hub.fake)
    assert len(await hub.run()) == 5  # 2 organisaties, the module, the gebruik, the koppeling
    # A CMDB published a gebruik the catalogue does not hold: not the catalogue's to withdraw.
    cmdb = SyncScope(import_source(HUB, "connector", "cmdb"), ORG, "cmdb")
    data = {"id": str(uuid.uuid4()), "afnemer": ORG, "applicatie": made["applicatie"], "status": "Gepland"}
    await hub.log.publish([vastgelegd_event(cmdb.source, cmdb.key, "gebruik", data, "d", 0)])
    await hub.prints.commit(
        cmdb,
        Owner("connector", uuid.uuid4()),
        BatchCommit(published=[Published("gebruik", data["id"], "d", 0)]),
    )
    for objecttype, object_id in made.items():
        hub.fake.delete({"applicatie": "module"}.get(objecttype, objecttype), object_id)

    withdrawn = await hub.run()

    assert kinds(withdrawn) == sorted(
        (f"nl.softwarecatalogus.{t}.ingetrokken.v1", object_id) for t, object_id in made.items()
    )
    assert {e.source for e in withdrawn} == {hub.scope.source}
    sweeps = [q for m, _, q, _ in hub.fake.requests if m == "GET" and "_fields" in q]
    assert {q["_fields"] for q in sweeps} == {"id"}  # the sweep asks for ids only
    assert await hub.run() == []  # withdrawn once, not again
    assert await hub.run() == []


async def test_a_sweep_runs_every_nth_run_and_the_deletion_reaches_the_hub_then(hub: Hub) -> None:
    hub.config["sweepEvery"] = 3
    made = landscape(hub.fake)
    await hub.run()  # run 1 (no sweep)
    hub.fake.delete("gebruik", made["gebruik"])

    assert await hub.run() == []  # run 2: no sweep yet
    assert not [q for _, _, q, _ in hub.fake.requests if "_fields" in q]
    assert kinds(await hub.run()) == [("nl.softwarecatalogus.gebruik.ingetrokken.v1", made["gebruik"])]
    assert await hub.run() == []


async def test_an_object_a_sweep_missed_but_the_catalogue_still_holds_is_not_withdrawn(hub: Hub) -> None:
    made = landscape(hub.fake)
    await hub.run()
    hub.fake.unlisted.add(made["koppeling"])  # a page shifted under a concurrent delete

    assert await hub.run() == []
    asked = [(m, s) for m, s, q, _ in hub.fake.requests if m == "GET" and not q]
    assert asked == [("GET", "koppeling")]  # asked for by id, found: kept


class OneConnector:
    """The connector store's ``get``, for one connector (the rest of the port is not used)."""

    def __init__(self, record: ConnectorRecord) -> None:
        self.record = record

    async def get(self, connector_id: uuid.UUID) -> ConnectorRecord:
        assert connector_id == self.record.id
        return self.record


async def test_a_gebruik_the_hub_deleted_in_the_catalogue_is_not_withdrawn_again_by_the_next_sweep(
    hub: Hub,
) -> None:
    made = landscape(hub.fake)
    await hub.run()
    now = datetime.now(UTC)
    record = ConnectorRecord(
        id=uuid.UUID(hub.scope.key), kind="softwarecatalogus", organisatie=ORG, config=hub.config,
        schedule_seconds=60, enabled=True, checkpoint=None, next_run_at=now, failures=0, last_run_at=None,
        last_success_at=None, last_error=None, last_counts=None, events_published=0, created_at=now,
        updated_at=now,
    )  # fmt: skip

    def context(organisatie: str, scope: str) -> ConnectorContext:
        policy = egress(NetworkPolicy.parse("127.0.0.1/32"))
        return ConnectorContext(organisatie=organisatie, scope=scope, work_dir=hub.tmp_path, egress=policy)

    sink = ConnectorSink(OneConnector(record), hub.log, context, hub_urn=HUB, fingerprints=hub.prints)  # type: ignore[arg-type]
    data = {"id": made["gebruik"], "afnemer": ORG, "applicatie": made["applicatie"], "status": "Gepland"}
    removal = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": HUB, "subject": made["gebruik"],
               "type": "nl.softwarecatalogus.gebruik.verwijderd.v1", "organisatie": ORG,
               "data": data}  # fmt: skip
    try:
        outcome = await sink.deliver(DeliveryTarget(connector_sink(record.id), ()), removal, "m-1")
    finally:
        await sink.close()
    assert outcome.disposition is Disposition.DELIVERED
    assert [(w.method, w.id) for w in hub.fake.writes] == [("DELETE", made["gebruik"])]

    assert [e.type for e in await hub.run()] == []  # the hub's own deletion is not echoed back


async def test_a_sweep_withdraws_what_is_gone_even_when_every_record_read_was_invalid(hub: Hub) -> None:
    """The guard "no record was valid, so nothing is withdrawn" is for a source that lists only
    what it has now; a sweep listed every id, and each withdrawal is confirmed by a 404."""
    made = landscape(hub.fake)
    await hub.run()
    # Everything read again (the overlap) is no longer valid:
    hub.fake.change("organisatie", LEV, type="Onbekend")
    hub.fake.change("organisatie", GEM, type="Onbekend")
    hub.fake.change("gebruik", made["gebruik"], status="Kapot")
    hub.fake.change("module", made["applicatie"], naam="")
    hub.fake.delete("koppeling", made["koppeling"])

    withdrawn = await hub.run()

    assert kinds(withdrawn) == [("nl.softwarecatalogus.koppeling.ingetrokken.v1", made["koppeling"])]
