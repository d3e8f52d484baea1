"""A loopback OIDC issuer for the benchmarks: a key made here, its JWKS and discovery document
served on 127.0.0.1, and JWTs signed with it, as a Keycloak realm would issue them.

Shared by ``benchmarks.auth_cost`` (the in-memory app) and ``benchmarks.e2e --credential jwt``
(a real ``koppelhub run`` started with ``KOPPELHUB_OIDC_ISSUER``/``AUDIENCE`` pointing here).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "koppelhub"
KID = "bench-1"


def signing_key(alg: str) -> tuple[Any, dict[str, Any]]:
    """A fresh private key for ``alg`` (RS256: 2048-bit RSA, ES256: P-256) and its public JWK."""
    private: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if alg == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    public = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(private.public_key()))
    return private, {**public, "kid": KID, "alg": alg, "use": "sig"}


class LoopbackIssuer:
    """Serves ``/realms/bench/.well-known/openid-configuration`` and its ``jwks_uri`` on a
    loopback port chosen by the kernel; :meth:`token` signs a JWT for the hub's audience."""

    def __init__(self, alg: str = "RS256") -> None:
        self.alg = alg
        self._private, self._public_jwk = signing_key(alg)
        self._runner: web.AppRunner | None = None
        self.issuer = self.jwks_url = ""

    async def start(self) -> LoopbackIssuer:
        # Bind the socket here so the port is known without reading the server's internals.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.issuer, self.jwks_url = f"{base}/realms/bench", f"{base}/realms/bench/certs"
        discovery = {"issuer": self.issuer, "jwks_uri": self.jwks_url}
        app = web.Application()
        keys = {"keys": [self._public_jwk]}
        app.router.add_get(
            "/realms/bench/.well-known/openid-configuration", lambda _: web.json_response(discovery)
        )
        app.router.add_get("/realms/bench/certs", lambda _: web.json_response(keys))
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def hub_env(self) -> dict[str, str]:
        """The settings a hub needs to accept this issuer's JWTs (the JWKS URL from discovery)."""
        return {"KOPPELHUB_OIDC_ISSUER": self.issuer, "KOPPELHUB_OIDC_AUDIENCE": AUDIENCE}

    def token(self, roles: list[str], organisatie: str | None = None, lifetime: float = 3600) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": AUDIENCE, "sub": "bench", "preferred_username": "bench",
            "iat": now, "exp": now + int(lifetime), "roles": roles,
        }  # fmt: skip
        if organisatie is not None:
            claims["organisatie"] = organisatie
        return jwt.encode(claims, self._private, algorithm=self.alg, headers={"kid": KID})
