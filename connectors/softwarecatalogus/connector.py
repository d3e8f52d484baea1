"""Connector kind ``softwarecatalogus``: the live Softwarecatalogus, both ways.

The catalogue runs on Conduction's OpenRegister (a Nextcloud app); what this relies on, from
``ConductionNL/openregister``:

- ``appinfo/routes.php``: ``GET|POST /api/objects/{register}/{schema}``,
  ``GET|PUT|PATCH|DELETE /api/objects/{register}/{schema}/{id}`` under
  ``/index.php/apps/openregister``; Nextcloud authenticates with basic auth (an app password);
- ``website/docs/api/objects.md``: paging ``_limit`` and ``_page`` (or ``_offset``), the answer
  ``{"results", "total", "page", "pages", "limit"}``, each object with its ``@self`` metadata
  (``id``, ``register``, ``schema``, ``created``, ``updated``, ``owner``, ``organisation``, …);
  ``_order`` sorts (``_order[@self.updated]=asc``, as the Solr notes in the repository list
  for the metadata fields) and ``@self[updated][gte]=…`` filters on the update time (the
  metadata filter syntax of its search docs, the one its incremental-sync design names);
- ``lib/Settings/softwarecatalogus_register.json``: register ``voorzieningen``, schemas
  ``organisatie``, ``module``, ``gebruik``, ``koppeling`` and their fields
  (:mod:`connectors.softwarecatalogus.mapping`).

Read: per schema, objects with ``@self.updated`` at or after the checkpoint (minus
``overlapSeconds``) in update order, each page a batch; the checkpoint is the newest
``@self.updated`` read per schema. Paging is by keyset like the Signalen connector: when a page
moved the newest time on, the next page is asked for from that time again (page numbers over a
list that moves skip an object whenever one already read is updated during the run). Objects
read again (the overlap, the keyset restarts) are dropped by the runner's fingerprints. What is
published: every organisatie, and the applicaties (modules), gebruik and koppelingen the
connector's organisation owns (the hub's ownership rule: one organisation's connector changes
only its own objects), as ``…vastgelegd.v1`` with the connector's source.

Deletions: OpenRegister deletes softly (its "Object Deletion" docs page: the object gets
``@self.deleted`` and "deleted objects are excluded from normal queries"; they are listed only
by the trash view of ``lib/Controller/DeletedController.php``, across registers and until they
are purged), so an incremental read never sees one. Every ``sweepEvery``-th run therefore also
lists every object's id (``_fields=id``, the rendering option of ``website/docs/api/objects.md``)
and counts those as read; an object this connector published that no sweep page listed is asked
for by id (:meth:`SoftwarecatalogusConnector.gone`) and withdrawn (``…ingetrokken.v1`` with the
connector's source) only when the catalogue answers 404 or 410 — a page that shifted under a
concurrent change, an outage or a refusal withdraws nothing. Only this connector's fingerprints
are candidates, so another source's objects are never withdrawn.

Write: :mod:`connectors.softwarecatalogus.writeback` (no echo either way; an object it deletes
in the catalogue is recorded as withdrawn for this connector, so no sweep withdraws it again).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Final

import orjson
from pydantic import BaseModel

from connectors.base import (
    Batch,
    Change,
    Connector,
    Record,
    RecordRejected,
    Rejected,
    SourceRefused,
    objects_in,
)
from connectors.http import ApiClient
from connectors.registry import register
from connectors.rest.connector import _since
from connectors.softwarecatalogus.config import API_PATH, SoftwarecatalogusConfig
from connectors.softwarecatalogus.mapping import SCHEMA_OF, Ids, catalogue_id, landscape_data, to_landscape
from connectors.softwarecatalogus.writeback import CONSUMES, WRITTEN_TYPES
from connectors.softwarecatalogus.writeback import apply as apply_change
from schemas.landscape import parse_derived_type
from schemas.landscape.privacy import owner_of

__all__ = ["READ_TYPES", "SoftwarecatalogusConnector"]

#: Read in this order, so the organisations are in the hub before what refers to them.
READ_TYPES: Final = ("organisatie", "applicatie", "gebruik", "koppeling")
MAX_REQUESTS: Final = 100_000
#: Ids per page of a sweep (only ids are asked for, so a page is small).
SWEEP_LIMIT: Final = 1000
Key = tuple[str, str]


@register
class SoftwarecatalogusConnector(Connector[SoftwarecatalogusConfig]):
    """The Softwarecatalogus's register through OpenRegister's objects API (module docstring)."""

    name: ClassVar[str] = "softwarecatalogus"
    source: ClassVar[str] = "softwarecatalogus"
    config_model: ClassVar[type[BaseModel]] = SoftwarecatalogusConfig
    min_schedule_seconds: ClassVar[int] = 5
    batch_size: ClassVar[int] = 1000
    consumes: ClassVar[tuple[str, ...]] = CONSUMES
    withdrawable: ClassVar[frozenset[str] | None] = frozenset(READ_TYPES)

    _writer: ApiClient | None = None
    _sweeping = False

    @classmethod
    def records(cls, config: BaseModel) -> frozenset[str]:
        return frozenset(READ_TYPES)

    @property
    def full(self) -> bool:
        """Whether this run sweeps (decided by :meth:`fetch` before its first batch): only then
        does the runner withdraw what the run did not read (and the sweep did not list)."""
        return self._sweeping

    @cached_property
    def ids(self) -> Ids:
        return Ids({**self.config.organisaties, self.config.organisatie: self.context.organisatie})

    @property
    def objects_url(self) -> str:
        return f"{self.config.url}{API_PATH}/{self.config.registerId}"

    def client(self) -> ApiClient:
        return ApiClient(self.context, self.config.auth, note=self.note)

    def _params(self, since: str | None, page: int, limit: int, *, overlap: bool) -> dict[str, str]:
        """One page's query; ``overlap``: ask ``overlapSeconds`` earlier (from a checkpoint a
        previous run left, where an object saved meanwhile may carry an earlier time)."""
        params = {"_limit": str(limit), "_page": str(page), "_order[@self.updated]": "asc"}
        if since is not None:
            params["@self[updated][gte]"] = _since(since, self.config.overlapSeconds if overlap else 0)
        return params

    def _ours(self, objecttype: str, raw: Mapping[str, Any]) -> bool:
        """Whether the connector publishes ``raw``: organisaties always, the rest when its
        organisation owns them (an object that does not map goes on, to be reported)."""
        if objecttype == "organisatie":
            return True
        try:
            owner = owner_of(objecttype, landscape_data(objecttype, raw, self.ids))
        except RecordRejected:
            return True
        return owner in (None, self.context.organisatie)

    @staticmethod
    async def _list(api: ApiClient, url: str, query: dict[str, str]) -> tuple[Any, int, Any]:
        """One list page: ``(results, pages, total)`` as the catalogue answered them."""
        response = await api.request("GET", url, params=query)
        if response.status_code != 200:
            raise api.failed(response, "the Softwarecatalogus")
        try:
            body = orjson.loads(response.content)
            if not isinstance(body["results"], list):
                raise TypeError("results is not a list")
            return body["results"], int(body.get("pages") or 1), body.get("total")
        except (ValueError, KeyError, TypeError) as e:
            raise SourceRefused("the Softwarecatalogus answered a page that is not an objects list") from e

    def _key(self, objecttype: str, object_id: str) -> Key:
        """The hub's key of a catalogue object (organisations by their hub id)."""
        return objecttype, self.ids.hub(object_id) if objecttype == "organisatie" else object_id

    async def _sweep(self, api: ApiClient, objecttype: str) -> AsyncIterator[tuple[Key, ...]]:
        """The keys of every object of one schema the catalogue lists now, a page at a time,
        asked for by id only (``_fields=id``)."""
        url = f"{self.objects_url}/{SCHEMA_OF[objecttype]}"
        for page in range(1, MAX_REQUESTS + 1):
            query = {"_fields": "id", "_limit": str(SWEEP_LIMIT), "_page": str(page)}
            results, pages, _ = await self._list(api, url, query)
            found = [catalogue_id(r) for r in results if isinstance(r, dict)]  # gone() asks for the rest
            yield tuple(self._key(objecttype, i) for i in found if i is not None)
            if page >= pages or not results:
                return
        raise SourceRefused(f"more than {MAX_REQUESTS} pages: is the catalogue's paging right?")

    async def gone(self, keys: list[Key]) -> list[Key]:
        """Of the objects a sweep did not list, those the catalogue answers 404 or 410 for (its
        deleted objects); any other answer keeps the object (asked again at the next sweep)."""
        confirmed: list[Key] = []
        async with self.client() as api:
            for objecttype, object_id in keys:
                if objecttype not in SCHEMA_OF:
                    continue
                them = self.ids.catalogue(object_id) if objecttype == "organisatie" else object_id
                response = await api.request("GET", f"{self.objects_url}/{SCHEMA_OF[objecttype]}/{them}")
                if response.status_code in (404, 410):
                    confirmed.append((objecttype, object_id))
        return confirmed

    async def _pages(
        self, api: ApiClient, objecttype: str, since: str | None, limit: int | None = None
    ) -> AsyncIterator[tuple[list[Record], tuple[Rejected, ...], str | None, int | None]]:
        """Each page of one schema: its records, what it listed that is not an object, the newest
        ``@self.updated`` so far, ``total``."""
        url = f"{self.objects_url}/{SCHEMA_OF[objecttype]}"
        asked, last, page = since, since, 1
        for read in range(1, MAX_REQUESTS + 1):
            query = self._params(asked, page, limit or self.config.pageSize, overlap=asked == since)
            results, pages, total = await self._list(api, url, query)
            records = []
            # Named by the pages read so far: keyset paging starts at _page=1 again and again.
            listed, rejected = objects_in(results, f"{SCHEMA_OF[objecttype]} page {read}")
            for raw in (r.data for r in listed):
                meta = raw.get("@self")
                stamp = meta.get("updated") if isinstance(meta, dict) else None
                if isinstance(stamp, str) and (last is None or stamp > last):
                    last = stamp  # ISO times of one server compare as text
                if self._ours(objecttype, raw):
                    records.append(Record({"objecttype": objecttype, "object": raw}))
            yield records, rejected, last, total if isinstance(total, int) else None
            if limit is not None or page >= pages or not results:
                return
            asked, page = (last, 1) if last != asked else (asked, page + 1)
        raise SourceRefused(f"more than {MAX_REQUESTS} pages: is the catalogue's paging right?")

    async def fetch(self, checkpoint: Mapping[str, Any] | None) -> AsyncIterator[Batch]:
        """What changed since ``checkpoint`` (``updated``: the newest time read per type), then,
        on a sweep run, every object's id; ``runs`` counts the runs since the last sweep."""
        marks: dict[str, Any] = dict((checkpoint or {}).get("updated") or {})
        runs = int((checkpoint or {}).get("runs") or 0)
        every = self.config.sweepEvery
        self._sweeping = every > 0 and runs + 1 >= every
        async with self.client() as api:
            for objecttype in READ_TYPES:
                async for records, rejected, last, _ in self._pages(api, objecttype, marks.get(objecttype)):
                    marks[objecttype] = last
                    yield Batch(records, {"updated": dict(marks), "runs": runs}, rejected=rejected)
            if self._sweeping:
                for objecttype in READ_TYPES:
                    async for keys in self._sweep(api, objecttype):
                        yield Batch([], {"updated": dict(marks), "runs": runs}, present=keys)
        yield Batch([], {"updated": dict(marks), "runs": 0 if self._sweeping else runs + 1}, complete=True)

    def map(self, record: Record) -> list[Change]:
        objecttype, raw = record.data.get("objecttype"), record.data.get("object")
        if objecttype not in SCHEMA_OF or not isinstance(raw, Mapping):
            raise RecordRejected([("", "not a catalogue object")])
        return [Change(to_landscape(str(objecttype), raw, self.ids))]

    async def probe(self) -> dict[str, Any]:
        async with self.client() as api:
            async for records, _, _, total in self._pages(api, "organisatie", None, limit=1):
                return {"reachable": True, "organisaties": total if total is not None else len(records)}
        return {"reachable": True, "organisaties": 0}

    def writes(self, event: Mapping[str, Any]) -> tuple[str, str] | None:
        parsed = parse_derived_type(str(event.get("type", "")))
        subject = event.get("subject")
        if parsed is None or parsed[0] not in WRITTEN_TYPES or not isinstance(subject, str) or not subject:
            return None
        return parsed[0], subject

    def written(self, outcome: Mapping[str, Any]) -> str | None:
        value = outcome.get("fingerprint")
        return value if isinstance(value, str) else None

    def removed(self, outcome: Mapping[str, Any]) -> bool:
        return outcome.get("actie") == "verwijderd"

    def own_event(self, event: Mapping[str, Any]) -> bool:
        """An event this connector published itself (its source is the connector's URN)."""
        return str(event.get("source", "")).endswith(f":connector:{self.context.scope}")

    async def apply(
        self, event: Mapping[str, Any], *, seen: str | None = None
    ) -> tuple[str, dict[str, Any], bool]:
        if self.own_event(event):
            raise SourceRefused("an event of this connector itself is never written back")
        if self._writer is None:  # kept open between requests (keep-alive, rate-limit state)
            self._writer = self.client()
        return await apply_change(self._writer, self.objects_url, self.ids, event, seen)

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.aclose()

    @classmethod
    def sample_config(cls, directory: Path) -> dict[str, Any]:
        return {
            "url": "https://softwarecatalogus.example.org",
            "auth": {"basic": {"username": "gemeente-voorbeeldstad", "password": "app-password"}},
            "organisatie": "5b8e0a1c-3f7d-4c2e-9a61-0d4f2b7e8c13",
        }
