"""Who calls (a :class:`Principal`: a :class:`Role` for an organisation) and the
bearer-credential port that turns a token (an OIDC JWT) into one. The rights of each role are
:mod:`hub.services.access`'s."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Role(StrEnum):
    """The Softwarecatalogus' own role names, plus ``systeem`` (a connected system)."""

    FUNCTIONEEL_BEHEERDER = "functioneel-beheerder"
    GEBRUIK_BEHEERDER = "gebruik-beheerder"
    GEBRUIK_RAADPLEGER = "gebruik-raadpleger"
    AANBOD_BEHEERDER = "aanbod-beheerder"
    VNG_RAADPLEGER = "vng-raadpleger"
    BEZOEKER = "bezoeker"
    SYSTEEM = "systeem"
    #: Another hub following this one: it may only read the pull feeds of the subscriptions
    #: its token names (hub.services.access, ``events-ophalen``).
    FEDERATIE = "federatie"


@dataclass(frozen=True)
class Principal:
    """Who calls: a role for an organisation (None: every organisation, functioneel-beheerder
    only), the ``source`` values or prefixes a systeem may publish (for a federatie token: the
    ids of the subscriptions whose pull feed it may read), and what identifies the credential
    (token id or JWT subject) for the audit trail."""

    name: str
    role: Role = Role.FUNCTIONEEL_BEHEERDER
    organisation: str | None = None
    sources: tuple[str, ...] = ()
    credential: str | None = None


__all__ = ["BearerVerifier", "CredentialRefused", "NoKnownRole", "Principal", "Role"]


class CredentialRefused(Exception):
    """The token is not valid; the message names the check that failed (401)."""


class NoKnownRole(Exception):
    """A valid token that names none of the hub's roles (403)."""


class BearerVerifier(Protocol):
    def looks_like(self, token: str) -> bool:
        """Whether ``token`` is this verifier's kind (a JWT: three dot-separated parts)."""
        ...

    async def principal(self, token: str) -> Principal:
        """The principal of a valid token; :class:`CredentialRefused` or :class:`NoKnownRole`."""
        ...
