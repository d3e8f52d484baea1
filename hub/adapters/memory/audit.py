"""The in-memory twin of :class:`hub.adapters.postgres.audit.PostgresAuditLog`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hub.paging import BadCursor, Page, decode_cursor, encode_cursor
from hub.ports.audit import AuditEntry, AuditQuery


class InMemoryAuditLog:
    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._entries: list[AuditEntry] = []
        self._clock = clock

    async def record(self, entry: AuditEntry) -> None:
        self.append(entry)

    def append(self, entry: AuditEntry | None, object_id: object = None) -> None:
        """A change's entry, appended by a twin store as the last step of the change, with no
        ``await`` between: the twin's "same transaction" (a change that failed raised before)."""
        if entry is None:
            return
        about = entry if object_id is None else entry.about(object_id)
        self._entries.append(dataclasses.replace(about, id=len(self._entries) + 1, time=self._clock()))

    async def list(self, query: AuditQuery, *, limit: int, cursor: str | None) -> Page[AuditEntry]:
        after: int | None = None
        if cursor:
            kind, last = decode_cursor(cursor)
            if kind != "a" or not isinstance(last, int):
                raise BadCursor("the cursor is not one this API handed out")
            after = last
        found = [
            e
            for e in reversed(self._entries)
            if _matches(e, query) and (after is None or (e.id or 0) < after)
        ]
        items = found[:limit]
        return Page(items, encode_cursor("a", items[-1].id or 0) if len(found) > limit and items else None)

    async def cleanup(self, *, older_than_days: float) -> int:
        before = self._clock() - timedelta(days=older_than_days)
        kept = [e for e in self._entries if e.time is None or e.time >= before]
        gone = len(self._entries) - len(kept)
        self._entries = kept
        return gone


def _matches(e: AuditEntry, q: AuditQuery) -> bool:
    assert e.time is not None
    return (
        (q.since is None or e.time >= q.since)
        and (q.until is None or e.time < q.until)
        and (q.actor is None or q.actor in (e.actor_name, e.actor_credential))
        and (q.action is None or e.action == q.action)
        and (q.target is None or e.target == q.target)
        and (q.organisatie is None or e.actor_organisatie == q.organisatie)
    )
