"""``POST /api/v1/events``: CloudEvents in structured, batch or binary content mode."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from opentelemetry.trace import SpanKind
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from hub.api.auth import Publisher, authorise_publisher
from hub.api.context import ApiContext, context
from hub.api.events_docs import PUBLISH_OPENAPI, PUBLISHED
from hub.api.ownership import check_publish, stamp_events
from hub.api.problems import (
    OUTAGE_RETRY_AFTER_SECONDS,
    STORAGE_FULL,
    ProblemError,
    on_client_gone,
    on_hub_error,
    on_problem,
)
from hub.api.rate_limits import PublishRateLimiter
from hub.errors import BrokerUnavailable, KoppelhubError, RetriableError, StorageFull
from hub.services.access import Principal
from hub.settings import Settings
from hub.tracing import carried, carry_trace, context_of, traceparent_of, tracer, tracing_on
from schemas import (
    CloudEvent,
    EnvelopeError,
    EventTooLarge,
    Problem,
    parse_batch,
    parse_binary,
    parse_structured,
)
from schemas.hub_events import HUB_TYPE_PREFIX
from schemas.jsonbytes import dumps_compact
from schemas.landscape import (
    LandscapeDataError,
    ingetrokken_type,
    parse_derived_type,
    parse_inbound_type,
    sequence_warning,
    unknown_type_problem,
    validate_landscape_event,
    vastgelegd_type,
)
from schemas.signalen import signalen_command_problems

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1", tags=["events"])

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"

RETRY_SOON = {"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS)}


async def _body(request: Request, limit: int) -> bytes:
    """Read the body, refusing (413) as soon as it passes the limit.

    Straight from ``receive`` (as Starlette's ``Request.stream`` does, without its async
    generator): a single-event publish is one message, and the generator was 3 % of its CPU."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, "Request too large", f"the request is larger than {limit} bytes")
    chunks, size = [], 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if message["type"] != "http.request":
            continue
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, "Request too large", f"the request is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _parse(request: Request, media_type: str, body: bytes, settings: Settings) -> list[CloudEvent]:
    """The request's events, checked as envelopes and as landscape data (EnvelopeError,
    EventTooLarge or ProblemError otherwise). Pure CPU: large bodies run it in a thread."""
    events = _decode(request, media_type, body, settings)
    _check_landscape_data(events, batch=media_type == BATCH)
    return events


def _decode(request: Request, media_type: str, body: bytes, settings: Settings) -> list[CloudEvent]:
    max_event, max_extensions = settings.max_event_bytes, settings.max_extension_attributes
    if media_type == STRUCTURED:
        return [parse_structured(body, max_bytes=max_event, max_extensions=max_extensions)]
    if media_type == BATCH:
        return parse_batch(
            body, max_bytes=max_event, max_extensions=max_extensions, max_events=settings.max_batch_events
        )
    if any(name.lower().startswith("ce-") for name in request.headers):
        return [parse_binary(dict(request.headers), body, max_bytes=max_event, max_extensions=max_extensions)]
    raise ProblemError(
        415,
        "Unsupported content mode",
        f"send {STRUCTURED}, {BATCH}, or binary mode with ce-* headers",
    )


@router.post(
    "/events",
    status_code=202,
    summary="Publish CloudEvents",
    description=(
        "Structured (`application/cloudevents+json`), batch (`application/cloudevents-batch+json`) "
        "or binary (`ce-*` headers) content mode. 202 once Kafka acknowledged every event "
        "(acks=all). A batch is all-or-nothing: one invalid event rejects the batch (400, with each "
        "bad event's index and field; a problem in `data` names the path of the offending value, "
        "e.g. `data.a.b[3]`). 413 past the size limit. An accepted mistake (a landscape event's "
        "numeric `sequence` that is not zero-padded) is listed under `warnings`. A duplicate "
        "(`source`+`id` seen before) is answered like a new event: duplicates are recognised by the "
        "projector after the 202, and change nothing. 429 with `Retry-After` past the principal's "
        "publish rate limit."
    ),
    responses={202: PUBLISHED},
    openapi_extra=PUBLISH_OPENAPI,
)
async def publish(
    request: Request, principal: Publisher, ctx: Annotated[ApiContext, Depends(context)]
) -> JSONResponse:
    return await accept(request, principal, ctx)


#: The publish call's path.
PUBLISH_PATH = router.prefix + "/events"


class PublishFastPath:
    """``POST /api/v1/events`` past FastAPI's router, exception and dependency layers.

    The hub's most frequent call paid more CPU for those layers than for its own work (a quarter
    of a single-event publish). Plain ASGI, the end of the publish call's own chain
    (:class:`hub.api.app.HubApp`), inside the request guard, the audit trail and the
    ``API-Version`` header (it gets the guarded body and the principal the guard left): it runs
    the route's own check (:data:`~hub.api.auth.authorise_publisher`) and :func:`accept`, and
    answers their errors with the app's own problem handlers. The route above stays the
    documented (OpenAPI) and the fallback entry; both give the same answers."""

    def __init__(self, ctx: ApiContext):
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await accept(request, await authorise_publisher(request), self.ctx)
        except ProblemError as e:
            response = await on_problem(request, e)
        except KoppelhubError as e:
            response = await on_hub_error(request, e)
        except ClientDisconnect as e:
            response = await on_client_gone(request, e)
        await response(scope, receive, send)


async def accept(request: Request, principal: Principal, ctx: ApiContext) -> JSONResponse:
    """Everything ``POST /api/v1/events`` does once the caller may publish."""
    settings = ctx.settings
    limiter = _limiter(request, settings)
    await limiter.check_room(principal.name)
    body = await _body(request, settings.max_request_bytes)
    media_type = _media_type(request)
    batch = media_type == BATCH
    try:
        if len(body) > settings.http_parse_offload_bytes:  # a worker thread: the event loop keeps serving
            events = await asyncio.to_thread(_parse, request, media_type, body, settings)
        else:
            events = _parse(request, media_type, body, settings)
    except EventTooLarge as e:
        raise ProblemError(413, "Event too large", str(e), errors=_problems(e)) from e
    except EnvelopeError as e:
        raise ProblemError(400, "Invalid CloudEvent", _summary(e), errors=_problems(e)) from e
    owners = ctx.tokens.source_owners if ctx.tokens is not None else None
    await check_publish(principal, events, ctx.landscape, settings.source_urn, owners)
    events = stamp_events(principal, events)
    await limiter.admit(principal.name, len(events))
    parent = context_of(request.headers) or context_of(carried(events[0]))
    if parent is None and not tracing_on():  # no trace to carry on, no SDK: the span would be a no-op
        await _send(ctx, events)
    else:
        # Not made current: nothing under it makes spans, and attach/detach is a context copy
        # each. Its attribute only when recorded (a non-recording span drops it anyway).
        with tracer().start_span("publish", context=parent, kind=SpanKind.PRODUCER) as span:
            if span.is_recording():
                span.set_attribute("messaging.batch.message_count", len(events))
            # The events carry the trace on (distributed tracing), sampled or not: the projector
            # and the dispatcher follow this sampling decision (parent-based samplers), so a trace
            # is whole or absent, and an unsampled publish's deliveries are not sampled anew
            # (with a ratio r that sampled r + (1 - r) * r of the attempts, each in a trace of
            # its own).
            carry_trace(events, traceparent_of(span))
            await _send(ctx, events)
    ctx.metrics.published(_mode(media_type), len(events))
    answer: dict[str, object] = {"accepted": [e.id for e in events]}
    warnings = _warnings(events, batch=batch)
    if warnings:
        for kind, count in Counter(str(w["kind"]) for w in warnings).items():
            ctx.metrics.publish_warned(kind, count)
        log.warning("publish_warned", warnings=warnings)
        answer["warnings"] = warnings
    return CompactJSONResponse(answer, status_code=202)


async def _send(ctx: ApiContext, events: list[CloudEvent]) -> None:
    """Hand ``events`` to the event log; 503 when it could not take them."""
    try:
        await ctx.event_log.publish(events)
    except BrokerUnavailable as e:
        raise ProblemError(
            503, "Event log unavailable", "Kafka did not acknowledge; retry later", headers=RETRY_SOON
        ) from e
    except StorageFull as e:  # the write-ahead log's disk is full: nothing was accepted
        raise ProblemError(503, "Storage full", STORAGE_FULL, headers={"Retry-After": "30"}) from e
    except RetriableError as e:  # the write-ahead log could not commit: nothing was accepted
        detail = "the database is unavailable; retry later"
        raise ProblemError(503, "Event log unavailable", detail, headers=RETRY_SOON) from e


def _warnings(events: list[CloudEvent], *, batch: bool) -> list[dict[str, object]]:
    """Accepted but probably a mistake: a landscape event's unpadded numeric ``sequence``."""
    found: list[dict[str, object]] = []
    for index, event in enumerate(events):
        message = sequence_warning(event.sequence) if parse_inbound_type(event.type) else None
        if message:
            where: dict[str, object] = {"index": index} if batch else {}
            found.append({**where, "kind": "sequence-not-padded", "field": "sequence", "message": message})
    return found


def _limiter(request: Request, settings: Settings) -> PublishRateLimiter:
    """The app's publish rate limiter (KOPPELHUB_PUBLISH_RATE_LIMIT), made at first use."""
    state = request.app.state
    if not hasattr(state, "publish_limiter"):
        state.publish_limiter = PublishRateLimiter(settings.publish_rate_limit)
    limiter: PublishRateLimiter = state.publish_limiter
    return limiter


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _mode(media_type: str) -> str:
    """The publish mode, as the metrics label it."""
    return "batch" if media_type == BATCH else "structured" if media_type == STRUCTURED else "binary"


class CompactJSONResponse(JSONResponse):
    """A :class:`JSONResponse` with the same bytes, written by orjson where it agrees with the
    standard library (:func:`schemas.jsonbytes.dumps_compact`): a batch's answer lists every
    id, and ``json.dumps`` of it was 2 % of a publish's CPU."""

    def render(self, content: object) -> bytes:
        return dumps_compact(content)


def _check_landscape_data(events: list[CloudEvent], *, batch: bool) -> None:
    """Softwarecatalogus events must carry valid objects; other types pass through untouched."""
    problems: list[Problem] = []
    for index, event in enumerate(events):
        refused = _reserved_type_problem(event.type) or unknown_type_problem(event.type)
        if refused:
            problems.append(Problem(index if batch else None, "type", refused))
            continue
        try:
            validate_landscape_event(event)
        except LandscapeDataError as e:
            problems.extend(e.to_problems(index if batch else None))
        problems.extend(Problem(index if batch else None, f, m) for f, m in signalen_command_problems(event))
    if problems:
        error = EnvelopeError(problems)
        if all(p.field == "type" for p in problems):
            raise ProblemError(400, "Event type not accepted", _summary(error), errors=_problems(error))
        raise ProblemError(400, "Invalid landscape data", _summary(error), errors=_problems(error))


def _reserved_type_problem(event_type: str) -> str | None:
    """Subscribers trust derived landscape events and alerts to come from the hub itself."""
    derived = parse_derived_type(event_type)
    if derived:
        return (
            f"is emitted only by the hub itself; publish {vastgelegd_type(derived[0])!r} or "
            f"{ingetrokken_type(derived[0])!r} and the hub derives {event_type!r} when the state changes"
        )
    if event_type.startswith(HUB_TYPE_PREFIX):
        return f"types starting with {HUB_TYPE_PREFIX!r} are reserved for the hub's own events"
    return None


def _problems(error: EnvelopeError) -> list[dict[str, object]]:
    return [
        {"index": p.index, "field": p.field, "message": p.message}
        if p.index is not None
        else {"field": p.field, "message": p.message}
        for p in error.problems
    ]


def _summary(error: EnvelopeError) -> str:
    parts = []
    for p in error.problems:
        where = f"event {p.index}: " if p.index is not None else ""
        parts.append(f"{where}{p.field or 'event'}: {p.message}")
    return "; ".join(parts)
