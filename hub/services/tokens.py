"""API tokens: create (the secret shown once, only its hash stored), list, revoke, and the
lookup every request makes.

A token is ``kh_`` + 32 random bytes (URL-safe base64): high entropy, so a SHA-256 of it is
as safe to store as a slow password hash and costs microseconds per request. Lookups are
cached for :data:`CACHE_SECONDS` (hits and misses alike), so a publish burst does not query
PostgreSQL per request, and a revocation is refused by every API process within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from hub.errors import NotFound, PermanentError
from hub.ports import LandscapeReader
from hub.ports.audit import AuditEntry
from hub.ports.tokens import TokenRecord, TokenStore
from hub.services.access import Action, Principal, Role, may_grant, visible_organisations
from hub.services.source_owners import SourceIndex, SourceOwner, organisation_sources

__all__ = [
    "CACHE_SECONDS",
    "TOKEN_PREFIX",
    "TokenLookup",
    "TokenRefused",
    "TokenService",
    "principal_of",
    "secret_hash",
]

TOKEN_PREFIX = "kh_"  # noqa: S105 - the prefix of every API token, not a secret
#: How long a lookup (found or not) is reused: revocation takes effect within this time.
CACHE_SECONDS = 2.0
_CACHE_MAX = 10_000


class TokenRefused(PermanentError):
    """A token that may not be created (``status``: 400 bad request, 403 not allowed)."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(message)
        self.status, self.field = status, field


def secret_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def principal_of(record: TokenRecord) -> Principal:
    return Principal(
        record.name, Role(record.role), record.organisatie, tuple(record.sources), credential=str(record.id)
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


#: How a source registered to a systeem token is its organisation's (in a refusal's message).
_REGISTERED = "is registered to a systeem of organisation {!r}"


class TokenService:
    """Create, list and revoke tokens for a principal, by the matrix (tokens beheren)."""

    def __init__(
        self,
        store: TokenStore,
        *,
        landscape: LandscapeReader | None,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self.store = store
        self._ttl = cache_seconds
        #: Where the organisaties' numbers are read (``hub.services.source_owners``). Given on
        #: purpose (``None`` only where no landscape exists: then only the tokens' registrations
        #: reserve sources).
        self.landscape = landscape
        self._owners: tuple[float, SourceIndex] = (-1.0, SourceIndex())
        self._reading = asyncio.Lock()

    async def source_owners(self) -> SourceIndex:
        """Every source prefix an organisation owns (``hub.services.source_owners``): the
        sources of every systeem token that is not revoked, and those the organisaties' OIN and
        KvK numbers name. Read through a cache of :data:`CACHE_SECONDS`, as tokens are: a token
        made or revoked, or an organisatie's number, counts that much later. Requests that find
        it stale share one read."""
        until, owners = self._owners
        if until >= time.monotonic():
            return owners
        async with self._reading:
            until, owners = self._owners
            if until < time.monotonic():
                owners = await self._read_owners()
                self._owners = (time.monotonic() + self._ttl, owners)
        return owners

    async def _read_owners(self) -> SourceIndex:
        """The owned sources as they stand: the systeem tokens' registrations and the numbers."""
        return SourceIndex.of((*await self._registered(), *await self._numbered()))

    async def _registered(self) -> list[SourceOwner]:
        return [
            SourceOwner(source, r.organisatie, _REGISTERED.format(r.organisatie))
            for r in await self.store.list(None)
            if r.role == Role.SYSTEEM.value and r.organisatie is not None
            for source in r.sources
        ]

    async def _numbered(self) -> list[SourceOwner]:
        return await organisation_sources(self.landscape) if self.landscape is not None else []

    async def create(
        self,
        creator: Principal,
        *,
        name: str,
        role: str,
        organisatie: str | None,
        sources: list[str],
        expires_at: datetime | None = None,
        audit: AuditEntry | None = None,
    ) -> tuple[TokenRecord, str]:
        """The new token's record and its secret (shown to the creator once, never stored)."""
        try:
            granted = Role(role)
        except ValueError:
            raise TokenRefused(
                400, "role", f"unknown role {role!r}; roles: {[r.value for r in Role]}"
            ) from None
        if organisatie is None and granted is not Role.FUNCTIONEEL_BEHEERDER:
            raise TokenRefused(400, "organisatie", f"a {role} token needs an organisatie")
        if granted is Role.SYSTEEM and not sources:
            raise TokenRefused(
                400, "sources", "a systeem token needs the sources (values or prefixes) it publishes"
            )
        if granted is Role.FEDERATIE and not (sources and all(map(_is_uuid, sources))):
            why = "a federatie token needs the ids of the subscriptions whose pull feed it reads"
            raise TokenRefused(400, "sources", why)
        if sources and granted not in (Role.SYSTEEM, Role.FEDERATIE):
            raise TokenRefused(400, "sources", "only a systeem or federatie token has sources")
        if granted is Role.SYSTEEM:
            await self._check_sources_free(sources, organisatie)
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise TokenRefused(400, "expiresAt", "expiresAt must lie in the future")
        if not may_grant(creator, granted, organisatie):
            whose = f"for {organisatie!r}" if organisatie else "hub-wide"
            raise TokenRefused(
                403, "role", f"the role {creator.role.value} may not create a {role} token {whose} "
                f"(right {Action.MANAGE_TOKENS.value})",
            )  # fmt: skip
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = await self.store.create(
            name=name,
            role=granted.value,
            organisatie=organisatie,
            sources=sources,
            expires_at=expires_at,
            secret_hash=secret_hash(token),
            created_by=creator.credential or creator.name,
            audit=audit,
        )
        return record, token

    async def _check_sources_free(self, sources: list[str], organisatie: str | None) -> None:
        """400 when a source overlaps one another organisation owns (a systeem token's, or one
        its OIN or KvK number names: :meth:`source_owners`, read afresh)."""
        owners = await self._read_owners()
        for source in sources:
            taken = next((o for o in owners.overlapping(source) if o.organisatie != organisatie), None)
            if taken is not None:
                raise TokenRefused(
                    400, "sources", f"source {source!r} overlaps {taken.prefix!r}, which {taken.why}; "
                    "register a source of your own organisation",
                )  # fmt: skip

    async def list(self, viewer: Principal) -> list[TokenRecord]:
        """The tokens the viewer manages: of the organisations it reaches, with the roles it may
        hand out (a gebruik-beheerder does not see an aanbod-beheerder's token of its own
        organisation, nor a functioneel-beheerder's bound to it)."""
        orgs = visible_organisations(viewer, Action.MANAGE_TOKENS)
        if orgs is None:
            listed = await self.store.list(None)
        else:
            listed = [t for org in orgs for t in await self.store.list(org)]
        return [t for t in listed if _manages(viewer, t)]

    async def revoke(
        self, viewer: Principal, token_id: uuid.UUID, *, audit: AuditEntry | None = None
    ) -> TokenRecord:
        """Revoke a token the viewer manages (:meth:`list`); any other is NotFound."""
        record = await self.store.get(token_id)
        if record.revoked_at is not None or not _manages(viewer, record):
            raise NotFound(f"token {token_id} does not exist")
        await self.store.revoke(token_id, audit=audit)
        return record


def _manages(viewer: Principal, record: TokenRecord) -> bool:
    """Whether ``viewer`` manages ``record``: it could have created it (tokens beheren, "own
    (roles …)"). A role no longer known is managed by those who may hand out every role."""
    try:
        role = Role(record.role)
    except ValueError:
        return may_grant(viewer, Role.FUNCTIONEEL_BEHEERDER, None)
    return may_grant(viewer, role, record.organisatie)


@dataclass
class _Cached:
    principal: Principal | None
    expires_at: datetime | None
    until: float


class TokenLookup:
    """``kh_…`` secret → principal, through a short cache (see the module docstring)."""

    def __init__(self, store: TokenStore, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self._store, self._ttl = store, cache_seconds
        self._cache: dict[str, _Cached] = {}
        self._loading: dict[str, asyncio.Task[_Cached]] = {}

    async def principal(self, token: str) -> Principal | None:
        """The token's principal. When the cached lookup has expired, the requests in flight
        with the same token share one query: a publisher with 16 requests in flight asked
        PostgreSQL 16 times every :data:`CACHE_SECONDS` (1 % of the API's CPU in the structured
        publish benchmark), now once."""
        key = secret_hash(token)
        hit = self._cache.get(key)
        if hit is None or hit.until < time.monotonic():
            loading = self._loading.get(key)
            if loading is None:
                loading = self._loading[key] = asyncio.create_task(self._load(key))
                loading.add_done_callback(lambda _: self._loading.pop(key, None))
            hit = await asyncio.shield(loading)  # a caller that gives up leaves it to the others
        if hit.expires_at is not None and hit.expires_at <= datetime.now(UTC):
            return None
        return hit.principal

    async def _load(self, key: str) -> _Cached:
        record = await self._store.find(key)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        hit = self._cache[key] = _Cached(
            principal_of(record) if record else None,
            record.expires_at if record else None,
            time.monotonic() + self._ttl,
        )
        return hit
