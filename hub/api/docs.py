"""The API documentation: an OpenAPI document that says what the API really answers, and
Swagger UI / ReDoc served from an installed package, so ``/docs`` works without internet.

FastAPI's default document lists a 422 for every operation, which this API never sends (a
validation error is a 400 problem, :mod:`hub.api.problems`), declares no security, and its
UI loads from a CDN. :func:`install_docs` replaces all three:

- the assets come from the ``fastapi-offline`` wheel (Swagger UI 5, ReDoc), mounted under
  ``/docs/assets``; nothing is fetched from elsewhere;
- ``bearer`` is declared as the security scheme of everything under ``/api/`` (the
  Authorize button);
- every operation lists the error statuses the API sends (:func:`error_statuses`, one rule
  per status), each with the ``Problem`` schema whose description lists the problem types.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from hub.api.problems import PROBLEM, PROBLEM_KINDS, problem_type

ASSETS = "/docs/assets"
PROTECTED = "/api/"

#: What each error status means in this API, for the operations that can answer it.
STATUS_TEXT: dict[int, str] = {
    400: "Invalid request: `errors` names each field (and event, by index)",
    401: "No valid bearer token",
    403: "The token lacks the right, or belongs to another organisation",
    404: "Not found (or not visible to this token)",
    408: "The request body did not arrive in time",
    409: "Conflict with the resource's state",
    413: "The body passes the limit of this call",
    415: "Unsupported content mode",
    503: "A backing service (Kafka, PostgreSQL) is unavailable (`Retry-After` says when to try again), "
    "or this process does not serve the call",
}

#: Statuses only some operations answer, by (method, path).
EXTRA_STATUSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/api/v1/events"): (415,),
    ("post", "/api/v1/connectors/{connector_id}/run"): (409,),
    ("get", "/readyz"): (503,),
}


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer, by the rule that produces each."""
    statuses = set(EXTRA_STATUSES.get((method, path), ()))
    if not path.startswith(PROTECTED):
        return statuses
    statuses |= {401, 403, 503}  # the request guard and require(); any store may be down
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(400)  # parameters and bodies are validated
    if "{" in path:
        statuses.add(404)
    if operation.get("requestBody"):
        statuses |= {408, 413}  # the request guard bounds every body in size and time
    return statuses


def problem_schema() -> dict[str, Any]:
    kinds = "\n".join(
        f"- `{problem_type(title)}`: **{title}**: {meaning}" for title, meaning in PROBLEM_KINDS.items()
    )
    return {
        "type": "object",
        "description": "RFC 9457 problem details. `type` is stable per kind of problem:\n\n" + kinds,
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "format": "uri", "example": problem_type("Invalid request")},
            "title": {"type": "string", "example": "Invalid request"},
            "status": {"type": "integer", "example": 400},
            "detail": {"type": "string", "description": "What was wrong and what to do"},
            "errors": {
                "type": "array",
                "description": "One entry per bad field (and event, by batch index)",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    }


def _problem_response(status: int) -> dict[str, Any]:
    return {
        "description": STATUS_TEXT.get(status, "Error"),
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with security, real error responses and the Problem schema."""
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Problem"] = problem_schema()
    schemas["CloudEvent"] = cloudevent_schema()
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "The admin token (`.koppelhub/admin-token`) or another API token",
        }
    }
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in sorted(error_statuses(method, path, operation)):
                responses[str(status)] = _problem_response(status)
            if path.startswith(PROTECTED):
                operation["security"] = [{"bearer": []}]
    return doc


def cloudevent_schema() -> dict[str, Any]:
    """The envelope's JSON Schema (``schemas/json``), as an OpenAPI 3.1 component."""
    schema: dict[str, Any] = json.loads(
        files("schemas").joinpath("json/cloudevent.schema.json").read_text(encoding="utf-8")
    )
    schema.pop("$schema", None)
    return schema


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI), ``/redoc`` and ``/openapi.json``, all served by the hub itself.

    Create the app with ``docs_url=None, redoc_url=None``: FastAPI's own pages load from a CDN.
    """
    assets = files("fastapi_offline").joinpath("static")
    app.mount(ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    cached: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not cached:
            cached.update(build_openapi(app))
        return cached

    app.openapi = openapi  # type: ignore[method-assign]
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
