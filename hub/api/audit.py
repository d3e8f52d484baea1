"""``GET /api/v1/audit``: the audit trail, newest first (read-only: nothing edits it)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from hub.api.auth import Principal, require
from hub.api.context import ApiContext, context
from hub.api.problems import ProblemError
from hub.paging import BadCursor
from hub.ports.audit import AuditEntry, AuditQuery
from hub.services.access import Action, listed_organisation

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
Ctx = Annotated[ApiContext, Depends(context)]
Auditor = Annotated[Principal, require(Action.READ_AUDIT)]


def entry_json(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "time": e.time.isoformat() if e.time else None,
        "actor": {
            "name": e.actor_name,
            "role": e.actor_role,
            "organisatie": e.actor_organisatie,
            "credential": e.actor_credential,
        },
        "action": e.action,
        "target": e.target,
        "outcome": e.outcome,
        "status": e.status,
        "requestId": e.request_id,
        "client": e.client,
        "changes": e.changes,
    }


@router.get("", summary="The audit trail, newest first: who did what to which object, and how it ended")
async def list_audit(
    request: Request,
    principal: Auditor,
    ctx: Ctx,
    since: Annotated[str | None, Query(description="ISO 8601 time, inclusive")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 time, exclusive")] = None,
    actor: Annotated[str | None, Query(description="actor name, token id or jwt:<subject>")] = None,
    action: Annotated[str | None, Query(description="e.g. 'DELETE /api/v1/tokens/{token_id}'")] = None,
    target: Annotated[
        str | None, Query(description="the object's path, e.g. /api/v1/connectors/<id>")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    if ctx.audit is None:
        raise ProblemError(503, "Service unavailable", "the audit trail is not served by this process")
    query = AuditQuery(
        since=_time("since", since),
        until=_time("until", until),
        actor=actor,
        action=action,
        target=target,
        organisatie=listed_organisation(principal, Action.READ_AUDIT),
    )
    try:
        page = await ctx.audit.list(query, limit=limit, cursor=cursor)
    except BadCursor as e:
        raise ProblemError(
            400, "Invalid cursor", str(e), errors=[{"field": "cursor", "message": str(e)}]
        ) from e
    next_url = str(request.url.include_query_params(cursor=page.next_cursor)) if page.next_cursor else None
    return {"items": [entry_json(e) for e in page.items], "next": next_url}


def _time(name: str, value: str | None) -> Any:
    if value is None:
        return None
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        message = "give an ISO 8601 time with a timezone, e.g. 2026-11-29T10:00:00Z"
        raise ProblemError(
            400, "Invalid request", f"{name}: {message}", errors=[{"field": name, "message": message}]
        )
    return parsed
