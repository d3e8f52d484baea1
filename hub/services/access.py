"""The authorisation matrix: which role may do what, for its own organisation or for all.

The one owner of the Softwarecatalogus roles and their rights (issue 12, F008: "Externe
koppelingen beheren" is allowed for a gebruik-beheerder for its own organisation and for a
functioneel-beheerder for all; every other role is refused). ``federatie`` is the hub's own
least-privilege role for another hub that follows this one (issue 14): it may read the pull
feeds of the subscriptions its token names, without private fields, and nothing else. Pure:
routes and services ask :func:`may` (or :func:`scope`, :func:`may_pull`) and never compare role
names themselves. The README shows
:data:`MATRIX` as a table; ``tests/unit/test_access.py`` checks every role x action, each for
the caller's own organisation and for another.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from typing import Final

from hub.ports.credentials import Principal, Role

__all__ = [
    "GRANTABLE",
    "MATRIX",
    "RECORD_ACTIONS",
    "VISITOR",
    "Action",
    "Principal",
    "Role",
    "Scope",
    "matrix_table",
    "may",
    "may_at_all",
    "may_grant",
    "may_publish_source",
    "may_pull",
    "may_record",
    "pull_recipient",
    "scope",
    "source_under",
    "visible_organisations",
]


class Action(StrEnum):
    """What a caller may be allowed to do (the rows of the matrix)."""

    MANAGE_KOPPELINGEN = (
        "externe-koppelingen-beheren"  # connectors, imports, subscriptions, replay, redelivery
    )
    MANAGE_TOKENS = "tokens-beheren"
    RECORD_GEBRUIK = "gebruik-vastleggen"  # gebruik and koppelingen: publish, import
    RECORD_AANBOD = "aanbod-vastleggen"  # applicaties
    RECORD_GEMMA = "gemma-vastleggen"  # referentiecomponenten, standaarden, AMEFF as GEMMA
    READ_LANDSCAPE = "landschap-raadplegen"  # public fields, exports
    READ_PRIVATE = "private-velden-raadplegen"  # interneAantekening
    OPERATE = "hub-beheren"  # status, DLQ, metrics, rebuild
    READ_AUDIT = "audit-raadplegen"
    PULL_EVENTS = "events-ophalen"  # a subscription's pull feed (GET …/subscriptions/{id}/events)


class Scope(StrEnum):
    """How far a right reaches."""

    NONE = "none"
    OWN = "own"  # only objects of the caller's own organisation
    SOURCES = "sources"  # systeem: own organisation, and only the sources it is registered for
    ALL = "all"
    PUBLIC = "public"  # all, but only when KOPPELHUB_PUBLIC_READ=true (a bezoeker's landscape reads)
    GRANTED = "granted"  # federatie: only the subscriptions its token names, whoever owns them


_FB, _GB, _GR, _AB, _VR, _BZ, _SY, _FD = Role
_N, _O, _S, _A, _P, _G = Scope.NONE, Scope.OWN, Scope.SOURCES, Scope.ALL, Scope.PUBLIC, Scope.GRANTED

#: Action → role → scope. Read it as the issue's table (✅ all, ✅ own, ❌).
MATRIX: Final[dict[Action, dict[Role, Scope]]] = {
    Action.MANAGE_KOPPELINGEN: {_FB: _A, _GB: _O, _GR: _N, _AB: _N, _VR: _N, _BZ: _N, _SY: _N, _FD: _N},
    Action.MANAGE_TOKENS: {_FB: _A, _GB: _O, _GR: _N, _AB: _O, _VR: _N, _BZ: _N, _SY: _N, _FD: _N},
    Action.RECORD_GEBRUIK: {_FB: _A, _GB: _O, _GR: _N, _AB: _N, _VR: _N, _BZ: _N, _SY: _S, _FD: _N},
    Action.RECORD_AANBOD: {_FB: _A, _GB: _O, _GR: _N, _AB: _O, _VR: _N, _BZ: _N, _SY: _S, _FD: _N},
    Action.RECORD_GEMMA: {_FB: _A, _GB: _N, _GR: _N, _AB: _N, _VR: _N, _BZ: _N, _SY: _N, _FD: _N},
    Action.READ_LANDSCAPE: {_FB: _A, _GB: _A, _GR: _A, _AB: _A, _VR: _A, _BZ: _P, _SY: _A, _FD: _N},
    Action.READ_PRIVATE: {_FB: _A, _GB: _O, _GR: _O, _AB: _N, _VR: _N, _BZ: _N, _SY: _N, _FD: _N},
    Action.OPERATE: {_FB: _A, _GB: _N, _GR: _N, _AB: _N, _VR: _N, _BZ: _N, _SY: _N, _FD: _N},
    Action.READ_AUDIT: {_FB: _A, _GB: _O, _GR: _N, _AB: _N, _VR: _N, _BZ: _N, _SY: _N, _FD: _N},
    Action.PULL_EVENTS: {_FB: _A, _GB: _O, _GR: _N, _AB: _N, _VR: _N, _BZ: _N, _SY: _N, _FD: _G},
}

#: Which roles a token manager may hand out (tokens beheren: "own (roles …)").
GRANTABLE: Final[dict[Role, frozenset[Role]]] = {
    _FB: frozenset(Role),
    _GB: frozenset({_GB, _GR, _SY}),
    _AB: frozenset({_AB, _SY}),
}


#: Who calls without a token: a bezoeker for no organisation. It gets only what the matrix
#: gives :attr:`Scope.PUBLIC`, and only with ``KOPPELHUB_PUBLIC_READ=true``: the landscape's
#: public fields (private fields are :attr:`Action.READ_PRIVATE`'s, which it never has).
VISITOR: Final = Principal("bezoeker", Role.BEZOEKER, None, credential=None)


def scope(role: Role, action: Action, *, public_read: bool = False) -> Scope:
    """How far ``role``'s right to ``action`` reaches; :attr:`Scope.PUBLIC` is all when the
    hub serves public reads (``public_read``), else none."""
    reach = MATRIX[action][role]
    if reach is Scope.PUBLIC:
        return Scope.ALL if public_read else Scope.NONE
    return reach


def may_at_all(principal: Principal, action: Action, *, public_read: bool = False) -> bool:
    """Whether the role has the right for some organisation (the 403 check of a route)."""
    return scope(principal.role, action, public_read=public_read) is not Scope.NONE


def may(principal: Principal, action: Action, organisation: str | None, *, public_read: bool = False) -> bool:
    """Whether ``principal`` may do ``action`` on something of ``organisation`` (None: a
    hub-wide object, which only a right for all reaches). A :attr:`Scope.GRANTED` right names
    objects, not organisations: only its own check (:func:`may_pull`) grants it."""
    reach = scope(principal.role, action, public_read=public_read)
    if reach is Scope.ALL:
        return True
    if reach in (Scope.NONE, Scope.GRANTED):
        return False
    return organisation is not None and organisation == principal.organisation


def may_pull(principal: Principal, subscription: str, organisation: str | None) -> bool:
    """Whether ``principal`` may read the pull feed of ``subscription`` (owned by
    ``organisation``; None: hub-wide): a federatie token only for the subscription ids it names
    (:attr:`Principal.sources`), the other roles by their reach."""
    if scope(principal.role, Action.PULL_EVENTS) is Scope.GRANTED:
        return subscription in principal.sources
    return may(principal, Action.PULL_EVENTS, organisation)


def pull_recipient(principal: Principal, owner: str | None) -> str | None:
    """Whose private fields a pull feed read by ``principal`` shows: those of the subscription's
    ``owner``, except to a reader by grant (another hub), which sees no private fields at all."""
    return None if scope(principal.role, Action.PULL_EVENTS) is Scope.GRANTED else owner


def may_publish_source(principal: Principal, source: str) -> bool:
    """A systeem publishes only for the sources (exact values or prefixes) it is registered for;
    other roles are not bound to sources."""
    if principal.role is not Role.SYSTEEM:
        return True
    return any(source_under(source, registered) for registered in principal.sources)


def source_under(source: str, registered: str) -> bool:
    """``source`` is ``registered`` or lies under it (``registered`` + ``:`` or ``/`` …): a
    prefix ``…:sys1`` does not cover ``…:sys10``."""
    if source == registered:
        return True
    if registered.endswith((":", "/")):
        return source.startswith(registered)
    return source.startswith((registered + ":", registered + "/"))


def may_grant(principal: Principal, role: Role, organisation: str | None) -> bool:
    """Whether ``principal`` may create a token with ``role`` for ``organisation``."""
    return may(principal, Action.MANAGE_TOKENS, organisation) and role in GRANTABLE.get(
        principal.role, frozenset()
    )


def visible_organisations(principal: Principal, action: Action) -> Collection[str] | None:
    """The organisations whose objects a list shows for ``action``: None means all."""
    if scope(principal.role, action) is Scope.ALL:
        return None
    return [principal.organisation] if principal.organisation else []


#: The roles with a right that reaches only their own organisation's objects (or sources): a
#: principal of one without an organisation would be read as one of every organisation. Derived
#: from the matrix once, as the API's header check asks it per request.
_OWN_ORGANISATION_ROLES: Final = frozenset(
    role for role in Role if any(MATRIX[action][role] in (Scope.OWN, Scope.SOURCES) for action in MATRIX)
)


def acts_for_its_organisation(role: Role) -> bool:
    """Whether a right of ``role`` reaches only its own organisation's objects (or sources)."""
    return role in _OWN_ORGANISATION_ROLES


def listed_organisation(principal: Principal, action: Action, asked: str | None = None) -> str | None:
    """The one organisation a store's list is narrowed to for ``action``, ``asked`` being the
    caller's own filter (None: none). A principal that sees every organisation's gets ``asked``
    (None: all); any other its own, and ``""``, which no object has, when it asked for another
    or has none (the list then shows nothing, never everything)."""
    visible = visible_organisations(principal, action)
    if visible is None:
        return asked
    own = next(iter(visible), "")
    return own if asked in (None, own) else ""


#: Landscape object type → the right that records it (publish a ``vastgelegd``/``ingetrokken``
#: event, import a file of them).
RECORD_ACTIONS: Final[dict[str, Action]] = {
    "gebruik": Action.RECORD_GEBRUIK,
    "koppeling": Action.RECORD_GEBRUIK,
    "organisatie": Action.RECORD_GEBRUIK,
    "applicatie": Action.RECORD_AANBOD,
    "referentiecomponent": Action.RECORD_GEMMA,
    "standaard": Action.RECORD_GEMMA,
}


def may_record(principal: Principal, objecttype: str, owner: str | None) -> bool:
    """Whether ``principal`` may record (create, change, withdraw) an object of ``objecttype``
    owned by ``owner``. An organisatie may also be recorded by its own aanbod-beheerder."""
    action = RECORD_ACTIONS[objecttype]
    if may(principal, action, owner):
        return True
    return objecttype == "organisatie" and may(principal, Action.RECORD_AANBOD, owner)


#: How the README names each action (the rows of the issue's table).
ACTION_TITLES: Final[dict[Action, str]] = {
    Action.MANAGE_KOPPELINGEN: "externe koppelingen beheren: connectors, imports, subscriptions, "
    "replay, redelivery",
    Action.MANAGE_TOKENS: "tokens beheren (gebruik-beheerder: roles gebruik-*, systeem; aanbod-beheerder: "
    "aanbod-beheerder, systeem)",
    Action.RECORD_GEBRUIK: "gebruik and koppelingen vastleggen (publish, import)",
    Action.RECORD_AANBOD: "applicaties (aanbod) vastleggen",
    Action.RECORD_GEMMA: "referentiecomponenten, standaarden (GEMMA), AMEFF import as GEMMA",
    Action.READ_LANDSCAPE: "raadplegen landscape (public fields), export AMEFF/CSV/XLSX",
    Action.READ_PRIVATE: "private fields (`interneAantekening`)",
    Action.OPERATE: "operator views (status, DLQ, metrics), rebuild",
    Action.READ_AUDIT: "audit log",
    Action.PULL_EVENTS: "a subscription's pull feed (`GET …/subscriptions/{id}/events`; federation)",
}
_MARKS: Final = {
    Scope.ALL: "✅ all",
    Scope.OWN: "✅ own",
    Scope.SOURCES: "✅ own sources",
    Scope.NONE: "❌",
    Scope.PUBLIC: "❌ unless `KOPPELHUB_PUBLIC_READ=true` (without a token)",
    Scope.GRANTED: "✅ the subscriptions its token names (no private fields)",
}


def matrix_table() -> str:
    """:data:`MATRIX` as the README's markdown table (a test keeps the README in step)."""
    lines = [
        "| action (right) | " + " | ".join(r.value for r in Role) + " |",
        "|---" * (len(Role) + 1) + "|",
    ]
    for action, row in MATRIX.items():
        marks = " | ".join(_MARKS[row[r]] for r in Role)
        lines.append(f"| {ACTION_TITLES[action]} (`{action.value}`) | {marks} |")
    return "\n".join(lines)
