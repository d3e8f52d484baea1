"""Subscriptions (CloudEvents Subscriptions API shape) and their delivery log."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from hub.api.auth import SubscriptionManager
from hub.api.context import ApiContext, context
from hub.api.problems import ProblemError
from hub.errors import NotFound
from hub.paging import BadCursor
from hub.ports import SubscriptionRecord
from subscriptions.filters import dump_filters
from subscriptions.model import SubscriptionCreate
from subscriptions.signing import generate_secret
from subscriptions.ssrf import SinkRefused, check_sink

router = APIRouter(prefix="/api/v1/subscriptions", tags=["subscriptions"])

Ctx = Annotated[ApiContext, Depends(context)]
DeliveryStatus = Literal["pending", "delivered", "failed", "dead"]


def subscription_json(s: SubscriptionRecord) -> dict[str, Any]:
    return {
        "id": str(s.id),
        "sink": s.sink,
        "protocol": s.protocol,
        "source": s.source,
        "types": s.types,
        "filters": s.filters,
        "protocolsettings": {"headers": s.headers},
        "config": s.config,
        "status": s.status,
        "statusReason": s.status_reason,
        "createdAt": s.created_at.isoformat(),
        "updatedAt": s.updated_at.isoformat(),
    }


def _next_url(request: Request, cursor: str | None) -> str | None:
    return str(request.url.include_query_params(cursor=cursor)) if cursor else None


@router.post("", status_code=201, summary="Create a subscription; the response shows its secret once")
async def create_subscription(body: SubscriptionCreate, _: SubscriptionManager, ctx: Ctx) -> JSONResponse:
    try:
        await check_sink(body.sink, ctx.network_policy)
    except SinkRefused as e:
        raise ProblemError(400, "Sink refused", str(e), errors=[{"field": "sink", "message": str(e)}]) from e
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
    )
    return JSONResponse({**subscription_json(record), "secret": secret}, status_code=201)


@router.get("", summary="List subscriptions")
async def list_subscriptions(
    request: Request,
    _: SubscriptionManager,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    try:
        page = await ctx.subscriptions.list(limit=limit, cursor=cursor)
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
async def delete_subscription(subscription_id: uuid.UUID, _: SubscriptionManager, ctx: Ctx) -> Response:
    try:
        await ctx.subscriptions.delete(subscription_id)
    except NotFound as e:
        raise ProblemError(404, "Not found", str(e)) from e
    return Response(status_code=204)


@router.get("/{subscription_id}/deliveries", summary="The delivery log of one subscription")
async def list_deliveries(
    request: Request,
    subscription_id: uuid.UUID,
    _: SubscriptionManager,
    ctx: Ctx,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    try:
        page = await ctx.subscriptions.deliveries(subscription_id, status=status, limit=limit, cursor=cursor)
    except NotFound as e:
        raise ProblemError(404, "Not found", str(e)) from e
    except BadCursor as e:
        raise ProblemError(400, "Invalid cursor", str(e)) from e
    items = [
        {
            "id": str(d["id"]),
            "eventId": d["event_id"],
            "status": d["status"],
            "attempts": d["attempts"],
            "nextAttemptAt": d["next_attempt_at"].isoformat()
            if d["status"] in ("pending", "failed")
            else None,
            "lastStatusCode": d["last_status_code"],
            "lastError": d["last_error"],
            "createdAt": d["created_at"].isoformat(),
            "deliveredAt": d["delivered_at"].isoformat() if d["delivered_at"] else None,
        }
        for d in page.items
    ]
    return {"items": items, "next": _next_url(request, page.next_cursor)}
