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

``--e2e`` measures the same on a real hub instead: ``benchmarks.e2e``'s batch and structured
phases once per credential (the admin token, a systeem API token, an RS256 JWT of a loopback
issuer), ``--rounds`` rounds with the credentials' order rotated each round, each run on a hub
of its own. It prints the medians of events/s and of the API process's CPU per event, and the
cost against the admin token; CPU per event is the figure that holds on a shared machine.

    python -m benchmarks.auth_cost --e2e [--rounds 3] [e2e options, e.g. --events 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import run_interruptible
from benchmarks.issuer import AUDIENCE, LoopbackIssuer
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

ADMIN_TOKEN = "bench-admin-token"
SOURCE = "urn:nld:oin:00000001001234567000:systeem:bench"


def _events(n: int) -> list[dict[str, Any]]:
    return [
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": SOURCE,
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
    issuer = await LoopbackIssuer(alg).start()
    tokens = InMemoryTokenStore()
    service = TokenService(tokens, landscape=None)
    _, api_token = await service.create(
        ADMIN, name="bench", role="functioneel-beheerder", organisatie=None, sources=[]
    )
    _, systeem_token = await service.create(  # also the source and ownership checks, and stamping
        ADMIN, name="bench-systeem", role="systeem", organisatie="gm-bench", sources=[SOURCE]
    )
    token_jwt = issuer.token(["functioneel-beheerder"])
    oidc = OidcVerifier(OidcConfig(issuer.issuer, AUDIENCE, issuer.jwks_url))
    auth = TokenAuthenticator(ADMIN_TOKEN, tokens=TokenLookup(tokens), oidc=oidc)

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
            "systeem API token": systeem_token,
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
    await issuer.stop()
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


E2E_CREDENTIALS = ("admin", "token", "jwt")
_FIGURES = (("publish_batch", "batch"), ("publish_structured", "structured"))


def e2e_rounds(rounds: int, e2e_argv: list[str]) -> dict[str, dict[str, list[float]]]:
    """Per credential and figure, one value per round: ``benchmarks.e2e --phases batch,structured``
    run ``rounds`` times per credential, the order rotated each round (admin, token, jwt; then
    token, jwt, admin; …) so that a drift in the machine's load falls on each in turn."""
    from benchmarks import e2e  # the hub-process benchmark; not needed by the in-memory one

    found: dict[str, dict[str, list[float]]] = {c: {} for c in E2E_CREDENTIALS}
    for r in range(rounds):
        order = E2E_CREDENTIALS[r % 3 :] + E2E_CREDENTIALS[: r % 3]
        for credential in order:
            print(f"round {r + 1}/{rounds}: {credential}", flush=True)
            args = e2e.parse_args(
                ["--phases", "batch,structured", "--no-limits", "--credential", credential, *e2e_argv]
            )
            results = run_interruptible(e2e.main_async(args))
            if results is None:
                raise SystemExit(130)
            for key, label in _FIGURES:
                phase = results.get(key, {})
                found[credential].setdefault(f"{label} events/s", []).append(phase.get("events_per_s", 0.0))
                found[credential].setdefault(f"{label} API µs/event", []).append(
                    phase.get("api_cpu_us_per_event") or float("nan")
                )
                print(f"  {credential} {label}: {phase.get('events_per_s')} events/s, "
                      f"API {phase.get('api_cpu_us_per_event')} µs/event", flush=True)  # fmt: skip
    return found


def e2e_table(found: dict[str, dict[str, list[float]]]) -> str:
    """Medians per credential, and each against the admin token's (CPU: + is dearer; events/s:
    - is slower)."""
    lines = ["| credential | figure | median | runs | vs admin |", "|---|---|---|---|---|"]
    admin = found["admin"]
    for credential, figures in found.items():
        for name, values in figures.items():
            median, base = statistics.median(values), statistics.median(admin[name])
            cost = "" if credential == "admin" else f"{(median - base) / base:+.1%}"
            runs = ", ".join(f"{v:,.0f}" for v in values)
            lines.append(f"| {credential} | {name} | {median:,.0f} | {runs} | {cost} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--alg", choices=["RS256", "ES256"], default="RS256")
    parser.add_argument("--e2e", action="store_true", help="measure on a real hub (benchmarks.e2e)")
    parser.add_argument("--rounds", type=int, default=3, help="--e2e: runs per credential (3)")
    args, rest = parser.parse_known_args()
    if args.e2e:
        print(e2e_table(e2e_rounds(args.rounds, rest)))
    elif rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    else:
        asyncio.run(main(args.requests, args.batch, args.alg))
