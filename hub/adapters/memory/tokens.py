"""The in-memory twin of :class:`hub.adapters.postgres.tokens.PostgresTokenStore`."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from hub.adapters.memory.audit import InMemoryAuditLog
from hub.errors import NotFound
from hub.ports.audit import AuditEntry
from hub.ports.tokens import TokenRecord


class InMemoryTokenStore:
    def __init__(self, audit_log: InMemoryAuditLog | None = None) -> None:
        self._tokens: dict[uuid.UUID, tuple[TokenRecord, str]] = {}
        self._audit = audit_log or InMemoryAuditLog()

    async def create(
        self,
        *,
        name: str,
        role: str,
        organisatie: str | None,
        sources: list[str],
        expires_at: datetime | None,
        secret_hash: str,
        created_by: str | None,
        audit: AuditEntry | None = None,
    ) -> TokenRecord:
        if any(h == secret_hash for _, h in self._tokens.values()):
            raise ValueError("duplicate secret hash")
        record = TokenRecord(
            uuid.uuid4(), name, role, organisatie, list(sources), expires_at, datetime.now(UTC), created_by
        )
        self._tokens[record.id] = (record, secret_hash)
        self._audit.append(audit, record.id)
        return record

    async def find(self, secret_hash: str) -> TokenRecord | None:
        for record, h in self._tokens.values():
            if h == secret_hash and record.revoked_at is None:
                return record
        return None

    async def get(self, token_id: uuid.UUID) -> TokenRecord:
        if token_id not in self._tokens:
            raise NotFound(f"token {token_id} does not exist")
        return self._tokens[token_id][0]

    async def list(self, organisatie: str | None) -> list[TokenRecord]:
        return [
            r
            for r, _ in self._tokens.values()
            if r.revoked_at is None and (organisatie is None or r.organisatie == organisatie)
        ]

    async def revoke(self, token_id: uuid.UUID, *, audit: AuditEntry | None = None) -> None:
        record, h = self._tokens.get(token_id, (None, ""))
        if record is None:
            raise NotFound(f"token {token_id} does not exist")
        if record.revoked_at is None:
            self._tokens[token_id] = (dataclasses.replace(record, revoked_at=datetime.now(UTC)), h)
        self._audit.append(audit, token_id)
