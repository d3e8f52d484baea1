"""Operator calls: the hub's status, the dead-letter topic and its redrive."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.api.auth import Operator
from hub.api.context import ApiContext, context
from hub.api.problems import ProblemError
from hub.ports.operators import LogInspector, OperationsStore, Position, parse_position
from hub.services.status import dead_letter_document, forget_log_status, hub_status, redriven_document

router = APIRouter(prefix="/api/v1", tags=["operators"])

Ctx = Annotated[ApiContext, Depends(context)]


class DlqPosition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class RedriveRequest(BaseModel):
    """Which dead-lettered records to republish: ``offsets`` (each ``{"partition", "offset"}``
    or ``"partition:offset"``, as ``GET /api/v1/dlq`` lists them) or ``all``."""

    model_config = ConfigDict(extra="forbid")

    offsets: list[DlqPosition | str] | None = Field(default=None, max_length=10_000)
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> RedriveRequest:
        if self.all == (self.offsets is not None):
            raise ValueError('send either "offsets" (a list of positions) or "all": true')
        return self

    def positions(self) -> list[Position] | None:
        if self.all:
            return None
        out = []
        for o in self.offsets or []:
            out.append(parse_position(o) if isinstance(o, str) else Position(o.partition, o.offset))
        return out


def _ports(ctx: ApiContext) -> tuple[LogInspector, OperationsStore]:
    if ctx.log_inspector is None or ctx.operations is None:
        raise ProblemError(503, "Not available", "this process has no operator views wired")
    return ctx.log_inspector, ctx.operations


@router.get("/status", summary="Lag, outbox, failing subscriptions, connectors, imports and the DLQ")
async def status(_: Operator, ctx: Ctx) -> dict[str, Any]:
    log, store = _ports(ctx)
    return await hub_status(log, store, ctx.members)


@router.get("/dlq", summary="Dead-lettered records with their error, in (partition, offset) order")
async def dead_letters(
    _: Operator,
    ctx: Ctx,
    after: Annotated[
        str | None, Query(description="the `next` of the previous page: partition:offset")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    log, _store = _ports(ctx)
    try:
        position = parse_position(after) if after is not None else None
    except ValueError as e:
        raise ProblemError(400, "Invalid cursor", str(e)) from e
    page = await log.dead_letters(after=position, limit=limit)
    return {"items": [dead_letter_document(d) for d in page.items], "next": page.next}


@router.post("/dlq/redrive", status_code=202, summary="Republish dead-lettered records onto the events topic")
async def redrive(body: RedriveRequest, _: Operator, ctx: Ctx) -> JSONResponse:
    log, _store = _ports(ctx)
    try:
        positions = body.positions()
    except ValueError as e:
        raise ProblemError(400, "Invalid position", str(e)) from e
    done = await log.redrive(positions)
    forget_log_status(log)
    return JSONResponse(redriven_document(done), status_code=202)
