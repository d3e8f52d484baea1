"""Bearer-token access: who calls (a :class:`~hub.services.access.Principal`: a role for an
organisation) and the route check of the matrix in :mod:`hub.services.access`. Per-object
checks (own organisation or another) are the routes' and services' own, through
:func:`hub.services.access.may`."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from hub.api.problems import ProblemError
from hub.ports.credentials import BearerVerifier, CredentialRefused, NoKnownRole
from hub.services.access import VISITOR, Action, Principal, Role, acts_for_its_organisation, may_at_all
from hub.services.tokens import TOKEN_PREFIX, TokenLookup

#: The admin token: a functioneel-beheerder for all organisations.
ADMIN = Principal("admin", Role.FUNCTIONEEL_BEHEERDER, None, credential="admin")

#: Publishing needs one of these; which one applies is decided per event (hub.api.publishing).
PUBLISH_ACTIONS = (Action.RECORD_GEBRUIK, Action.RECORD_AANBOD, Action.RECORD_GEMMA)


class TokenAuthenticator:
    """Maps bearer tokens to principals: the admin token (constant-time comparison), then API
    tokens (``kh_…``) through their cached lookup, then (when configured) OIDC JWTs."""

    def __init__(
        self, admin_token: str, tokens: TokenLookup | None = None, oidc: BearerVerifier | None = None
    ):
        self._admin = admin_token.encode()
        self._tokens = tokens
        self._oidc = oidc

    async def authenticate(self, token: str) -> Principal | None:
        if hmac.compare_digest(token.encode(), self._admin):
            return ADMIN
        if self._tokens is not None and token.startswith(TOKEN_PREFIX):
            return await self._tokens.principal(token)
        if self._oidc is not None and self._oidc.looks_like(token):
            try:
                return await self._oidc.principal(token)
            except CredentialRefused as e:
                raise Unauthenticated(str(e)) from e
        return None


class Unauthenticated(Exception):
    """No usable bearer token; the message says what to send."""


class NotPermitted(Exception):
    """A valid credential that carries no role the hub knows (403)."""


async def authenticate_header(authenticator: TokenAuthenticator, header: str) -> Principal:
    """The one check of an ``Authorization`` header; raises :class:`Unauthenticated`."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send Authorization: Bearer <token>")
    try:
        principal = await authenticator.authenticate(token.strip())
    except NoKnownRole as e:
        raise NotPermitted(str(e)) from e
    if principal is None:
        raise Unauthenticated("the bearer token is not valid")
    if principal.organisation is None and acts_for_its_organisation(principal.role):
        # Else its rights for its own organisation would reach every organisation's objects.
        raise NotPermitted(
            f"the credential of {principal.name!r} has the role {principal.role.value} but names no "
            "organisatie, and that role acts for its own (an OIDC token names it in the claim "
            "KOPPELHUB_OIDC_ORGANISATION_CLAIM names)"
        )
    return principal


#: Where :class:`hub.api.limits.RequestGuard` leaves the principal it authenticated.
PRINCIPAL_STATE = "principal"


def forbidden(principal: Principal, action: Action, detail: str = "") -> ProblemError:
    """The 403 of a refused action: it names the role and the right it lacks."""
    org = f" for {principal.organisation}" if principal.organisation else ""
    return ProblemError(
        403,
        "Forbidden",
        detail
        or f"the role {principal.role.value}{org} lacks the right {action.value}; ask a "
        "functioneel-beheerder for a token with a role that has it",
    )


def require(*actions: Action) -> object:
    """A route dependency: :func:`requirement` of ``actions``."""
    return Depends(requirement(*actions))


def requirement(*actions: Action) -> Callable[[Request], Awaitable[Principal]]:
    """The check of a request: a valid token (else 401) whose role holds one of ``actions`` for
    some organisation (else 403 naming the role and the first right).

    Under ``/api/`` the request guard authenticated before anyone read the body and left the
    principal in the request state; only routes outside it authenticate here."""

    async def dependency(request: Request) -> Principal:
        principal: Principal | None = getattr(request.state, PRINCIPAL_STATE, None)
        if principal is None:
            try:
                principal = await authenticate_header(
                    request.app.state.ctx.auth, request.headers.get("authorization", "")
                )
            except Unauthenticated as e:
                raise ProblemError(401, "Unauthorized", str(e)) from e
            except NotPermitted as e:
                raise ProblemError(403, "Forbidden", str(e)) from e
        public_read = request.app.state.ctx.settings.public_read
        if not any(may_at_all(principal, action, public_read=public_read) for action in actions):
            if principal is VISITOR:  # no token given: what is missing is a token, not a role
                raise ProblemError(
                    401, "Unauthorized", "send Authorization: Bearer <token>; without a token only the "
                    "public landscape can be read (KOPPELHUB_PUBLIC_READ)",
                )  # fmt: skip
            raise forbidden(principal, actions[0])
        return principal

    return dependency


#: The publish route's check; the publish fast path (hub/api/events.py) runs it too.
authorise_publisher = requirement(*PUBLISH_ACTIONS)
Publisher = Annotated[Principal, Depends(authorise_publisher)]
SubscriptionManager = Annotated[Principal, require(Action.MANAGE_KOPPELINGEN)]
#: A subscription's pull feed: its managers, and federatie tokens for the subscriptions they name.
EventPuller = Annotated[Principal, require(Action.PULL_EVENTS)]
ConnectorManager = Annotated[Principal, require(Action.MANAGE_KOPPELINGEN)]
Reader = Annotated[Principal, require(Action.READ_LANDSCAPE)]
#: Operator views: status, the dead-letter topic and its redrive (functioneel-beheerder).
Operator = Annotated[Principal, require(Action.OPERATE)]

__all__ = [
    "ADMIN",
    "PRINCIPAL_STATE",
    "ConnectorManager",
    "EventPuller",
    "NotPermitted",
    "Operator",
    "Principal",
    "Publisher",
    "Reader",
    "SubscriptionManager",
    "TokenAuthenticator",
    "Unauthenticated",
    "authenticate_header",
    "forbidden",
    "require",
]
