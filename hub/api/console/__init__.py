"""The operator console at ``/console``: server-rendered HTML (Jinja2), no JavaScript at all.

Signed in with a token that holds the operator right (kept in an HttpOnly, SameSite=Strict
cookie scoped to ``/console``, so other sites cannot post its forms). Every page reads the
same operator ports as the API; actions are plain form posts answered with a redirect."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from hub.api.audit_trail import refused
from hub.api.auth import PRINCIPAL_STATE, NotPermitted, Principal, Unauthenticated, authenticate_header
from hub.api.context import ApiContext, context
from hub.errors import NotFound
from hub.ports.operators import Position, parse_position
from hub.services.access import Action, may_at_all
from hub.services.status import dead_letter_document, forget_log_status, hub_status, redriven_document
from hub.services.writeback_subscriptions import is_write_back

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
Ctx = Annotated[ApiContext, Depends(context)]
COOKIE = "koppelhub_console"


class SignIn(Exception):
    """No valid operator token in the cookie: go to the sign-in page (:func:`to_sign_in`)."""


async def _operator(ctx: ApiContext, token: str) -> Principal | None:
    """The operator ``token`` stands for, through the API's one credential check; None for any
    token that is not an operator's (unknown, expired, without a role of the hub's, without the
    organisation its role needs, or without the operator right)."""
    try:
        principal = await authenticate_header(ctx.auth, f"Bearer {token}")
    except (Unauthenticated, NotPermitted):
        return None
    return principal if may_at_all(principal, Action.OPERATE) else None


async def _principal(request: Request, ctx: Ctx) -> Principal:
    principal = await _operator(ctx, request.cookies.get(COOKIE, ""))
    if principal is None:
        raise SignIn
    request.scope.setdefault("state", {})[PRINCIPAL_STATE] = principal  # the audit trail's actor
    return principal


#: A console page's signed-in operator; without one the page answers with the sign-in page.
SignedIn = Annotated[Principal, Depends(_principal)]


async def to_sign_in(request: Request, exc: Exception) -> Response:
    """The app's handler of :class:`SignIn`: every console page shares one way to sign in. An
    action posted without signing in is in the audit trail as refused (a 401), not as done."""
    refused(request, 401)
    return RedirectResponse("/console/login", status_code=303)


def _page(request: Request, name: str, **values: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"page": name.removesuffix(".html"), **values})


def _back(path: str, **query: str) -> RedirectResponse:
    tail = "&".join(f"{k}={v}" for k, v in query.items())
    return RedirectResponse(f"/console{path}" + (f"?{tail}" if tail else ""), status_code=303)


@router.get("/login")
async def login_form(request: Request, error: str | None = None) -> HTMLResponse:
    return _page(request, "login.html", error=error)


@router.post("/login")
async def login(ctx: Ctx, token: Annotated[str, Form()]) -> Response:
    if await _operator(ctx, token.strip()) is None:
        return _back("/login", error="that token is not valid for the console")
    response = _back("")
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", path="/console")
    return response


@router.post("/logout")
async def logout() -> Response:
    response = _back("/login")
    response.delete_cookie(COOKIE, path="/console")
    return response


async def _status(ctx: ApiContext) -> dict[str, Any]:
    assert ctx.log_inspector is not None and ctx.operations is not None, "wired by bootstrap"
    return await hub_status(ctx.log_inspector, ctx.operations, ctx.members)


@router.get("")
async def overview(request: Request, ctx: Ctx, _: SignedIn) -> Response:
    assert ctx.operations is not None, "wired by bootstrap"
    alerts = await ctx.operations.recent_alerts(limit=10)
    return _page(request, "overview.html", status=await _status(ctx), alerts=alerts)


@router.get("/topics")
async def topics(request: Request, ctx: Ctx, _: SignedIn) -> Response:
    return _page(request, "topics.html", status=await _status(ctx))


@router.get("/dlq")
async def dlq(
    request: Request, ctx: Ctx, _: SignedIn, after: str | None = None, redriven: str | None = None
) -> Response:
    assert ctx.log_inspector is not None
    try:
        position = parse_position(after) if after else None
    except ValueError:
        position = None
    page = await ctx.log_inspector.dead_letters(after=position, limit=50)
    items = [dead_letter_document(d) for d in page.items]
    return _page(request, "dlq.html", items=items, next=page.next, redriven=redriven)


@router.post("/dlq/redrive")
async def redrive(request: Request, ctx: Ctx, _: SignedIn, position: Annotated[str, Form()]) -> Response:
    assert ctx.log_inspector is not None
    try:
        chosen: list[Position] | None = None if position == "all" else [parse_position(position)]
    except ValueError:
        refused(request, 400)
        return _back("/dlq", redriven="0")
    done = redriven_document(await ctx.log_inspector.redrive(chosen))
    forget_log_status(ctx.log_inspector)
    return _back("/dlq", redriven=str(len(done["redriven"])))


@router.get("/subscriptions")
async def subscriptions(request: Request, ctx: Ctx, _: SignedIn, cursor: str | None = None) -> Response:
    page = await ctx.subscriptions.list(limit=100, cursor=cursor)
    failing = {f["id"]: f for f in (await _status(ctx))["subscriptions"]["failing"]}
    return _page(request, "subscriptions.html", items=page.items, failing=failing, next=page.next_cursor)


@router.get("/subscriptions/{subscription_id}")
async def subscription(
    request: Request, ctx: Ctx, _: SignedIn, subscription_id: uuid.UUID, done: str | None = None
) -> Response:
    try:
        details = await ctx.subscriptions.get(subscription_id)
        page = await ctx.subscriptions.deliveries(subscription_id, status=None, limit=50, cursor=None)
    except NotFound:
        return _back("/subscriptions")
    return _page(request, "subscription.html", s=details, deliveries=page.items, done=done)


@router.post("/subscriptions/{subscription_id}/deliveries/{delivery_id}/retry")
async def retry(
    request: Request, ctx: Ctx, _: SignedIn, subscription_id: uuid.UUID, delivery_id: uuid.UUID
) -> Response:
    assert ctx.deliveries is not None
    try:
        await ctx.deliveries.retry(subscription_id, delivery_id)
    except NotFound:
        refused(request, 404)
        return _back(f"/subscriptions/{subscription_id}", done="not-found")
    return _back(f"/subscriptions/{subscription_id}", done="retry")


@router.post("/subscriptions/{subscription_id}/replay")
async def replay(
    request: Request, ctx: Ctx, _: SignedIn, subscription_id: uuid.UUID, since: Annotated[str, Form()]
) -> Response:
    assert ctx.deliveries is not None
    try:
        given = datetime.fromisoformat(since)
        start = given.replace(tzinfo=UTC) if given.tzinfo is None else given  # the form's is UTC
    except ValueError:
        refused(request, 400)
        return _back(f"/subscriptions/{subscription_id}", done="bad-time")
    count = await ctx.deliveries.replay(subscription_id, start, None)
    return _back(f"/subscriptions/{subscription_id}", done=f"replayed-{count}")


@router.post("/subscriptions/{subscription_id}/pause")
async def pause(request: Request, ctx: Ctx, _: SignedIn, subscription_id: uuid.UUID) -> Response:
    return await _switch(request, ctx, subscription_id, enabled=False)


@router.post("/subscriptions/{subscription_id}/resume")
async def resume(request: Request, ctx: Ctx, _: SignedIn, subscription_id: uuid.UUID) -> Response:
    return await _switch(request, ctx, subscription_id, enabled=True)


async def _switch(
    request: Request, ctx: ApiContext, subscription_id: uuid.UUID, *, enabled: bool
) -> Response:
    try:
        if is_write_back(await ctx.subscriptions.get(subscription_id)):  # as the API's 409
            refused(request, 409)
            return _back(f"/subscriptions/{subscription_id}", done="managed-by-its-connector")
        await ctx.subscriptions.update(subscription_id, {}, enabled=enabled)
    except NotFound:
        refused(request, 404)
        return _back("/subscriptions")
    return _back("/subscriptions")


@router.get("/connectors")
async def connectors(request: Request, ctx: Ctx, _: SignedIn, done: str | None = None) -> Response:
    records = await ctx.connectors.all() if ctx.connectors is not None else []
    recent = (await ctx.imports.history(limit=20, cursor=None)).items if ctx.imports is not None else []
    return _page(
        request, "connectors.html", status=await _status(ctx), connectors=records, imports=recent, done=done
    )


@router.get("/landschap")
async def landschap(request: Request, ctx: Ctx, _: SignedIn, organisatie: str | None = None) -> Response:
    found = await ctx.landscape.landschap(organisatie) if organisatie else None
    return _page(request, "landschap.html", organisatie=organisatie, landschap=found)


from hub.api.console import actions as actions  # noqa: E402  (registers its routes on this router)
