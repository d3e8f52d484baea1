"""Bearer-token access. Today one right-holder, the admin token; the Principal carries
rights so roles and per-organisation rights can be added without touching the routes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request

from hub.api.problems import ProblemError


class Right(StrEnum):
    PUBLISH = "events:publish"
    MANAGE_SUBSCRIPTIONS = "subscriptions:manage"
    READ = "landscape:read"
    MANAGE_CONNECTORS = "connectors:manage"
    #: Operator views: status, the dead-letter topic and its redrive (functioneel-beheerder).
    OPERATE = "hub:operate"


@dataclass(frozen=True)
class Principal:
    name: str
    rights: frozenset[Right] = field(default_factory=frozenset)
    organisation: str | None = None  # None: every organisation


class TokenAuthenticator:
    """Maps bearer tokens to principals (constant-time comparison)."""

    def __init__(self, admin_token: str):
        self._admin = admin_token.encode()

    def authenticate(self, token: str) -> Principal | None:
        if hmac.compare_digest(token.encode(), self._admin):
            return Principal("admin", frozenset(Right))
        return None


class Unauthenticated(Exception):
    """No usable bearer token; the message says what to send."""


def authenticate_header(authenticator: TokenAuthenticator, header: str) -> Principal:
    """The one check of an ``Authorization`` header; raises :class:`Unauthenticated`."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send Authorization: Bearer <token>")
    principal = authenticator.authenticate(token.strip())
    if principal is None:
        raise Unauthenticated("the bearer token is not valid")
    return principal


#: Where :class:`hub.api.limits.RequestGuard` leaves the principal it authenticated.
PRINCIPAL_STATE = "principal"


def require(right: Right) -> object:
    """A route dependency: a valid token (else 401) that holds ``right`` (else 403).

    Under ``/api/`` the request guard authenticated before anyone read the body and left the
    principal in the request state; only routes outside it authenticate here."""

    def dependency(request: Request) -> Principal:
        principal: Principal | None = getattr(request.state, PRINCIPAL_STATE, None)
        if principal is None:
            try:
                principal = authenticate_header(
                    request.app.state.ctx.auth, request.headers.get("authorization", "")
                )
            except Unauthenticated as e:
                raise ProblemError(401, "Unauthorized", str(e)) from e
        if right not in principal.rights:
            raise ProblemError(403, "Forbidden", f"this token lacks the right {right.value}")
        return principal

    return Depends(dependency)


Publisher = Annotated[Principal, require(Right.PUBLISH)]
SubscriptionManager = Annotated[Principal, require(Right.MANAGE_SUBSCRIPTIONS)]
ConnectorManager = Annotated[Principal, require(Right.MANAGE_CONNECTORS)]
Operator = Annotated[Principal, require(Right.OPERATE)]
