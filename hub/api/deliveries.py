"""A subscription's deliveries and the archive it matches: log, manual retry, replay, pull."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from hub.api.audit_trail import ChangeAudit
from hub.api.auth import EventPuller, SubscriptionManager
from hub.api.context import ApiContext, context
from hub.api.ownership import SUBSCRIPTION_STATE, owned_subscription
from hub.api.problems import ProblemError
from hub.errors import NotFound
from hub.paging import BadCursor, decode_cursor, encode_cursor
from hub.ports import DeliveryStore
from hub.services.access import pull_recipient
from schemas.landscape.privacy import visible_event

router = APIRouter(
    prefix="/api/v1/subscriptions", tags=["deliveries"], dependencies=[Depends(owned_subscription)]
)

Ctx = Annotated[ApiContext, Depends(context)]
DeliveryStatus = Literal["pending", "delivered", "failed", "dead"]


class ReplayRequest(BaseModel):
    """Redeliver every archived event that matches, archived in ``[since, until)``."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime
    until: AwareDatetime | None = None
    only_undelivered: bool = Field(
        False,
        alias="onlyUndelivered",
        description="leave out events of which a delivery was delivered or is still on its way",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ReplayRequest:
        if self.until is not None and self.until <= self.since:
            raise ValueError("until must be later than since")
        return self


class RecoverRequest(BaseModel):
    """Retry every failed and dead delivery created since ``since``."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime


def _store(ctx: ApiContext) -> DeliveryStore:
    assert ctx.deliveries is not None, "the composition root wires the delivery store"
    return ctx.deliveries


def _not_found(e: NotFound) -> ProblemError:
    return ProblemError(404, "Not found", str(e))


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
        raise _not_found(e) from e
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
    next_url = str(request.url.include_query_params(cursor=page.next_cursor)) if page.next_cursor else None
    return {"items": items, "next": next_url}


@router.get(
    "/{subscription_id}/deliveries/{delivery_id}/attempts",
    summary="Every attempt of one delivery: time, status or error class, duration, response excerpt",
)
async def list_attempts(
    subscription_id: uuid.UUID, delivery_id: uuid.UUID, _: SubscriptionManager, ctx: Ctx
) -> dict[str, Any]:
    try:
        rows = await _store(ctx).attempts(subscription_id, delivery_id)
    except NotFound as e:
        raise _not_found(e) from e
    items = [
        {
            "attempt": r["attempt"],
            "startedAt": r["started_at"].isoformat(),
            "durationMs": round(r["duration_ms"], 1),
            "statusCode": r["status_code"],
            "error": r["error"],
            "responseExcerpt": r["response_excerpt"],
        }
        for r in rows
    ]
    return {"items": items}


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    summary="Schedule one delivery (dead, failed or delivered) now, with a fresh retry schedule",
)
async def retry_delivery(
    subscription_id: uuid.UUID, delivery_id: uuid.UUID, _: SubscriptionManager, ctx: Ctx, audit: ChangeAudit
) -> JSONResponse:
    try:
        status = await _store(ctx).retry(subscription_id, delivery_id, audit=audit.change(202))
    except NotFound as e:
        raise _not_found(e) from e
    return JSONResponse({"id": str(delivery_id), "status": status}, status_code=202)


@router.post(
    "/{subscription_id}/replay",
    status_code=202,
    summary="Redeliver every archived event in a time window that matches the subscription",
)
async def replay(
    subscription_id: uuid.UUID, body: ReplayRequest, _: SubscriptionManager, ctx: Ctx, audit: ChangeAudit
) -> JSONResponse:
    try:
        count = await _store(ctx).replay(
            subscription_id,
            body.since,
            body.until,
            only_undelivered=body.only_undelivered,
            audit=audit.change(202),
        )
    except NotFound as e:
        raise _not_found(e) from e
    return JSONResponse(
        {
            "count": count,
            "since": body.since.isoformat(),
            "until": body.until.isoformat() if body.until else None,
        },
        status_code=202,
    )


@router.post(
    "/{subscription_id}/recover",
    status_code=202,
    summary="Retry every failed and dead delivery since a moment, each with a fresh schedule",
)
async def recover(
    subscription_id: uuid.UUID, body: RecoverRequest, _: SubscriptionManager, ctx: Ctx, audit: ChangeAudit
) -> JSONResponse:
    try:
        count = await _store(ctx).recover(subscription_id, body.since, audit=audit.change(202))
    except NotFound as e:
        raise _not_found(e) from e
    return JSONResponse({"count": count, "since": body.since.isoformat()}, status_code=202)


def _after(cursor: str | None) -> int:
    if not cursor:
        return 0
    kind, seq = decode_cursor(cursor)
    if kind != "e" or not isinstance(seq, int) or not 0 <= seq < 2**63:
        raise BadCursor("the cursor is not one this API handed out")
    return seq


@router.get(
    "/{subscription_id}/events",
    summary="Pull: the archived events that match, in archive order, with a cursor to continue",
)
async def pull_events(
    request: Request,
    subscription_id: uuid.UUID,
    puller: EventPuller,
    ctx: Ctx,
    after: Annotated[str | None, Query(description="the `next` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    try:
        page = await _store(ctx).pull(subscription_id, after=_after(after), limit=limit)
    except NotFound as e:
        raise _not_found(e) from e
    except BadCursor as e:
        raise ProblemError(
            400, "Invalid cursor", str(e), errors=[{"field": "after", "message": str(e)}]
        ) from e
    # `next` is always given: at the end it is where to poll from later. `hub` names this hub
    # (its source URN), so a federation connector following it knows where events came from.
    owner = pull_recipient(puller, getattr(request.state, SUBSCRIPTION_STATE).organisatie)
    items = [visible_event(e, owner) for e in page.events]  # private fields stay with their owner
    return {
        "items": items,
        "next": encode_cursor("e", page.last_seq),
        "more": page.more,
        "hub": ctx.settings.source_urn,
    }
