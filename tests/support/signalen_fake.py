"""A Signalen fake: a real HTTP server on loopback that follows Signalen's private signals API.

Shapes taken from ``Amsterdam/signals``: the list is HAL-paged like
``app/signals/apps/api/generics/pagination.py`` (``{"_links": {"self", "next", "previous"},
"count", "results"}``, ``page``/``page_size``); the filters are those of
``app/signals/apps/api/filters/signal.py`` (``status``, ``routing_department_code``,
``category_slug``, ``maincategory_slug`` repeatable, ``updated_after`` as ``updated_at >=``);
items carry the fields of ``PrivateSignalSerializerList`` (``app/signals/apps/api/serializers/
signal.py``) with the nested status of ``serializers/nested/status.py``; a PATCH of ``status``
is checked against the workflow table like ``Status.clean`` (``models/status.py``): a forbidden
transition answers 400 ``{"state": ["Invalid state transition from `…` to `…`."]}``, a missing
text for ``o``/``reopened`` 400 on ``text``.

Meldingen are kept as small slotted objects and rendered per page, and a query's filtered,
ordered id list is cached until something changes, so 100,000 meldingen are cheap.
"""

from __future__ import annotations

import asyncio
import bisect
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from connectors.signalen.workflow import ALLOWED_STATUS_CHANGES, STATE_DISPLAY, TEXT_REQUIRED

PATH = "/signals/v1/private/signals/"
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_CATEGORIES = {"afval": "afval-naast-container", "wegen": "losse-stoeptegel", "groen": "boom-snoeien"}


class Melding:
    __slots__ = (
        "body",
        "created",
        "department",
        "id",
        "main_slug",
        "signal_id",
        "state",
        "sub_slug",
        "text",
        "updated",
    )

    def __init__(self, melding_id: int, tick: int, state: str, main: str, department: str) -> None:
        self.id = melding_id
        self.signal_id = str(uuid.UUID(int=melding_id))
        self.state, self.text = state, None
        self.main_slug, self.sub_slug = main, _CATEGORIES.get(main, f"{main}-overig")
        self.department = department
        self.created = self.updated = tick
        self.body: str | None = None  # the melding's own text; "Melding <id>" when None


@dataclass(frozen=True)
class Patch:
    """One PATCH as Signalen received it, and whether it accepted it."""

    melding: int
    body: dict[str, Any]
    status: int

    @property
    def state(self) -> str | None:
        return (self.body.get("status") or {}).get("state")

    @property
    def send_email(self) -> bool | None:
        return (self.body.get("status") or {}).get("send_email")


def _time(tick: int) -> str:
    return (_EPOCH + timedelta(milliseconds=tick)).isoformat()


def _parse_time(value: str) -> int:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int((moment - _EPOCH) / timedelta(milliseconds=1))


@dataclass
class SignalenFake:
    """``token``: the bearer token it accepts; ``down``: answer 503 to everything (with
    ``retry_after``); ``patches``: every PATCH received, accepted or not; ``requests``: every
    list request's query, for assertions on parameters."""

    token: str = "signalen-secret"
    down: bool = False
    retry_after: int | None = None
    #: Go down (503) after serving this many list pages (a source that fails halfway).
    down_after_pages: int | None = None
    max_page_size: int = 1000
    #: Called with the number of list pages served so far, after serving each (a change made
    #: in Signalen while a connector is reading).
    after_page: Callable[[int], None] | None = None
    reporter_email: str = "melder@example.org"
    meldingen: dict[int, Melding] = field(default_factory=dict)
    patches: list[Patch] = field(default_factory=list)
    requests: list[list[tuple[str, str]]] = field(default_factory=list)
    url: str = ""
    _tick: int = 0
    _version: int = 0
    _cache: dict[tuple[Any, ...], tuple[int, list[int]]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _patched: asyncio.Event = field(default_factory=asyncio.Event)

    # -- the data ------------------------------------------------------------------------
    def _next_tick(self) -> int:
        self._tick += 1
        self._version += 1
        return self._tick

    def add(
        self,
        n: int = 1,
        *,
        state: str = "m",
        main: str = "afval",
        department: str = "ASC",
        body: str | None = None,
    ) -> list[int]:
        """Create ``n`` meldingen (``body``: their text); their ids."""
        ids = []
        for _ in range(n):
            melding_id = len(self.meldingen) + 1
            self.meldingen[melding_id] = Melding(melding_id, self._next_tick(), state, main, department)
            self.meldingen[melding_id].body = body
            ids.append(melding_id)
        return ids

    def change(self, melding_id: int, *, state: str | None = None, main: str | None = None) -> None:
        """A change made in Signalen itself (by a behandelaar), not through the API."""
        m = self.meldingen[melding_id]
        if state is not None:
            m.state = state
        if main is not None:
            m.main_slug, m.sub_slug = main, _CATEGORIES.get(main, f"{main}-overig")
        m.updated = self._next_tick()

    def render(self, m: Melding) -> dict[str, Any]:
        url = f"{self.url}{PATH}{m.id}"
        return {
            "_links": {"self": {"href": url}},
            "_display": f"{m.id} - {m.state}",
            "id": m.id,
            "signal_id": m.signal_id,
            "source": "online",
            "text": f"Melding {m.id}" if m.body is None else m.body,
            "text_extra": "",
            "status": {
                "text": m.text,
                "user": None,
                "state": m.state,
                "state_display": STATE_DISPLAY.get(m.state, m.state),
                "target_api": None,
                "extra_properties": None,
                "send_email": False,
                "created_at": _time(m.updated),
                "email_override": None,
            },
            "location": {
                "id": m.id,
                "stadsdeel": "A",
                "buurt_code": "A00a",
                "address": {"openbare_ruimte": "Dam", "huisnummer": 1, "woonplaats": "Amsterdam"},
                "address_text": "Dam 1 Amsterdam",
                "geometrie": {"type": "Point", "coordinates": [4.8932, 52.3731]},
            },
            "category": {
                "sub": m.sub_slug.replace("-", " ").capitalize(),
                "sub_slug": m.sub_slug,
                "main": m.main_slug.capitalize(),
                "main_slug": m.main_slug,
                "category_url": f"{self.url}/signals/v1/public/terms/categories/{m.main_slug}"
                f"/sub_categories/{m.sub_slug}",
                "departments": m.department,
            },
            "reporter": {"email": self.reporter_email, "phone": "0612345678", "sharing_allowed": False},
            "priority": {"priority": "normal"},
            "routing_departments": [{"code": m.department, "name": m.department}],
            "created_at": _time(m.created),
            "updated_at": _time(m.updated),
        }

    # -- the server ----------------------------------------------------------------------
    async def start(self) -> SignalenFake:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get(PATH, self._list)
        app.router.add_get(PATH + "{id}", self._one)
        app.router.add_patch(PATH + "{id}", self._patch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_patches(self, n: int, timeout: float = 30.0) -> list[Patch]:
        """Wait until at least ``n`` PATCHes arrived."""
        async with asyncio.timeout(timeout):
            while len(self.patches) < n:
                self._patched.clear()
                await self._patched.wait()
        return self.patches

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.down:
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            return web.json_response({"detail": "Service unavailable"}, status=503, headers=headers)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"detail": "Authentication credentials were not provided."}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    def _ids(self, query: Any) -> list[int]:
        """The ids a list query selects, in its order. Sorted lists are cached per filter set
        and data version; ``updated_after`` with ``ordering=updated_at`` (every keyset page) is a
        bisection of the cached list, as an index would serve it."""
        ordering = query.get("ordering", "-created_at")
        keyset = ordering == "updated_at" and "updated_after" in query
        skip = ("page", "page_size", "updated_after") if keyset else ("page", "page_size")
        key = tuple(sorted((k, v) for k, v in query.items() if k not in skip))
        cached = self._cache.get(key)
        if cached is None or cached[0] != self._version:
            cached = (self._version, self._select(query, ordering, use_after=not keyset))
            self._cache[key] = cached
        ids = cached[1]
        if not keyset:
            return ids
        after = _parse_time(query["updated_after"])
        start = bisect.bisect_left(ids, after, key=lambda i: self.meldingen[i].updated)
        return ids[start:]

    def _select(self, query: Any, ordering: str, *, use_after: bool) -> list[int]:
        states = set(query.getall("status", []))
        departments = set(query.getall("routing_department_code", []))
        subs, mains = set(query.getall("category_slug", [])), set(query.getall("maincategory_slug", []))
        after = _parse_time(query["updated_after"]) if use_after and "updated_after" in query else None
        chosen = [
            m
            for m in self.meldingen.values()
            if (not states or m.state in states)
            and (not departments or m.department in departments)
            and (not (subs or mains) or m.sub_slug in subs or m.main_slug in mains)
            and (after is None or m.updated >= after)
        ]
        field_name = ordering.lstrip("-")
        attr = {"updated_at": "updated", "created_at": "created", "id": "id"}.get(field_name, "created")
        chosen.sort(key=lambda m: (getattr(m, attr), m.id), reverse=ordering.startswith("-"))
        return [m.id for m in chosen]

    async def _list(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        if self.down_after_pages is not None and len(self.requests) >= self.down_after_pages:
            return web.json_response({"detail": "Service unavailable"}, status=503)
        self.requests.append(list(query.items()))
        try:
            page = int(query.get("page", "1"))
            size = min(int(query.get("page_size", "100")), self.max_page_size)
            ids = self._ids(query)
        except ValueError as e:
            return web.json_response({"detail": str(e)}, status=400)
        start = (page - 1) * size
        if page < 1 or (start >= len(ids) and page != 1):
            return web.json_response({"detail": "Invalid page."}, status=404)
        base = request.url
        more = start + size < len(ids)
        body = {
            "_links": {
                "self": {"href": str(base)},
                "next": {"href": str(base.update_query(page=page + 1)) if more else None},
                "previous": {"href": str(base.update_query(page=page - 1)) if page > 1 else None},
            },
            "count": len(ids),
            "results": [self.render(self.meldingen[i]) for i in ids[start : start + size]],
        }
        if self.after_page is not None:
            self.after_page(len(self.requests))
        return web.json_response(body)

    def _melding(self, request: web.Request) -> Melding:
        try:
            return self.meldingen[int(request.match_info["id"])]
        except (KeyError, ValueError):
            raise web.HTTPNotFound(text='{"detail": "Not found."}', content_type="application/json") from None

    async def _one(self, request: web.Request) -> web.Response:
        return web.json_response(self.render(self._melding(request)))

    async def _patch(self, request: web.Request) -> web.Response:
        m = self._melding(request)
        body = await request.json()
        status = body.get("status") or {}
        state, text = status.get("state"), status.get("text")
        errors: dict[str, list[str]] = {}
        if state not in ALLOWED_STATUS_CHANGES.get(m.state, ()):
            show = STATE_DISPLAY.get
            errors["state"] = [
                f"Invalid state transition from `{show(m.state, m.state)}` to `{show(state, state)}`."
            ]
        if state in TEXT_REQUIRED and not text:
            errors["text"] = [f"This field is required when changing `state` to `{STATE_DISPLAY[state]}`."]
        code = 400 if errors else 200
        self.patches.append(Patch(m.id, body, code))
        self._patched.set()
        if errors:
            return web.json_response(errors, status=400)
        m.state, m.text = state, text
        m.updated = self._next_tick()
        return web.json_response(self.render(m))
