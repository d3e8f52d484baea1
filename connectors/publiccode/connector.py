"""Connector kind ``publiccode``: software described in publiccode.yml files, as applicaties.

Sources (exactly one): ``urls``, raw publiccode.yml URLs or repository URLs (the file is then
read at the repository's ``publiccode.yml`` on its default branch: GitHub's raw host, else
GitLab's ``/-/raw/HEAD/`` path; for other forges list the raw file URL); or ``catalogue``, an Open Catalog API
``GET /software`` list whose items carry the file in ``publiccodeYml``, paged by
``links.next`` (relative or absolute); or ``repositories``, an organisation's repository list
(a JSON array, ``html_url`` per item) paged by RFC 8288 ``Link: <…>; rel="next"``, each
repository's file read as for ``urls`` (a repository without one, 404, is skipped). Every
request goes through the REST kit's client (:class:`connectors.http.ApiClient`: the hub's
SSRF-guarded egress, auth, 429/503 waits).

Each file is parsed, validated and mapped (:mod:`connectors.publiccode.mapping`) into items the
pass-through runner publishes when they changed since the last run: the aanbieder organisatie
and the applicatie as ``…vastgelegd.v1`` (the projector makes them landscape objects) and every
matched ``usedBy`` as ``nl.softwarecatalogus.gebruik.voorgesteld.v1``. An invalid file is one
rejected record (its problems with their paths in the file) and publishes nothing, and so is a
file read from a repository (a repository URL, a listed repository, a catalogue item's ``url``)
whose ``url`` names another repository (a fork or mirror); an unmatched
``usedBy`` name (neither the exact name of a municipality in the landscape nor one of the
config's ``aliases``) is named in one rejected record per file, so both are in the run's errors.

Withdrawal: every source is a complete list, so a run that read it whole withdraws
(``applicatie.ingetrokken.v1``, the connector's source) each applicatie it published before and
did not find now: its repository left the ``catalogue``/``repositories`` list (or the ``urls``),
or its file answered 404 or 410. A file that could not be read for now (5xx, 429, a timeout,
any other answer) or that is invalid or a fork keeps its applicatie: it counts as ``present``
(its id comes from the repository URL, the identity the fork rule enforces). When that id is not
known (a raw file URL), the run withdraws nothing at all, and so does an empty list (more likely
a broken source than no software). Aanbieders and proposals are never withdrawn.

Files are read conditionally (:mod:`connectors.publiccode.validators`): a file that answers
``304 Not Modified`` to the validators of the last run is unchanged and not parsed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from connectors.base import (
    Batch,
    Change,
    Connector,
    Item,
    Record,
    RecordRejected,
    SourceRefused,
    SourceUnavailable,
)
from connectors.http import ApiClient
from connectors.ids import content_hash
from connectors.publiccode.config import PubliccodeConfig
from connectors.publiccode.mapping import Mapped, Matching, applicatie_id, canonical_url, map_document
from connectors.publiccode.schema import PubliccodeProblem, load_yaml
from connectors.publiccode.validators import Validators
from connectors.registry import register
from schemas.landscape import VOORGESTELD_TYPE, vastgelegd_type

__all__ = ["PubliccodeConfig", "PubliccodeConnector", "raw_url"]

PROPOSAL = "gebruikvoorstel"
#: Files read at once, and files per batch (one batch: one publish and one checkpoint commit).
CONCURRENCY = 8
FILES_PER_BATCH = 200
#: The answers that say a file is gone for good (its applicatie is withdrawn).
GONE = (404, 410)


def raw_url(url: str) -> str:
    """Where the publiccode.yml of ``url`` is: the URL itself when it names a ``.yml``/``.yaml``
    file, else the file at the root of the repository's default branch."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/").removesuffix(".git")
    if path.lower().endswith((".yml", ".yaml")):
        return url
    if parts.hostname == "github.com":
        return f"https://raw.githubusercontent.com{path}/HEAD/publiccode.yml"
    return f"{parts.scheme}://{parts.netloc}{path}/-/raw/HEAD/publiccode.yml"


def _rejected(where: str, problems: list[tuple[str, str]], repository: str | None = None) -> Record:
    """A rejected record; ``repository``: the repository it stands for, whose applicatie is not
    gone for it (an invalid file, a fork, a read that failed for now)."""
    reported = [(path, f"{where}: {path + ': ' if path else ''}{m}") for path, m in problems]
    if repository is None:
        return Record({"rejected": reported})
    return Record({"rejected": reported, "present": applicatie_id(repository)})


def _batch(records: list[Record], complete: bool, checkpoint: dict[str, Any] | None = None) -> Batch:
    """A batch of ``records``; the applicaties of the rejected ones that name one, and of the
    unchanged files (304, left out), are present."""
    present = tuple(("applicatie", str(r.data["present"])) for r in records if "present" in r.data)
    kept = [r for r in records if "unchanged" not in r.data]
    return Batch(kept, checkpoint, complete=complete, present=present)


def _records(mapped: Mapped, seen: set[tuple[str, str]], bron: str) -> list[Record]:
    """The items of one file; an organisatie already emitted in this run is not emitted again
    (the first file that names it wins, so a run is stable)."""
    out = []
    org = mapped.organisatie
    if org is not None and ("organisatie", org.id) not in seen:
        seen.add(("organisatie", org.id))
        out.append(Record({"kind": "organisatie", "id": org.id, "fields": org.model_dump(mode="json")}))
    app = mapped.applicatie
    out.append(Record({"kind": "applicatie", "id": app.id, "fields": app.model_dump(mode="json")}))
    for proposal in mapped.proposals:
        key = content_hash([proposal.afnemer, proposal.applicatie])
        out.append(
            Record(
                {"kind": PROPOSAL, "id": key, "fields": proposal.model_dump(mode="json", exclude_none=True)}
            )
        )
    if mapped.unmatched:  # one report per file, however many names: a crawl repeats them every run
        names = ", ".join(map(repr, mapped.unmatched))
        message = f"usedBy {names} names no known municipality; add the names to the connector's aliases"
        out.append(Record({"rejected": [("usedBy", f"{bron}: {message}")]}))
    return out


@register
class PubliccodeConnector(Connector[PubliccodeConfig]):
    """Reads publiccode.yml files (see the module docstring and README "Connectors")."""

    name: ClassVar[str] = "publiccode"
    source: ClassVar[str] = "publiccode"
    config_model: ClassVar[type[BaseModel]] = PubliccodeConfig
    min_schedule_seconds: ClassVar[int] = 5
    batch_size: ClassVar[int] = 1000
    #: A publiccode.yml names any supplier as aanbieder and may propose gebruik for any
    #: gemeente: a crawler is the functioneel-beheerder's, not one organisation's.
    hub_wide: ClassVar[bool] = True
    withdrawable: ClassVar[frozenset[str] | None] = frozenset({"applicatie"})

    @property
    def passthrough(self) -> bool:
        return True

    @property
    def full(self) -> bool:
        """Every source is a complete list (module docstring, "Withdrawal")."""
        return True

    #: A file whose applicatie is unknown could not be read in this run: withdraw nothing.
    _held = False
    #: This run's conditional reads (set by :meth:`fetch`).
    _validators: Validators | None = None

    #: How names and URIs are matched in this run: the landscape's municipalities (read at the
    #: start of each run) and the config's aliases over them.
    matching: Matching | None = None

    async def _load_matching(self) -> Matching:
        cfg, lookup = self.config, self.context.gemeenten
        names = dict(await lookup()) if lookup is not None else {}
        self.matching = Matching({**names, **cfg.aliases}, cfg.organisaties, cfg.organisatieType)
        return self.matching

    def _matching_digest(self) -> str:
        """What a file maps to besides its bytes: a change reads every file whole again."""
        m, cfg = self.matching or Matching(), self.config
        return content_hash([dict(m.gemeenten), dict(m.organisaties), m.organisatie_type, cfg.maxFileBytes])

    def parse(
        self, raw: bytes, bron: str, seen: set[tuple[str, str]], repository: str | None = None
    ) -> list[Record]:
        """The records of one file's bytes (``bron``: where it was read, for reports and
        proposals). ``repository``: the repository the file was read from, when known; a file
        whose ``url`` names another one is a fork or mirror (or a forgery) and is skipped, as
        the standard asks ("forks and variants"): its ``url`` is the identity of the applicatie,
        which only the original's repository may speak for."""
        cfg = self.config
        matching = self.matching or Matching(cfg.aliases, cfg.organisaties, cfg.organisatieType)
        try:
            mapped = map_document(doc := load_yaml(raw, self.config.maxFileBytes), bron, matching)
        except PubliccodeProblem as e:
            return [_rejected(bron, e.problems, repository)]
        if repository is not None and canonical_url(str(doc["url"])) != canonical_url(repository):
            why = f"{doc['url']!r} is not the repository it was read from ({repository!r}): a fork or mirror"
            return [_rejected(bron, [("url", why + " that keeps the original's url is skipped")], repository)]
        return _records(mapped, seen, bron)

    async def _read(
        self, api: ApiClient, url: str, gate: asyncio.Semaphore, validators: Validators
    ) -> tuple[str, httpx.Response | None, str, int | None]:
        """``(where, response, why, status)`` of the file of ``url``, asked conditionally; no
        response when there was no answer (``status`` None)."""
        where = raw_url(url)
        async with gate:
            try:
                response = await api.request("GET", where, headers=validators.headers(url))
            except SourceUnavailable as e:
                return where, None, str(e), None
        return where, response, f"GET {where} answered {response.status_code}", response.status_code

    async def fetch(self, checkpoint: Mapping[str, Any] | None) -> AsyncIterator[Batch]:
        """Each batch of files; the last is ``complete`` (a snapshot whose missing applicaties
        are withdrawn) unless a file of unknown applicatie failed for now or the list was empty."""
        await self._load_matching()
        self._held, listed = False, 0
        self._validators = validators = Validators.of(checkpoint, self._matching_digest())
        async with ApiClient(self.context, self.config.auth, note=self.note) as api:
            if self.config.catalogue is not None:
                async for batch in self._catalogue(api, self.config.catalogue):
                    listed += len(batch.records)
                    yield _batch(batch.records, batch.complete and listed > 0)
                return
            seen: set[tuple[str, str]] = set()
            if self.config.repositories is not None:
                async for urls, unread, last in self._repositories(api, self.config.repositories):
                    records = unread + await self._files(api, urls, seen, missing_ok=True)
                    listed += len(urls)
                    now = validators.checkpoint() if last else None
                    yield _batch(records, last and listed > 0 and not self._held, now)
                return
            urls = self.config.urls or []
            for start in range(0, len(urls), FILES_PER_BATCH):
                records = await self._files(api, urls[start : start + FILES_PER_BATCH], seen)
                last = start + FILES_PER_BATCH >= len(urls)
                yield _batch(records, last and not self._held, validators.checkpoint() if last else None)
            if not urls:
                yield Batch([], None)

    async def _files(
        self, api: ApiClient, urls: list[str], seen: set[tuple[str, str]], *, missing_ok: bool = False
    ) -> list[Record]:
        """The records of the files at ``urls``, read :data:`CONCURRENCY` at a time; a file that
        cannot be read is a rejected record, unless ``missing_ok`` and it answered 404 (a listed
        repository without a publiccode.yml, the common case in an organisation's list)."""
        gate, validators = asyncio.Semaphore(CONCURRENCY), self._validators or Validators("")
        read = await asyncio.gather(*(self._read(api, u, gate, validators) for u in urls))
        records: list[Record] = []
        for url, (where, response, why, status) in zip(urls, read, strict=True):
            repository = url if where != url else None
            if status == 200 and response is not None:
                found = self.parse(response.content, where, seen, repository)
                app = next((str(r.data["id"]) for r in found if r.data.get("kind") == "applicatie"), None)
                if app is not None:
                    validators.remember(url, response, app)
                records += found
            elif status == 304 and (app := validators.unchanged(url)) is not None:
                records.append(Record({"unchanged": True, "present": app}))  # not parsed
            elif status in GONE:  # gone for good: its applicatie is withdrawn
                if not missing_ok:
                    records.append(_rejected(where, [("", why)]))
            else:  # for now: its applicatie stays (or, unknown, nothing is withdrawn this run)
                self._held = self._held or repository is None
                records.append(_rejected(where, [("", why)], repository))
        return records

    async def _pages(
        self, api: ApiClient, url: str, what: str, next_of: Callable[[httpx.Response, Any], str | None]
    ) -> AsyncIterator[tuple[int, httpx.Response, Any, bool]]:
        """Each JSON page of a paged list (``what`` names it in errors) as ``(number, response,
        body, last)``, following ``next_of``; at most ``maxPages``, never a page twice."""
        visited: set[str] = set()
        next_url: str | None = url
        for number in range(self.config.maxPages + 1):
            if next_url is None:
                return
            if number == self.config.maxPages:
                raise SourceRefused(
                    f"more than maxPages ({self.config.maxPages}) pages: is the paging right?"
                )
            visited.add(next_url)
            response = await api.request("GET", next_url)
            if response.status_code != 200:
                raise api.failed(response, f"the {what}")
            try:
                body = response.json()
            except ValueError as e:
                raise SourceRefused(f"{what} page {number + 1} is not JSON") from e
            href = next_of(response, body)
            next_url = str(response.url.join(href)) if href else None
            if next_url is not None and next_url in visited:
                raise SourceRefused(f"the {what}'s next link points back to a page already read")
            yield number, response, body, next_url is None

    async def _repositories(
        self, api: ApiClient, url: str
    ) -> AsyncIterator[tuple[list[str], list[Record], bool]]:
        """Each page of a repository list (a JSON array; GitHub's, Gitea's and Forgejo's
        ``/orgs/{org}/repos`` answer so) as the repositories' URLs, along ``Link: rel="next"``,
        and a rejected record for each item that names no repository (which, unknown, holds
        back this run's withdrawals)."""

        def link_next(response: httpx.Response, _body: Any) -> str | None:
            href = response.links.get("next", {}).get("url")
            return href if isinstance(href, str) and href else None

        async for number, _response, items, last in self._pages(api, url, "repository list", link_next):
            if not isinstance(items, list):
                raise SourceRefused(f"repository list page {number + 1} is not a JSON array")
            urls, unread = [], []
            for n, item in enumerate(items, 1):
                found = (item.get("html_url") or item.get("url")) if isinstance(item, dict) else None
                if isinstance(found, str) and found.lower().startswith(("http://", "https://")):
                    urls.append(found)
                else:
                    self._held = True
                    problem = "names no repository (no http(s) html_url or url)"
                    unread.append(_rejected(f"repository list page {number + 1}, item {n}", [("", problem)]))
            yield urls, unread, last

    async def _catalogue(self, api: ApiClient, url: str) -> AsyncIterator[Batch]:
        """Each page of an Open Catalog API ``/software`` list, along ``links.next``."""
        seen: set[tuple[str, str]] = set()

        def links_next(_response: httpx.Response, body: Any) -> str | None:
            links = body.get("links") if isinstance(body, dict) else None
            href = links.get("next") if isinstance(links, dict) else None
            return href if isinstance(href, str) and href else None

        async for number, response, body, last in self._pages(api, url, "catalogue", links_next):
            items = body.get("data") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise SourceRefused(f"catalogue page {number + 1} has no list at 'data'")
            records: list[Record] = []
            for n, item in enumerate(items):
                records += self._catalogue_item(item, str(response.url), number, n, seen)
            yield Batch(records, None, complete=last)

    def _catalogue_item(
        self, item: Any, page: str, number: int, n: int, seen: set[tuple[str, str]]
    ) -> list[Record]:
        where = f"{page} item {n + 1}"
        if not isinstance(item, dict) or not isinstance(item.get("publiccodeYml"), str):
            return [_rejected(where, [("publiccodeYml", "is missing or not a string")])]
        url = item.get("url")
        repository = url if isinstance(url, str) and url.lower().startswith(("http://", "https://")) else None
        return self.parse(item["publiccodeYml"].encode(), repository or where, seen, repository)

    def map(self, record: Record) -> list[Change]:
        raise NotImplementedError("publiccode publishes its items through the pass-through runner")

    def item(self, record: Record) -> Item:
        data = record.data
        if "rejected" in data:
            raise RecordRejected([(str(p), str(m)) for p, m in data["rejected"]])
        fields = data["fields"]
        return Item(str(data["kind"]), str(data["id"]), fields, content_hash(fields))

    def event(self, item: Item, before: Mapping[str, Any] | None) -> dict[str, Any]:
        if item.kind == PROPOSAL:
            subject = str(item.fields["applicatie"])
            return {
                "type": VOORGESTELD_TYPE,
                "subject": subject,
                "partitionkey": subject,
                "data": dict(item.fields),
            }
        return {
            "type": vastgelegd_type(item.kind),
            "subject": item.id,
            "partitionkey": item.id,
            "data": dict(item.fields),
        }

    @classmethod
    def sample_config(cls, directory: Path) -> dict[str, Any]:
        return {
            "urls": ["https://github.com/leverancier/zaaksysteem"],
            "aliases": {"Gemeente Voorbeeldstad": "org-1"},
        }
