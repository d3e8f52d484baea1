"""An OpenRegister fake: a real HTTP server on loopback with the Softwarecatalogus's objects API.

Shapes from ``ConductionNL/openregister`` (what :mod:`connectors.softwarecatalogus.connector`
relies on, cited there): routes of ``appinfo/routes.php`` under
``/index.php/apps/openregister/api/objects/{register}/{schema}[/{id}]`` (GET list, POST create,
GET/PUT/DELETE one); the list answer of ``website/docs/api/objects.md``
(``{"results", "total", "page", "pages", "limit"}``, ``_limit`` default 20, ``_page`` from 1,
or ``_offset``); each object with its ``@self`` (``id``, ``register``, ``schema``, ``created``,
``updated``, ``owner``, ``organisation``); ``@self[updated][gte]`` and
``_order[@self.updated]`` as metadata filter and order; Nextcloud basic auth, each user in one
organisation, which a created object gets as its ``@self.organisation`` (multitenancy).
Schemas and fields as in ``lib/Settings/softwarecatalogus_register.json``.

Deletion is soft, as OpenRegister's "Object Deletion" docs page and
``lib/Controller/DeletedController.php`` have it: a deleted object gets ``@self.deleted``, leaves
every list and answers 404 when asked for by id (only the trash view lists it, not faked here).
``_fields`` (``website/docs/api/objects.md``, "Rendering") keeps only the named fields of each
listed object, ``@self`` with them.

Times are whole seconds from an epoch, one tick per change, in OpenRegister's ISO form.
"""

from __future__ import annotations

import asyncio
import base64
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

BASE = "/index.php/apps/openregister/api/objects"
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Write:
    """One write the catalogue accepted: method, schema, object id and the user."""

    method: str
    schema: str
    id: str
    user: str
    body: dict[str, Any]


class OpenRegisterFake:
    def __init__(self, register: str = "voorzieningen") -> None:
        self.register = register
        self.users: dict[str, tuple[str, str]] = {}  # name → (password, organisation uuid)
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}  # schema → id → object
        self.requests: list[tuple[str, str, dict[str, str], str]] = []  # method, schema, query, user
        self.writes: list[Write] = []
        self.deleted: dict[str, dict[str, dict[str, Any]]] = {}  # schema → id → soft-deleted object
        #: Ids a list leaves out though the object is there (as a page that shifted under a
        #: concurrent delete would); asked for by id they are found.
        self.unlisted: set[str] = set()
        #: Answer every write with this status (e.g. 422 a validation error, 503 an outage).
        self.refuse_writes: int | None = None
        self._tick = 0
        self._written = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- data ------------------------------------------------------------------------
    def user(self, name: str, organisation: str) -> dict[str, str]:
        """A Nextcloud user of ``organisation`` with an app password; its basic auth config."""
        password = f"app-{uuid.uuid4().hex[:12]}"
        self.users[name] = (password, organisation)
        return {"username": name, "password": password}

    def _now(self) -> str:
        self._tick += 1
        return (_EPOCH + timedelta(seconds=self._tick)).isoformat()

    def add(
        self, schema: str, fields: dict[str, Any], *, organisation: str | None = None, owner: str = "admin"
    ) -> str:
        """Store an object as the catalogue would; its id."""
        object_id = str(fields.get("id") or uuid.uuid4())
        now = self._now()
        meta = {"id": object_id, "uuid": object_id, "register": self.register, "schema": schema,
                "created": now, "updated": now, "owner": owner, "organisation": organisation}  # fmt: skip
        self.objects.setdefault(schema, {})[object_id] = {**fields, "id": object_id, "@self": meta}
        return object_id

    def change(self, schema: str, object_id: str, **fields: Any) -> None:
        """Someone changes the object in the catalogue itself."""
        obj = self.objects[schema][object_id]
        obj.update(fields)
        obj["@self"]["updated"] = self._now()

    def delete(self, schema: str, object_id: str) -> None:
        """Someone deletes the object in the catalogue itself (softly: ``@self.deleted`` set)."""
        obj = self.objects[schema].pop(object_id)
        obj["@self"]["deleted"] = self._now()
        self.deleted.setdefault(schema, {})[object_id] = obj

    async def wait_writes(self, n: int, timeout: float = 30.0) -> list[Write]:
        async with asyncio.timeout(timeout):
            while len(self.writes) < n:
                self._written.clear()
                await self._written.wait()
        return self.writes

    # -- the server ------------------------------------------------------------------
    async def start(self) -> OpenRegisterFake:
        app = web.Application(middlewares=[self._auth])
        one = BASE + "/{register}/{schema}/{id}"
        app.router.add_get(BASE + "/{register}/{schema}", self._list)
        app.router.add_post(BASE + "/{register}/{schema}", self._create)
        app.router.add_get(one, self._one)
        app.router.add_put(one, self._update)
        app.router.add_delete(one, self._delete)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _user(self, request: web.Request) -> str | None:
        """The Nextcloud user the basic auth names, when its password is right."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            name, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            return None
        known = self.users.get(name)
        return name if known is not None and password and known[0] == password else None

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        name = self._user(request)
        if name is None:
            return web.json_response({"message": "Current user is not logged in"}, status=401)
        if request.match_info.get("register") != self.register:
            return web.json_response({"message": "Register not found"}, status=404)
        self.requests.append((request.method, request.match_info["schema"], dict(request.query), name))
        response: web.StreamResponse = await handler(request)
        return response

    def _objects(self, request: web.Request) -> dict[str, dict[str, Any]]:
        return self.objects.setdefault(request.match_info["schema"], {})

    async def _list(self, request: web.Request) -> web.Response:
        q = request.query
        chosen = [o for o in self._objects(request).values() if o["id"] not in self.unlisted]
        since = q.get("@self[updated][gte]")
        if since is not None:
            floor = datetime.fromisoformat(since)
            chosen = [o for o in chosen if datetime.fromisoformat(o["@self"]["updated"]) >= floor]
        order = q.get("_order[@self.updated]")
        if order in ("asc", "desc"):
            chosen.sort(key=lambda o: (o["@self"]["updated"], o["id"]), reverse=order == "desc")
        limit = max(1, int(q.get("_limit", "20")))
        page = max(1, int(q.get("_page", "1")))
        offset = int(q["_offset"]) if "_offset" in q else (page - 1) * limit
        pages = max(1, math.ceil(len(chosen) / limit))
        results = chosen[offset : offset + limit]
        if "_fields" in q:
            kept = {f.strip() for f in q["_fields"].split(",")} | {"@self"}
            results = [{k: v for k, v in o.items() if k in kept} for o in results]
        return web.json_response(
            {"results": results, "total": len(chosen), "page": page, "pages": pages, "limit": limit}
        )

    def _found(self, request: web.Request) -> dict[str, Any] | None:
        return self._objects(request).get(request.match_info["id"])

    async def _one(self, request: web.Request) -> web.Response:
        obj = self._found(request)
        if obj is None:
            return web.json_response({"error": "Object not found"}, status=404)
        return web.json_response(obj)

    async def _body(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _wrote(self, request: web.Request, object_id: str, body: dict[str, Any]) -> None:
        self.writes.append(
            Write(request.method, request.match_info["schema"], object_id, str(self._user(request)), body)
        )
        self._written.set()

    def _refused(self) -> web.Response | None:
        if self.refuse_writes is None:
            return None
        return web.json_response(
            {"message": "Validation failed: status is not allowed"}, status=self.refuse_writes
        )

    async def _create(self, request: web.Request) -> web.Response:
        if (refused := self._refused()) is not None:
            return refused
        body = await self._body(request)
        if body is None:
            return web.json_response({"error": "Invalid JSON"}, status=400)
        organisation = self.users[str(self._user(request))][1]
        fields = {k: v for k, v in body.items() if k != "@self"}
        object_id = self.add(
            request.match_info["schema"], fields, organisation=organisation, owner=str(self._user(request))
        )
        self._wrote(request, object_id, body)
        return web.json_response(self._objects(request)[object_id], status=201)

    async def _update(self, request: web.Request) -> web.Response:
        if (refused := self._refused()) is not None:
            return refused
        obj, body = self._found(request), await self._body(request)
        if obj is None:
            return web.json_response({"error": "Object not found"}, status=404)
        if body is None:
            return web.json_response({"error": "Invalid JSON"}, status=400)
        meta = obj["@self"]
        replaced = {**{k: v for k, v in body.items() if k != "@self"}, "id": obj["id"], "@self": meta}
        meta["updated"] = self._now()
        self._objects(request)[obj["id"]] = replaced
        self._wrote(request, obj["id"], body)
        return web.json_response(replaced)

    async def _delete(self, request: web.Request) -> web.Response:
        obj = self._found(request)
        if obj is None:
            return web.json_response({"error": "Object not found"}, status=404)
        self.delete(request.match_info["schema"], obj["id"])
        self._wrote(request, obj["id"], {})
        return web.Response(status=204)
