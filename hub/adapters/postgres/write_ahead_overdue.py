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
end of every partition; once the projector's group has committed up to those ends (it commits
only what it recorded), the rows accepted before that time and still not projected were passed
by, and are sent again. A backlog is not mistaken for loss: its rows are projected by the time
the group reaches the ends noted. A partition that ends below its end noted means the log was
lost again: that is the refused relay's to handle (topics first). The look reads the log with
the operators' inspector (the fetch's high-water marks, not ``ListOffsets``: INFRA.md), started
on first use, so a hub with nothing overdue never makes one; a look that gets no answer within
:data:`LOOK_TIMEOUT_S` is given up (logged) and the pruner goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.errors import translate_db_errors
from hub.ports.operators import LogStatus

__all__ = ["LOOK_EVERY_S", "LOOK_TIMEOUT_S", "OVERDUE_S", "LogEnds", "OverdueRows", "RelayRows"]

log = structlog.get_logger(__name__)

#: A row this long accepted and not projected is looked into: twice what a send waits for its
#: acknowledgement (``hub.adapters.kafka.SEND_TIMEOUT_S``), so its send has almost surely been
#: answered (in the log below the ends noted, or refused and relayed by the refused relay). One
#: that lands later all the same is sent twice, and the projector's dedupe absorbs it.
OVERDUE_S = 30.0
#: At most one look at the log per this many seconds.
LOOK_EVERY_S = 5.0
#: A look that takes longer is given up: the pruner and the refused relay go on meanwhile.
LOOK_TIMEOUT_S = 10.0

_OLDEST = text(
    """
    SELECT w.accepted_at < now() - make_interval(secs => :overdue) AS overdue,
           now() - make_interval(secs => :overdue) AS cutoff,
           (SELECT max(seq) FROM event_wal) AS through
    FROM event_wal w
    WHERE NOT EXISTS (
        SELECT 1 FROM processed_events p WHERE p.source = w.source AND p.event_id = w.event_id)
    ORDER BY w.seq LIMIT 1
    """
)


@dataclass(frozen=True)
class _Mark:
    """Rows up to ``through`` accepted before ``cutoff`` are in the log below ``ends``."""

    cutoff: datetime
    through: int
    ends: dict[int, int]


class LogEnds(Protocol):
    """What a look needs of :class:`hub.ports.operators.LogInspector`: the partitions' ends and
    the projector group's commits."""

    async def status(self) -> LogStatus: ...


class RelayRows(Protocol):
    """Sends the rows not projected up to ``through`` (a ``seq``) and accepted before
    ``cutoff``; returns how many it sent."""

    def __call__(self, *, through: int, cutoff: datetime) -> Awaitable[int]: ...


class OverdueRows:
    """Finds the rows the projector passed by and has ``relay`` send them again; calls
    ``log_lost`` when the log was lost again (see module)."""

    def __init__(
        self, engine: AsyncEngine, inspector: LogEnds, relay: RelayRows, log_lost: Callable[[], None]
    ) -> None:
        self._engine, self._inspector, self._relay, self._log_lost = engine, inspector, relay, log_lost
        self._mark: _Mark | None = None
        self._next_look = 0.0

    async def look(self) -> int:
        """One look, when one is due: how many rows were sent again (0 mostly). Never raises
        for a broker or database that does not answer: logged, and the next look tries again."""
        now = time.monotonic()
        if now < self._next_look:
            return 0
        self._next_look = now + LOOK_EVERY_S
        try:
            async with asyncio.timeout(LOOK_TIMEOUT_S):
                return await self._look()
        except Exception as e:  # noqa: BLE001 - the next look tries again
            log.warning("write_ahead_look_failed", error=str(e) or type(e).__name__)
            return 0

    async def _look(self) -> int:
        if self._mark is None:
            self._mark = await self._note()
            return 0
        mark = self._mark
        status = await self._inspector.status()
        ends = {p.partition: (p.end_offset, p.committed or 0) for p in status.partitions}
        if any(p in ends and ends[p][0] < end for p, end in mark.ends.items()):
            self._mark = None  # a new log: the refused relay sends everything not projected
            self._log_lost()
            return 0
        if any(p not in ends or ends[p][1] < end for p, end in mark.ends.items()):
            return 0  # the projector has not read that far yet (or the broker did not say)
        relayed = await self._relay(through=mark.through, cutoff=mark.cutoff)
        self._mark = None
        if relayed:
            log.warning("write_ahead_passed_by_relayed", events=relayed)
        return relayed

    async def _note(self) -> _Mark | None:
        """A mark when the oldest row not projected is overdue and the broker names the
        partitions, else None."""
        with translate_db_errors():
            async with self._engine.connect() as conn:
                oldest = (await conn.execute(_OLDEST, {"overdue": OVERDUE_S})).first()
        if oldest is None or not oldest.overdue:
            return None
        status = await self._inspector.status()
        if not status.partitions:
            return None  # a broker back without its topics yet: look again
        return _Mark(oldest.cutoff, oldest.through, {p.partition: p.end_offset for p in status.partitions})
