"""The audit trail's recorder: every management call and every refused attempt.

A plain ASGI middleware outside the request guard, so it sees the guard's 401s and 403s too:

- recorded: every ``POST``/``PUT``/``PATCH``/``DELETE`` under ``/api/`` but publishing events
  (tokens, subscriptions, connectors, imports, replay, redelivery, secret rotation, and the
  operators' calls as they land), every action of the console (a form ``POST`` under
  ``/console/``: retry, replay, pause, resume, redrive, run now, test event; signing in and
  out are not changes), and every 401 or 403 of any call;
- each entry holds the actor (name, role, organisatie, token id or JWT subject), the action
  (method and route), the target (the object's path, also for its sub-resources such as
  ``…/{id}/replay``; for a create, its ``Location``), the
  outcome, the request id (``X-Request-Id`` or a new one, echoed in the answer), the client
  address, and the names of the fields a change gave: never their values, so no secret;
- a change's entry is written in the change's own transaction: the route drafts it
  (:class:`PendingAudit`, the ``ChangeAudit`` dependency) and hands it to the store's write as
  ``audit=``, so a change that fails leaves no entry and a change that was made always has
  one; the recorder then writes no second entry for that call. Calls with no transaction to
  carry an entry (the operators' DLQ redrive: a produce to Kafka) and refused or failed calls
  get their entry from the recorder, in a transaction of its own after the answer is made;
- the last part of the answer is held until the entry is written: a caller who saw the answer
  knows it is in the trail.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.auth import PRINCIPAL_STATE
from hub.api.limits import request_headers
from hub.ports.audit import AuditEntry, AuditLog
from hub.ports.credentials import Principal

log = structlog.get_logger(__name__)

MANAGEMENT = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOT_MANAGEMENT = frozenset({"/api/v1/events", "/console/login", "/console/logout"})  # not changes
_RECORDED = ("/api/", "/console/")
_BODY_KEPT = 64 * 1024  # enough to name the fields of any management body
AUDIT_STATE = "audit"  # where the recorder leaves the call's PendingAudit
_ANSWERED = "audit_status"  # what a console action that answers a redirect stood for


def refused(request: Request, status: int) -> None:
    """For a console action that answers with a redirect whatever happened: the status its API
    call would have had (404, 409, …), so its audit entry's outcome says it was not done."""
    request.scope.setdefault("state", {})[_ANSWERED] = status


@dataclass
class PendingAudit:
    """The entry a management call's change carries into its store's transaction."""

    scope: Scope | None
    request_id: str = ""
    body: bytearray = field(default_factory=bytearray)
    drafted: bool = False

    def change(self, status: int, *, created: bool = False) -> AuditEntry | None:
        """The entry for this call's change, answered with ``status``, to pass to the store's
        write as ``audit=`` (None when no recorder runs). Once drafted, the recorder writes no
        entry of its own for a call that succeeds: the store wrote it with the change. A
        create's target (a 201, or ``created``: a 202 that queued a new object) is ``{id}``
        under the collection, which the store fills in."""
        if self.scope is None:
            return None
        self.drafted = True
        path = self.scope["path"]
        if self.scope["method"] == "POST" and (status == 201 or created):
            target = f"{path.rstrip('/')}/{{id}}"
        else:
            route = self.scope.get("route")
            target = _target(getattr(route, "path", None) or path, path, "")
        return _entry(self.scope, status, target, self.request_id, bytes(self.body))


async def pending_audit(request: Request) -> PendingAudit:
    found = request.scope.get("state", {}).get(AUDIT_STATE)
    return found if isinstance(found, PendingAudit) else PendingAudit(None)


#: The route's handle on the audit entry of its change (see :class:`PendingAudit`).
ChangeAudit = Annotated[PendingAudit, Depends(pending_audit)]


def outcome_of(status: int) -> str:
    if status in (401, 403):
        return "refused"
    return "ok" if status < 400 else "failed"


class AuditTrail:
    def __init__(self, app: ASGIApp, *, audit: AuditLog) -> None:
        self.app, self.audit = app, audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(_RECORDED):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = request_headers(scope)
        request_id = headers.get("x-request-id", "")[:100] or str(uuid.uuid4())
        json_body = "json" in headers.get("content-type", "") and method in MANAGEMENT
        pending = PendingAudit(scope, request_id)
        scope.setdefault("state", {})[AUDIT_STATE] = pending
        body = pending.body
        status, location, held = 0, "", None

        async def tee() -> Message:
            message = await receive()
            if json_body and message["type"] == "http.request" and len(body) < _BODY_KEPT:
                body.extend(message.get("body", b"")[: _BODY_KEPT - len(body)])
            return message

        async def watch(message: Message) -> None:
            nonlocal status, location, held
            if message["type"] == "http.response.start":
                status = message["status"]
                found = dict(message.get("headers", []))
                location = found.get(b"location", b"").decode("latin-1")
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())],
                }
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                held = message  # sent once the entry is written
                return
            await send(message)

        try:
            await self.app(scope, tee, watch)
        finally:
            written_with_change = pending.drafted and status < 400
            if (
                status
                and not written_with_change
                and (status in (401, 403) or (method in MANAGEMENT and scope["path"] not in NOT_MANAGEMENT))
            ):
                await self._record(scope, method, status, location, request_id, bytes(body))
            if held is not None:
                await send(held)

    async def _record(
        self, scope: Scope, method: str, status: int, location: str, request_id: str, body: bytes
    ) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or scope["path"]
        target = _target(template, scope["path"], location if status == 201 else "")
        entry = _entry(scope, status, target, request_id, body)
        try:
            await self.audit.record(entry)
        except Exception:
            log.exception("audit_record_failed", action=entry.action, target=entry.target)


def _entry(scope: Scope, status: int, target: str, request_id: str, body: bytes) -> AuditEntry:
    principal: Principal | None = scope.get("state", {}).get(PRINCIPAL_STATE)
    status = scope.get("state", {}).get(_ANSWERED, status)
    route = scope.get("route")
    template = getattr(route, "path", None) or scope["path"]
    client = scope.get("client")
    return AuditEntry(
        action=f"{scope['method']} {template}",
        target=target,
        outcome=outcome_of(status),
        status=status,
        actor_name=principal.name if principal else None,
        actor_role=principal.role.value if principal else None,
        actor_organisatie=principal.organisation if principal else None,
        actor_credential=principal.credential if principal else None,
        request_id=request_id,
        client=client[0] if client else None,
        changes=_field_names(body),
    )


def _target(template: str, path: str, created: str) -> str:
    """The object a call concerns: its path up to the route's first id (``…/subscriptions/{id}``
    also for ``…/{id}/replay``), a created object's ``Location``, else the path itself. A
    console action's object is named by its API path, so the trail of one object shows what
    was done to it by either."""
    parts = template.split("/")
    first = next((i for i, p in enumerate(parts) if p.startswith("{")), None)
    if first is not None:
        return _api_path("/".join(path.split("/")[: first + 1]))
    if created:
        return "/" + created.split("://", 1)[-1].split("/", 1)[-1] if "://" in created else created
    return _api_path(path)


def _api_path(target: str) -> str:
    """A console path as the API's (``/console/subscriptions/<id>`` is
    ``/api/v1/subscriptions/<id>``); an API path as it is."""
    if not target.startswith("/console/"):
        return target
    rest = target.removeprefix("/console/")
    if rest.startswith("test-event/"):
        rest = "subscriptions/" + rest.removeprefix("test-event/")
    return "/api/v1/" + rest


def _field_names(body: bytes) -> list[str]:
    """The top-level field names of a JSON body (never the values)."""
    try:
        parsed: Any = json.loads(body) if body else None
    except (ValueError, RecursionError):  # deeply nested JSON is a RecursionError
        return []
    return sorted(str(k) for k in parsed) if isinstance(parsed, dict) else []
