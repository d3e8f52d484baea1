"""Subscriptions (CloudEvents Subscriptions API shape) and their delivery log."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from hub.api.audit_trail import ChangeAudit
from hub.api.auth import SubscriptionManager
from hub.api.context import ApiContext, context
from hub.api.ownership import owned_subscription, subscription_owner
from hub.api.problems import ProblemError
from hub.api.sinks import check_reachable, send_test_event
from hub.errors import NotFound
from hub.paging import BadCursor
from hub.ports.subscriptions import SUBSCRIPTION_FILTERS, SubscriptionDetails, SubscriptionFilter
from hub.services.access import Action, listed_organisation
from hub.services.writeback_subscriptions import is_write_back
from schemas.credentials import HIDDEN, kept_headers, shown_headers
from subscriptions.egress import client_ssl_context
from subscriptions.filters import dump_filters
from subscriptions.lifecycle import ACTIVE, DISABLED, PAUSED
from subscriptions.options import (
    DeliveryOptions,
    NewSubscription,
    SubscriptionUpdate,
    kept_auth,
    moved_sink_secrets,
    public_auth,
)
from subscriptions.signing import generate_secret

router = APIRouter(
    prefix="/api/v1/subscriptions", tags=["subscriptions"], dependencies=[Depends(owned_subscription)]
)

Ctx = Annotated[ApiContext, Depends(context)]
Validate = Annotated[
    bool | None, Query(description="false: subscribe even when the sink cannot be reached now")
]


def subscription_json(s: SubscriptionDetails) -> dict[str, Any]:
    return {
        "id": str(s.id),
        "sink": s.sink,
        "protocol": s.protocol,
        "source": s.source,
        "types": s.types,
        "filters": s.filters,
        "protocolsettings": {"headers": shown_headers(s.headers, HIDDEN)},
        "config": s.config,
        "status": s.status,
        "statusReason": s.status_reason,
        "enabled": s.status == "active",
        "retrySchedule": s.retry_schedule,
        "ordering": s.ordering,
        "maxConcurrency": s.max_concurrency,
        "maxRate": s.max_rate,
        "contentMode": s.content_mode,
        "auth": public_auth(dict(s.auth)),
        "handshake": {"status": s.handshake, "allowedRate": s.allowed_rate},
        "previousSecretExpiresAt": s.previous_secret_expires_at.isoformat()
        if s.previous_secret_expires_at
        else None,
        "organisatie": s.organisatie,
        "createdAt": s.created_at.isoformat(),
        "updatedAt": s.updated_at.isoformat(),
        "consecutiveFailures": s.consecutive_failures,
        "lastError": s.last_error,
        "failingSince": s.failing_since.isoformat() if s.failing_since else None,
    }


def _next_url(request: Request, cursor: str | None) -> str | None:
    return str(request.url.include_query_params(cursor=cursor)) if cursor else None


def _auth_columns(options: DeliveryOptions) -> dict[str, Any]:
    """The stored form of sink auth (snake_case, secrets included); checks the certificate."""
    if options.auth is None:
        return {}
    stored = options.auth.model_dump(exclude_none=True)
    cert = stored.get("client_certificate") or {}
    if cert or stored.get("ca_certificate"):
        try:
            client_ssl_context(
                cert.get("certificate"), cert.get("private_key"), ca_certificate=stored.get("ca_certificate")
            )
        except ValueError as e:
            field = "auth.clientCertificate" if "client" in str(e) else "auth.caCertificate"
            raise ProblemError(
                400, "Invalid certificate", str(e), errors=[{"field": field, "message": str(e)}]
            ) from e
    return stored


@router.post("", status_code=201, summary="Create a subscription; the response shows its secret once")
async def create_subscription(
    body: NewSubscription,
    principal: SubscriptionManager,
    ctx: Ctx,
    audit: ChangeAudit,
    validate: Validate = None,
) -> JSONResponse:
    organisatie = subscription_owner(
        principal, body.organisatie, given="organisatie" in body.model_fields_set
    )
    auth = _auth_columns(body)
    checked = await check_reachable(
        ctx, body.sink, auth, validate=body.validate_sink_ if validate is None else validate
    )
    secret = generate_secret()
    record = await ctx.subscriptions.create(
        sink=str(body.sink),
        protocol=body.protocol,
        source=body.source,
        types=body.types,
        filters=dump_filters(body.filters),
        headers=body.headers,
        config=dict(body.config or {}),
        secret=secret,
        retry_schedule=body.retry_schedule,
        ordering=body.ordering,
        max_concurrency=body.max_concurrency,
        max_rate=body.max_rate,
        content_mode=body.content_mode,
        auth=auth,
        handshake=checked.status,
        allowed_rate=checked.allowed_rate,
        organisatie=organisatie,
        audit=audit.change(201),
    )
    location = {"Location": f"{router.prefix}/{record.id}"}  # also the audit trail's target
    return JSONResponse({**subscription_json(record), "secret": secret}, status_code=201, headers=location)


def _refuse_write_back(current: SubscriptionDetails) -> None:
    """A connector's write-back subscription is the hub's: its sink, selection, schedule and
    life cycle follow the connector, so changing or deleting it here is a 409 that says where."""
    if is_write_back(current):
        connector = current.config.get("connector") or current.sink.removeprefix("connector:")
        raise ProblemError(
            409,
            "Managed by its connector",
            f"subscription {current.id} is connector {connector}'s write-back; the hub keeps its sink, "
            f"selection, retry schedule and state in step with the connector: change "
            f"config.writeBack or enabled with PATCH /api/v1/connectors/{connector}, or DELETE the connector",
        )


_DIRECT = (
    "source",
    "types",
    "retry_schedule",
    "ordering",
    "max_concurrency",
    "max_rate",
    "content_mode",
)


@router.patch("/{subscription_id}", summary="Change a subscription; enabled=false pauses, true resumes")
async def update_subscription(
    subscription_id: uuid.UUID,
    body: SubscriptionUpdate,
    _: SubscriptionManager,
    ctx: Ctx,
    audit: ChangeAudit,
    validate: Validate = None,
) -> dict[str, Any]:
    given = body.given()
    changes: dict[str, Any] = {name: getattr(body, name) for name in _DIRECT if name in given}
    if "config" in given:
        changes["config"] = dict(body.config or {})
    if "filters" in given:
        changes["filters"] = dump_filters(body.filters or [])
    if "protocolsettings" in given:
        changes["headers"] = dict(body.protocolsettings.headers) if body.protocolsettings else {}
    if "auth" in given:
        changes["auth"] = _auth_columns(body)
    try:
        current = await ctx.subscriptions.get(subscription_id)
        _refuse_write_back(current)
        moved = moved_sink_secrets(
            stored=current,
            sink=str(body.sink or current.sink),
            sent_headers=changes.get("headers"),
            sent_auth=changes.get("auth"),
        )
        if moved:
            raise ProblemError(400, "Secrets stay with their host", moved)
        if "headers" in changes:
            changes["headers"] = kept_headers(changes["headers"], current.headers, HIDDEN)
        if "auth" in changes:
            changes["auth"] = kept_auth(changes["auth"], dict(current.auth))
        if "sink" in given or "auth" in given:
            sink = body.sink or current.sink
            auth = changes.get("auth", dict(current.auth))
            should_validate = body.validate_sink_ if validate is None else validate
            if "sink" in given:
                checked = await check_reachable(ctx, sink, auth, validate=should_validate)
                changes |= {"sink": sink, "handshake": checked.status, "allowed_rate": checked.allowed_rate}
            else:
                await check_reachable(ctx, sink, auth, validate=False)
        record = await ctx.subscriptions.update(
            subscription_id, changes, enabled=body.enabled, audit=audit.change(200)
        )
    except NotFound as e:
        raise ProblemError(404, "Not found", str(e)) from e
    return subscription_json(record)


@router.post(
    "/{subscription_id}/secret/rotate", summary="New signing secret; the old one signs during the grace"
)
async def rotate_secret(
    subscription_id: uuid.UUID, _: SubscriptionManager, ctx: Ctx, audit: ChangeAudit
) -> dict[str, Any]:
    secret = generate_secret()
    grace = ctx.settings.delivery.secret_grace_seconds
    try:
        expires = await ctx.subscriptions.rotate_secret(
            subscription_id, secret, grace, audit=audit.change(200)
        )
    except NotFound as e:
        raise ProblemError(404, "Not found", str(e)) from e
    return {"secret": secret, "previousSecretExpiresAt": expires.isoformat()}


@router.post("/{subscription_id}/test", summary="Send a signed test event now and report the outcome")
async def test_subscription(subscription_id: uuid.UUID, _: SubscriptionManager, ctx: Ctx) -> dict[str, Any]:
    try:
        event_id, outcome = await send_test_event(ctx, subscription_id)
    except NotFound as e:
        raise ProblemError(404, "Not found", str(e)) from e
    return {
        "eventId": event_id,
        "delivered": outcome.delivered,
        "statusCode": outcome.status_code,
        "error": outcome.error,
        "detail": outcome.detail,
        "durationMs": round(outcome.duration_ms, 1),
        "responseExcerpt": outcome.response_excerpt,
    }


_STATUSES = (ACTIVE, PAUSED, DISABLED)


def list_filter(request: Request, status: str | None, sink: str | None) -> SubscriptionFilter:
    """The filter a list request asks for; 400 for a filter not offered or a status that
    does not exist, as the landscape lists answer (a typo must not return everything)."""
    unknown = sorted(set(request.query_params) - {"limit", "cursor", *SUBSCRIPTION_FILTERS})
    if unknown:
        offered = ", ".join(SUBSCRIPTION_FILTERS)
        raise ProblemError(
            400,
            "Unknown filter",
            f"subscriptions cannot be filtered on {', '.join(map(repr, unknown))}; filters: {offered}",
        )
    if status is not None and status not in _STATUSES:
        raise ProblemError(
            400, "Unknown filter", f"status must be one of {', '.join(_STATUSES)} (got {status!r})"
        )
    return SubscriptionFilter(status=status, sink_prefix=sink)


@router.get("", summary="List subscriptions")
async def list_subscriptions(
    request: Request,
    principal: SubscriptionManager,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
    status: Annotated[str | None, Query(description=SUBSCRIPTION_FILTERS["status"])] = None,
    sink: Annotated[str | None, Query(description=SUBSCRIPTION_FILTERS["sink"])] = None,
    organisatie: Annotated[str | None, Query(description=SUBSCRIPTION_FILTERS["organisatie"])] = None,
) -> dict[str, Any]:
    where = list_filter(request, status, sink)
    owned_by = listed_organisation(principal, Action.MANAGE_KOPPELINGEN, organisatie)
    try:
        page = await ctx.subscriptions.list(limit=limit, cursor=cursor, where=where, owned_by=owned_by)
    except BadCursor as e:
        raise ProblemError(400, "Invalid cursor", str(e)) from e
    return {"items": [subscription_json(s) for s in page.items], "next": _next_url(request, page.next_cursor)}


@router.get("/{subscription_id}", summary="Read a subscription")
async def get_subscription(subscription_id: uuid.UUID, _: SubscriptionManager, ctx: Ctx) -> dict[str, Any]:
    try:
        return subscription_json(await ctx.subscriptions.get(subscription_id))
    except NotFound as e:
        raise ProblemError(404, "Not found", str(e)) from e


@router.delete("/{subscription_id}", status_code=204, summary="Delete a subscription and its queue")
async def delete_subscription(
    subscription_id: uuid.UUID, _: SubscriptionManager, ctx: Ctx, audit: ChangeAudit
) -> Response:
    try:
        _refuse_write_back(await ctx.subscriptions.get(subscription_id))
        await ctx.subscriptions.delete(subscription_id, audit=audit.change(204))
    except NotFound as e:
        raise ProblemError(404, "Not found", str(e)) from e
    return Response(status_code=204)
