"""Who may record what: the publish and import checks of the authorisation matrix.

A publisher records objects of its own organisation only (``afnemer`` of a gebruik,
``aanbieder`` of an applicatie, ``organisatie`` of a koppeling: :func:`owner_of`), both as
the event states it and as the hub holds it now, so nobody overwrites or withdraws another
organisation's object by reusing its id. A ``systeem`` publishes only for the sources it is
registered for, and nobody states another organisation than its own in the ``organisatie``
extension attribute. A principal with the right for all organisations (the admin token, a
functioneel-beheerder) skips the per-event checks: they cost nothing on its publishes.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from fastapi import Request

from hub.api.auth import PRINCIPAL_STATE, forbidden
from hub.api.problems import ProblemError
from hub.errors import NotFound
from hub.ports import LandscapeReader
from hub.services.access import (
    RECORD_ACTIONS,
    Action,
    Principal,
    Role,
    Scope,
    may,
    may_at_all,
    may_publish_source,
    may_pull,
    may_record,
    scope,
)
from hub.services.source_owners import SourceIndex, canonical_source
from hub.services.writeback_subscriptions import write_back_organisaties
from schemas import CloudEvent
from schemas.landscape import parse_inbound_type
from schemas.landscape.privacy import owner_of

__all__ = [
    "SUBSCRIPTION_STATE",
    "check_import_right",
    "check_publish",
    "owned_subscription",
    "stamp_events",
    "subscription_owner",
]

#: The extension attribute naming the organisation an event belongs to.
ORGANISATIE = "organisatie"


def _unbound(principal: Principal) -> bool:
    """A principal whose every recording right reaches every organisation."""
    return all(scope(principal.role, a) is Scope.ALL for a in set(RECORD_ACTIONS.values()))


def check_import_right(principal: Principal, organisatie: str, objecttype: str, *, gemma: bool) -> None:
    """403 unless ``principal`` may import ``objecttype`` for ``organisatie``."""
    if not may(principal, Action.MANAGE_KOPPELINGEN, organisatie):
        raise forbidden(
            principal,
            Action.MANAGE_KOPPELINGEN,
            f"the role {principal.role.value} imports only for its own organisatie, not for {organisatie!r}",
        )
    action = Action.RECORD_GEMMA if gemma else RECORD_ACTIONS.get(objecttype, Action.RECORD_GEBRUIK)
    if not may(principal, action, organisatie):
        raise forbidden(principal, action)


def check_recording_right(principal: Principal, organisatie: str, objecttypes: Iterable[str]) -> None:
    """403 unless ``principal`` may record every one of ``objecttypes`` for ``organisatie``: a
    connector that publishes them needs what an import of them needs (its creator's rights are
    checked when it is created or changed, as the runs publish without a principal)."""
    for objecttype in sorted(objecttypes):
        action = RECORD_ACTIONS.get(objecttype, Action.RECORD_GEBRUIK)
        if not may(principal, action, organisatie):
            raise forbidden(
                principal,
                action,
                f"a connector that records {objecttype} objects for {organisatie!r} needs the right "
                f"{action.value}, which the role {principal.role.value} lacks there; ask a "
                "functioneel-beheerder",
            )


async def check_publish(
    principal: Principal,
    events: Sequence[CloudEvent],
    landscape: LandscapeReader,
    hub_source: str = "",
    owners: Callable[[], Awaitable[SourceIndex]] | None = None,
) -> None:
    """403 naming every event ``principal`` may not publish, and why. No caller publishes under
    ``hub_source`` (KOPPELHUB_SOURCE_URN) or a source below it: those are the hub's own (its
    alerts and derived events, its connectors and imports), and an event posing as one could
    pass for an alert, or take the source and id of a connector's next event (ids are derived
    from content), which the projector's dedupe would then drop as already seen. For the same
    reason a source another organisation owns (``owners`` reads them, only when the principal
    is bound by them: a systeem token's registered source, or one naming the organisation's OIN
    or KvK number, ``hub.services.source_owners``) is not another organisation's principal's to
    publish under, and an organisatie may not give another organisation's number."""
    errors: list[dict[str, object]] = []
    index = await owners() if owners is not None and _bound_by_sources(principal) else None
    for position, event in enumerate(events):
        why = _taken_source(principal, event.source, hub_source, index)
        if why:
            errors.append({"index": position, "field": "source", "message": why})
    if not _unbound(principal):
        keys = {_key(e) for e in events if parse_inbound_type(e.type) is not None}
        stored = await landscape.owners(keys) if keys else {}  # one lookup for the whole batch
        for position, event in enumerate(events):
            reason = _refusal(principal, event, stored) or _taken_number(event, index)
            if reason:
                errors.append({"index": position, "field": reason[0], "message": reason[1]})
    if errors:
        summary = "; ".join(f"event {e['index']}: {e['message']}" for e in errors)
        raise ProblemError(403, "Forbidden", summary, errors=errors)


def _bound_by_sources(principal: Principal) -> bool:
    """Whether other organisations' sources bind ``principal``: one bound to an organisation
    (a hub-wide principal publishes under any; nothing is read for it)."""
    return principal.organisation is not None and not _unbound(principal)


def _taken_source(
    principal: Principal, source: str, hub_source: str, index: SourceIndex | None
) -> str | None:
    """Why ``source`` is not the publisher's to publish under, or ``None``. A systeem is bound
    to its registered sources already (:func:`may_publish_source`); the numbers bind it too, so
    a registration made before an organisatie gave its number does not keep that number's
    sources."""
    if hub_source:
        canonical, hub = canonical_source(source), canonical_source(hub_source)
        if canonical == hub or canonical.startswith(hub + ":"):
            return f"source {source!r} is this hub's own (KOPPELHUB_SOURCE_URN); publish under yours"
    if index is None:
        return None
    mine, systeem = principal.organisation, principal.role is Role.SYSTEEM
    for owner in index.owners_of(source):
        if owner.organisatie != mine and (owner.numbered or not systeem):
            return f"source {source!r} {owner.why}; publish under a source of your own organisation"
    return None


def _taken_number(event: CloudEvent, index: SourceIndex | None) -> tuple[str, str] | None:
    """Why an organisatie's data may not give its ``oin`` or ``kvkNummer``: another organisatie
    has it (else one organisation could take another's sources by giving its number)."""
    if index is None or parse_inbound_type(event.type) != ("organisatie", "vastgelegd"):
        return None
    data = event.data if isinstance(event.data, dict) else {}
    for _, source, _, holder in index.taken_numbers(data.get("id"), data):
        return "data", f"organisatie {data.get('id')!r} gives {source!r}, which {holder.why}"
    return None


def _key(event: CloudEvent) -> tuple[str, str]:
    """The landscape object an inbound landscape event is about: (objecttype, id)."""
    parsed = parse_inbound_type(event.type)
    assert parsed is not None
    data = event.data if isinstance(event.data, dict) else {}
    return parsed[0], str(data.get("id", event.subject or ""))


def _refusal(
    principal: Principal, event: CloudEvent, stored: dict[tuple[str, str], str | None]
) -> tuple[str, str] | None:
    role = principal.role.value
    if not may_publish_source(principal, event.source):
        registered = list(principal.sources)
        return (
            "source",
            f"the systeem token may not publish for source {event.source!r}; registered: {registered}",
        )
    stated = (event.model_extra or {}).get(ORGANISATIE)
    if stated is not None and principal.organisation is not None and stated != principal.organisation:
        return (
            ORGANISATIE,
            f"a {role} of {principal.organisation!r} publishes for its own organisatie, not {stated!r}",
        )
    parsed = parse_inbound_type(event.type)
    if parsed is None:
        return None
    verb = parsed[1]
    objecttype, object_id = key = _key(event)
    data = event.data if isinstance(event.data, dict) else {}
    owner = owner_of(objecttype, data)  # an ingetrokken carries only the id: an organisatie's own
    if (verb == "vastgelegd" or owner is not None) and not may_record(principal, objecttype, owner):
        return "data", _not_own(principal, objecttype, object_id, owner)
    if key in stored and not may_record(principal, objecttype, stored[key]):
        return "data", _not_own(principal, objecttype, object_id, stored[key])
    if (
        verb == "ingetrokken"
        and key not in stored
        and not may_record(principal, objecttype, principal.organisation)
    ):
        return "data", f"the role {role} may not withdraw a {objecttype}"
    return None


def _not_own(principal: Principal, objecttype: str, object_id: str, owner: str | None) -> str:
    whose = f"of {owner!r}" if owner else "without an owner"
    return (
        f"{objecttype} {object_id!r} is {whose}; the role {principal.role.value}"
        f"{' of ' + repr(principal.organisation) if principal.organisation else ''} records only its own"
    )


def stamp_events(principal: Principal, events: list[CloudEvent]) -> list[CloudEvent]:
    """Every event in the log belongs to an organisation: the publisher's own (a
    functioneel-beheerder may state one; :func:`check_publish` refused any other).

    Sets the attribute in place: these are the request's own events, parsed just now and seen
    by nobody else, and a ``model_copy`` per event cost 8 µs (a tenth of a batch publish)."""
    org = principal.organisation
    if org is None:
        return events
    for event in events:
        event.stamp(ORGANISATIE, org)
    return events


#: Where :func:`owned_subscription` leaves the subscription it found for the route.
SUBSCRIPTION_STATE = "subscription"


async def owned_subscription(request: Request) -> None:
    """A router dependency for ``…/subscriptions/{subscription_id}…``: 404 for a subscription
    that does not exist or that the caller may not manage (its existence is not revealed)."""
    raw = request.path_params.get("subscription_id")
    if raw is None:
        return
    route = getattr(request.scope.get("route"), "path", "")
    pull = request.method == "GET" and route.endswith("/{subscription_id}/events")  # the pull feed
    action = Action.PULL_EVENTS if pull else Action.MANAGE_KOPPELINGEN
    principal: Principal | None = getattr(request.state, PRINCIPAL_STATE, None)
    if principal is not None and not may_at_all(principal, action):
        raise forbidden(principal, action)
    try:
        subscription_id = uuid.UUID(str(raw))
    except ValueError:
        return  # the route's own validation answers 422
    try:
        found = await request.app.state.ctx.subscriptions.get(subscription_id)
    except NotFound as e:
        raise ProblemError(404, "Not found", str(e)) from e
    allowed = principal is not None and (
        may_pull(principal, str(subscription_id), found.organisatie)
        if pull
        else may(principal, Action.MANAGE_KOPPELINGEN, found.organisatie)
    )
    if not allowed:
        raise ProblemError(404, "Not found", f"subscription {subscription_id} does not exist")
    setattr(request.state, SUBSCRIPTION_STATE, found)


def subscription_owner(principal: Principal, requested: str | None, *, given: bool) -> str | None:
    """The organisation a new subscription belongs to: the one asked for (``given``; null is
    hub-wide), else the caller's own; 403 when the caller may not manage subscriptions for it."""
    organisatie = requested if given else principal.organisation
    if not may(principal, Action.MANAGE_KOPPELINGEN, organisatie):
        whose = f"for {organisatie!r}" if organisatie else "hub-wide"
        raise forbidden(
            principal,
            Action.MANAGE_KOPPELINGEN,
            f"the role {principal.role.value} may not create a subscription {whose}",
        )
    return organisatie


def check_write_back_reach(
    principal: Principal, organisatie: str, config: dict[str, Any], before: dict[str, Any] | None
) -> None:
    """A connector applies only its own organisation's events unless someone who manages
    koppelingen of the others (a functioneel-beheerder) named them in ``writeBack.organisaties``;
    what such a one set stays when another caller changes something else, but neither which of
    those events it applies (``writeBack``) nor where (``url``) is changed by a caller without
    the right for them."""
    kept = write_back_organisaties(organisatie, before) if before is not None else [organisatie]
    if before is not None and (config.get("writeBack"), config.get("url")) != (
        before.get("writeBack"),
        before.get("url"),
    ):
        if others := [o for o in kept if not may(principal, Action.MANAGE_KOPPELINGEN, o)]:
            raise forbidden(
                principal,
                Action.MANAGE_KOPPELINGEN,
                f"this connector applies events of {others} too (config.writeBack.organisaties, set "
                f"by a functioneel-beheerder): the role {principal.role.value} may not change which "
                "of them it applies or where (config.writeBack, config.url); ask a functioneel-beheerder",
            )
    for other in write_back_organisaties(organisatie, config):
        if other not in kept and not may(principal, Action.MANAGE_KOPPELINGEN, other):
            raise forbidden(
                principal,
                Action.MANAGE_KOPPELINGEN,
                f"the role {principal.role.value} may not let a connector of {organisatie!r} apply "
                f"events of {other!r} (config.writeBack.organisaties); only a functioneel-beheerder "
                "may, leave it unset for the connector's own organisatie",
            )
