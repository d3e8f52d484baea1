"""The FastAPI application: routes, problem+json errors, health and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api import (
    audit,
    catalogue,
    connectors,
    console,
    deliveries,
    events,
    imports,
    landscape,
    metrics,
    operators,
    subscriptions,
    tokens,
)
from hub.api.audit_trail import AuditTrail
from hub.api.context import ApiContext
from hub.api.docs import install_docs
from hub.api.limits import BodyLimits, RequestGuard
from hub.api.problems import (
    ProblemError,
    on_client_gone,
    on_http_error,
    on_hub_error,
    on_problem,
    on_validation_error,
    problem,
)
from hub.errors import KoppelhubError

API_VERSION = "1.0.0"


class HubApp(FastAPI):
    """The application, with the hub's most frequent call taken before FastAPI's own layers.

    ``POST /api/v1/events`` goes straight to :attr:`publish_front`: the same middlewares as
    every other call (``API-Version``, the audit trail, the request guard) around the publish
    fast path, built from the same classes, in the same order, but without the five layers
    FastAPI and Starlette put around them (their telemetry check, server-error, exception
    telemetry and body-limit middlewares, the last two doing nothing here). Those cost about
    20 µs of a single-event publish's application CPU, an eighth of it
    (``benchmarks.publish_app``: 159 -> 139 µs, medians of six alternating runs). An exception
    that escapes the chain gets uvicorn's own 500, as from Starlette's server-error middleware
    (which answers the same and re-raises); every other request takes the full stack."""

    #: ``POST /api/v1/events``'s chain (None: through the full stack, as any other call).
    publish_front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.publish_front
        if (
            front is not None
            and scope["type"] == "http"
            and scope["path"] == events.PUBLISH_PATH
            and scope["method"] == "POST"
        ):
            scope["app"] = self  # as Starlette sets it: the routes' request.app
            if self.root_path:
                scope["root_path"] = self.root_path
            await front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class ApiVersionHeader:
    """Adds ``API-Version`` to every response (NL API Design Rules). Plain ASGI: the
    ``@app.middleware("http")`` form costs a task per request (measured ~5 % of hub CPU)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"api-version", API_VERSION.encode())]
            await send(message)

        await self.app(scope, receive, with_header)


#: Room for the multipart envelope and form fields around an import's file.
MULTIPART_OVERHEAD = 64 * 1024


def body_limits(ctx: ApiContext) -> BodyLimits:
    """The largest body of each call: publish and imports have their own settings, the JSON
    management calls share ``KOPPELHUB_HTTP_MAX_JSON_BYTES``."""
    s = ctx.settings
    return BodyLimits(
        default=s.http_max_json_bytes,
        by_path={
            events.PUBLISH_PATH: s.max_request_bytes,
            imports.router.prefix: s.connectors.max_upload_bytes + MULTIPART_OVERHEAD,
        },
        timeout_seconds=s.http_body_timeout_seconds,
        min_rate=s.http_body_min_rate,
    )


def create_app(ctx: ApiContext) -> HubApp:
    app = HubApp(
        title="Koppelhub",
        version=API_VERSION,
        description=(
            "Event-driven integration hub for the application landscape of Dutch municipalities: "
            "publish NL GOV CloudEvents, subscribe with signed webhooks (Standard Webhooks). "
            "Errors are RFC 9457 problems (`application/problem+json`) whose `type` is stable per "
            "kind of problem: see the `Problem` schema."
        ),
        docs_url=None,  # install_docs serves them without a CDN
        redoc_url=None,
        # FastAPI's own spans (a server span per request, three more per routed call) would
        # double a publish's span (hub.api.events makes it) and trace every health probe and
        # scrape: the hub's spans are its own (issue 15: publish, project batch, deliver
        # attempt, connector run).
        telemetry={"tracing": False},
    )
    install_docs(app)
    app.state.ctx = ctx
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(KoppelhubError, on_hub_error)
    app.add_exception_handler(ClientDisconnect, on_client_gone)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.include_router(events.router)
    app.include_router(subscriptions.router)
    app.include_router(landscape.router)
    app.include_router(connectors.router)
    app.include_router(imports.router)
    app.include_router(deliveries.router)
    app.include_router(tokens.router)
    app.include_router(audit.router)
    app.include_router(operators.router)
    app.include_router(metrics.router)
    app.include_router(catalogue.router)
    app.include_router(console.router)
    app.add_exception_handler(console.SignIn, console.to_sign_in)

    public_paths = landscape.PUBLIC_PATHS if ctx.settings.public_read else None
    # The middlewares, innermost first: the guard, then the audit trail outside it (its 401s and
    # 403s are recorded too), then API-Version outermost (the guard's answers carry it too). One
    # list builds both the full stack and the publish call's own chain (HubApp), so the two
    # cannot drift apart.
    layers: list[tuple[Any, dict[str, Any]]] = [
        (RequestGuard, {"authenticator": ctx.auth, "limits": body_limits(ctx), "public_paths": public_paths}),
    ]
    if ctx.audit is not None:
        layers.append((AuditTrail, {"audit": ctx.audit}))
    layers.append((ApiVersionHeader, {}))
    front: ASGIApp = events.PublishFastPath(ctx)
    for layer, options in layers:
        app.add_middleware(layer, **options)  # each added one wraps the ones before it
        front = layer(front, **options)
    app.publish_front = front

    @app.get("/healthz", tags=["operations"], summary="200 while the process lives")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="200 when broker, database and every role are up")
    async def readyz() -> JSONResponse:
        checks = await ctx.readiness()
        if all(checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        return problem(
            503, "Not ready", ", ".join(k for k, ok in checks.items() if not ok) + " not ready", checks=checks
        )

    return app
