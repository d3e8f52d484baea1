"""The connector interface: a config model, one async fetch since a checkpoint, one pure mapping.

A connector turns one source into landscape changes. It never imports Kafka or SQLAlchemy:
the runner (``hub.services.connectors``) publishes what it yields, keeps the checkpoint in
PostgreSQL and advances it only after Kafka acknowledged the events a batch produced.

Errors, grouped by what the runner does about them:

- :class:`RecordRejected` (skippable): one record is invalid; it is reported and skipped;
- :class:`SourceUnavailable` (retriable): the source could not be read now; retry with backoff;
- :class:`SourceRefused` (permanent): the source is unusable as it is (malformed or hostile
  file, bad config); the run fails and publishes nothing more.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

import httpx
from pydantic import BaseModel

from schemas.landscape import LandscapeObject

__all__ = [
    "Batch",
    "Change",
    "ClientTls",
    "Connector",
    "ConnectorContext",
    "ConnectorError",
    "Egress",
    "ImportLimits",
    "Item",
    "Record",
    "RecordRejected",
    "Rejected",
    "SourceRefused",
    "SourceUnavailable",
    "objects_in",
]


class ConnectorError(Exception):
    """Root of the errors a connector raises on purpose."""


class RecordRejected(ConnectorError):
    """One record is invalid: ``problems`` are ``(column, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{c}: {m}" if c else m for c, m in problems))


class SourceUnavailable(ConnectorError):
    """The source cannot be read right now (network, file missing); retry later."""


class SourceRefused(ConnectorError):
    """The source cannot be used as it is (malformed, hostile, too large); do not retry as is."""


class Record(NamedTuple):
    """One raw record of a source; ``row`` is where a person finds it (spreadsheet row).

    A named tuple rather than a frozen dataclass (immutable alike), as :class:`Change`: an
    import makes one per row, and a named tuple is built in about half the time."""

    data: Mapping[str, Any]
    row: int | None = None


class Change(NamedTuple):
    """A landscape object as the source has it now (``vastgelegd``); a named tuple, see :class:`Record`."""

    object: LandscapeObject


@dataclass(frozen=True)
class Item:
    """A source item published as its own events (pass-through), not as a landscape object.

    ``kind`` and ``id`` identify it among the source's items (its fingerprint key); ``fields``
    are what is published and compared with what was published last (``digest`` covers only
    the fields whose change is worth an event).
    """

    kind: str
    id: str
    fields: Mapping[str, Any]
    digest: str
    #: Event attributes read from the record (``subject``, ``time``, …), not compared.
    attributes: Mapping[str, Any] = field(default_factory=dict)


class Rejected(NamedTuple):
    """A record rejected while it was read, before any mapping: where it stood and why."""

    row: int | None
    problems: list[tuple[str, str]]


_JSON_KINDS = {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "an array"}


def objects_in(items: list[Any], where: str) -> tuple[list[Record], tuple[Rejected, ...]]:
    """The records of a page of a JSON API's list (``where``: "page 2"): its objects, and each
    other item (a string, a number, null) as :class:`Rejected`, so that nothing a source lists
    is dropped without a row error."""
    records: list[Record] = []
    rejected: list[Rejected] = []
    for n, item in enumerate(items, 1):
        if isinstance(item, dict):
            records.append(Record(item))
        else:
            kind = "null" if item is None else _JSON_KINDS.get(type(item), type(item).__name__)
            rejected.append(Rejected(None, [("", f"{where}, item {n}: {kind}, not a JSON object")]))
    return records, tuple(rejected)


@dataclass(frozen=True)
class Batch:
    """Records read together, and the checkpoint that holds once they are all published.

    ``complete`` on the last batch says the source was read whole: a snapshot, so objects
    seen before but not now may be withdrawn (``full`` mode).
    """

    records: list[Record]
    checkpoint: dict[str, Any] | None = None
    complete: bool = False
    #: ``(objecttype, id)`` of objects the source still holds, listed without their content (an
    #: id sweep): a full run counts them as read (not withdrawn) and publishes nothing for them.
    present: tuple[tuple[str, str], ...] = ()
    #: What the source listed among its records that is not one (a string in a list of objects):
    #: the runner counts each as read and invalid, with its problems in the row report.
    rejected: tuple[Rejected, ...] = ()


@dataclass(frozen=True)
class ImportLimits:
    """What one file may make a reader hold or do (README "Import limits"); past any of them the
    file is refused (:class:`SourceRefused`), except ``max_cell_bytes``, which is a row error.

    They bound a read's memory whatever the file: a row is at most ``max_row_bytes`` as stored,
    an xlsx part read whole (shared strings, styles) at most ``max_part_bytes`` and the whole
    workbook at most ``max_unzipped_bytes`` inflated (checked on the zip's directory, before
    anything is inflated), an AMEFF file at most ``ConnectorContext.max_bytes`` and
    ``max_xml_elements`` elements. Defaults are the settings' defaults."""

    max_rows: int = 1_048_576
    max_cells: int = 20_000_000
    max_cell_bytes: int = 128 * 1024
    max_row_bytes: int = 4 * 1024 * 1024
    max_unzipped_bytes: int = 1024 * 1024 * 1024
    max_part_bytes: int = 64 * 1024 * 1024
    max_xml_elements: int = 5_000_000


@dataclass(frozen=True)
class ClientTls:
    """PEM material of a connection's TLS: a client certificate with its key (mutual TLS) and a
    CA to trust besides the system's. Hashable, so the hub builds each context once."""

    certificate: str | None = None
    private_key: str | None = None
    ca_certificate: str | None = None


class Egress(Protocol):
    """Makes the transport of connector HTTP requests (the hub's: SSRF-guarded at connect time,
    ``hub/adapters/egress.py``). ``tls`` brings a client certificate or extra CA, ``proxy`` an
    HTTP(S) proxy such as an FSC outway (connected to through the same guard)."""

    def __call__(
        self, *, tls: ClientTls | None = None, proxy: str | None = None
    ) -> httpx.AsyncBaseTransport: ...


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector instance knows about where it runs.

    ``organisatie`` owns the connector; ``scope`` identifies the instance (its stable id);
    ``work_dir`` is where a download may be kept while it is read; ``file_roots`` are the
    directories local paths may point into. ``egress`` makes the transport of every HTTP
    request (:func:`connectors.client.connector_client`): the hub injects one guarded by the
    connectors' network policy (``hub/adapters/egress.py``); None refuses every request.
    """

    organisatie: str
    scope: str
    work_dir: Path
    file_roots: tuple[Path, ...] = ()
    egress: Egress | None = None
    max_bytes: int = 512 * 1024 * 1024
    http_timeout_s: float = 30.0
    #: Tests pass ``httpx.MockTransport`` (no network, so no guard); None: the guarded network.
    http_transport: httpx.AsyncBaseTransport | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    limits: ImportLimits = field(default_factory=ImportLimits)
    #: This hub's identity (KOPPELHUB_SOURCE_URN): federation skips events that came from it.
    hub: str = ""
    #: The landscape's municipalities, exact ``naam`` → organisatie id (names two share are
    #: left out), read once per run by kinds that match names (publiccode ``usedBy``); None:
    #: not available here.
    gemeenten: Callable[[], Awaitable[Mapping[str, str]]] | None = None
    #: Whether an id is an organisation the landscape knows: a folder directly under a file
    #: root named after one is that organisation's (``connectors.sources.foreign_folder``);
    #: None: not known here, the check made when the connector was saved stands.
    is_organisatie: Callable[[str], Awaitable[bool]] | None = None


C = TypeVar("C", bound=BaseModel)


class Connector(ABC, Generic[C]):
    """Base of every connector kind. Subclasses set ``name``, ``source`` and ``config_model``
    and register themselves with :func:`connectors.registry.register`.

    ``sample_config`` is a valid config the contract test runs with (its fixture files come
    from ``connectors.samples``).
    """

    name: ClassVar[str]
    #: Events per batch the runner publishes and checkpoints together.
    batch_size: ClassVar[int] = 5000
    source: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    #: The shortest schedule: file kinds are read at most every minute, API kinds every 5 s.
    min_schedule_seconds: ClassVar[int] = 60
    #: Object types whose objects a ``full`` run may withdraw when they disappear.
    withdrawable: ClassVar[frozenset[str] | None] = None
    #: Event types :meth:`apply` writes back by default (``writeBack: true``); empty: none.
    consumes: ClassVar[tuple[str, ...]] = ()
    #: True: the connector publishes events about every organisation's objects, with the sources
    #: they were published under (federation), past the owner checks other kinds keep; only a
    #: principal with the right for all organisations may create or change one.
    hub_wide: ClassVar[bool] = False
    #: Pass-through connectors: True when the ``data`` of :meth:`event` holds only what a JSON
    #: parser that refuses NaN made (orjson; the fields published last, from JSONB) plus strings,
    #: integers, booleans and None, so the runner may write it without walking it
    #: (:func:`schemas.jsonbytes.dumps_parsed`). False: any JSON-like data.
    parsed_data: ClassVar[bool] = False

    @classmethod
    def records(cls, config: BaseModel) -> frozenset[str]:
        """The landscape object types a connector with this (validated) ``config`` records
        (publishes ``vastgelegd``/``ingetrokken`` events of): whoever creates or changes it needs
        the right to record each (as for an import of them). Default: none (pass-through,
        write-back only, or a hub-wide kind, which needs the right for all organisations)."""
        return frozenset()

    @classmethod
    def polls(cls, config: BaseModel) -> bool:
        """Whether a connector with this (validated) ``config`` reads its source on the schedule,
        so the runner claims it; False for one that only writes back (the store keeps it beside
        the config and the claim skips it). Default: every config reads a source."""
        return True

    def __init__(self, config: C, context: ConnectorContext) -> None:
        self.config = config
        self.context = context
        #: The last failed exchange with the source (request, status, response excerpt; no
        #: secrets), shown with the run that failed.
        self.diagnostics: dict[str, Any] | None = None

    def note(self, exchange: dict[str, Any]) -> None:
        """Keep ``exchange`` as :attr:`diagnostics` (HTTP clients call this on a failure)."""
        self.diagnostics = exchange

    @abstractmethod
    def fetch(self, checkpoint: Mapping[str, Any] | None) -> AsyncIterator[Batch]:
        """Read the source since ``checkpoint`` (None: from the start), batch by batch."""

    @abstractmethod
    def map(self, record: Record) -> list[Change]:
        """Pure: the landscape objects one record stands for; :class:`RecordRejected` if invalid."""

    def fingerprint(self, record: Record) -> tuple[str, str, str] | None:
        """Optional, pure and cheap: ``(objecttype, object id, digest)`` of a record that maps to
        exactly that one object, computed without mapping it. When the digest equals what this
        source published last, the runner skips the record unmapped. None: always map."""
        return None

    def mapper(self) -> Callable[[Record], list[Change]] | None:
        """Optional: a picklable pure function equal to :meth:`map` (e.g. a ``functools.partial``
        of a module-level function), which the runner may call in a worker process for large
        batches. None: records are mapped in the runner's process with :meth:`map`."""
        return None

    @property
    def passthrough(self) -> bool:
        """True: records become :class:`Item` events (:meth:`item`, :meth:`event`) rather than
        landscape objects (:meth:`map`); the runner keeps each item's published fields."""
        return False

    @property
    def relay(self) -> bool:
        """True: each record's ``data`` is a whole CloudEvent (structured JSON) that the runner
        publishes as it is, with its own ``source`` and ``id`` (federation); no fingerprints are
        kept, the projector's dedupe on source+id absorbs an event that arrives twice."""
        return False

    def item(self, record: Record) -> Item:
        """Pass-through connectors: the item one record stands for (:class:`RecordRejected`)."""
        raise NotImplementedError(f"connector kind {self.name!r} publishes landscape objects")

    def event(self, item: Item, before: Mapping[str, Any] | None) -> dict[str, Any]:
        """Pass-through connectors: the CloudEvents attributes (``type``, ``data``, ``subject``, …;
        ``source`` to override the connector's own) of ``item``, given the fields published
        last time (None: never published). The runner adds ``id``, ``specversion`` and
        ``organisatie``."""
        raise NotImplementedError(f"connector kind {self.name!r} publishes landscape objects")

    async def probe(self) -> dict[str, Any]:
        """Check reachability and credentials without publishing: what was found (raises a
        :class:`ConnectorError` naming the problem). Default: read the first batch."""
        async for batch in self.fetch(None):
            return {"reachable": True, "records": len(batch.records)}
        return {"reachable": True, "records": 0}

    async def close(self) -> None:
        """Release what :meth:`apply` kept open between calls (an HTTP pool). Default: nothing."""

    async def apply(
        self, event: Mapping[str, Any], *, seen: str | None = None
    ) -> tuple[str, dict[str, Any], bool] | None:
        """Write-back: apply one hub event (structured JSON) to the source system; the outcome
        event's ``(type, data, refused)``, or None when applied and the kind publishes no
        outcome event. :class:`SourceUnavailable`: try again later; :class:`SourceRefused`:
        refused for good. ``seen``: for a kind whose :meth:`writes` names the object, the
        digest of that object as this connector read it last."""
        raise NotImplementedError(f"connector kind {self.name!r} does not write back")

    def writes(self, event: Mapping[str, Any]) -> tuple[str, str] | None:
        """Write-back of landscape objects: ``(objecttype, id)`` of the object ``event`` writes to
        the source. The hub then passes :meth:`apply` the object's fingerprint as last read
        (``seen``) and keeps :meth:`written` as the new one, so the next read of the object as
        written is no change (no echo). None (default): the kind keeps no fingerprints."""
        return None

    def written(self, outcome: Mapping[str, Any]) -> str | None:
        """The digest, as the next read will map it, of what :meth:`apply` wrote, from its
        outcome ``data``; None: nothing written."""
        return None

    def removed(self, outcome: Mapping[str, Any]) -> bool:
        """Whether :meth:`apply` deleted the object at the source (outcome ``data``): the hub then
        records it as withdrawn for this connector, so the next full read does not withdraw it
        again (that would echo the hub's own deletion back as the source's)."""
        return False

    @classmethod
    def sample_config(cls, directory: Path) -> dict[str, Any]:
        """A valid config for the contract test; may write fixture files into ``directory``."""
        raise NotImplementedError(f"connector kind {cls.name!r} has no sample config")

    @property
    def full(self) -> bool:
        """Whether a complete read withdraws objects that disappeared since the last one."""
        return bool(getattr(self.config, "mode", "incremental") == "full")

    def withdrawable_types(self) -> frozenset[str] | None:
        """Object types a full run may withdraw; None: every type it published."""
        return self.withdrawable

    async def gone(self, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Of ``keys`` (objects a full run did not read), those the source confirms are gone: only
        they are withdrawn. Default: all of them (a file read whole is its own proof). A kind
        whose complete read is pages over a list that may move asks the source for each."""
        return keys
