"""OIDC bearer JWTs against a local issuer: a real JWKS server on loopback, keys made here.

Covers what the issue lists: RS256 and ES256 accepted; expired, wrong audience, wrong issuer,
unknown kid (also after a rotation, which is picked up by refetching), ``alg=none`` and an
HS256 token signed with the public key refused with a 401 naming the check; a token without a
known role, or with rights for its own organisation and no organisation, is a 403; the
discovery document supplies the JWKS URL."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from hub.adapters.memory import (
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
)
from hub.adapters.oidc import KEY_SECONDS, OidcConfig, OidcVerifier
from hub.api.app import create_app
from hub.api.auth import NotPermitted, TokenAuthenticator, Unauthenticated, authenticate_header
from hub.api.context import ApiContext
from hub.ports.credentials import CredentialRefused, NoKnownRole, Principal, Role
from hub.settings import Settings
from subscriptions.ssrf import NetworkPolicy

AUDIENCE = "koppelhub"


@dataclass
class Issuer:
    """A loopback OIDC issuer: discovery document and JWKS, keys rotatable, fetches counted."""

    url: str = ""
    keys: dict[str, Any] = field(default_factory=dict)  # kid -> private key
    published: list[str] = field(default_factory=list)  # kids in the JWKS
    fetches: int = 0
    failing: bool = False  # the JWKS answers 503

    def add_key(self, kid: str, kind: str = "rsa") -> None:
        self.keys[kid] = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid in self.published:
            key = self.keys[kid]
            algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
            jwk = json.loads(algorithm.to_jwk(key.public_key()))
            out.append(jwk | {"kid": kid, "use": "sig"})
        return {"keys": out}

    def token(self, kid: str = "k1", alg: str | None = None, **claims: Any) -> str:
        key = self.keys[kid]
        now = int(time.time())
        body = {"iss": self.url, "aud": AUDIENCE, "sub": "u-1", "exp": now + 300, "iat": now,
                "roles": ["gebruik-beheerder"], "organisatie": "gem-a"} | claims  # fmt: skip
        algorithm = alg or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
        return jwt.encode(
            {k: v for k, v in body.items() if v is not None}, key, algorithm, headers={"kid": kid}
        )


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    state = Issuer()

    async def discovery(_: web.Request) -> web.Response:
        return web.json_response({"issuer": state.url, "jwks_uri": state.url + "/jwks"})

    async def jwks(_: web.Request) -> web.Response:
        state.fetches += 1
        if state.failing:
            return web.Response(status=503)
        return web.json_response(state.jwks())

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    state.add_key("k1")
    try:
        yield state
    finally:
        await runner.cleanup()


def verifier(issuer: Issuer, **config: Any) -> OidcVerifier:
    return OidcVerifier(OidcConfig(issuer.url, AUDIENCE, **{"refetch_cooldown_seconds": 0.0} | config))


async def test_an_rs256_token_from_the_discovered_jwks_is_a_principal_of_its_role_and_organisation(
    issuer: Issuer,
) -> None:
    found = await verifier(issuer).principal(issuer.token())
    assert found == Principal("u-1", Role.GEBRUIK_BEHEERDER, "gem-a", credential="jwt:u-1")


async def test_an_es256_token_with_custom_claims_is_accepted(issuer: Issuer) -> None:
    issuer.add_key("ec1", "ec")
    check = verifier(issuer, jwks_url=issuer.url + "/jwks", roles_claim="rollen", organisation_claim="org")
    token = issuer.token("ec1", rollen=["functioneel-beheerder"], org="gem-b", preferred_username="fb")
    found = await check.principal(token)
    assert (found.name, found.role, found.organisation) == ("fb", Role.FUNCTIONEEL_BEHEERDER, "gem-b")


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        # Times relative to when the test runs (collection can be many minutes earlier).
        ({"exp": -60}, "expired (exp)"),
        ({"nbf": 600}, "not valid yet (nbf)"),
        ({"aud": "another-api"}, "audience (aud)"),
        ({"iss": "https://evil.example"}, "issuer (iss)"),
        ({"exp": None}, "lacks a required claim"),
    ],
)
async def test_a_token_failing_a_check_is_refused_naming_the_check(
    issuer: Issuer, claims: dict[str, Any], says: str
) -> None:
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "nbf") and v is not None else v for k, v in claims.items()}
    with pytest.raises(CredentialRefused, match=says.replace("(", r"\(").replace(")", r"\)")):
        await verifier(issuer).principal(issuer.token(**claims))


async def test_a_rotated_key_is_fetched_once_and_an_unknown_kid_is_refused(issuer: Issuer) -> None:
    check = verifier(issuer)
    await check.principal(issuer.token("k1"))
    before = issuer.fetches
    issuer.add_key("k2")
    issuer.published.remove("k1")  # rotation: the old key leaves the set
    assert (await check.principal(issuer.token("k2"))).role is Role.GEBRUIK_BEHEERDER
    assert issuer.fetches == before + 1
    await check.principal(issuer.token("k2"))
    assert issuer.fetches == before + 1  # cached
    issuer.keys["k3"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # never published
    with pytest.raises(CredentialRefused, match="kid 'k3'"):
        await check.principal(issuer.token("k3"))


async def test_alg_none_and_hs256_signed_with_the_public_key_are_refused(issuer: Issuer) -> None:
    now = int(time.time())
    claims = {
        "iss": issuer.url,
        "aud": AUDIENCE,
        "sub": "x",
        "exp": now + 60,
        "roles": ["functioneel-beheerder"],
    }
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(CredentialRefused, match="algorithm 'none' is not allowed"):
        await verifier(issuer).principal(unsigned)
    public_pem = (
        issuer.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    forged = _hs256(claims, public_pem)
    with pytest.raises(CredentialRefused, match="algorithm 'HS256' is not allowed"):
        await verifier(issuer).principal(forged)


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 JWT keyed with ``secret`` (PyJWT refuses a PEM as an HMAC key, so by hand)."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


async def test_a_token_without_a_known_role_is_forbidden_not_unauthenticated(issuer: Issuer) -> None:
    with pytest.raises(NoKnownRole, match="no known role"):
        await verifier(issuer).principal(issuer.token(roles=["beheerder-van-alles"]))
    auth = TokenAuthenticator("admin-secret", oidc=verifier(issuer))
    with pytest.raises(NotPermitted):
        await authenticate_header(auth, "Bearer " + issuer.token(roles=[]))
    with pytest.raises(Unauthenticated, match="expired"):
        await authenticate_header(auth, "Bearer " + issuer.token(exp=int(time.time()) - 60))
    assert (await authenticate_header(auth, "Bearer " + issuer.token())).organisation == "gem-a"


async def test_a_role_with_rights_for_its_own_organisation_without_one_is_forbidden(issuer: Issuer) -> None:
    """Without the claim such a principal would act for no organisation, which the lists and
    rights read as every organisation's (a functioneel-beheerder's scope). Roles whose rights
    reach every organisation or none (vng-raadpleger, bezoeker) need no organisation."""
    auth = TokenAuthenticator("admin-secret", oidc=verifier(issuer))
    for role in ("gebruik-beheerder", "gebruik-raadpleger", "aanbod-beheerder", "systeem"):
        for claim in (None, ""):
            token = issuer.token(roles=[role], organisatie=claim)
            with pytest.raises(NotPermitted, match=f"the role {role} but names no organisatie"):
                await authenticate_header(auth, "Bearer " + token)
    for role in ("functioneel-beheerder", "vng-raadpleger", "bezoeker"):
        found = await authenticate_header(auth, "Bearer " + issuer.token(roles=[role], organisatie=None))
        assert (found.role.value, found.organisation) == (role, None)


async def test_a_verified_token_is_kept_at_most_a_minute_and_never_past_its_exp(issuer: Issuer) -> None:
    """The signature check is paid once per token and minute, not per request: the same token
    is answered with the principal verified before (the same object) until a minute has passed
    or the token's ``exp``, whichever comes first; after that it is checked in full again."""
    clock = {"now": time.time()}
    check = OidcVerifier(OidcConfig(issuer.url, AUDIENCE), clock=lambda: clock["now"])
    long_lived, short_lived = issuer.token(), issuer.token(exp=int(clock["now"]) + 20, sub="u-2")

    first, short_first = await check.principal(long_lived), await check.principal(short_lived)
    again, short_again = await check.principal(long_lived), await check.principal(short_lived)
    clock["now"] += 30  # past the short token's exp (by this clock), within the minute
    later, short_later = await check.principal(long_lived), await check.principal(short_lived)
    clock["now"] += 31  # a minute after the first check
    after_a_minute = await check.principal(long_lived)

    assert again is first and short_again is short_first
    assert later is first and short_later is not short_first  # checked again: its exp passed
    assert after_a_minute is not first and after_a_minute == first


async def test_a_refused_token_is_refused_again_not_kept(issuer: Issuer) -> None:
    check = verifier(issuer)
    wrong = issuer.token(aud="another-api")
    for _ in range(2):
        with pytest.raises(CredentialRefused, match="audience"):
            await check.principal(wrong)


async def test_a_key_the_issuer_withdrew_is_refused_once_its_trust_period_has_passed(issuer: Issuer) -> None:
    """A fetched key is not trusted for ever: after KEY_SECONDS the issuer's set is asked again,
    and a key it no longer publishes (withdrawn after a leak) signs nothing any more; a key it
    still publishes goes on working, and an issuer that cannot be reached then does not lock
    the callers out (the key is kept for another period)."""
    clock = {"now": time.time()}
    check = OidcVerifier(
        OidcConfig(issuer.url, AUDIENCE, refetch_cooldown_seconds=0.0), clock=lambda: clock["now"]
    )
    issuer.add_key("k2")
    await check.principal(issuer.token("k1"))
    await check.principal(issuer.token("k2"))
    issuer.published.remove("k1")  # withdrawn

    clock["now"] += KEY_SECONDS - 1  # still within the period: the kept key is used
    assert (await check.principal(issuer.token("k1", sub="u-2"))).role is Role.GEBRUIK_BEHEERDER
    clock["now"] += 2  # the period has passed: asked again
    with pytest.raises(CredentialRefused, match="kid 'k1'"):
        await check.principal(issuer.token("k1", sub="u-3"))
    assert (await check.principal(issuer.token("k2", sub="u-3"))).role is Role.GEBRUIK_BEHEERDER

    fetches = issuer.fetches
    issuer.failing = True  # the issuer is down when k2's period ends
    clock["now"] += KEY_SECONDS + 1
    assert (await check.principal(issuer.token("k2", sub="u-4"))).role is Role.GEBRUIK_BEHEERDER
    assert issuer.fetches > fetches  # it was asked


async def test_the_console_sends_an_expired_or_roleless_token_to_sign_in_and_takes_a_valid_one(
    issuer: Issuer, tmp_path: Path
) -> None:
    """The console reads its token from a form and a cookie, not a header: an expired token
    there, or one without a role of the hub's, is a way back to the sign-in page (was a 500)."""
    ctx = ApiContext(
        settings=Settings(data_dir=tmp_path, admin_token="admin-secret"),
        event_log=InMemoryEventLog(),
        subscriptions=InMemorySubscriptionStore(InMemoryDatabase()),
        landscape=InMemoryProjectionStore([]),
        network_policy=NetworkPolicy.parse([]),
        auth=TokenAuthenticator("admin-secret", oidc=verifier(issuer)),
        readiness=_ready,
    )
    expired = issuer.token(roles=["functioneel-beheerder"], exp=int(time.time()) - 60)
    roleless = issuer.token(roles=[])
    own_without_one = issuer.token(roles=["gebruik-beheerder"], organisatie=None)
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        for token in (expired, roleless, own_without_one):
            signed_in = await client.post("/console/login", data={"token": token})
            assert signed_in.status_code == 303 and "/console/login?error=" in signed_in.headers["location"]
            client.cookies.set("koppelhub_console", token, path="/console")
            page = await client.get("/console/subscriptions")
            assert page.status_code == 303 and page.headers["location"] == "/console/login"
            client.cookies.clear()
        valid = await client.post(
            "/console/login", data={"token": issuer.token(roles=["functioneel-beheerder"])}
        )
        assert valid.status_code == 303 and valid.headers["location"] == "/console"


async def _ready() -> dict[str, bool]:
    return {"test": True}
