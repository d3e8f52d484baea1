"""Source fingerprints and the progress that goes with them, in PostgreSQL.

Bulk statements take one JSON parameter (serialised with orjson) so a batch of thousands of
rows is one round trip: psycopg's dumping of text arrays was a tenth of an import's CPU
(benchmarks/imports.py). The rows go as JSON arrays (``[type, id]``, read with
``jsonb_array_elements``), straight from the key tuples: orjson writes a list of tuples in a
fifth of the time it takes to build and write a list of ``{"t": .., "i": ..}`` objects
(0.18 against 0.92 µs per key), which an import paid twice per row (lookup and commit).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.adapters.postgres.errors import translate_db_errors
from hub.ports.connectors import BatchCommit, Fingerprint, Key, Owner, Published, SyncScope

# One index probe per key, whatever the statistics say: a table that grows during an import
# has stale ones (planned as ~5 rows), and a plain join then hashed every fingerprint of the
# scope for each lookup (130 ms per 5,000 keys at 200,000 rows). LIMIT 1 (the key is unique)
# keeps the lateral subquery from being flattened into that join.
_KNOWN_SQL = """
    SELECT k.e ->> 0, k.e ->> 1, f.hash, f.generation{data}
    FROM jsonb_array_elements(CAST(:keys AS jsonb)) AS k(e)
    CROSS JOIN LATERAL (
      SELECT hash, generation{data} FROM connector_fingerprints
      WHERE source = :source AND organisatie = :org AND objecttype = k.e ->> 0 AND object_id = k.e ->> 1
      LIMIT 1
    ) AS f
"""
_KNOWN = text(_KNOWN_SQL.format(data=""))
_KNOWN_DATA = text(_KNOWN_SQL.format(data=", data"))
_UPSERT = text("""
    INSERT INTO connector_fingerprints
      (source, organisatie, objecttype, object_id, hash, generation, seen, data)
    SELECT :source, :org, k.e ->> 0, k.e ->> 1, k.e ->> 2, CAST(k.e ->> 3 AS int), :run,
      NULLIF(k.e -> 4, 'null')
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS k(e)
    ON CONFLICT ON CONSTRAINT pk_connector_fingerprints DO UPDATE
      SET hash = excluded.hash, generation = excluded.generation, seen = excluded.seen, updated_at = now(),
        data = excluded.data
""")
_REMEMBER = text("""
    INSERT INTO connector_fingerprints (source, organisatie, objecttype, object_id, hash, generation)
    SELECT :source, :org, t, i, h, g
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS k(t text, i text, h text, g int)
    ON CONFLICT ON CONSTRAINT pk_connector_fingerprints DO UPDATE
      SET hash = excluded.hash, generation = excluded.generation, updated_at = now()
""")
_TOUCH = text("""
    UPDATE connector_fingerprints f SET seen = :run
    FROM jsonb_array_elements(CAST(:keys AS jsonb)) AS k(e)
    WHERE f.source = :source AND f.organisatie = :org AND f.objecttype = k.e ->> 0 AND f.object_id = k.e ->> 1
""")
_UNSEEN = text("""
    SELECT objecttype, object_id, generation FROM connector_fingerprints
    WHERE source = :source AND organisatie = :org AND hash IS NOT NULL
      AND seen IS DISTINCT FROM :run AND objecttype = ANY(CAST(:types AS text[]))
      AND (objecttype, object_id) > (:after_type, :after_id)
    ORDER BY objecttype, object_id LIMIT :limit
""")
_CONNECTOR_PROGRESS = text("""
    UPDATE connectors SET checkpoint = COALESCE(CAST(:checkpoint AS jsonb), checkpoint),
      events_published = events_published + :events, lease_until = now() + make_interval(secs => :lease),
      updated_at = now()
    WHERE id = :id
""")
_IMPORT_PROGRESS = text("""
    UPDATE imports SET rows_read = :rows, counts = CAST(:counts AS jsonb), report = CAST(:report AS jsonb),
      lease_until = now() + make_interval(secs => :lease)
    WHERE id = :id
""")
_ERRORS = text("""
    INSERT INTO import_errors (import_id, seq, "row", "column", message)
    SELECT :id, s, r, c, m
    FROM unnest(CAST(:seqs AS int[]), CAST(:rows AS bigint[]), CAST(:cols AS text[]), CAST(:msgs AS text[]))
      AS k(s, r, c, m)
""")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _keys(keys: Sequence[Key]) -> str:
    """``[[type, id], ...]``: orjson writes the key tuples as they are."""
    return orjson.dumps(keys if isinstance(keys, list) else list(keys)).decode()


class PostgresFingerprintStore:
    """The :class:`hub.ports.connectors.FingerprintStore` on PostgreSQL."""

    def __init__(self, engine: AsyncEngine, *, lease_seconds: float = 300.0) -> None:
        self._engine = engine
        self._lease = lease_seconds

    async def known(
        self, scope: SyncScope, keys: Sequence[Key], *, with_data: bool = False
    ) -> dict[Key, Fingerprint]:
        if not keys:
            return {}
        params = {
            "source": scope.source,
            "org": scope.organisatie,
            "keys": _keys(keys),
        }
        with translate_db_errors():
            async with self._engine.connect() as conn:
                if with_data:
                    rows = await conn.execute(_KNOWN_DATA, params)
                    return {(r[0], r[1]): Fingerprint(r[2], r[3], r[4]) for r in rows}
                rows = await conn.execute(_KNOWN, params)
                return {(r[0], r[1]): Fingerprint(r[2], r[3]) for r in rows}

    async def commit(self, scope: SyncScope, owner: Owner, batch: BatchCommit) -> None:
        base = {"source": scope.source, "org": scope.organisatie, "run": batch.run}
        with translate_db_errors():
            async with self._engine.begin() as conn:
                if batch.published:
                    p = batch.published
                    await conn.execute(
                        _UPSERT,
                        {
                            **base,
                            # [type, id, hash, generation, data]: a Published as a plain tuple
                            # (orjson writes tuples, not named ones).
                            "rows": orjson.dumps([tuple(x) for x in p]).decode(),
                        },
                    )
                if batch.seen and batch.run is not None:
                    await conn.execute(
                        _TOUCH,
                        {**base, "keys": _keys(batch.seen)},
                    )
                await self._progress(conn, owner, batch)

    async def remember(self, scope: SyncScope, written: Sequence[Published]) -> None:
        if not written:
            return
        rows = [{"t": x.objecttype, "i": x.object_id, "h": x.hash, "g": x.generation} for x in written]
        with translate_db_errors():
            async with self._engine.begin() as conn:
                await conn.execute(
                    _REMEMBER,
                    {"source": scope.source, "org": scope.organisatie, "rows": orjson.dumps(rows).decode()},
                )

    async def _progress(self, conn: AsyncConnection, owner: Owner, batch: BatchCommit) -> None:
        if owner.kind == "connector":
            await conn.execute(
                _CONNECTOR_PROGRESS,
                {
                    "id": owner.id,
                    "checkpoint": _json(batch.checkpoint),
                    "events": batch.events,
                    "lease": self._lease,
                },
            )
            return
        await conn.execute(
            _IMPORT_PROGRESS,
            {
                "id": owner.id,
                "rows": batch.rows_read,
                "counts": _json(batch.counts),
                "report": _json(batch.report),
                "lease": self._lease,
            },
        )
        if batch.errors:
            start = (
                await conn.execute(
                    text("SELECT COALESCE(MAX(seq), 0) FROM import_errors WHERE import_id = :id"),
                    {"id": owner.id},
                )
            ).scalar_one()
            seqs = list(range(start + 1, start + 1 + len(batch.errors)))
            await conn.execute(
                _ERRORS,
                {
                    "id": owner.id,
                    "seqs": seqs,
                    "rows": [e.row for e in batch.errors],
                    "cols": [e.column for e in batch.errors],
                    "msgs": [e.message for e in batch.errors],
                },
            )

    async def unseen(
        self, scope: SyncScope, run: uuid.UUID, types: Sequence[str], *, after: Key | None, limit: int
    ) -> list[tuple[Key, int]]:
        params = {
            "source": scope.source,
            "org": scope.organisatie,
            "run": run,
            "types": list(types),
            "after_type": after[0] if after else "",
            "after_id": after[1] if after else "",
            "limit": limit,
        }
        with translate_db_errors():
            async with self._engine.connect() as conn:
                return [((r[0], r[1]), r[2]) for r in await conn.execute(_UNSEEN, params)]
