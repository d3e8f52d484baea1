"""The API token lookup's cache (hub/services/tokens.py): when it has expired, the requests in
flight with the same token share one query instead of each asking the store."""

from __future__ import annotations

import asyncio

from hub.adapters.memory import InMemoryTokenStore
from hub.api.auth import ADMIN
from hub.ports.tokens import TokenRecord
from hub.services.tokens import TokenLookup, TokenService


class CountingStore(InMemoryTokenStore):
    """Counts ``find`` calls and holds each until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.finds, self.release = 0, asyncio.Event()

    async def find(self, secret_hash: str) -> TokenRecord | None:
        self.finds += 1
        await self.release.wait()
        return await super().find(secret_hash)


async def test_requests_in_flight_with_one_token_share_one_lookup_and_the_next_expiry_asks_again() -> None:
    store = CountingStore()
    _, secret = await TokenService(store, landscape=None).create(
        ADMIN, name="zaken", role="systeem", organisatie="gem-a", sources=["urn:gem-a"]
    )
    lookup = TokenLookup(store, cache_seconds=0.0)  # every call finds the cache expired

    waiting = [asyncio.create_task(lookup.principal(secret)) for _ in range(16)]
    await asyncio.sleep(0)  # let every request reach the lookup
    store.release.set()
    found = await asyncio.gather(*waiting)

    assert store.finds == 1
    assert {(p.name, p.organisation) for p in found if p is not None} == {("zaken", "gem-a")}
    assert len([p for p in found if p is not None]) == 16
    assert await lookup.principal(secret) is not None and store.finds == 2  # expired: asked again


async def test_a_request_that_gives_up_does_not_cancel_the_lookup_the_others_wait_for() -> None:
    store = CountingStore()
    _, secret = await TokenService(store, landscape=None).create(
        ADMIN, name="zaken", role="systeem", organisatie="gem-a", sources=["urn:gem-a"]
    )
    lookup = TokenLookup(store, cache_seconds=60.0)
    first, second = (asyncio.create_task(lookup.principal(secret)) for _ in range(2))
    await asyncio.sleep(0)
    first.cancel()
    store.release.set()

    assert (await second) is not None and store.finds == 1
