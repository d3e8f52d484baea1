"""The connector, import and fingerprint stores' contract, run against the in-memory twins and
PostgreSQL: the queue of imports with its leases, fingerprints per scope with the owner's
progress committed beside them, and connectors claimed when due."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from hub.adapters.memory import (
    InMemoryConnectorStore,
    InMemoryConnectorTables,
    InMemoryFingerprintStore,
    InMemoryImportStore,
    InMemoryRunStore,
)
from hub.adapters.postgres.connector_tables import connectors, imports
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.fingerprints import PostgresFingerprintStore
from hub.adapters.postgres.imports import PostgresImportStore
from hub.adapters.postgres.runs import PostgresRunStore
from hub.errors import NotFound
from hub.paging import BadCursor
from hub.ports import ConnectorStore, ImportStore
from hub.ports.connectors import (
    BatchCommit,
    FingerprintStore,
    Owner,
    Published,
    RowError,
    RunStore,
    SyncScope,
)

ORG = "org-1"
SCOPE = SyncScope("urn:example:import:org-1", ORG, "import:org-1")
OTHER = SyncScope("urn:example:import:org-2", "org-2", "import:org-2")


@dataclass
class Stores:
    connectors: ConnectorStore
    imports: ImportStore
    fingerprints: FingerprintStore
    expire_leases: Callable[[], Awaitable[None]]
    runs: RunStore

    async def queue(self, name: str = "a.csv") -> uuid.UUID:
        record = await self.imports.create(
            import_id=uuid.uuid4(),
            organisatie=ORG,
            objecttype="gebruik",
            mode="incremental",
            filename=name,
            path=f"/tmp/{name}",
            options={"sheet": "Blad1"},
        )
        return record.id

    async def connector(self, *, enabled: bool = True) -> uuid.UUID:
        record = await self.connectors.create(
            kind="csv", organisatie=ORG, config={"location": "x"}, schedule_seconds=60, enabled=enabled
        )
        return record.id


@pytest.fixture(params=["memory", "postgres"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        tables = InMemoryConnectorTables()

        async def memory_expire() -> None:
            past = datetime.now(UTC) - timedelta(seconds=1)
            for held in [*tables.imports.values(), *tables.connectors.values()]:
                if held.lease_until is not None:
                    held.lease_until = past

        yield Stores(
            InMemoryConnectorStore(tables),
            InMemoryImportStore(tables),
            InMemoryFingerprintStore(tables),
            memory_expire,
            InMemoryRunStore(tables, keep=3),
        )
        return
    engine = create_engine(request.getfixturevalue("database_url"), pool_size=2)

    async def pg_expire() -> None:
        past = datetime.now(UTC) - timedelta(seconds=1)
        async with engine.begin() as conn:
            for table in (imports, connectors):
                await conn.execute(
                    update(table).where(table.c.lease_until.is_not(None)).values(lease_until=past)
                )

    try:
        yield Stores(
            PostgresConnectorStore(engine),
            PostgresImportStore(engine),
            PostgresFingerprintStore(engine),
            pg_expire,
            PostgresRunStore(engine, keep=3),
        )
    finally:
        await engine.dispose()


async def test_a_created_import_is_queued_and_reads_back(stores: Stores) -> None:
    import_id = await stores.queue()

    got = await stores.imports.get(import_id)

    assert (got.status, got.filename, got.options, got.rows_read, got.counts) == (
        "queued",
        "a.csv",
        {"sheet": "Blad1"},
        0,
        {},
    )
    assert got.started_at is None and got.finished_at is None
    with pytest.raises(NotFound):
        await stores.imports.get(uuid.uuid4())


async def test_the_import_history_lists_newest_first_page_by_page_per_organisation(stores: Stores) -> None:
    made = [await stores.queue(f"{n}.csv") for n in range(3)]
    await stores.imports.finish(made[0], error=None, counts={"read": 3})
    other = await stores.imports.create(
        import_id=uuid.uuid4(),
        organisatie="org-2",
        objecttype="gebruik",
        mode="full",
        filename="o.csv",
        path="/tmp/o.csv",
        options={},
    )

    first = await stores.imports.history(limit=2, cursor=None, organisatie=ORG)
    rest = await stores.imports.history(limit=2, cursor=first.next_cursor, organisatie=ORG)

    assert [r.id for r in first.items + rest.items] == made[::-1]
    assert rest.next_cursor is None
    assert (rest.items[-1].status, rest.items[-1].counts) == ("done", {"read": 3})
    everyone = await stores.imports.history(limit=10, cursor=None)
    assert [r.id for r in everyone.items] == [other.id, *made[::-1]]
    with pytest.raises(BadCursor):
        await stores.imports.history(limit=2, cursor="bm90LWEtY3Vyc29y")


async def test_imports_are_claimed_oldest_first_once_until_their_lease_runs_out(stores: Stores) -> None:
    first, second = await stores.queue("1.csv"), await stores.queue("2.csv")

    a, b, none = await stores.imports.claim(), await stores.imports.claim(), await stores.imports.claim()

    assert (a and a.id, b and b.id, none) == (first, second, None)
    assert a is not None and a.status == "running" and a.started_at is not None
    await stores.expire_leases()
    again = await stores.imports.claim()
    assert again is not None and again.id == first


async def test_a_reclaimed_import_starts_over_without_its_earlier_errors(stores: Stores) -> None:
    import_id = await stores.queue()
    assert await stores.imports.claim() is not None
    await stores.fingerprints.commit(
        SCOPE,
        Owner("import", import_id),
        BatchCommit(rows_read=2, counts={"read": 2}, errors=[RowError(2, "status", "bad")]),
    )
    await stores.expire_leases()

    again = await stores.imports.claim()

    assert again is not None and (again.rows_read, again.counts) == (0, {})
    assert await stores.imports.errors(import_id) == []


async def test_a_started_import_is_not_claimed_and_a_requeued_one_is(stores: Stores) -> None:
    started, requeued = await stores.queue("s.csv"), await stores.queue("r.csv")
    await stores.imports.start(started)
    assert (await stores.imports.get(started)).status == "running"
    claimed = await stores.imports.claim()
    assert claimed is not None and claimed.id == requeued

    await stores.imports.requeue(requeued)

    assert (await stores.imports.get(requeued)).status == "queued"
    again = await stores.imports.claim()
    assert again is not None and again.id == requeued


async def test_finishing_records_counts_or_the_failure(stores: Stores) -> None:
    done, failed = await stores.queue("d.csv"), await stores.queue("f.csv")

    await stores.imports.finish(done, error=None, counts={"read": 3}, report={"gebruik": {"found": 3}})
    await stores.imports.finish(failed, error="the header is wrong")

    d, f = await stores.imports.get(done), await stores.imports.get(failed)
    assert (d.status, d.error, d.counts, d.report) == ("done", None, {"read": 3}, {"gebruik": {"found": 3}})
    assert (f.status, f.error, f.counts) == ("failed", "the header is wrong", {})
    assert d.finished_at is not None and f.finished_at is not None
    assert await stores.imports.claim() is None


async def test_row_errors_keep_their_order_across_commits_and_can_be_limited(stores: Stores) -> None:
    import_id = await stores.queue()
    owner = Owner("import", import_id)
    await stores.fingerprints.commit(
        SCOPE, owner, BatchCommit(errors=[RowError(2, "a", "x"), RowError(3, "b", "y")])
    )
    await stores.imports.add_errors(import_id, [RowError(None, "", "file")])
    await stores.fingerprints.commit(SCOPE, owner, BatchCommit(errors=[RowError(9, "c", "z")]))

    everything = [
        RowError(2, "a", "x"),
        RowError(3, "b", "y"),
        RowError(None, "", "file"),
        RowError(9, "c", "z"),
    ]
    assert await stores.imports.errors(import_id) == everything
    assert await stores.imports.errors(import_id, limit=2) == everything[:2]
    assert await stores.imports.error_count(import_id) == 4
    assert [e async for e in stores.imports.stream_errors(import_id)] == everything


async def test_pass_through_fingerprints_keep_the_fields_published_last(stores: Stores) -> None:
    """What a pass-through run needs to name what changed (``wijzigingen``): the fields it
    published last, read back with ``with_data``; replaced by the next publish, gone with a
    withdrawal, and a copy (changing what was given or read does not change the store)."""
    connector = await stores.connectors.create(
        kind="rest", organisatie=ORG, config={}, schedule_seconds=60, enabled=False
    )
    owner, scope = Owner("connector", connector.id), SyncScope("urn:example:rest", ORG, "rest:1")
    first = {"id": 7, "status": {"state": "m"}, "category": "afval"}
    await stores.fingerprints.commit(scope, owner, BatchCommit(published=[
        Published("melding", "7", "h1", 0, first), Published("melding", "8", "h2", 0, {"id": 8}),
    ]))  # fmt: skip
    first["status"]["state"] = "changed by the caller afterwards"  # type: ignore[index]
    keys = [("melding", "7"), ("melding", "8")]

    read = await stores.fingerprints.known(scope, keys, with_data=True)
    read[("melding", "7")].data["category"] = "changed by the reader"  # type: ignore[index]
    again = await stores.fingerprints.known(scope, keys, with_data=True)
    plain = await stores.fingerprints.known(scope, keys)
    await stores.fingerprints.commit(scope, owner, BatchCommit(published=[
        Published("melding", "7", "h3", 1, {"id": 7, "status": {"state": "i"}}),
        Published("melding", "8", None, 1, None),
    ]))  # fmt: skip
    after = await stores.fingerprints.known(scope, keys, with_data=True)

    assert again[("melding", "7")].data == {"id": 7, "status": {"state": "m"}, "category": "afval"}
    assert again[("melding", "8")].data == {"id": 8}
    assert [f.data for f in plain.values()] == [None, None]
    assert {k: (f.hash, f.generation, f.data) for k, f in after.items()} == {
        ("melding", "7"): ("h3", 1, {"id": 7, "status": {"state": "i"}}),
        ("melding", "8"): (None, 1, None),
    }


async def test_fingerprints_are_known_per_scope_with_their_generation(stores: Stores) -> None:
    import_id = await stores.queue()
    published = [Published("gebruik", "g-1", "h1", 0), Published("gebruik", "g-2", "h2", 3)]

    await stores.fingerprints.commit(
        SCOPE,
        Owner("import", import_id),
        BatchCommit(published=published, rows_read=2, counts={"read": 2}, report={"gebruik": {"found": 2}}),
    )

    known = await stores.fingerprints.known(
        SCOPE, [("gebruik", "g-1"), ("gebruik", "g-2"), ("gebruik", "g-3")]
    )
    assert {k: (f.hash, f.generation) for k, f in known.items()} == {
        ("gebruik", "g-1"): ("h1", 0),
        ("gebruik", "g-2"): ("h2", 3),
    }
    assert await stores.fingerprints.known(OTHER, [("gebruik", "g-1")]) == {}
    record = await stores.imports.get(import_id)
    assert (record.rows_read, record.counts, record.report) == (2, {"read": 2}, {"gebruik": {"found": 2}})


async def test_fingerprints_of_ids_with_json_and_sql_special_characters_are_found_and_touched(
    stores: Stores,
) -> None:
    """Keys travel to PostgreSQL as JSON arrays: quotes, backslashes, non-ASCII and separators
    in an id come back exactly, for the lookup, the commit and the seen mark alike."""
    import_id = await stores.queue()
    owner, run = Owner("import", import_id), uuid.uuid4()
    odd = ['g "1"', "g\\2", "gë-3|x", "g,4;'", '["g", 5]']
    await stores.fingerprints.commit(
        SCOPE, owner, BatchCommit(published=[Published("gebruik", i, f"h{n}", n) for n, i in enumerate(odd)])
    )
    await stores.fingerprints.commit(
        SCOPE, owner, BatchCommit(seen=[("gebruik", i) for i in odd[:3]], run=run)
    )

    known = await stores.fingerprints.known(SCOPE, [("gebruik", i) for i in [*odd, "g-absent"]])
    unseen = await stores.fingerprints.unseen(SCOPE, run, ["gebruik"], after=None, limit=10)

    assert {k: (f.hash, f.generation) for k, f in known.items()} == {
        ("gebruik", i): (f"h{n}", n) for n, i in enumerate(odd)
    }
    assert sorted(k[1] for k, _ in unseen) == sorted(odd[3:])


async def test_remembered_fingerprints_replace_published_ones_without_touching_progress(
    stores: Stores,
) -> None:
    import_id = await stores.queue()
    await stores.fingerprints.commit(
        SCOPE, Owner("import", import_id), BatchCommit(published=[Published("gebruik", "g-1", "h1", 0)])
    )

    await stores.fingerprints.remember(
        SCOPE, [Published("gebruik", "g-1", "h2", 1), Published("koppeling", "k-1", "h3", 0)]
    )

    known = await stores.fingerprints.known(SCOPE, [("gebruik", "g-1"), ("koppeling", "k-1")])
    assert {k: (f.hash, f.generation) for k, f in known.items()} == {
        ("gebruik", "g-1"): ("h2", 1),
        ("koppeling", "k-1"): ("h3", 0),
    }
    assert await stores.fingerprints.known(OTHER, [("gebruik", "g-1")]) == {}


async def test_unseen_lists_live_objects_the_run_did_not_read_page_by_page(stores: Stores) -> None:
    owner = Owner("import", await stores.queue())
    earlier, run = uuid.uuid4(), uuid.uuid4()
    objects = [Published("gebruik", f"g-{i}", f"h{i}", 1) for i in range(5)]
    withdrawn = Published("gebruik", "g-9", None, 2)
    other_type = Published("applicatie", "a-1", "h", 0)
    await stores.fingerprints.commit(
        SCOPE, owner, BatchCommit(published=[*objects, withdrawn, other_type], run=earlier)
    )
    await stores.fingerprints.commit(SCOPE, owner, BatchCommit(seen=[("gebruik", "g-1")], run=run))

    first = await stores.fingerprints.unseen(SCOPE, run, ["gebruik"], after=None, limit=2)
    rest = await stores.fingerprints.unseen(SCOPE, run, ["gebruik"], after=first[-1][0], limit=10)

    assert first == [(("gebruik", "g-0"), 1), (("gebruik", "g-2"), 1)]
    assert rest == [(("gebruik", "g-3"), 1), (("gebruik", "g-4"), 1)]


async def test_a_connector_commit_advances_its_checkpoint_and_event_count(stores: Stores) -> None:
    connector_id = await stores.connector()
    owner = Owner("connector", connector_id)

    await stores.fingerprints.commit(SCOPE, owner, BatchCommit(checkpoint={"sha": "1"}, events=3))
    await stores.fingerprints.commit(SCOPE, owner, BatchCommit(checkpoint=None, events=2))

    got = await stores.connectors.get(connector_id)
    assert (got.checkpoint, got.events_published) == ({"sha": "1"}, 5)


async def test_connectors_read_back_list_per_organisation_and_a_new_config_starts_over(
    stores: Stores,
) -> None:
    connector_id = await stores.connector()
    await stores.fingerprints.commit(
        SCOPE, Owner("connector", connector_id), BatchCommit(checkpoint={"sha": "1"})
    )
    other = await stores.connectors.create(
        kind="csv", organisatie="org-2", config={}, schedule_seconds=60, enabled=False
    )

    updated = await stores.connectors.update(connector_id, config={"location": "y"})

    assert (updated.config, updated.checkpoint) == ({"location": "y"}, None)
    assert [c.id for c in await stores.connectors.all()] == [connector_id, other.id]
    assert [c.id for c in await stores.connectors.all(organisatie="org-2")] == [other.id]
    await stores.connectors.delete(connector_id)
    with pytest.raises(NotFound):
        await stores.connectors.get(connector_id)
    with pytest.raises(NotFound):
        await stores.connectors.delete(connector_id)


async def test_due_connectors_are_claimed_once_and_a_failure_counts_and_waits(stores: Stores) -> None:
    due = await stores.connector()
    await stores.connector(enabled=False)

    claimed = await stores.connectors.claim_due(10)
    assert [c.id for c in claimed] == [due] and claimed[0].last_run_at is not None
    assert await stores.connectors.claim_due(10) == []  # leased

    await stores.connectors.finish(due, error="boom", counts=None, next_in_seconds=3600)
    failed = await stores.connectors.get(due)
    assert (failed.failures, failed.last_error) == (1, "boom")
    assert await stores.connectors.claim_due(10) == []  # not due for an hour

    await stores.connectors.request_run(due)
    [again] = await stores.connectors.claim_due(10)
    await stores.connectors.finish(due, error=None, counts={"read": 1}, next_in_seconds=3600)
    ok = await stores.connectors.get(due)
    assert (ok.failures, ok.last_error, ok.last_counts) == (0, None, {"read": 1})
    assert ok.last_success_at is not None and again.id == due


async def test_connector_runs_list_newest_first_with_the_checkpoint_before_and_after_and_page(
    stores: Stores,
) -> None:
    cid = await stores.connector()
    first = await stores.runs.start_run(cid, None)
    await stores.fingerprints.commit(SCOPE, Owner("connector", cid), BatchCommit(checkpoint={"since": "a"}))
    await stores.runs.finish_run(
        first, status="failed", counts={"published": 1}, errors=[{"item": None, "message": "x"}],
        diagnostics={"request": "GET /"},
    )  # fmt: skip
    second = await stores.runs.start_run(cid, {"since": "a"})

    newest, oldest = await stores.runs.runs(cid, limit=10)

    assert (newest.id, newest.status, newest.finished_at, newest.checkpoint_before) == (
        second, "running", None, {"since": "a"},
    )  # fmt: skip
    assert (oldest.id, oldest.status, oldest.counts, oldest.diagnostics) == (
        first, "failed", {"published": 1}, {"request": "GET /"},
    )  # fmt: skip
    assert (oldest.checkpoint_before, oldest.checkpoint_after) == (None, {"since": "a"})
    assert await stores.runs.runs(cid, limit=10, before=(newest.started_at, newest.id)) == [oldest]


async def test_only_the_newest_runs_of_a_connector_are_kept(stores: Stores) -> None:
    cid = await stores.connector()
    made = []
    for _ in range(5):
        made.append(await stores.runs.start_run(cid, None))
        await stores.runs.finish_run(made[-1], status="succeeded", counts={}, errors=[], diagnostics=None)

    kept = await stores.runs.runs(cid, limit=10)

    assert [r.id for r in kept] == made[:-4:-1]  # keep=3 in these stores


async def test_a_connector_that_does_not_poll_is_never_claimed_until_a_config_change_makes_it_poll(
    stores: Stores,
) -> None:
    writes_only = await stores.connectors.create(
        kind="rest", organisatie="org-1", config={}, schedule_seconds=60, enabled=True, polls=False
    )
    due = await stores.connector()  # the marker: a claim round that took a polling one

    claimed = await stores.connectors.claim_due(10)
    await stores.connectors.request_run(writes_only.id)

    assert [c.id for c in claimed] == [due]
    assert writes_only.polls is False and (await stores.connectors.get(writes_only.id)).polls is False
    assert await stores.connectors.claim_due(10) == []
    changed = await stores.connectors.update(writes_only.id, config={"url": "u"}, polls=True)
    assert changed.polls is True
    assert [c.id for c in await stores.connectors.claim_due(10)] == [writes_only.id]


async def test_work_waiting_says_whether_a_claim_would_find_a_due_connector_or_an_import(
    stores: Stores,
) -> None:
    assert await stores.connectors.work_waiting() is False  # nothing at all
    await stores.connector(enabled=False)
    assert await stores.connectors.work_waiting() is False  # a disabled connector is never due

    due = await stores.connector()
    assert await stores.connectors.work_waiting() is True
    assert [c.id for c in await stores.connectors.claim_due(10)] == [due]
    assert await stores.connectors.work_waiting() is False  # held by this runner

    queued = await stores.queue()
    assert await stores.connectors.work_waiting() is True
    claimed = await stores.imports.claim()
    assert claimed is not None and claimed.id == queued
    assert await stores.connectors.work_waiting() is False  # both held

    await stores.expire_leases()  # their runner died: both can be claimed again
    assert await stores.connectors.work_waiting() is True
    assert (await stores.imports.claim()) is not None
    assert [c.id for c in await stores.connectors.claim_due(10)] == [due]
    assert await stores.connectors.work_waiting() is False
