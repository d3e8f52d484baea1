"""The delivery outbox in PostgreSQL: claim due deliveries, record what happened, wake up."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Result, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.claims import CLAIM, CLAIM_HEADS
from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.notify import ChannelListener
from hub.adapters.postgres.outcomes import one_statement, record_outcomes
from hub.adapters.postgres.projection import OUTBOX_CHANNEL
from hub.adapters.postgres.tables import OPEN_SQL, unleased
from hub.ports import ClaimedDelivery
from hub.ports.delivery import AttemptResult
from subscriptions.delivery import SharedEvent
from subscriptions.lifecycle import ACTIVE

__all__ = ["AttemptResult", "ClaimedDelivery", "OutboxListener", "PostgresOutbox"]

log = structlog.get_logger(__name__)

# When the next delivery of an active subscription becomes due: the later of next_attempt_at and
# its lease. Per subscription two probes of ix_deliveries_due_by_subscription (migration 0019;
# before, the join read the whole open part of ix_deliveries_due on every call):
# - ``free``: its first unleased row, walking past the rows in flight;
# - only when that one is not due yet: the first lease to end. A claim leases due rows only and
#   nothing else sets next_attempt_at on a leased row without ending the lease, so the leased
#   rows all lie in the due part, which then holds nothing else: the rows in flight.
_NEXT_DUE = text(
    f"""
    SELECT min(CASE WHEN n.free <= now() THEN n.free ELSE least(n.free, (
                 SELECT min(d.leased_until) FROM deliveries d
                 WHERE d.subscription_id = n.id AND d.{OPEN_SQL} AND d.next_attempt_at <= now()
                   AND d.leased_until > now())) END)
    FROM (
        SELECT s.id, (SELECT d.next_attempt_at FROM deliveries d
                      WHERE d.subscription_id = s.id AND d.{OPEN_SQL} AND {unleased("d")}
                      ORDER BY d.next_attempt_at, d.archive_seq LIMIT 1) AS free
        FROM subscriptions s WHERE s.status = '{ACTIVE}'
    ) n
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)


#: The claim's columns that hold JSON of the subscription, returned as text (claims.py).
JSON_COLUMNS = ("headers", "retry_schedule", "auth")
_UNDECODED = object()
#: Decoded archive events kept across claims (archive rows never change; retention only deletes),
#: at most this many and at most this much of their JSON text: an event may be as large as
#: KOPPELHUB_MAX_EVENT_BYTES, and a kept one holds its decoded form and encoded bodies too.
_EVENTS_KEPT = 1024
_EVENT_BYTES_KEPT = 8 * 2**20


class _KeptEvents:
    """The decoded events of recent claims by ``archive_seq``, oldest out first (see _claimed)."""

    def __init__(self) -> None:
        self._events: dict[int, tuple[SharedEvent, int]] = {}
        self._bytes = 0

    def get(self, seq: int) -> SharedEvent | None:
        kept = self._events.get(seq)
        return None if kept is None else kept[0]

    def add(self, seq: int, raw: str) -> SharedEvent:
        event = SharedEvent(json.loads(raw))
        self._events[seq] = (event, len(raw))
        self._bytes += len(raw)
        while len(self._events) > _EVENTS_KEPT or self._bytes > _EVENT_BYTES_KEPT:
            self._bytes -= self._events.pop(next(iter(self._events)))[1]
        return event


def _claimed(result: Result[Any], events: _KeptEvents) -> list[ClaimedDelivery]:
    """One decoded :class:`SharedEvent` per archived event, shared by its deliveries: a fan-out
    to ten subscriptions decodes the event once and encodes its body once, not ten times.

    ``events`` keeps them across claims: one event's deliveries to ten subscriptions come in
    several claims (benchmarks.fanout, key phase: 4.3 claims per event, 62 rows per claim),
    and each claim decoded the JSON and encoded the body again. It holds the last
    ``_EVENTS_KEPT`` events claimed, up to ``_EVENT_BYTES_KEPT`` of JSON (oldest out first): a
    fan-out's deliveries are claimed close together, and a miss only costs a decode.

    The subscription's JSON columns (:data:`JSON_COLUMNS`) come as text and each distinct text
    is decoded once per claim: the driver's jsonb loader decoded them per row, two or three
    ``json.loads`` per delivery for the same few subscriptions (about 20 % of the claim's and
    recording's Python CPU under cProfile). The decoded values are shared, never changed."""
    names = list(result.keys())
    at = names.index("event_json")
    decoded: dict[str, Any] = {}  # JSON_COLUMNS' values by their text, shared by this claim's rows
    claimed = []
    for row in result:
        # Rows are tuples: zipping them with the names is several times cheaper than looking
        # each column up by name (``row._mapping``), about 1 % of the work child's CPU.
        fields = dict(zip(names, row, strict=True))
        del fields["event_json"]
        for name in JSON_COLUMNS:
            raw = fields[name]
            if raw is not None:
                value = decoded.get(raw, _UNDECODED)
                if value is _UNDECODED:  # (not None: a JSON null decodes to None)
                    value = decoded[raw] = json.loads(raw)
                fields[name] = value
        seq = fields["archive_seq"]
        event = events.get(seq)
        if event is None:
            event = events.add(seq, row[at])
        claimed.append(ClaimedDelivery(event=event, **fields))
    return claimed


class PostgresOutbox:
    """Outbox operations for the dispatcher."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        source_urn: str = "urn:nld:oin:00000000000000000000:systeem:koppelhub",
        disable_after_seconds: float = 5 * 86_400.0,
        default_concurrency: int = 16,
        holder: int | None = None,
        spare: bool = False,
    ):
        self._engine = engine
        self._spare = spare  # a spare dispatcher's: no subscription that limits its sink itself
        self._holder = holder  # written to the leases it takes (lease_holders.py)
        # Each claim and each batch of only delivered attempts is one statement: run as its own
        # transaction, without BEGIN and COMMIT, it is one round trip instead of three.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._source_urn = source_urn
        self._disable_after = disable_after_seconds
        self._default_concurrency = default_concurrency
        self._events = _KeptEvents()  # see _claimed

    async def claim(
        self, limit: int, lease_seconds: float, room: Mapping[uuid.UUID, int] | None = None
    ) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` due deliveries; ``room`` caps what a subscription may get now
        (its free concurrency slots and rate tokens in this dispatcher)."""
        room = room or {}
        params = {
            "limit": limit,
            "lease": lease_seconds,
            "room_ids": list(room),
            "room_sizes": [max(0, n) for n in room.values()],
            "default_concurrency": self._default_concurrency,
            "holder": self._holder,
            "spare": self._spare,
        }
        with translate_db_errors():
            async with self._autocommit.connect() as conn:
                claimed = _claimed(await conn.execute(CLAIM, params), self._events)
                if not claimed:  # the window may be stuck behind in-flight or retried key heads
                    claimed = _claimed(await conn.execute(CLAIM_HEADS, params), self._events)
        claimed.sort(key=lambda c: c.archive_seq)
        return claimed

    async def next_due(self) -> datetime | None:
        # One read: autocommitted, it is one round trip, not BEGIN, SELECT and ROLLBACK.
        with translate_db_errors():
            async with self._autocommit.connect() as conn:
                due: datetime | None = (await conn.execute(_NEXT_DUE)).scalar()
                return due

    async def record(self, results: Sequence[AttemptResult]) -> bool:
        if not results:
            return False
        with translate_db_errors():
            engine = self._autocommit if one_statement(results) else self._engine
            async with engine.begin() as conn:
                return await record_outcomes(
                    conn, results, source_urn=self._source_urn, disable_after_seconds=self._disable_after
                )


class OutboxListener(ChannelListener):
    """Sets :attr:`wakeup` whenever the projector commits new deliveries (LISTEN/NOTIFY);
    with ``wanted`` (:func:`hub.services.dispatcher_wakeup.wakes`), only for the
    NOTIFYs whose payload it accepts.

    A lost connection is re-opened after a pause; the dispatcher's poll interval covers the gap.
    """

    def __init__(self, database_url: str, wanted: Callable[[str], bool] | None = None):
        self.wakeup = asyncio.Event()
        super().__init__(database_url, OUTBOX_CHANNEL, self.wakeup.set, wanted)
