"""In-memory twin of the subscription store (contract: ``tests/contract/test_subscriptions.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from hub.adapters.memory.audit import InMemoryAuditLog
from hub.adapters.memory.database import InMemoryDatabase, SubscriptionRow
from hub.errors import NotFound, PermanentError
from hub.paging import BadCursor, Page, decode_cursor, encode_cursor
from hub.ports import SigningTarget, SubscriptionDetails, SubscriptionFilter
from hub.ports.audit import AuditEntry
from hub.ports.subscriptions import CREATE_ONLY, UPDATABLE
from subscriptions.lifecycle import ACTIVE, OPEN, PAUSE_REASON, PAUSED


def _details(row: SubscriptionRow) -> SubscriptionDetails:
    return SubscriptionDetails(
        id=row.id,
        sink=row.sink,
        protocol=row.protocol,
        source=row.source,
        types=row.types,
        filters=row.filters,
        headers=row.headers,
        config=row.config,
        status=row.status,
        status_reason=row.status_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        retry_schedule=row.retry_schedule,
        ordering=row.ordering,
        max_concurrency=row.max_concurrency,
        max_rate=row.max_rate,
        content_mode=row.content_mode,
        handshake=row.handshake,
        allowed_rate=row.allowed_rate,
        previous_secret_expires_at=row.previous_secret_expires_at,
        auth=row.auth,
        consecutive_failures=row.consecutive_failures,
        last_error=row.last_error,
        failing_since=row.failing_since,
        organisatie=row.organisatie,
    )


class InMemorySubscriptionStore:
    """Create, read, list and delete subscriptions; read their deliveries."""

    def __init__(self, db: InMemoryDatabase, audit_log: InMemoryAuditLog | None = None):
        """``audit_log``: where the ``audit=`` entries of writes go (the twin of the audit table
        in the same database); a private one when the test does not read them."""
        self._db = db
        self._audit = audit_log or InMemoryAuditLog()

    def _row(self, subscription_id: uuid.UUID) -> SubscriptionRow:
        row = self._db.subscriptions.get(subscription_id)
        if row is None:
            raise NotFound(f"subscription {subscription_id} does not exist")
        return row

    async def create(
        self,
        *,
        sink: str,
        protocol: str,
        source: str | None,
        types: list[str] | None,
        filters: list[dict[str, Any]],
        headers: dict[str, str],
        config: dict[str, Any],
        secret: str,
        audit: AuditEntry | None = None,
        **options: Any,
    ) -> SubscriptionDetails:
        now = self._db.clock()
        row = SubscriptionRow(
            options.get("id") or uuid.uuid4(),
            sink,
            protocol,
            source,
            types,
            filters,
            headers,
            config,
            secret,
            now,
            now,
        )
        if row.id in self._db.subscriptions:
            raise PermanentError(f"subscription {row.id} exists already")
        for name, value in options.items():
            if name in UPDATABLE or name in CREATE_ONLY:
                setattr(row, name, value if name != "auth" else value or {})
        self._db.subscriptions[row.id] = row
        self._audit.append(audit, row.id)
        return _details(row)

    async def get(self, subscription_id: uuid.UUID) -> SubscriptionDetails:
        return _details(self._row(subscription_id))

    async def list(
        self,
        *,
        limit: int,
        cursor: str | None,
        where: SubscriptionFilter | None = None,
        owned_by: str | None = None,
    ) -> Page[SubscriptionDetails]:
        rows = sorted(self._db.subscriptions.values(), key=lambda r: (r.created_at, r.id))
        if where is not None:
            rows = [r for r in rows if where.matches(r.status, r.sink)]
        rows = [r for r in rows if owned_by is None or r.organisatie == owned_by]
        if cursor:
            created_text, last_id = decode_cursor(cursor)
            try:
                after = (datetime.fromisoformat(str(created_text)), uuid.UUID(str(last_id)))
            except ValueError as e:
                raise BadCursor("the cursor is not one this API handed out") from e
            rows = [r for r in rows if (r.created_at, r.id) > after]
        items = [_details(r) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_cursor(items[-1].created_at.isoformat(), str(items[-1].id)) if more else None
        return Page(items, next_cursor)

    async def update(
        self,
        subscription_id: uuid.UUID,
        changes: Mapping[str, Any],
        *,
        enabled: bool | None = None,
        audit: AuditEntry | None = None,
    ) -> SubscriptionDetails:
        """Apply ``changes`` and the life-cycle switch (see :class:`hub.ports.SubscriptionStore`)."""
        row = self._row(subscription_id)
        now = self._db.clock()
        for name, value in changes.items():
            if name in UPDATABLE:
                setattr(row, name, value)
        if enabled is False and row.status != PAUSED:
            row.status, row.status_reason = PAUSED, PAUSE_REASON
        if enabled is True and row.status != ACTIVE:
            row.status, row.status_reason = ACTIVE, None
            row.mark_healthy()
            for d in self._db.deliveries_of(subscription_id):
                if d.status in OPEN:
                    d.next_attempt_at = d.updated_at = now
        row.updated_at = now
        self._audit.append(audit, subscription_id)
        return _details(row)

    async def rotate_secret(
        self,
        subscription_id: uuid.UUID,
        new_secret: str,
        grace_seconds: float,
        *,
        audit: AuditEntry | None = None,
    ) -> datetime:
        row = self._row(subscription_id)
        now = self._db.clock()
        row.previous_secret, row.secret = row.secret, new_secret
        row.previous_secret_expires_at = now + timedelta(seconds=grace_seconds)
        row.updated_at = now
        self._audit.append(audit, subscription_id)
        return row.previous_secret_expires_at

    async def signing_target(self, subscription_id: uuid.UUID) -> SigningTarget:
        row = self._row(subscription_id)
        previous = row.previous_secret_now(self._db.clock())
        secrets = [row.secret] + ([previous] if previous else [])
        return SigningTarget(row.sink, secrets, row.headers, row.content_mode, dict(row.auth))

    async def delete(self, subscription_id: uuid.UUID, *, audit: AuditEntry | None = None) -> None:
        self._row(subscription_id)
        del self._db.subscriptions[subscription_id]
        for d in self._db.deliveries_of(subscription_id):  # ON DELETE CASCADE
            del self._db.deliveries[d.id]
            self._db.attempts.pop(d.id, None)
        self._audit.append(audit, subscription_id)

    async def deliveries(
        self, subscription_id: uuid.UUID, *, status: str | None, limit: int, cursor: str | None
    ) -> Page[dict[str, Any]]:
        """The delivery log, oldest event first."""
        self._row(subscription_id)
        rows = sorted(
            (d for d in self._db.deliveries_of(subscription_id) if status is None or d.status == status),
            key=lambda d: (d.archive_seq, d.id),
        )
        if cursor:
            seq_text, last_id = decode_cursor(cursor)
            try:
                seq, after_id = int(seq_text), uuid.UUID(str(last_id))
                if not 0 <= seq < 2**63:
                    raise ValueError("sequence out of range")
            except ValueError as e:
                raise BadCursor("the cursor is not one this API handed out") from e
            rows = [d for d in rows if (d.archive_seq, d.id) > (seq, after_id)]
        items = [d.public() for d in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_cursor(items[-1]["archive_seq"], str(items[-1]["id"])) if more else None
        return Page(items, next_cursor)
