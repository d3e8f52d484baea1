"""RFC 9457 problem details: every error the API returns has this shape.

Each kind of problem has a stable ``type`` URI, ``urn:koppelhub:problem:<kind>``, where the
kind is derived from its title (titles are per kind, RFC 9457 §3.1.3): :data:`PROBLEM_KINDS`
lists them with what they mean and what to do, and the OpenAPI document publishes that list.
A test reads every title the code can answer and checks it is listed here.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.errors import NotFound, PermanentError, RetriableError, StorageFull

PROBLEM = "application/problem+json"
PROBLEM_BASE = "urn:koppelhub:problem:"

#: Every kind of problem the API answers, by title: what it means and what to do.
PROBLEM_KINDS: dict[str, str] = {
    "Invalid request": "a parameter or a field of the body is wrong; `errors` names each field",
    "Invalid CloudEvent": "an event breaks the CloudEvents / NL GOV envelope; `errors` names event and field",
    "Invalid landscape data": "a `nl.softwarecatalogus.*` event's `data` is not a valid object",
    "Event type not accepted": "the type is reserved for the hub (`nl.koppelhub.*`, derived landscape types) "
    "or does not exist in the `nl.softwarecatalogus.` namespace; the message names the types that do",
    "Invalid cursor": "a paging cursor this API did not hand out; start again without it",
    "Invalid position": "a dead-letter position is `partition:offset` (as `GET /api/v1/dlq` lists them)",
    "Unknown filter": "a list filter the list does not offer, or a value it does not know",
    "Invalid certificate": "a sink's client or CA certificate cannot be read",
    "Invalid connector config": "the connector's config does not fit its kind",
    "Location refused": "a connector's location is outside what the hub may read",
    "URL refused": "an API connector's URL resolves to a blocked network; allow it with "
    "KOPPELHUB_CONNECTORS_ALLOW_NETWORKS",
    "Sink refused": "the sink resolves to a blocked network; allow it with KOPPELHUB_DELIVERY_ALLOW_NETWORKS",
    "Sink unreachable": "the sink does not resolve now; `validate=false` subscribes anyway",
    "Sink handshake failed": "the sink refused the CloudEvents webhook handshake; `validate=false` skips it",
    "Address refused": "a URL in the sink's auth resolves to a blocked network",
    "Secrets stay with their host": "a change points a stored secret (a credential header, a client "
    "secret, a connector's token or password) at another host or a new CA certificate: send it again "
    "in the same change, or remove it",
    "Empty file": "the uploaded file is empty",
    "Request refused": "the store refused the request as it stands",
    "Unauthorized": "no valid bearer token: send `Authorization: Bearer <token>`",
    "Forbidden": "the token is valid but lacks the right, or the organisation differs",
    "Not found": "nothing with this id (or not visible to this token)",
    "Method not allowed": "the path exists, the method does not",
    "Request timeout": "the request body did not arrive in time",
    "Request incomplete": "the client closed the connection before its body arrived; nothing was accepted",
    "Connector disabled": "enable the connector before running it",
    "Connector only writes back": "a connector without a source (only `writeBack`) has nothing to run or "
    "test; its work is in its write-back subscription's delivery log",
    "Managed by its connector": "a connector's write-back subscription follows its connector: change "
    "`config.writeBack` or `enabled` with PATCH /api/v1/connectors/{id}",
    "Too many events": "the principal published more than KOPPELHUB_PUBLISH_RATE_LIMIT allows; wait for "
    "Retry-After",
    "Batch larger than the rate limit": "one batch holds more events than KOPPELHUB_PUBLISH_RATE_LIMIT "
    "allows in a whole window: split it",
    "Event too large": "one event passes KOPPELHUB_MAX_EVENT_BYTES",
    "File too large": "the upload passes the import size limit",
    "Request too large": "the body passes the limit of its route: split it",
    "Unsupported content mode": "send application/cloudevents+json, application/cloudevents-batch+json "
    "or binary mode (ce-* headers)",
    "Event log unavailable": "Kafka did not acknowledge; nothing was accepted, retry later",
    "Storage full": "the database's disk is full; nothing was accepted: free disk space, then retry "
    "(after Retry-After)",
    "Not available": "this process does not serve the call (e.g. operator views without a broker)",
    "Service unavailable": "a backing service is unavailable, or this process does not serve the call",
    "Not ready": "broker, database or a role of this process is not up yet",
    "Internal error": "a bug; the hub logged it",
}


def problem_type(title: str) -> str:
    """The stable type URI of the problem kind named ``title`` (``about:blank`` if unlisted)."""
    if title not in PROBLEM_KINDS:
        return "about:blank"
    return PROBLEM_BASE + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


class ProblemError(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra
        self.headers = headers or {}  # e.g. Retry-After on a 429


#: ``Retry-After`` on a 503 for an outage of the broker or database: the hub rides those out by
#: itself (README "Outages"), so a client may try again soon.
OUTAGE_RETRY_AFTER_SECONDS = 2


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": problem_type(title), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


async def on_problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    response = problem(exc.status, exc.title, exc.detail, **exc.extra)
    response.headers.update(exc.headers)
    return response


async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (an unknown path, a method the path lacks) as problems."""
    assert isinstance(exc, StarletteHTTPException)
    title = HTTPStatus(exc.status_code).phrase.capitalize()
    detail = str(exc.detail)
    return problem(exc.status_code, title, None if detail.lower() == title.lower() else detail)


#: What a caller reads when the database's disk is full (README "Guarantees": a full disk).
STORAGE_FULL = (
    "the hub's database disk is full, so nothing of this request was accepted; "
    "retry later (an operator must free disk space or grow the volume; the hub resumes by itself)"
)


async def on_client_gone(_: Request, exc: Exception) -> JSONResponse:
    """A client that hung up before its request body was read (Starlette's
    ``ClientDisconnect``): nothing of it was accepted, and nobody waits for the answer. Without
    this, the server logged it as an exception in the application, with a traceback."""
    return problem(400, "Request incomplete", "the client closed the connection before its request was read")


async def on_hub_error(_: Request, exc: Exception) -> JSONResponse:
    """Errors from below the API: a store outage is a 503, refused data a 400 — never a 500."""
    if isinstance(exc, NotFound):
        return problem(404, "Not found", str(exc))
    if isinstance(exc, StorageFull):
        response = problem(503, "Storage full", STORAGE_FULL)
        response.headers["Retry-After"] = "30"
        return response
    if isinstance(exc, RetriableError):
        response = problem(503, "Service unavailable", "a backing service is unavailable; retry later")
        response.headers["Retry-After"] = str(OUTAGE_RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, PermanentError):
        return problem(400, "Request refused", str(exc)[:500])
    return problem(500, "Internal error")


async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 becomes a 400 that names each bad field."""
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    return problem(
        400, "Invalid request", "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors
    )


#: Where pydantic puts the reason of a ``ValueError`` raised by a validator: its message
#: starts with the error's name ("Value error, …"), which is library wording, not ours.
_LIBRARY_PREFIXES = ("Value error, ", "Assertion failed, ")


def field_message(err: Any) -> str:
    """One validation error in the API's words (no pydantic wording)."""
    kind, msg = err.get("type"), str(err.get("msg", "invalid"))
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of this request"
    for prefix in _LIBRARY_PREFIXES:
        msg = msg.removeprefix(prefix)
    return msg


def field_errors(errors: Any) -> list[dict[str, str]]:
    """Validation errors as ``[{"field", "message"}]``, fields as dotted paths in the request."""
    where = ("body", "query", "path", "form")
    return [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p not in where),
            "message": field_message(err),
        }
        for err in errors
    ]
