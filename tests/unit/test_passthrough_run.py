"""A pass-through run (:class:`hub.services.passthrough.PassThroughRun`) keeps the collector's
bulk policy while it runs, and publishes through the log's records what it published through
events, so a second run with nothing changed publishes nothing."""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from connectors.base import Batch, Change, Connector, ConnectorContext, Item, Record, objects_in
from hub.adapters.memory.connectors import InMemoryConnectorTables, InMemoryFingerprintStore
from hub.adapters.memory.log import InMemoryEventLog
from hub.ports.connectors import Owner, SyncScope
from hub.services.collector import BULK_YOUNG_THRESHOLD, FULL_COLLECTION_FACTOR
from hub.services.passthrough import PassThroughRun
from schemas import CloudEvent, validate_event
from schemas.bindings import from_kafka_record, to_kafka_record

SCOPE = SyncScope("urn:nl:koppelhub:test:connector:1", "org-1", "1")


class Empty(BaseModel):
    pass


class Meldingen(Connector[Empty]):
    """Two pages of items; notes the collector's thresholds while each page is read."""

    name: ClassVar[str] = "test-meldingen"
    source: ClassVar[str] = "test"
    config_model: ClassVar[type[BaseModel]] = Empty
    parsed_data: ClassVar[bool] = True
    thresholds: ClassVar[list[tuple[int, int, int]]] = []

    @property
    def passthrough(self) -> bool:
        return True

    async def fetch(self, checkpoint: Mapping[str, Any] | None) -> AsyncIterator[Batch]:
        for page in range(2):
            self.thresholds.append(gc.get_threshold())
            rows = [{"id": page * 10 + n, "state": "m", "x": 0.5} for n in range(3)]
            yield Batch([Record(r) for r in rows], {"page": page}, complete=page == 1)

    def item(self, record: Record) -> Item:
        return Item("melding", str(record.data["id"]), dict(record.data), f"d{record.data['state']}")

    def event(self, item: Item, before: Mapping[str, Any] | None) -> dict[str, Any]:
        return {"type": "nl.test.v1", "subject": item.id, "partitionkey": item.id, "data": item.fields}

    def map(self, record: Record) -> list[Change]:
        raise NotImplementedError


class EventsOnly:
    """An event log that takes events only (not a RecordLog)."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        self.events.extend(events)


async def run(log: Any, store: InMemoryFingerprintStore, tmp_path: Path) -> PassThroughRun:
    connector = Meldingen(Empty(), ConnectorContext(organisatie="org-1", scope="1", work_dir=tmp_path))
    passing = PassThroughRun(connector, SCOPE, Owner("connector", uuid.uuid4()), store, log)
    await passing.execute(None)
    return passing


async def test_a_pass_through_run_defers_full_collections_while_it_runs_and_restores_them(
    tmp_path: Path,
) -> None:
    before = gc.get_threshold()
    Meldingen.thresholds.clear()
    await run(InMemoryEventLog(), InMemoryFingerprintStore(InMemoryConnectorTables()), tmp_path)
    deferred = (BULK_YOUNG_THRESHOLD, before[1], before[2] * FULL_COLLECTION_FACTOR)
    assert Meldingen.thresholds == [deferred, deferred]
    assert gc.get_threshold() == before


async def test_records_and_events_carry_the_same_events_and_a_second_run_publishes_nothing(
    tmp_path: Path,
) -> None:
    log, events_only = InMemoryEventLog(), EventsOnly()
    store = InMemoryFingerprintStore(InMemoryConnectorTables())
    first = await run(log, store, tmp_path)
    await run(events_only, InMemoryFingerprintStore(InMemoryConnectorTables()), tmp_path)
    records = [r for partition in log.partitions for r in partition]
    assert first.tally.published == len(records) == 6
    assert sorted(records, key=repr) == sorted(map(to_kafka_record, events_only.events), key=repr)
    second = await run(log, store, tmp_path)
    assert (second.tally.published, second.tally.unchanged) == (0, 6)


def _nested(depth: int) -> Any:
    value: Any = "bodem"
    for _ in range(depth):
        value = {"in": value}
    return value


class BadMeldingen(Meldingen):
    """One page: good items between a lone surrogate, an integer beyond 64 bits, data nested
    70 deep and an item too large for an event of 4096 bytes."""

    async def fetch(self, checkpoint: Mapping[str, Any] | None) -> AsyncIterator[Batch]:
        rows: list[dict[str, Any]] = [
            {"id": 1, "state": "m"},
            {"id": 2, "state": "m", "text": "kapot \ud800"},
            {"id": 3, "state": "m", "count": 2**70},
            {"id": 4, "state": "m", "deep": _nested(70)},
            {"id": 5, "state": "m", "text": "x" * 5000},
            {"id": 6, "state": "m"},
        ]
        yield Batch([Record(r) for r in rows], {"page": 0}, complete=True)


async def test_items_beyond_the_data_and_size_limits_are_row_errors_and_the_others_are_published(
    tmp_path: Path,
) -> None:
    for log in (InMemoryEventLog(), EventsOnly()):
        connector = BadMeldingen(Empty(), ConnectorContext(organisatie="org-1", scope="1", work_dir=tmp_path))
        store = InMemoryFingerprintStore(InMemoryConnectorTables())
        passing = PassThroughRun(
            connector, SCOPE, Owner("connector", uuid.uuid4()), store, log, max_event_bytes=4096
        )
        tally = await passing.execute(None)
        if isinstance(log, EventsOnly):
            subjects = [e.subject for e in log.events]
        else:
            subjects = [r.key.decode() for p in log.partitions for r in p if r.key is not None]
        assert sorted(subjects) == ["1", "6"]
        assert (tally.published, tally.invalid) == (2, 4)
        messages = [e["message"] for e in tally.sample_errors]
        assert messages[0].startswith("melding 2, data.text: contains a lone UTF-16 surrogate")
        assert messages[1].startswith("melding 3, data.count: integer 1180591620717411303424 is outside")
        assert messages[2].startswith("melding 4, data.deep" + ".in" * 63 + ": nests deeper than 64 levels")
        assert messages[3].startswith("melding 5: its event would be ")
        # Only the good ones are known: a rejected item is read again when it changes.
        known = await store.known(SCOPE, [("melding", str(n)) for n in range(1, 7)])
        assert sorted(k[1] for k in known) == ["1", "6"]


class BadAttributes(Meldingen):
    """One page whose items make envelope attributes the projector cannot read: a ``time``
    without a timezone (a melding's ``updated_at`` as some sources send it), one out of range
    once in UTC, a newline and 513 characters in the id that becomes ``subject``."""

    times: ClassVar[dict[str, datetime | None]] = {
        "1": datetime(2024, 5, 1, 12, tzinfo=UTC),
        "2": datetime(2024, 5, 1, 12),
        "3": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        "a\nb": None,
        "x" * 513: None,
        "6": None,
    }

    async def fetch(self, checkpoint: Mapping[str, Any] | None) -> AsyncIterator[Batch]:
        yield Batch([Record({"id": key}) for key in self.times], {"page": 0}, complete=True)

    def item(self, record: Record) -> Item:
        return Item("melding", record.data["id"], dict(record.data), f"d{record.data['id']}")

    def event(self, item: Item, before: Mapping[str, Any] | None) -> dict[str, Any]:
        return {"type": "nl.test.v1", "subject": item.id, "time": self.times[item.id], "data": item.fields}


async def test_items_whose_attributes_the_envelope_refuses_are_row_errors_not_published_events(
    tmp_path: Path,
) -> None:
    """Unchecked, they were published and counted, then dead-lettered by the projector."""
    for log in (InMemoryEventLog(), EventsOnly()):
        connector = BadAttributes(
            Empty(), ConnectorContext(organisatie="org-1", scope="1", work_dir=tmp_path)
        )
        store = InMemoryFingerprintStore(InMemoryConnectorTables())
        passing = PassThroughRun(connector, SCOPE, Owner("connector", uuid.uuid4()), store, log)
        tally = await passing.execute(None)
        if isinstance(log, EventsOnly):
            published = [e.to_structured() for e in log.events]
        else:
            published = [
                from_kafka_record(r.key, r.value, r.headers).to_structured()
                for p in log.partitions
                for r in p
            ]
        assert sorted(e["subject"] for e in published) == ["1", "6"]
        for event in published:
            assert validate_event(event)  # the projector reads every one
        assert (tally.published, tally.invalid) == (2, 4)
        messages = " ".join(e["message"] for e in tally.sample_errors)
        assert "timezone" in messages and "out of range" in messages
        assert "control characters" in messages and "512" in messages


class ListedNonObjects(Meldingen):
    """One page of a JSON list with two items that are not objects among two meldingen."""

    async def fetch(self, checkpoint: Mapping[str, Any] | None) -> AsyncIterator[Batch]:
        records, rejected = objects_in(
            [{"id": 1, "state": "m"}, "2", None, {"id": 4, "state": "m"}], "page 1"
        )
        yield Batch(records, {"page": 0}, complete=True, rejected=rejected)


async def test_what_a_page_lists_that_is_not_an_object_is_a_row_error_saying_where_it_stood(
    tmp_path: Path,
) -> None:
    connector = ListedNonObjects(Empty(), ConnectorContext(organisatie="org-1", scope="1", work_dir=tmp_path))
    log = InMemoryEventLog()
    passing = PassThroughRun(
        connector,
        SCOPE,
        Owner("connector", uuid.uuid4()),
        InMemoryFingerprintStore(InMemoryConnectorTables()),
        log,
    )

    tally = await passing.execute(None)

    assert sorted(r.key for p in log.partitions for r in p) == [b"1", b"4"]
    assert (tally.read, tally.published, tally.invalid) == (4, 2, 2)
    assert [e["message"] for e in tally.sample_errors] == [
        "page 1, item 2: a string, not a JSON object",
        "page 1, item 3: null, not a JSON object",
    ]
