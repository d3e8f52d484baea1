"""Rows of the write-ahead log that the projector passed by: found and relayed again.

The write-ahead log relays what the broker refused and what a broker that lost its log held
(:meth:`hub.adapters.postgres.write_ahead.WriteAheadEventLog.relay_refused`). One way was left to
lose an accepted event: a projector member that keeps a position of the lost log reads the new
one from there and skips every record below it, relayed ones among them. It keeps one when the
broker comes back before the member sees a fetch below its position (its fetches back off after
the outage while publishers fill the new log), or when a commit of the old log reached the new
broker's group (aiokafka retries a commit until a coordinator answers). Neither the broker nor
the group can tell; the write-ahead log can.

:class:`OverdueRows` looks every :data:`LOOK_EVERY_S`, only while rows are left after a prune:
when the oldest row not projected was accepted more than :data:`OVERDUE_S` ago, it notes the
end of every partition; once the projector's group has committed up to those ends, the rows
accepted before that time and still not projected were passed by, and are sent again. A
backlog is not mistaken for loss: its rows are projected by the time the group reaches the ends
noted. The look reads the log with the operators' inspector (the fetch's high-water marks, not
``ListOffsets``: INFRA.md), started on first use, so a hub with nothing overdue never makes one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.errors import translate_db_errors
from hub.ports.operators import LogInspector

__all__ = ["LOOK_EVERY_S", "OVERDUE_S", "OverdueRows"]

log = structlog.get_logger(__name__)

#: A row this long accepted and not projected is looked into. Longer than a send may wait for its
#: acknowledgement (``hub.adapters.kafka.SEND_TIMEOUT_S``): such a row's send has been answered,
#: so it is in the log below the ends noted, or was refused (and relayed by the refused relay).
OVERDUE_S = 20.0
#: At most one look at the log per this many seconds.
LOOK_EVERY_S = 5.0
_CHUNK = 1_000

_OLDEST = text(
    """
    SELECT w.accepted_at < now() - make_interval(secs => :overdue) AS overdue,
           now() - make_interval(secs => :overdue) AS cutoff
    FROM event_wal w
    WHERE NOT EXISTS (
        SELECT 1 FROM processed_events p WHERE p.source = w.source AND p.event_id = w.event_id)
    ORDER BY w.seq LIMIT 1
    """
)
_PASSED_BY = text(
    """
    SELECT w.seq, w.key, w.value, w.header_names, w.header_values FROM event_wal w
    WHERE w.seq > :after AND w.accepted_at < :cutoff AND NOT EXISTS (
        SELECT 1 FROM processed_events p WHERE p.source = w.source AND p.event_id = w.event_id)
    ORDER BY w.seq LIMIT :limit
    """
)


@dataclass(frozen=True)
class _Mark:
    """Rows accepted before ``cutoff`` are in the log below ``ends`` (per partition)."""

    cutoff: datetime
    ends: dict[int, int]


class OverdueRows:
    """Finds the rows the projector passed by, and has ``send`` send them again (see module)."""

    def __init__(
        self,
        engine: AsyncEngine,
        inspector: LogInspector,
        send: Callable[[Sequence[Any]], Awaitable[None]],
    ) -> None:
        self._engine, self._inspector, self._send = engine, inspector, send
        self._mark: _Mark | None = None
        self._next_look = 0.0

    async def relay(self) -> int:
        """One look, when one is due: how many rows were sent again (0 mostly)."""
        now = time.monotonic()
        if now < self._next_look:
            return 0
        self._next_look = now + LOOK_EVERY_S
        if self._mark is None:
            self._mark = await self._note()
            return 0
        status = await self._inspector.status()
        ends = {p.partition: (p.end_offset, p.committed or 0) for p in status.partitions}
        mark = self._mark
        lost = any(p not in ends or ends[p][0] < end for p, end in mark.ends.items())
        if not lost and any(ends[p][1] < end for p, end in mark.ends.items()):
            return 0  # the projector has not read that far yet
        # Read past the ends noted, or the log was lost since (a partition ends below them).
        self._mark = None
        relayed = await self._relay_before(mark.cutoff)
        if relayed:
            log.warning("write_ahead_passed_by_relayed", events=relayed, log_lost=lost)
        return relayed

    async def _note(self) -> _Mark | None:
        """A mark when the oldest row not projected is overdue, else None."""
        with translate_db_errors():
            async with self._engine.connect() as conn:
                oldest = (await conn.execute(_OLDEST, {"overdue": OVERDUE_S})).first()
        if oldest is None or not oldest.overdue:
            return None
        status = await self._inspector.status()
        return _Mark(oldest.cutoff, {p.partition: p.end_offset for p in status.partitions})

    async def _relay_before(self, cutoff: datetime) -> int:
        relayed, after = 0, 0
        while True:
            with translate_db_errors():
                async with self._engine.connect() as conn:
                    params = {"after": after, "cutoff": cutoff, "limit": _CHUNK}
                    rows = list(await conn.execute(_PASSED_BY, params))
            if not rows:
                return relayed
            await self._send(rows)
            relayed, after = relayed + len(rows), rows[-1].seq
