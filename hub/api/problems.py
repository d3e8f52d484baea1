"""RFC 9457 problem details: every error the API returns has this shape."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.errors import NotFound, PermanentError, RetriableError

PROBLEM = "application/problem+json"


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


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
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
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, str(exc.detail))


async def on_hub_error(_: Request, exc: Exception) -> JSONResponse:
    """Errors from below the API: a store outage is a 503, refused data a 400 — never a 500."""
    if isinstance(exc, NotFound):
        return problem(404, "Not found", str(exc))
    if isinstance(exc, RetriableError):
        return problem(503, "Service unavailable", "a backing service is unavailable; retry later")
    if isinstance(exc, PermanentError):
        return problem(400, "Request refused", str(exc)[:500])
    return problem(500, "Internal error")


async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 becomes a 400 that names each bad field."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")),
            "message": str(err.get("msg", "invalid")),
        }
        for err in exc.errors()
    ]
    return problem(
        400, "Invalid request", "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors
    )
