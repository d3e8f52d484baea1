"""``/api/v1/tokens``: API tokens for a role and an organisation (issue 12).

The secret is in the 201 answer only; the hub keeps its SHA-256. Another organisation's token
is 404 (its existence is not revealed); a revoked token is refused by every API process
within :data:`hub.services.tokens.CACHE_SECONDS`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from hub.api.audit_trail import ChangeAudit
from hub.api.auth import Principal, require
from hub.api.context import ApiContext, context
from hub.api.problems import ProblemError
from hub.errors import NotFound
from hub.ports.tokens import TokenRecord
from hub.services.access import Action
from hub.services.tokens import TokenRefused, TokenService

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])
Ctx = Annotated[ApiContext, Depends(context)]
TokenManager = Annotated[Principal, require(Action.MANAGE_TOKENS)]


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: str = Field(description="functioneel-beheerder, gebruik-beheerder, …, systeem, federatie")
    organisatie: str | None = Field(
        None, min_length=1, description="required except for functioneel-beheerder"
    )
    sources: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        max_length=100,
        description="systeem: source values or prefixes it publishes; federatie: the ids of the "
        "subscriptions whose pull feed it reads",
    )
    expiresAt: AwareDatetime | None = None


def token_json(record: TokenRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "name": record.name,
        "role": record.role,
        "organisatie": record.organisatie,
        "sources": record.sources,
        "expiresAt": record.expires_at.isoformat() if record.expires_at else None,
        "createdAt": record.created_at.isoformat() if record.created_at else None,
    }


def _service(ctx: ApiContext) -> TokenService:
    if ctx.tokens is None:
        raise ProblemError(503, "Service unavailable", "tokens are not served by this process")
    return ctx.tokens


@router.post("", status_code=201, summary="Create an API token (its secret is shown only here)")
async def create_token(body: NewToken, principal: TokenManager, ctx: Ctx, audit: ChangeAudit) -> JSONResponse:
    try:
        record, secret = await _service(ctx).create(
            principal,
            name=body.name,
            role=body.role,
            organisatie=body.organisatie,
            sources=body.sources,
            expires_at=body.expiresAt,
            audit=audit.change(201),
        )
    except TokenRefused as e:
        title = "Forbidden" if e.status == 403 else "Invalid request"
        raise ProblemError(e.status, title, str(e), errors=[{"field": e.field, "message": str(e)}]) from e
    return JSONResponse(
        token_json(record) | {"token": secret},
        status_code=201,
        headers={"Location": f"{router.prefix}/{record.id}", "Cache-Control": "no-store"},
    )


@router.get("", summary="The tokens the caller may manage (never their secrets)")
async def list_tokens(principal: TokenManager, ctx: Ctx) -> dict[str, Any]:
    return {"items": [token_json(t) for t in await _service(ctx).list(principal)], "next": None}


@router.delete("/{token_id}", status_code=204, summary="Revoke a token (refused everywhere within seconds)")
async def revoke_token(
    token_id: uuid.UUID, principal: TokenManager, ctx: Ctx, audit: ChangeAudit
) -> Response:
    try:
        await _service(ctx).revoke(principal, token_id, audit=audit.change(204))
    except NotFound as e:
        raise ProblemError(404, "Not found", str(e)) from e
    return Response(status_code=204)
