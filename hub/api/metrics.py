"""``GET /metrics``: the Prometheus text format, open unless KOPPELHUB_METRICS_TOKEN is set.

Before rendering, the gauges read at scrape time (projector lag per partition, open outbox)
are refreshed from the operator ports; if the log or the database cannot be read, the last
values stay and the counters are still served."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from hub.api.context import ApiContext, context
from hub.api.problems import ProblemError
from hub.errors import RetriableError

router = APIRouter(tags=["operations"])


async def _refresh(ctx: ApiContext) -> None:
    if ctx.log_inspector is None or ctx.operations is None:
        return
    try:
        log = await ctx.log_inspector.status()
        store = await ctx.operations.status(failing_limit=0)
    except RetriableError:
        return
    ctx.metrics.observed(
        {p.partition: p.lag for p in log.partitions}, store.outbox["pending"] + store.outbox["failed"]
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (bearer token when KOPPELHUB_METRICS_TOKEN is set)",
    response_class=Response,
    responses={200: {"description": "The Prometheus text exposition format", "content": {"text/plain": {}}}},
)
async def metrics(request: Request, ctx: Annotated[ApiContext, Depends(context)]) -> Response:
    token = ctx.settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ProblemError(401, "Unauthorized", "send Authorization: Bearer <KOPPELHUB_METRICS_TOKEN>")
    await _refresh(ctx)
    body, content_type = ctx.metrics.exposition()
    return Response(body, media_type=content_type)
