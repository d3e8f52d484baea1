"""The token store's contract, run against the in-memory twin and PostgreSQL, and the token
service over it: the secret is shown once and only its hash is stored; a revoked token is
found by no lookup once the cache time has passed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hub.adapters.memory import InMemoryTokenStore
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.token_tables import api_tokens
from hub.adapters.postgres.tokens import PostgresTokenStore
from hub.errors import NotFound
from hub.ports.tokens import TokenStore
from hub.services.access import Principal, Role
from hub.services.tokens import TokenLookup, TokenRefused, TokenService, secret_hash

ADMIN = Principal("admin")
GB_A = Principal("beheerder a", Role.GEBRUIK_BEHEERDER, "gem-a", credential="t-a")
GB_B = Principal("beheerder b", Role.GEBRUIK_BEHEERDER, "gem-b", credential="t-b")


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[TokenStore]:
    if request.param == "memory":
        yield InMemoryTokenStore()
        return
    engine = create_engine(request.getfixturevalue("database_url"), pool_size=2)
    try:
        yield PostgresTokenStore(engine)
    finally:
        await engine.dispose()


async def test_a_created_token_is_found_by_its_secret_only_and_carries_its_principal(
    store: TokenStore,
) -> None:
    service = TokenService(store, landscape=None)
    record, secret = await service.create(
        GB_A, name="zaaksysteem", role="systeem", organisatie="gem-a", sources=["urn:gem-a:zaken"]
    )
    assert secret.startswith("kh_") and len(secret) > 40
    found = await TokenLookup(store).principal(secret)
    assert found == Principal(
        "zaaksysteem", Role.SYSTEEM, "gem-a", ("urn:gem-a:zaken",), credential=str(record.id)
    )
    assert await TokenLookup(store).principal(secret + "x") is None
    assert (await store.get(record.id)).created_by == "t-a"


async def test_only_the_hash_of_the_secret_is_stored(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        _, secret = await TokenService(PostgresTokenStore(engine), landscape=None).create(
            ADMIN, name="ops", role="functioneel-beheerder", organisatie=None, sources=[]
        )
        async with engine.connect() as conn:
            rows = [tuple(map(str, r)) for r in (await conn.execute(select(api_tokens))).all()]
    finally:
        await engine.dispose()
    assert not any(secret in value for row in rows for value in row)
    assert any(secret_hash(secret) in row for row in rows)


async def test_a_revoked_token_is_refused_once_the_cache_time_passed(store: TokenStore) -> None:
    service = TokenService(store, landscape=None)
    record, secret = await service.create(
        GB_A, name="raadpleger", role="gebruik-raadpleger", organisatie="gem-a", sources=[]
    )
    lookup = TokenLookup(store, cache_seconds=0.0)
    assert await lookup.principal(secret) is not None
    await service.revoke(GB_A, record.id)
    assert await lookup.principal(secret) is None
    assert [t.id for t in await service.list(GB_A)] == []


async def test_another_organisations_token_is_not_found_and_lists_show_only_ones_own(
    store: TokenStore,
) -> None:
    service = TokenService(store, landscape=None)
    a, _ = await service.create(GB_A, name="a", role="gebruik-raadpleger", organisatie="gem-a", sources=[])
    b, _ = await service.create(GB_B, name="b", role="gebruik-raadpleger", organisatie="gem-b", sources=[])
    with pytest.raises(NotFound):
        await service.revoke(GB_B, a.id)
    with pytest.raises(NotFound):
        await service.revoke(GB_B, uuid.uuid4())
    assert [t.id for t in await service.list(GB_B)] == [b.id]
    assert {t.id for t in await service.list(ADMIN)} == {a.id, b.id}


async def test_an_expired_token_is_refused(store: TokenStore) -> None:
    service = TokenService(store, landscape=None)
    soon = datetime.now(UTC) + timedelta(seconds=0.05)
    _, secret = await service.create(
        GB_A, name="x", role="gebruik-raadpleger", organisatie="gem-a", sources=[], expires_at=soon
    )
    while datetime.now(UTC) <= soon:
        pass  # the clock passes the expiry; no sleep-and-hope
    assert await TokenLookup(store).principal(secret) is None


@pytest.mark.parametrize(
    ("creator", "role", "organisatie", "sources", "status", "field"),
    [
        (GB_A, "aanbod-beheerder", "gem-a", [], 403, "role"),
        (GB_A, "gebruik-raadpleger", "gem-b", [], 403, "role"),
        (GB_A, "functioneel-beheerder", None, [], 403, "role"),
        (ADMIN, "gebruik-beheerder", None, [], 400, "organisatie"),
        (ADMIN, "systeem", "gem-a", [], 400, "sources"),
        (ADMIN, "gebruik-beheerder", "gem-a", ["urn:x"], 400, "sources"),
        (ADMIN, "baas", "gem-a", [], 400, "role"),
    ],
)
async def test_a_token_the_creator_may_not_hand_out_or_that_is_incomplete_is_refused(
    store: TokenStore,
    creator: Principal,
    role: str,
    organisatie: str | None,
    sources: list[str],
    status: int,
    field: str,
) -> None:
    with pytest.raises(TokenRefused) as refused:
        await TokenService(store, landscape=None).create(
            creator, name="n", role=role, organisatie=organisatie, sources=sources
        )
    assert (refused.value.status, refused.value.field) == (status, field)
    assert await store.list(None) == []
