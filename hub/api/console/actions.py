"""Console pages and buttons beyond the first set: send a test event to a subscription, run a
connector now, an import's row errors, and the audit log.

Each goes through the same store or service as its API route (``POST
/api/v1/subscriptions/{id}/test``, ``POST /api/v1/connectors/{id}/run``, ``GET
/api/v1/imports/{id}``, ``GET /api/v1/audit``) and checks the same right of the signed-in
principal; the routes are registered on the console's one router (:mod:`hub.api.console`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from hub.api.audit_trail import refused
from hub.api.auth import Principal
from hub.api.console import Ctx, SignedIn, _back, _page, router
from hub.api.imports import ERRORS_SHOWN
from hub.api.problems import ProblemError
from hub.api.sinks import send_test_event
from hub.errors import NotFound
from hub.paging import BadCursor
from hub.ports.audit import AuditQuery
from hub.services.access import Action, may, may_at_all, visible_organisations


def _may(action: Action) -> object:
    """The signed-in operator, who must also hold ``action`` (a 403 problem otherwise)."""

    async def check(principal: SignedIn) -> Principal:
        if not may_at_all(principal, action):
            raise ProblemError(403, "Forbidden", f"this console page needs the right {action.value}")
        return principal

    return Depends(check)


@router.post("/test-event/{subscription_id}")
async def test_event(
    request: Request,
    ctx: Ctx,
    subscription_id: uuid.UUID,
    principal: Annotated[Principal, _may(Action.MANAGE_KOPPELINGEN)],
) -> Response:
    """Send the signed test event now (as ``POST /api/v1/subscriptions/{id}/test``) and show
    what the sink answered on the subscription's page."""
    try:
        details = await ctx.subscriptions.get(subscription_id)
    except NotFound:
        refused(request, 404)
        return _back("/subscriptions")
    if not may(principal, Action.MANAGE_KOPPELINGEN, details.organisatie):
        refused(request, 404)
        return _back("/subscriptions")
    _, outcome = await send_test_event(ctx, subscription_id)
    if outcome.delivered:
        done = f"test event delivered (HTTP {outcome.status_code})"
    else:
        answer = f"HTTP {outcome.status_code}" if outcome.status_code else outcome.error
        done = f"test event failed: {answer}"
    return _back(f"/subscriptions/{subscription_id}", done=done.replace(" ", "+"))


@router.post("/connectors/{connector_id}/run")
async def run_now(
    request: Request,
    ctx: Ctx,
    connector_id: uuid.UUID,
    principal: Annotated[Principal, _may(Action.MANAGE_KOPPELINGEN)],
) -> Response:
    """Mark the connector due now (as ``POST /api/v1/connectors/{id}/run``)."""
    if ctx.connectors is None:
        refused(request, 503)
        return _back("/connectors", done="connectors+are+not+served+by+this+process")
    try:
        record = await ctx.connectors.get(connector_id)
    except NotFound:
        refused(request, 404)
        return _back("/connectors", done="no+such+connector")
    if not may(principal, Action.MANAGE_KOPPELINGEN, record.organisatie):
        refused(request, 404)
        return _back("/connectors", done="no+such+connector")
    if not record.enabled:
        refused(request, 409)
        return _back("/connectors", done=f"connector+{connector_id}+is+disabled:+enable+it+first")
    await ctx.connectors.request_run(connector_id)
    if ctx.wake_connectors:
        ctx.wake_connectors()
    return _back("/connectors", done=f"connector+{connector_id}+is+due+now")


@router.get("/imports/{import_id}")
async def import_report(
    request: Request,
    ctx: Ctx,
    import_id: uuid.UUID,
    principal: Annotated[Principal, _may(Action.MANAGE_KOPPELINGEN)],
) -> Response:
    """An import's status, counts and row errors (the first :data:`ERRORS_SHOWN`)."""
    if ctx.imports is None:
        return _back("/connectors")
    try:
        record = await ctx.imports.get(import_id)
    except NotFound:
        return _back("/connectors")
    if not may(principal, Action.MANAGE_KOPPELINGEN, record.organisatie):
        return _back("/connectors")
    errors = await ctx.imports.errors(import_id, limit=ERRORS_SHOWN)
    total = len(errors) if len(errors) < ERRORS_SHOWN else await ctx.imports.error_count(import_id)
    return _page(request, "import.html", record=record, errors=errors, total=total, shown=ERRORS_SHOWN)


@router.get("/audit")
async def audit(
    request: Request,
    ctx: Ctx,
    principal: Annotated[Principal, _may(Action.READ_AUDIT)],
    cursor: str | None = None,
) -> Response:
    """The audit trail, newest first, 100 a page (as ``GET /api/v1/audit``)."""
    if ctx.audit is None:
        return _page(request, "audit.html", items=[], next=None, error="not served by this process")
    own = visible_organisations(principal, Action.READ_AUDIT)
    query = AuditQuery(organisatie=None if own is None else (principal.organisation or ""))
    try:
        page = await ctx.audit.list(query, limit=100, cursor=cursor)
    except BadCursor:
        return _back("/audit")
    return _page(request, "audit.html", items=page.items, next=page.next_cursor, error=None)
