"""The API token port: tokens stored as a hash of their secret, never the secret itself."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from hub.ports.audit import AuditEntry


@dataclass(frozen=True)
class TokenRecord:
    """An API token as stored and listed: who it is (role, organisatie, sources), never its secret."""

    id: uuid.UUID
    name: str
    role: str
    organisatie: str | None
    sources: list[str] = field(default_factory=list)
    expires_at: datetime | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    revoked_at: datetime | None = None


class TokenStore(Protocol):
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
        """A new token; ``audit`` (its ``{id}`` the new token's) is written with it, in one
        transaction."""
        ...

    async def find(self, secret_hash: str) -> TokenRecord | None:
        """The token with this hash, unless revoked (expiry is the caller's check)."""
        ...

    async def get(self, token_id: uuid.UUID) -> TokenRecord:
        """NotFound when there is no such token (revoked ones are kept, with ``revoked_at``)."""
        ...

    async def list(self, organisatie: str | None) -> list[TokenRecord]:
        """Tokens not revoked, oldest first: of ``organisatie``, or all when None."""
        ...

    async def revoke(self, token_id: uuid.UUID, *, audit: AuditEntry | None = None) -> None:
        """Mark revoked (idempotent); NotFound for an unknown id (and then no ``audit`` entry)."""
        ...
