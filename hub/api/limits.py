"""The request guard: authentication and body limits applied before the application reads a byte.

FastAPI reads and validates a JSON or multipart body before it runs the route's dependencies,
so a 401 from a dependency comes after the whole body is in memory (or spooled to disk). This
plain ASGI middleware sits in front of the routes and, for every request:

- under ``/api/``: checks the bearer token from the headers (the same check as
  :func:`hub.api.auth.authenticate_header`) and answers 401 without reading the body; the
  principal is left in the request state, where the route's ``require`` takes it. With
  ``KOPPELHUB_PUBLIC_READ=true`` a ``GET`` of the public landscape paths without any
  ``Authorization`` header is a :data:`~hub.services.access.VISITOR` (bezoeker) instead;
- refuses a declared ``Content-Length`` above the limit of its route (413) unread;
- counts the body as it arrives and answers 413 the moment it passes the limit, so chunked
  bodies and uploads are bounded too, before anything is buffered or spooled;
- gives the body a deadline: ``body_timeout`` plus one second per ``min_rate`` bytes received
  (Apache's ``mod_reqtimeout`` rule), so a body trickling in at one byte a second gets a 408
  while a large upload on a fair line completes.

A refused request whose body was not read to the end ends its connection: the protocol
(hub/api/protocol.py) sees the answer complete before the body and closes after it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.auth import (
    PRINCIPAL_STATE,
    NotPermitted,
    TokenAuthenticator,
    Unauthenticated,
    authenticate_header,
)
from hub.api.problems import problem
from hub.services.access import VISITOR

#: Paths whose every call needs a bearer token; the rest (/healthz, /readyz, /docs, ...) is public.
PROTECTED_PREFIX = "/api/"


@dataclass(frozen=True)
class BodyLimits:
    """The largest body per route: ``by_path`` (exact path) or else ``default``."""

    default: int
    by_path: dict[str, int] = field(default_factory=dict)
    timeout_seconds: float = 30.0
    min_rate: int = 64 * 1024  # bytes per second

    def limit_for(self, path: str) -> int:
        return self.by_path.get(path, self.default)


class BodyRefused(Exception):
    """Raised from ``receive`` when a body passes its limit or its deadline."""

    def __init__(self, status: int, title: str, detail: str):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class _GuardedBody:
    """``receive`` with a size limit and a deadline that grows with the bytes received."""

    def __init__(self, receive: Receive, limit: int, limits: BodyLimits):
        self._receive = receive
        self._limit = limit
        self._min_rate = limits.min_rate
        self._timeout = limits.timeout_seconds
        self._deadline = asyncio.get_running_loop().time() + limits.timeout_seconds
        self.received = 0
        self.complete = False
        self.refusal: BodyRefused | None = None

    async def __call__(self) -> Message:
        if self.refusal is not None:
            return {"type": "http.disconnect"}
        if self.complete:  # after the body, receive only waits for the disconnect: no deadline
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise self._refuse(
                408,
                "Request timeout",
                f"the request body did not arrive in time ({self._timeout:g} s plus one second "
                f"per {self._min_rate} bytes); send it faster or in smaller requests",
            ) from None
        if message["type"] == "http.request":
            size = len(message.get("body", b""))
            self.received += size
            self._deadline += size / self._min_rate
            if self.received > self._limit:
                raise self._refuse(413, "Request too large", _too_large(self._limit))
            self.complete = not message.get("more_body", False)
        return message

    def _refuse(self, status: int, title: str, detail: str) -> BodyRefused:
        self.refusal = BodyRefused(status, title, detail)
        return self.refusal


class RequestGuard:
    """Authenticate under ``/api/`` and bound every request body (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: TokenAuthenticator,
        limits: BodyLimits,
        public_paths: re.Pattern[str] | None = None,
    ):
        """``public_paths``: what a bezoeker may ``GET`` without a token (None: nothing)."""
        self.app = app
        self.authenticator = authenticator
        self.limits = limits
        self.public_paths = public_paths

    def _visitor(self, scope: Scope, headers: dict[str, str]) -> bool:
        return (
            self.public_paths is not None
            and "authorization" not in headers
            and scope["method"] in ("GET", "HEAD")
            and self.public_paths.fullmatch(scope["path"]) is not None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = request_headers(scope)
        if scope["path"].startswith(PROTECTED_PREFIX) and self._visitor(scope, headers):
            scope.setdefault("state", {})[PRINCIPAL_STATE] = VISITOR
        elif scope["path"].startswith(PROTECTED_PREFIX):
            try:
                principal = await authenticate_header(self.authenticator, headers.get("authorization", ""))
            except Unauthenticated as e:
                await _answer(send, 401, "Unauthorized", str(e))
                return
            except NotPermitted as e:
                await _answer(send, 403, "Forbidden", str(e))
                return
            scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        limit = self.limits.limit_for(scope["path"])
        declared = headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            await _answer(send, 413, "Request too large", _too_large(limit))
            return
        body = _GuardedBody(receive, limit, self.limits)
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if body.refusal is not None:
                return  # the application's answer to a refused body is replaced by the refusal
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body, guarded_send)
        except BodyRefused:
            pass  # answered below
        except Exception:
            if body.refusal is None:
                raise
        refusal = body.refusal
        if refusal is not None and not started:
            await _answer(send, refusal.status, refusal.title, refusal.detail)


def _too_large(limit: int) -> str:
    return f"the request body is larger than this call accepts ({limit} bytes); send less per request"


#: Where :func:`request_headers` keeps a request's decoded headers in its scope.
HEADERS_SCOPE_KEY = "koppelhub.headers"


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the last of a repeated one), decoded once per
    request and kept in its scope: the audit trail and the guard both read them, and decoding
    them twice was about 3 µs of a single-event publish."""
    found: dict[str, str] | None = scope.get(HEADERS_SCOPE_KEY)
    if found is None:
        found = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        scope[HEADERS_SCOPE_KEY] = found
    return found


async def _answer(send: Send, status: int, title: str, detail: str) -> None:
    response = problem(status, title, detail)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
