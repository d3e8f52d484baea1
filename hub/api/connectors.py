"""Connector instances: create, read, change, delete, run now. Each belongs to an organisation.

Config is validated by the kind's own model; secret fields (``SecretStr``) are write-only:
stored, shown as ``"********"``, and kept when a PATCH leaves them out. A connector that only
writes back (``Connector.polls`` false) is never claimed and has nothing to run or test.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors import kinds as _kinds  # noqa: F401 - registers every connector kind
from connectors.base import ConnectorError
from connectors.registry import (
    KINDS,
    create,
    merge_config,
    moved_config_secrets,
    public_config,
    stored_config,
)
from hub.api.audit_trail import ChangeAudit
from hub.api.auth import ConnectorManager, Principal, forbidden
from hub.api.connector_locations import check_folder_owner, check_location, check_url
from hub.api.context import ApiContext, context
from hub.api.ownership import check_recording_right, check_write_back_reach
from hub.api.problems import ProblemError, field_message
from hub.errors import NotFound
from hub.paging import BadCursor, decode_cursor, encode_cursor
from hub.ports import ConnectorRecord, ConnectorStore, RunRecord
from hub.services.access import Action, listed_organisation, may
from hub.services.writeback_subscriptions import (
    remove_write_back,
    sync_write_back,
    write_back_selection,
    write_back_subscription_id,
)

router = APIRouter(prefix="/api/v1/connectors", tags=["connectors"])
Ctx = Annotated[ApiContext, Depends(context)]
_ID = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"


class ConnectorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="A registered connector kind: csv, excel, ameff.")
    organisatie: str = Field(min_length=1, pattern=_ID, description="id of the organisatie that owns it")
    config: dict[str, Any] = Field(description="The kind's configuration.")
    scheduleSeconds: int = Field(
        3600,
        ge=5,
        le=31 * 86400,
        description="Seconds between runs: at least 60 for file kinds, 5 for API kinds.",
    )
    enabled: bool = True


class ConnectorPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = None
    scheduleSeconds: int | None = Field(None, ge=5, le=31 * 86400)
    enabled: bool | None = None


def connector_json(c: ConnectorRecord) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "kind": c.kind,
        "organisatie": c.organisatie,
        "config": public_config(c.kind, c.config),
        "scheduleSeconds": c.schedule_seconds,
        "enabled": c.enabled,
        # False: only writes back (its write-back subscription delivers); never run on the schedule.
        "polls": c.polls,
        "status": {
            "lastRunAt": c.last_run_at.isoformat() if c.last_run_at else None,
            "lastSuccessAt": c.last_success_at.isoformat() if c.last_success_at else None,
            "lastError": c.last_error,
            "consecutiveFailures": c.failures,
            "nextRunAt": c.next_run_at.isoformat() if c.enabled and c.polls else None,
            "eventsPublished": c.events_published,
            "lastRun": c.last_counts,
            "checkpoint": c.checkpoint,
        },
        "createdAt": c.created_at.isoformat(),
        "updatedAt": c.updated_at.isoformat(),
        # The internal subscription that delivers its write-back (its delivery log, retry, replay).
        "writeBackSubscription": (
            str(write_back_subscription_id(c.id)) if c.config.get("writeBack") is not None else None
        ),
    }


def _check_schedule(kind: str, seconds: int) -> None:
    """The kind's own minimum (file kinds 60 s, API kinds 5 s); the model checks the bounds."""
    least = KINDS[kind].min_schedule_seconds if kind in KINDS else 60
    if seconds < least:
        message = f"must be at least {least} for connector kind {kind!r}"
        raise ProblemError(
            400,
            "Invalid request",
            f"scheduleSeconds {message}",
            errors=[{"field": "scheduleSeconds", "message": message}],
        )


def _check_polls(record: ConnectorRecord, what: str) -> None:
    """A connector that only writes back has no source to run or test (409, saying where its
    work shows instead)."""
    if record.polls:
        return
    raise ProblemError(
        409,
        "Connector only writes back",
        f"connector {record.id} has no source to {what} (its config has no url and mapping): its "
        f"write-back deliveries are in GET /api/v1/subscriptions/{write_back_subscription_id(record.id)}"
        "/deliveries; add url and mapping to the config to read the API as well",
    )


def _store(ctx: ApiContext) -> ConnectorStore:
    if ctx.connectors is None:
        raise ProblemError(503, "Service unavailable", "connectors are not served by this process")
    return ctx.connectors


def _check_owner(principal: Principal, organisatie: str) -> None:
    if not may(principal, Action.MANAGE_KOPPELINGEN, organisatie):
        raise forbidden(
            principal,
            Action.MANAGE_KOPPELINGEN,
            f"the role {principal.role.value} manages connectors of "
            f"its own organisatie only, not of {organisatie!r}",
        )


def _check_hub_wide(principal: Principal, kind: str) -> None:
    """A hub-wide kind (``koppelhub``) republishes events of every organisation under their own
    sources: whoever points one at a hub could speak for anyone, so only the right for all
    organisations (functioneel-beheerder) may create or change one."""
    cls = KINDS.get(kind)
    if cls is not None and cls.hub_wide and not may(principal, Action.MANAGE_KOPPELINGEN, None):
        raise forbidden(
            principal,
            Action.MANAGE_KOPPELINGEN,
            f"a {kind} connector publishes events of every organisation: only a role that manages "
            f"connectors for all organisations (functioneel-beheerder) may create or change one, "
            f"not {principal.role.value}",
        )


async def _validated(
    kind: str, organisatie: str, config: dict[str, Any], ctx: ApiContext, principal: Principal
) -> tuple[dict[str, Any], bool]:
    """The config as stored, and whether it polls (reads a source on the schedule); 403 when
    ``principal`` may not record what it publishes."""
    cls = KINDS.get(kind)
    if cls is None:
        raise ProblemError(
            400,
            "Invalid request",
            f"unknown connector kind {kind!r}; kinds: {sorted(KINDS)}",
            errors=[{"field": "kind", "message": f"must be one of {sorted(KINDS)}"}],
        )
    try:
        model = cls.config_model.model_validate(config)
    except ValidationError as e:
        errors = [
            {"field": ".".join(("config", *map(str, err["loc"]))), "message": field_message(err)}
            for err in e.errors(include_url=False)
        ]
        raise ProblemError(
            400,
            "Invalid connector config",
            "; ".join(f"{x['field']}: {x['message']}" for x in errors),
            errors=errors,
        ) from e
    check_recording_right(principal, organisatie, cls.records(model))
    location = getattr(model, "location", None)
    if isinstance(location, str):
        await check_location(location, ctx)
        await check_folder_owner(location, organisatie, ctx)
    url = getattr(model, "url", None)  # API kinds: checked again at every connection
    if isinstance(url, str):
        await check_url(url, ctx)
    target = getattr(getattr(model, "writeBack", None), "origin", None)  # the generic rest sink's host
    if isinstance(target, str):
        await check_url(target, ctx, "config.writeBack.url")
    stored = stored_config(model)
    try:
        write_back_selection(kind, organisatie, stored)
    except ValueError as e:
        field, _, message = str(e).partition(": ")
        raise ProblemError(
            400, "Invalid connector config", str(e), errors=[{"field": field, "message": message}]
        ) from e
    return stored, cls.polls(model)


@router.post("", status_code=201, summary="Create a connector")
async def create_connector(
    body: ConnectorCreate, principal: ConnectorManager, ctx: Ctx, audit: ChangeAudit
) -> JSONResponse:
    _check_owner(principal, body.organisatie)
    _check_hub_wide(principal, body.kind)
    config, polls = await _validated(body.kind, body.organisatie, body.config, ctx, principal)
    check_write_back_reach(principal, body.organisatie, config, None)
    _check_schedule(body.kind, body.scheduleSeconds)
    record = await _store(ctx).create(
        kind=body.kind,
        organisatie=body.organisatie,
        config=config,
        schedule_seconds=body.scheduleSeconds,
        enabled=body.enabled,
        polls=polls,
        audit=audit.change(201),
    )
    await sync_write_back(ctx.subscriptions, record)
    if ctx.wake_connectors:
        ctx.wake_connectors()
    return JSONResponse(
        connector_json(record), status_code=201, headers={"Location": f"{router.prefix}/{record.id}"}
    )


@router.get("", summary="List connectors")
async def list_connectors(
    principal: ConnectorManager, ctx: Ctx, organisatie: Annotated[str | None, Query()] = None
) -> dict[str, Any]:
    org = listed_organisation(principal, Action.MANAGE_KOPPELINGEN, organisatie)
    return {"items": [connector_json(c) for c in await _store(ctx).all(organisatie=org)], "next": None}


async def _get(connector_id: uuid.UUID, principal: Principal, ctx: ApiContext) -> ConnectorRecord:
    try:
        record = await _store(ctx).get(connector_id)
    except NotFound as e:
        raise ProblemError(404, "Not found", str(e)) from e
    if not may(principal, Action.MANAGE_KOPPELINGEN, record.organisatie):  # its existence is not revealed
        raise ProblemError(404, "Not found", f"connector {connector_id} does not exist")
    return record


@router.get("/{connector_id}", summary="Read a connector and its status")
async def get_connector(connector_id: uuid.UUID, principal: ConnectorManager, ctx: Ctx) -> dict[str, Any]:
    return connector_json(await _get(connector_id, principal, ctx))


@router.patch("/{connector_id}", summary="Change config, schedule or enabled")
async def patch_connector(
    connector_id: uuid.UUID, body: ConnectorPatch, principal: ConnectorManager, ctx: Ctx, audit: ChangeAudit
) -> dict[str, Any]:
    record = await _get(connector_id, principal, ctx)
    _check_hub_wide(principal, record.kind)
    values: dict[str, Any] = {}
    if body.config is not None:
        merged = merge_config(record.kind, record.config, body.config)
        config, polls = await _validated(record.kind, record.organisatie, merged, ctx, principal)
        if moved := moved_config_secrets(record.kind, record.config, body.config, config):
            raise ProblemError(400, "Secrets stay with their host", moved)
        values["config"], values["polls"] = config, polls
        check_write_back_reach(principal, record.organisatie, values["config"], record.config)
    if body.scheduleSeconds is not None:
        _check_schedule(record.kind, body.scheduleSeconds)
        values["schedule_seconds"] = body.scheduleSeconds
    if body.enabled is not None:
        values["enabled"] = body.enabled
    if not values:
        return connector_json(record)
    updated = await _store(ctx).update(connector_id, audit=audit.change(200), **values)
    await sync_write_back(ctx.subscriptions, updated)
    return connector_json(updated)


@router.delete("/{connector_id}", status_code=204, summary="Delete a connector")
async def delete_connector(
    connector_id: uuid.UUID, principal: ConnectorManager, ctx: Ctx, audit: ChangeAudit
) -> Response:
    await _get(connector_id, principal, ctx)
    await _store(ctx).delete(connector_id, audit=audit.change(204))
    await remove_write_back(ctx.subscriptions, connector_id)
    return Response(status_code=204)


@router.post("/{connector_id}/run", status_code=202, summary="Run a connector now")
async def run_connector(
    connector_id: uuid.UUID, principal: ConnectorManager, ctx: Ctx, audit: ChangeAudit
) -> JSONResponse:
    record = await _get(connector_id, principal, ctx)
    _check_polls(record, "run")
    if not record.enabled:
        raise ProblemError(409, "Connector disabled", "enable the connector before running it")
    await _store(ctx).request_run(connector_id, audit=audit.change(202))
    if ctx.wake_connectors:
        ctx.wake_connectors()
    return JSONResponse({"id": str(connector_id), "status": "due"}, status_code=202)


def _run_json(r: RunRecord) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "startedAt": r.started_at.isoformat(),
        "finishedAt": r.finished_at.isoformat() if r.finished_at else None,
        "status": r.status,
        "counts": r.counts,
        "errors": r.errors,
        "checkpoint": {"before": r.checkpoint_before, "after": r.checkpoint_after},
        "lastExchange": r.diagnostics,
    }


@router.get("/{connector_id}/runs", summary="The connector's runs, newest first")
async def list_runs(
    connector_id: uuid.UUID,
    principal: ConnectorManager,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[str | None, Query(description="The `next` cursor of the previous page.")] = None,
) -> dict[str, Any]:
    await _get(connector_id, principal, ctx)
    if ctx.runs is None:
        raise ProblemError(503, "Service unavailable", "connector runs are not served by this process")
    before = None
    if after:
        try:  # opaque and URL-safe (a timestamp's "+" would arrive as a space)
            at, rid = decode_cursor(after)
            before = (datetime.fromisoformat(str(at)), uuid.UUID(str(rid)))
        except (BadCursor, ValueError) as e:
            raise ProblemError(400, "Invalid cursor", "after must be a next cursor from this list") from e
    runs = await ctx.runs.runs(connector_id, limit=limit + 1, before=before)
    page = runs[:limit]
    nxt = encode_cursor(page[-1].started_at.isoformat(), str(page[-1].id)) if len(runs) > limit else None
    return {"items": [_run_json(r) for r in page], "next": nxt}


@router.post("/{connector_id}/test", summary="Check reachability and credentials, publishing nothing")
async def test_connector(connector_id: uuid.UUID, principal: ConnectorManager, ctx: Ctx) -> JSONResponse:
    record = await _get(connector_id, principal, ctx)
    _check_polls(record, "test")
    if ctx.connector_context is None:
        raise ProblemError(503, "Service unavailable", "connector tests are not served by this process")
    context_ = ctx.connector_context(record.organisatie, str(record.id))
    connector = create(record.kind, record.config, context_)
    try:
        found = await connector.probe()
    except ConnectorError as e:
        return JSONResponse(
            {"ok": False, "problem": str(e), "lastExchange": connector.diagnostics}, status_code=200
        )
    return JSONResponse({"ok": True, "found": found})
