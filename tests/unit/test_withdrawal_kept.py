"""A full run withdraws what its scope published and no longer read, except another
organisation's object that another source stated since (:func:`hub.services.withdrawal.withdraw_unseen`
with the landscape's objects; the rule is :func:`hub.services.ownership.kept_from_withdrawal`).
Driven directly, against the in-memory fingerprint store and log, as both runners call it."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

from connectors.base import Connector, ConnectorContext
from connectors.kinds import KINDS  # noqa: F401 - registers every connector kind
from connectors.registry import create
from hub.adapters.memory import InMemoryConnectorTables, InMemoryEventLog, InMemoryFingerprintStore
from hub.ports.connectors import BatchCommit, Owner, Published, SyncScope
from hub.ports.landscape import ObjectKey, Provenance, StoredObject
from hub.services.ownership import first_named
from hub.services.sync_rows import Tally
from hub.services.withdrawal import withdraw_unseen
from schemas.bindings import from_kafka_record
from schemas.landscape.privacy import OWNER_FIELDS

ORG = "gem-a"
SCOPE = SyncScope("urn:nl:koppelhub:test:import:gem-a", ORG, "import:gem-a")
OWNER = Owner("import", uuid.uuid4())

#: What the scope published, and who stated each since (None: not in the landscape any more).
PUBLISHED: dict[ObjectKey, tuple[str, str] | None] = {
    ("organisatie", "lev-self"): ("lev-self", "urn:nld:lev-self"),  # the supplier stated itself: kept
    ("organisatie", "lev-made"): ("lev-made", SCOPE.source),  # as this import made it: withdrawn
    ("organisatie", ORG): (ORG, "urn:nld:gem-a:zaken"),  # its own organisatie: withdrawn
    ("gebruik", "g-1"): (ORG, "urn:nld:gem-a:zaken"),  # its own gebruik, from another source too
    ("applicatie", "app-self"): ("lev-self", "urn:nld:lev-self"),  # the aanbieder stated it: kept
    ("applicatie", "app-made"): ("lev-made", SCOPE.source),  # as this import made it: withdrawn
    ("organisatie", "lev-gone"): None,  # gone already: withdrawn (the projector ignores it)
}


def stored_as(key: ObjectKey, owner: str, source: str) -> StoredObject:
    field = OWNER_FIELDS[key[0]]
    state: dict[str, Any] = {"id": key[1], field: owner}
    return StoredObject(key[0], key[1], state, Provenance(source, "e-1", None, None, 1))


async def landscape(keys: Collection[ObjectKey]) -> dict[ObjectKey, StoredObject]:
    return {k: stored_as(k, *held) for k in keys if (held := PUBLISHED.get(k)) is not None}


async def published_all(tmp_path: Path) -> tuple[InMemoryFingerprintStore, InMemoryEventLog, Connector[Any]]:
    """A fingerprint store in which the scope published every object of :data:`PUBLISHED`, an
    empty log, and a full file connector of the scope's organisation (which confirms every
    unread object gone)."""
    store, log = InMemoryFingerprintStore(InMemoryConnectorTables()), InMemoryEventLog()
    published = [Published(t, i, "h", 0) for t, i in PUBLISHED]
    await store.commit(SCOPE, OWNER, BatchCommit(published=published, run=uuid.uuid4()))
    context = ConnectorContext(ORG, SCOPE.key, tmp_path, file_roots=(tmp_path,))
    return (
        store,
        log,
        create("csv", {"location": str(tmp_path / "x.csv"), "objecttype": "organisatie"}, context),
    )


async def test_a_full_run_keeps_only_another_organisations_object_another_source_stated_and_forgets_it(
    tmp_path: Path,
) -> None:
    store, log, connector = await published_all(tmp_path)
    tally, run, types = Tally(), uuid.uuid4(), {"organisatie", "gebruik", "applicatie"}

    await withdraw_unseen(connector, SCOPE, OWNER, store, log, run, tally, types, landscape)

    events = [from_kafka_record(r.key, r.value, r.headers) for p in log.partitions for r in p]
    withdrawn = ["lev-made", ORG, "g-1", "lev-gone", "app-made"]
    assert sorted(e.subject or "" for e in events) == sorted(withdrawn)
    assert {e.type.rsplit(".", 2)[-2] for e in events} == {"ingetrokken"}
    assert tally.withdrawn == len(withdrawn)
    assert tally.notes == [
        "2 object(s) of other organisations no longer read were not withdrawn: another source "
        "recorded them since (applicatie 'app-self', organisatie 'lev-self')"
    ]
    # Forgotten by the scope: the next full run has nothing left to withdraw, and says nothing.
    again = Tally()
    await withdraw_unseen(connector, SCOPE, OWNER, store, log, uuid.uuid4(), again, types, landscape)
    assert again.withdrawn == 0 and again.notes == []
    assert sum(len(p) for p in log.partitions) == len(events)


async def test_without_the_landscape_a_full_run_withdraws_all_it_no_longer_read(tmp_path: Path) -> None:
    store, log, connector = await published_all(tmp_path)
    tally, types = Tally(), {"organisatie", "gebruik", "applicatie"}
    await withdraw_unseen(connector, SCOPE, OWNER, store, log, uuid.uuid4(), tally, types)
    assert tally.withdrawn == len(PUBLISHED) and tally.notes == []


def test_a_run_note_names_the_first_five_and_counts_the_rest() -> None:
    assert first_named(["a", "b"]) == "a, b"
    assert first_named([f"o{i}" for i in range(7)]) == "o0, o1, o2, o3, o4 and 2 more"
