"""The landscape in PostgreSQL: the projector's writes, the read API's queries, the rebuild."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import (
    Row,
    Select,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from hub.adapters.postgres.audit import record_in
from hub.adapters.postgres.bulk import rows_param, upsert_statement
from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.landscape_tables import FIELD_COLUMNS, LANDSCAPE_TABLES, landscape_watermarks
from hub.adapters.postgres.tables import event_archive
from hub.paging import Page
from hub.ports import (
    ArchivedEvent,
    LandscapeSnapshot,
    LandscapeWrite,
    Landschap,
    ObjectKey,
    Provenance,
    StoredObject,
    Watermark,
)
from hub.ports.audit import AuditEntry
from hub.ports.landscape import LIST_FILTERS, check_filters
from schemas import validate_event
from schemas.landscape import OBJECT_TYPES, ingetrokken_type, vastgelegd_type
from schemas.landscape.privacy import OWNER_FIELDS


def _to_object(objecttype: str, row: Row[Any]) -> StoredObject:
    state = {"id": row.id} | {f: getattr(row, c) for f, c in FIELD_COLUMNS[objecttype].items()}
    provenance = Provenance(row.source, row.event_id, row.event_time, row.event_sequence, row.archive_seq)
    return StoredObject(objecttype, row.id, state, provenance)


def _to_row(obj: StoredObject) -> dict[str, Any]:
    row = {c: obj.state.get(f) for f, c in FIELD_COLUMNS[obj.objecttype].items()}
    p = obj.provenance
    return row | {
        "id": obj.id,
        "source": p.source,
        "event_id": p.event_id,
        "event_time": p.time,
        "event_sequence": p.sequence,
        "archive_seq": p.archive_seq,
    }


WATERMARK_KEY = ("objecttype", "object_id", "source")

# One primary-key probe per key. The plain form (objecttype = … AND object_id = ANY(…))
# is planned as a scan of every row of the type once the table holds a few thousand rows
# (EXPLAIN ANALYZE at 20k rows: 2.6 ms per probe, growing with the table, statistics fresh or
# not); the LATERAL … OFFSET 0 keeps a nested loop of index probes (0.7 ms for 250 keys).
# The keys go in as one JSON text (orjson), here and in :func:`_objects_by_id`, not as bound
# arrays: psycopg's list dumper took ~0.56 µs per string, three strings per landscape event;
# orjson ~0.005. The plan stays the nested loop of index probes (EXPLAIN ANALYZE, 50k rows).
_WATERMARKS = text(
    """
    SELECT w.objecttype, w.object_id, w.source, w.sequence, w.time
    FROM jsonb_to_recordset(CAST(:keys AS jsonb)) AS k(objecttype text, object_id text),
    LATERAL (
        SELECT * FROM landscape_watermarks AS w
        WHERE w.objecttype = k.objecttype AND w.object_id = k.object_id
          AND w.source = ANY(CAST(:sources AS text[]))
        OFFSET 0
    ) AS w
    """
)


@functools.cache
def _objects_by_id(objecttype: str) -> Select[Any]:
    """``SELECT * FROM <table> WHERE id IN (the ids of the JSON array :ids)``, built once per
    type (building it per batch cost about as much as running it): one primary-key probe per
    id (EXPLAIN ANALYZE at 50,000 rows, 1,000 ids: a nested loop of index scans on the key)."""
    table = LANDSCAPE_TABLES[objecttype]
    return select(table).where(table.c.id.in_(_json_elements(bindparam("ids", type_=Text))))


LANDSCAPE_TABLE_NAMES = (*(t.name for t in LANDSCAPE_TABLES.values()), landscape_watermarks.name)


class PostgresLandscapeUnitOfWork:
    """The landscape tables inside an open transaction (:class:`hub.ports.LandscapeUnitOfWork`)."""

    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def load(self, keys: Collection[ObjectKey], sources: Collection[str]) -> LandscapeSnapshot:
        snapshot = LandscapeSnapshot()
        by_type: dict[str, list[str]] = defaultdict(list)
        for objecttype, object_id in keys:
            by_type[objecttype].append(object_id)
        for objecttype, ids in by_type.items():
            found = await self._conn.execute(_objects_by_id(objecttype), {"ids": orjson.dumps(ids).decode()})
            for row in found:
                obj = _to_object(objecttype, row)
                snapshot.objects[obj.key] = obj
        rows = await self._conn.execute(
            _WATERMARKS,
            {
                "keys": orjson.dumps([{"objecttype": t, "object_id": i} for t, i in keys]).decode(),
                "sources": list(sources),
            },
        )
        for row in rows:
            mark = Watermark(row.sequence, row.time)
            snapshot.watermarks[((row.objecttype, row.object_id), row.source)] = mark
        return snapshot

    async def write(self, changes: LandscapeWrite) -> None:
        deletes: dict[str, list[str]] = defaultdict(list)
        for objecttype, object_id in changes.deletes:
            deletes[objecttype].append(object_id)
        for objecttype, ids in deletes.items():
            table = LANDSCAPE_TABLES[objecttype]
            await self._conn.execute(delete(table).where(table.c.id == _any(ids)))
        upserts: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for obj in changes.upserts.values():
            upserts[obj.objecttype].append(_to_row(obj))
        for objecttype, rows in upserts.items():
            await self._conn.execute(
                upsert_statement(LANDSCAPE_TABLES[objecttype], ("id",)), rows_param(rows)
            )
        if changes.watermarks:
            marks = [
                {"objecttype": k[0], "object_id": k[1], "source": s, "sequence": m.sequence, "time": m.time}
                for (k, s), m in changes.watermarks.items()
            ]
            await self._conn.execute(upsert_statement(landscape_watermarks, WATERMARK_KEY), rows_param(marks))


def _any(values: list[str]) -> ColumnElement[Any]:
    """``= ANY(:values)``: one bound array, however many values."""
    return any_(literal(values, ARRAY(Text)))


def _by_type(keys: Collection[ObjectKey]) -> dict[str, list[str]]:
    by_type: dict[str, list[str]] = {}
    for objecttype, object_id in keys:
        by_type.setdefault(objecttype, []).append(object_id)
    return by_type


def _json_ids(ids: list[str]) -> Select[tuple[str]]:
    """The ids as one JSON text parameter unpacked by PostgreSQL: an import asks the owners of
    5,000 ids per batch, and as an IN list (5,000 placeholders) that cost a fifth of its CPU; as
    a bound array psycopg's list dumper still took ~1.2 µs per id, orjson takes ~0.03."""
    return _json_elements(literal(orjson.dumps(ids).decode(), Text))


def _json_elements(payload: ColumnElement[str]) -> Select[tuple[str]]:
    """The texts of the JSON array ``payload``, one row each."""
    return select(func.jsonb_array_elements_text(cast(payload, JSONB)))


def _filter(table: Table, objecttype: str, name: str, value: str) -> ColumnElement[bool]:
    how, fields = LIST_FILTERS[objecttype][name]
    column = FIELD_COLUMNS[objecttype]
    if how == "eq":
        return table.c[column[fields]] == value
    if how == "has":
        return table.c[column[fields]].contains([value])
    return or_(*(table.c[column[f]] == value for f in fields))


class PostgresLandscapeStore:
    """Reads for the API (:class:`hub.ports.LandscapeReader`) and the rebuild, on one engine."""

    def __init__(self, engine: AsyncEngine):
        self._engine = engine

    async def get(self, objecttype: str, object_id: str) -> StoredObject | None:
        table = LANDSCAPE_TABLES[objecttype]
        with translate_db_errors():
            async with self._engine.connect() as conn:
                row = (await conn.execute(select(table).where(table.c.id == object_id))).first()
        return _to_object(objecttype, row) if row else None

    async def owners(self, keys: Collection[ObjectKey]) -> dict[ObjectKey, str | None]:
        by_type = _by_type(keys)
        found: dict[ObjectKey, str | None] = {}
        with translate_db_errors():
            async with self._engine.connect() as conn:
                for objecttype, ids in by_type.items():
                    table, field = LANDSCAPE_TABLES[objecttype], OWNER_FIELDS.get(objecttype)
                    column = FIELD_COLUMNS[objecttype][field] if field and field != "id" else "id"
                    owner = table.c[column]
                    query = select(table.c.id, owner.label("owner")).where(table.c.id.in_(_json_ids(ids)))
                    for row in await conn.execute(query):
                        found[(objecttype, row.id)] = row.owner if field else None
        return found

    async def objects(self, keys: Collection[ObjectKey]) -> dict[ObjectKey, StoredObject]:
        found: dict[ObjectKey, StoredObject] = {}
        with translate_db_errors():
            async with self._engine.connect() as conn:
                for objecttype, ids in _by_type(keys).items():
                    if (table := LANDSCAPE_TABLES.get(objecttype)) is None:
                        continue  # not a landscape type (a connector's own kind): not stored here
                    for row in await conn.execute(select(table).where(table.c.id.in_(_json_ids(ids)))):
                        found[(objecttype, row.id)] = _to_object(objecttype, row)
        return found

    async def list(
        self, objecttype: str, filters: Mapping[str, str], *, after: str | None, limit: int
    ) -> Page[StoredObject]:
        table = LANDSCAPE_TABLES[objecttype]
        check_filters(objecttype, filters)
        conditions = [_filter(table, objecttype, name, value) for name, value in filters.items()]
        if after is not None:
            conditions.append(table.c.id > after)
        query = select(table).where(and_(True, *conditions)).order_by(table.c.id).limit(limit + 1)
        with translate_db_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        items = [_to_object(objecttype, row) for row in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)

    async def landschap(self, organisatie: str) -> Landschap:
        orgs, gebruik, apps, kopp = (
            LANDSCAPE_TABLES[t] for t in ("organisatie", "gebruik", "applicatie", "koppeling")
        )
        with translate_db_errors():
            async with self._engine.connect() as conn:
                org = (await conn.execute(select(orgs).where(orgs.c.id == organisatie))).first()
                uses = (
                    await conn.execute(
                        select(gebruik).where(gebruik.c.afnemer == organisatie).order_by(gebruik.c.id)
                    )
                ).all()
                app_ids = sorted({row.applicatie for row in uses})
                found = (
                    (await conn.execute(select(apps).where(apps.c.id == _any(app_ids)))).all()
                    if app_ids
                    else []
                )
                links = (
                    await conn.execute(
                        select(kopp).where(kopp.c.organisatie == organisatie).order_by(kopp.c.id)
                    )
                ).all()
        applicaties = {row.id: _to_object("applicatie", row) for row in found}
        return Landschap(
            organisatie=_to_object("organisatie", org) if org else None,
            gebruik=[(_to_object("gebruik", u), applicaties.get(u.applicatie)) for u in uses],
            koppelingen=[_to_object("koppeling", row) for row in links],
        )

    @asynccontextmanager
    async def rebuilding(self, *, audit: AuditEntry | None = None) -> AsyncIterator[PostgresRebuild]:
        """One transaction that empties the landscape tables; readers see the old state until it
        commits. Projector transactions wait for it, then apply on top of the rebuilt state.
        ``audit`` is written last, in the same transaction."""
        with translate_db_errors():
            async with self._engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {', '.join(LANDSCAPE_TABLE_NAMES)}"))
                yield PostgresRebuild(conn)
                await record_in(conn, audit)


class PostgresRebuild:
    """The archive read back in order, and the landscape tables to project it into."""

    def __init__(self, conn: AsyncConnection):
        self._conn = conn
        self.landscape = PostgresLandscapeUnitOfWork(conn)

    async def archive(self, chunk: int = 1000) -> AsyncIterator[list[ArchivedEvent]]:
        types = [f(t) for t in OBJECT_TYPES for f in (vastgelegd_type, ingetrokken_type)]
        last = 0
        while True:
            rows = (
                await self._conn.execute(
                    select(event_archive.c.seq, event_archive.c.event)
                    .where(event_archive.c.seq > last, event_archive.c.type == _any(types))
                    .order_by(event_archive.c.seq)
                    .limit(chunk)
                )
            ).all()
            if not rows:
                return
            yield [ArchivedEvent(row.seq, validate_event(row.event)) for row in rows]
            last = rows[-1].seq
