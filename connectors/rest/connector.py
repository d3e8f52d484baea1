"""Connector kind ``rest``: any JSON API, paged, incremental, as landscape objects or events.

One run reads page after page (``paging``), each page's ``items`` becoming one batch whose
checkpoint is the highest ``incremental.field`` value read so far (sent back, minus the
overlap, in ``incremental.param`` next time) and the first page's validators: a next run
sends ``If-None-Match`` / ``If-Modified-Since`` and a 304 ends it with nothing to publish.
A run that fails halfway keeps the checkpoint of the last page the log acknowledged (without
the validators, which only a run read to its end keeps).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jmespath
from jmespath.parser import ParsedResult
from pydantic import BaseModel

from connectors.base import Batch, Change, Connector, Item, Record, RecordRejected, SourceRefused, objects_in
from connectors.http import ApiClient
from connectors.ids import content_hash
from connectors.registry import register
from connectors.rest.config import Mapping as RestMapping
from connectors.rest.config import RestConfig
from connectors.rest.writeback import apply as apply_request
from schemas.landscape import LandscapeDataError, LandscapeObject, validate_landscape_data, vastgelegd_type

__all__ = ["RestConnector"]


def _later(a: Any, b: Any) -> Any:
    if a is None:
        return b
    try:
        return b if b > a else a
    except TypeError:
        return a


def _since(value: Any, overlap_s: float) -> str:
    """The checkpoint as sent: an ISO timestamp ``overlap_s`` earlier, anything else as is."""
    if isinstance(value, str) and overlap_s:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return (moment - timedelta(seconds=overlap_s)).isoformat()
    return str(value)


@register
class RestConnector(Connector[RestConfig]):
    """Reads a JSON API (see :mod:`connectors.rest.config` for every option)."""

    name: ClassVar[str] = "rest"
    source: ClassVar[str] = "rest"
    config_model: ClassVar[type[BaseModel]] = RestConfig
    min_schedule_seconds: ClassVar[int] = 5
    batch_size: ClassVar[int] = 1000

    _writer: ApiClient | None = None

    @classmethod
    def records(cls, config: BaseModel) -> frozenset[str]:
        mapping = config.mapping if isinstance(config, RestConfig) else None
        return frozenset({mapping.objecttype}) if mapping and mapping.objecttype else frozenset()

    @classmethod
    def polls(cls, config: BaseModel) -> bool:
        """Only a config with a source side (``url`` and ``mapping``) is read on the schedule."""
        return not isinstance(config, RestConfig) or config.polls

    @property
    def passthrough(self) -> bool:
        return self.config.mapping is not None and self.config.mapping.type is not None

    @property
    def _mapping(self) -> RestMapping:
        """The source side's mapping; a connector that only writes back has none and never runs."""
        if self.config.mapping is None:
            raise SourceRefused("this rest connector only writes back: it has no url and mapping to read")
        return self.config.mapping

    async def apply(self, event: Mapping[str, Any], *, seen: str | None = None) -> None:
        """Write-back: ``event`` as one request to this API (:mod:`connectors.rest.writeback`);
        no outcome event (the delivery log shows the outcome, a refusal its reason)."""
        wb = self.config.writeBack
        if wb is None:
            raise SourceRefused("this rest connector has no writeBack")
        if self._writer is None:  # kept open between requests (keep-alive, rate-limit state)
            self._writer = ApiClient(self.context, self.config.auth, note=self.note)
        await apply_request(self._writer, wb, self.config.headers, event)

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.aclose()

    @cached_property
    def _compiled(self) -> dict[str, ParsedResult]:
        m = self._mapping
        paths = {f"field:{k}": v for k, v in m.fields.items()}
        paths.update(items=self.config.items, id=m.id)
        for name, path in (("subject", m.subject), ("time", m.time), ("sequence", m.sequence)):
            if path:
                paths[name] = path
        if self.config.incremental:
            paths["advance"] = self.config.incremental.field
        if self.config.paging.next:
            paths["next"] = self.config.paging.next
        if self.config.paging.cursorPath:
            paths["cursor"] = self.config.paging.cursorPath
        return {name: jmespath.compile(path) for name, path in paths.items()}

    def _search(self, name: str, data: Any) -> Any:
        return self._compiled[name].search(data)

    def _first_params(self, checkpoint: Mapping[str, Any] | None) -> dict[str, str]:
        params: dict[str, str] = {}
        inc, paging = self.config.incremental, self.config.paging
        if inc and checkpoint and checkpoint.get("since") is not None:
            params[inc.param] = _since(checkpoint["since"], inc.overlapSeconds)
        if paging.style == "page":
            params[paging.pageParam] = str(paging.firstPage)
            if paging.sizeParam:
                params[paging.sizeParam] = str(paging.size)
        return params

    def _validators(self, checkpoint: Mapping[str, Any] | None) -> dict[str, str]:
        if not checkpoint:
            return {}
        headers = {}
        if checkpoint.get("etag"):
            headers["If-None-Match"] = str(checkpoint["etag"])
        if checkpoint.get("lastModified"):
            headers["If-Modified-Since"] = str(checkpoint["lastModified"])
        return headers

    def _next(
        self, response: httpx.Response, body: Any, items: list[Any], params: dict[str, str]
    ) -> tuple[str | None, dict[str, str] | None]:
        """The next request (URL and parameters), or ``(None, None)`` at the end."""
        paging = self.config.paging
        if paging.style == "next-link":
            href = self._search("next", body)
            return (str(response.url.join(href)), None) if isinstance(href, str) and href else (None, None)
        if paging.style == "link-header":
            href = response.links.get("next", {}).get("url")
            return (str(response.url.join(href)), None) if href else (None, None)
        if paging.style == "page":
            if len(items) < paging.size:
                return None, None
            return str(response.url.copy_with(query=None)), {
                **params,
                paging.pageParam: str(int(params[paging.pageParam]) + 1),
            }
        if paging.style == "cursor":
            cursor = self._search("cursor", body)
            if cursor in (None, ""):
                return None, None
            assert paging.cursorParam is not None
            return str(response.url.copy_with(query=None)), {**params, paging.cursorParam: str(cursor)}
        return None, None

    async def fetch(self, checkpoint: Mapping[str, Any] | None) -> AsyncIterator[Batch]:
        cfg = self.config
        if cfg.url is None:
            raise SourceRefused("this rest connector only writes back: it has no url to read")
        since = (checkpoint or {}).get("since")
        validators: dict[str, Any] = {}
        url: str | None = cfg.url
        params: dict[str, str] | None = self._first_params(checkpoint)
        seen_urls: set[str] = set()
        async with ApiClient(self.context, cfg.auth, note=self.note) as api:
            for number in range(cfg.maxPages + 1):
                if url is None:
                    return
                if number == cfg.maxPages:
                    raise SourceRefused(f"more than maxPages ({cfg.maxPages}) pages: is the paging right?")
                headers = dict(cfg.headers)
                if number == 0:
                    headers.update(self._validators(checkpoint))
                response = await api.request("GET", url, params=params, headers=headers)
                if response.status_code == 304 and number == 0:
                    yield Batch([], dict(checkpoint or {}), complete=True)  # nothing changed
                    return
                if response.status_code != 200:
                    raise api.failed(response, "the source")
                if number == 0:
                    validators = {
                        "etag": response.headers.get("etag"),
                        "lastModified": response.headers.get("last-modified"),
                    }
                try:
                    body = response.json()
                except ValueError as e:
                    raise SourceRefused(f"page {number + 1} is not JSON") from e
                items = self._search("items", body)
                if not isinstance(items, list):
                    raise SourceRefused(f"page {number + 1}: {cfg.items!r} is not a list")
                if cfg.incremental:
                    for item in items:
                        since = _later(since, self._search("advance", item))
                current = str(response.url)
                url, next_params = self._next(response, body, items, params or {})
                if url is not None and next_params is None and url in seen_urls | {current}:
                    raise SourceRefused("the next page link points back to a page already read")
                seen_urls.add(current)
                params = next_params
                records, rejected = objects_in(items, f"page {number + 1}")
                # The first page's validators hold only for a run read to its end: kept earlier,
                # a run that failed halfway would be answered 304 next time and never resume.
                checkpoint_ = {"since": since, **(validators if url is None else {})}
                yield Batch(records, checkpoint_, complete=url is None, rejected=rejected)

    def _fields(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        fields = {}
        for name in self._mapping.fields:
            value = self._search(f"field:{name}", raw)
            if value is not None:
                fields[name] = value
        return fields

    def _id(self, raw: Mapping[str, Any]) -> str:
        value = self._search("id", raw)
        if value is None or value == "":
            raise RecordRejected([("id", f"no id at {self._mapping.id!r}")])
        return str(value)

    def map(self, record: Record) -> list[Change]:
        cfg = self._mapping
        assert cfg.objecttype is not None
        data = {**self._fields(record.data), "id": self._id(record.data)}
        try:
            model = validate_landscape_data(vastgelegd_type(cfg.objecttype), data)
        except LandscapeDataError as e:
            raise RecordRejected([(f.removeprefix("data."), m) for f, m in e.problems]) from e
        if not isinstance(model, LandscapeObject):
            raise RecordRejected([("", f"does not map to a {cfg.objecttype}")])
        return [Change(model)]

    def item(self, record: Record) -> Item:
        fields = self._fields(record.data)
        kind = self._mapping.type
        assert kind is not None
        attributes: dict[str, Any] = {}
        for name in ("subject", "time", "sequence"):
            value = self._search(name, record.data) if name in self._compiled else None
            if value is None:
                continue
            if name == "time":
                try:
                    value = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                except ValueError:
                    raise RecordRejected([("time", f"not an ISO 8601 time: {str(value)[:40]!r}")]) from None
                if value.tzinfo is None:
                    raise RecordRejected([("time", "needs a timezone")])
            attributes[name] = value if name == "time" else str(value)
        return Item(kind, self._id(record.data), fields, content_hash(fields), attributes)

    def event(self, item: Item, before: Mapping[str, Any] | None) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "type": self._mapping.type,
            "subject": item.id,
            "partitionkey": item.id,
            "data": dict(item.fields),
            **item.attributes,
        }
        if self.config.source:
            attrs["source"] = self.config.source
        return attrs

    async def probe(self) -> dict[str, Any]:
        url = self.config.url
        if url is None:
            raise SourceRefused("this rest connector only writes back: it has no url to read")
        async with ApiClient(self.context, self.config.auth, note=self.note) as api:
            response = await api.request(
                "GET", url, params=self._first_params(None), headers=dict(self.config.headers)
            )
            if response.status_code != 200:
                raise api.failed(response, "the source")
            try:
                items = self._search("items", response.json())
            except ValueError as e:
                raise SourceRefused("the answer is not JSON") from e
            if not isinstance(items, list):
                raise SourceRefused(f"{self.config.items!r} is not a list in the answer")
            return {"reachable": True, "items": len(items)}

    @classmethod
    def sample_config(cls, directory: Path) -> dict[str, Any]:
        return {
            "url": "https://leverancier.example.org/api/producten",
            "items": "results",
            "mapping": {"objecttype": "applicatie", "fields": {"naam": "name"}},
        }
