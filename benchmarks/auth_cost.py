"""What checking the caller costs on publish: the admin token, an API token and an OIDC JWT.

Issue 12's bound: token and JWT checks cost under 5 % of publish throughput. The machine is
shared, so this measures **CPU time** (``time.process_time``), not wall-clock: the same
publishes (a batch of ``--batch`` events, and single structured events) through the API on the
in-memory stores, once per credential, each a functioneel-beheerder so that only the
credential check differs; and the check alone (``TokenAuthenticator.authenticate``).

The in-memory event log makes the publish far cheaper than with the broker, so the share
printed here is an upper bound of the share in ``benchmarks.e2e``. The JWT is RS256 (2048-bit
key) or ES256, signed in this process; its issuer's JWKS is served on loopback and fetched once
(keys are cached per ``kid``), as with a real Keycloak.

    python -m benchmarks.auth_cost [--requests 300] [--batch 100] [--alg RS256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hub.adapters.memory import (
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
    InMemoryTokenStore,
)
from hub.adapters.oidc import OidcConfig, OidcVerifier
from hub.api.app import create_app
from hub.api.auth import ADMIN, TokenAuthenticator
from hub.api.context import ApiContext
from hub.services.tokens import TokenLookup, TokenService
from hub.settings import Settings
from subscriptions.ssrf import NetworkPolicy

ISSUER, AUDIENCE, ADMIN_TOKEN = "https://idp.bench.example/realms/hub", "koppelhub", "bench-admin-token"


async def _jwks_server(public_jwk: dict[str, Any]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/jwks", lambda _: web.json_response({"keys": [public_jwk]}))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/jwks"


def _key(alg: str) -> tuple[Any, dict[str, Any]]:
    private: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if alg == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    algorithm = jwt.get_algorithm_by_name(alg)
    public = json.loads(algorithm.to_jwk(private.public_key()))
    return private, {**public, "kid": "bench-1", "alg": alg, "use": "sig"}


def _events(n: int) -> list[dict[str, Any]]:
    return [
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "urn:nld:oin:00000001001234567000:systeem:bench",
            "type": "nl.bench.meting.gemeten.v1",
            "subject": f"m-{i}",
            "datacontenttype": "application/json",
            "data": {"waarde": i, "eenheid": "ms", "omschrijving": "x" * 200},
        }
        for i in range(n)
    ]


async def _cpu_per_call(calls: int, call: Callable[[], Awaitable[object]]) -> float:
    for _ in range(min(20, calls)):  # warm: caches, the JWKS fetch, pools
        await call()
    start = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - start) / calls


async def main(requests: int, batch: int, alg: str) -> None:
    private, public_jwk = _key(alg)
    runner, jwks_url = await _jwks_server(public_jwk)
    tokens = InMemoryTokenStore()
    service = TokenService(tokens)
    _, api_token = await service.create(
        ADMIN, name="bench", role="functioneel-beheerder", organisatie=None, sources=[]
    )
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "bench",
        "exp": now + 3600,
        "iat": now,
        "roles": ["functioneel-beheerder"],
        "preferred_username": "bench",
    }
    token_jwt = jwt.encode(claims, private, algorithm=alg, headers={"kid": "bench-1"})
    auth = TokenAuthenticator(
        ADMIN_TOKEN, tokens=TokenLookup(tokens), oidc=OidcVerifier(OidcConfig(ISSUER, AUDIENCE, jwks_url))
    )

    async def ready() -> dict[str, bool]:
        return {"api": True}

    with tempfile.TemporaryDirectory() as data_dir:
        database = InMemoryDatabase()
        ctx = ApiContext(
            settings=Settings(data_dir=Path(data_dir), admin_token=ADMIN_TOKEN),
            event_log=InMemoryEventLog(partitions=3),
            subscriptions=InMemorySubscriptionStore(database),
            landscape=InMemoryProjectionStore(),
            network_policy=NetworkPolicy.parse("127.0.0.1/32"),
            auth=auth,
            readiness=ready,
        )
        app = create_app(ctx)
        batch_body = json.dumps(_events(batch))
        single_body = json.dumps(_events(1)[0])
        credentials = {
            "admin token": ADMIN_TOKEN,
            "API token (kh_…)": api_token,
            f"OIDC JWT ({alg})": token_jwt,
        }
        rows = []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.bench") as client:
            for label, secret in credentials.items():
                headers = {"Authorization": f"Bearer {secret}"}

                async def publish_batch(h: dict[str, str] = headers) -> None:
                    r = await client.post(
                        "/api/v1/events",
                        content=batch_body,
                        headers={**h, "content-type": "application/cloudevents-batch+json"},
                    )
                    assert r.status_code == 202, r.text

                async def publish_one(h: dict[str, str] = headers) -> None:
                    r = await client.post(
                        "/api/v1/events",
                        content=single_body,
                        headers={**h, "content-type": "application/cloudevents+json"},
                    )
                    assert r.status_code == 202, r.text

                async def check(s: str = secret) -> None:
                    assert await auth.authenticate(s) is not None

                rows.append(
                    (
                        label,
                        await _cpu_per_call(requests * 10, check),
                        await _cpu_per_call(requests, publish_batch),
                        await _cpu_per_call(requests * 3, publish_one),
                    )
                )
    await runner.cleanup()
    print(
        f"CPU time per call (process_time), {requests} batches of {batch} events, "
        f"{requests * 3} single events"
    )
    print("| credential | check alone | batch publish | share of batch | single publish | share of single |")
    print("|---|---|---|---|---|---|")
    for label, alone, per_batch, per_one in rows:
        print(
            f"| {label} | {alone * 1e6:.0f} µs | {per_batch * 1e3:.2f} ms | {alone / per_batch:.1%} "
            f"| {per_one * 1e3:.2f} ms | {alone / per_one:.1%} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--alg", choices=["RS256", "ES256"], default="RS256")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.batch, args.alg))
